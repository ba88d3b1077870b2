//! The soak's outputs, from a [`SoakReport`] alone: `soak.json`, `soak.md`, the SVG charts
//! overlaying every gateway soaked, and the one-line outcome per gateway.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::growth::{growth_pct, settled_pct, Growth};
use super::summary::{GatewaySoak, SoakReport};
use crate::experiments::verify::VerifyResult;
use crate::reporting::charts::line_chart;
use crate::reporting::outcome;

/// Writes `soak.json`, `soak.md`, `soak-rss.svg`, `soak-fds.svg`, `soak-throughput.svg`.
pub fn write_soak(r: &SoakReport, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = vec![("soak.json", serde_json::to_string_pretty(r)? + "\n")];
    files.extend(soak_charts(r)?);
    files.push(("soak.md", soak_markdown(r)));
    outcome::write_files(dir, &files)
}

/// The three charts, every gateway overlaid: `(file name, SVG)`.
pub fn soak_charts(r: &SoakReport) -> anyhow::Result<Vec<(&'static str, String)>> {
    // Minutes, unless every run is short.
    let longest = r
        .gateways
        .iter()
        .filter_map(|g| g.samples.last())
        .map(|s| s.t_s)
        .fold(0.0, f64::max);
    let (div, unit) = if longest >= 180.0 {
        (60.0, "minutes")
    } else {
        (1.0, "seconds")
    };
    let mins = |pts: Vec<(f64, f64)>| pts.into_iter().map(|(t, v)| (t / div, v)).collect();
    let series = |f: &dyn Fn(&GatewaySoak) -> Vec<(f64, f64)>| -> Vec<(String, Vec<(f64, f64)>)> {
        r.gateways
            .iter()
            .map(|g| (g.gateway.clone(), mins(f(g))))
            .collect()
    };
    Ok(vec![
        (
            "soak-rss.svg",
            line_chart(
                "Gateway RSS during the soak",
                unit,
                "RSS (MiB)",
                &series(&|g| g.rss_points()),
                &[],
                false,
            )?,
        ),
        (
            "soak-fds.svg",
            line_chart(
                "Gateway open file descriptors during the soak",
                unit,
                "open fds",
                &series(&|g| g.fd_points()),
                &[],
                false,
            )?,
        ),
        (
            "soak-throughput.svg",
            line_chart(
                "Throughput during the soak (ok/s, per second)",
                unit,
                "ok/s",
                &series(&|g| g.ok_points()),
                &[],
                false,
            )?,
        ),
    ])
}

fn fmt_growth(g: &Option<Growth>, unit: &str, digits: usize) -> (String, String, String) {
    match g {
        Some(g) => (
            format!("{:.d$} -> {:.d$}", g.first_avg, g.last_avg, d = digits),
            format!(
                "{:+.d$} {unit} ({:+.1}%); after {:.0} s {:+.d$} ({:+.1}%)",
                g.growth,
                growth_pct(g),
                g.settled_from_s,
                g.settled_growth,
                settled_pct(g),
                d = digits
            ),
            format!("{:+.d$} {unit}/h", g.slope_per_hour, d = digits),
        ),
        None => ("-".into(), "-".into(), "-".into()),
    }
}

/// Per-bucket averages of `(t, v)` points: `bucket index -> (sum, n)`.
fn bucketed(points: &[(f64, f64)], bucket_s: f64) -> BTreeMap<u64, (f64, u32)> {
    let mut m: BTreeMap<u64, (f64, u32)> = BTreeMap::new();
    for &(t, v) in points {
        let e = m.entry((t / bucket_s).floor().max(0.0) as u64).or_default();
        e.0 += v;
        e.1 += 1;
    }
    m
}

/// The human report.
pub fn soak_markdown(r: &SoakReport) -> String {
    let mut s = String::new();
    intro(&mut s, r);
    verdict_table(&mut s, r);
    for g in &r.gateways {
        gateway_section(&mut s, g);
    }
    let _ = writeln!(
        s,
        "Data: `soak.json` (per gateway: every sample, the full run result with its per-second timeline; schema in bench-client/SCHEMA.md). Command: `{}`.",
        r.manifest.args.join(" ")
    );
    s
}

/// The title, the method and the machine.
fn intro(s: &mut String, r: &SoakReport) {
    let m = &r.manifest;
    let _ = writeln!(s, "# Soak: {} per gateway\n", human_duration(r.duration_s));
    let _ = writeln!(
        s,
        "Each gateway in turn, against its own fresh kafka-mock (unless `--brokers`): a short \
         closed-loop probe of the maximum throughput, then an open loop at {:.0}% of it for \
         {}, HTTP keep-alive with connection churn (every connection is closed by the client \
         and reopened after {} requests). The gateway's RSS (VmRSS) and open fds (/proc/PID/fd) \
         are sampled every second. Growth = average of the last window minus average of the \
         first window of the measured phase (after the 1 s warmup; window: a minute, or a \
         third of the run if shorter); \"after N s\": the last window minus the window that \
         starts N s in (`--settle`, here {:.0} s, at most where a window still fits before \
         the last one): the connections' ramp and the allocator's climb to its high-water \
         mark under churn come first, and a warm-up to a plateau leaves this near 0 while a \
         leak does not. The growth limits judge the growth after N s. Slope = least-squares \
         fit over every sample of the measured phase, per hour. Acked / missing: after the \
         gateway's SIGTERM, the most recently acknowledged ids (`--verify-last`, default 1,000,000: kafka-mock trims old \
         log segments) looked up in the topic.\n",
        r.fraction * 100.0,
        human_duration(r.duration_s),
        r.reconnect_after,
        r.settle_s
    );
    let _ = writeln!(
        s,
        "Machine: {} x {}, kernel {}; commit {}{}.\n",
        m.cpu_count,
        m.cpu_model.as_deref().unwrap_or("?"),
        m.kernel.as_deref().unwrap_or("?"),
        m.commit.as_deref().map_or("?", |c| &c[..c.len().min(12)]),
        m.dirty_note()
    );
}

/// The verdict (with the limits), one row per gateway, those not soaked, the charts.
fn verdict_table(s: &mut String, r: &SoakReport) {
    let _ = writeln!(
        s,
        "Verdict: **{}**{}\n",
        if r.passed { "PASS" } else { "FAIL" },
        [
            r.fail_on_growth_mib
                .map(|l| format!("RSS growth limit {l} MiB")),
            r.fail_on_growth_pct
                .map(|l| format!("RSS growth limit {l}%")),
        ]
        .into_iter()
        .flatten()
        .map(|l| format!(" ({l})"))
        .collect::<String>()
    );
    let _ = writeln!(
        s,
        "| gateway | probe max ok/s | soak rate | ok/s | p99 | p99.9 | RSS MiB first -> last | RSS growth | RSS slope | fds first -> last | fd growth | fd slope | errors | 503 | connects | stalls | acked / missing in Kafka | SIGTERM exit | verdict |"
    );
    let _ = writeln!(s, "|{}", "---|".repeat(19));
    for g in &r.gateways {
        let t = &g.run.totals;
        let (rf, rg, rs) = fmt_growth(&g.rss_mib, "MiB", 1);
        let (ff, fg, fs) = fmt_growth(&g.fds, "", 1);
        let _ = writeln!(
            s,
            "| {} | {} | {:.0} | {:.0} | {:.2} ms | {:.2} ms | {rf} | {rg} | {rs} | {ff} | {fg} | {fs} | {} | {} | {} | {} | {} | {} | {} |",
            g.gateway,
            g.probe_ok_per_sec.map_or("-".into(), |p| format!("{p:.0}")),
            g.rate,
            t.ok_per_sec,
            g.run.latency.p99_us / 1000.0,
            g.run.latency.p999_us / 1000.0,
            t.errors,
            t.backpressure,
            t.connects,
            g.run.stalls.len(),
            fmt_verify(&g.verify),
            g.exit.as_ref().map_or("-".into(), |e| if e.clean {
                format!("0 in {:.1} s", e.after_s)
            } else {
                format!("{:?} in {:.1} s", e.code, e.after_s)
            }),
            if g.failures.is_empty() { "pass".to_string() } else { format!("FAIL: {}", g.failures.join("; ")) }
        );
    }
    for (gw, e) in &r.not_run {
        let _ = writeln!(s, "\n**{gw} was not soaked**: {e}");
    }
    let _ = writeln!(
        s,
        "\n![RSS over time](soak-rss.svg)\n\n![open fds over time](soak-fds.svg)\n\n![throughput over time](soak-throughput.svg)\n"
    );
}

/// One gateway: its configuration, the bucketed series, its errors, stalls and failures.
fn gateway_section(s: &mut String, g: &GatewaySoak) {
    let _ = writeln!(s, "## {}\n", g.gateway);
    if let Some(v) = &g.version {
        let _ = write!(s, "`{v}`: ");
    }
    let c = &g.run.config;
    let _ = writeln!(
        s,
        "{} connections x pipeline {}, {} B payload, ack={}, open loop at {:.0} req/s, reconnect after {} requests; client: {} thread(s), CPU {:.0}%{}.\n",
        c.connections,
        c.pipeline,
        c.payload.max,
        c.ack.as_str(),
        g.rate,
        c.reconnect_after.unwrap_or(0),
        c.threads,
        g.run.self_check.cpu_util * 100.0,
        if g.run.self_check.generator_bound {
            format!(", GENERATOR-BOUND: {}", g.run.self_check.reasons.join("; "))
        } else {
            String::new()
        }
    );
    bucket_table(s, g);
    if !g.run.errors.is_empty() {
        let list: Vec<String> = g
            .run
            .errors
            .iter()
            .map(|e| format!("{} {}: {}", e.phase, e.kind, e.count))
            .collect();
        let _ = writeln!(s, "\nErrors: {}.", list.join(", "));
    }
    if g.run.stalls.is_empty() {
        let _ = writeln!(s, "\nNo stalls.");
    } else {
        let _ = writeln!(s, "\nStalls:");
        for st in &g.run.stalls {
            let _ = writeln!(
                s,
                "- at {:.3} s for {:.0} ms, class {}, {} outstanding, {} pending connects",
                st.start_ms / 1000.0,
                st.length_ms,
                st.class,
                st.outstanding,
                st.pending_connects
            );
        }
    }
    if !g.failures.is_empty() {
        let _ = writeln!(s, "\nFailed: {}.", g.failures.join("; "));
    }
    let _ = writeln!(s);
}

/// RSS, fds and ok/s averaged per minute (per 10 s in runs under 3 minutes), with the
/// errors, 503s and connects of each bucket.
fn bucket_table(s: &mut String, g: &GatewaySoak) {
    let span = g.samples.last().map_or(0.0, |x| x.t_s);
    let bucket_s = if span >= 180.0 { 60.0 } else { 10.0 };
    let rss = bucketed(&g.rss_points(), bucket_s);
    let fds = bucketed(&g.fd_points(), bucket_s);
    let ok = bucketed(&g.ok_points(), bucket_s);
    let _ = writeln!(
        s,
        "| from (s) | RSS MiB (avg) | fds (avg) | ok/s (avg) | errors | 503 | connects |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    for (b, (rsum, rn)) in &rss {
        let (lo, hi) = (*b as f64 * bucket_s, (*b + 1) as f64 * bucket_s);
        let w = g.run.config.warmup_s;
        let secs = g
            .run
            .timeline
            .iter()
            .filter(|x| (w + x.second as f64) >= lo && (w + x.second as f64) < hi);
        let (mut errs, mut bp, mut conns) = (0, 0, 0);
        for x in secs {
            errs += x.errors;
            bp += x.backpressure;
            conns += x.connects;
        }
        let avg = |m: &BTreeMap<u64, (f64, u32)>| {
            m.get(b)
                .map_or("-".into(), |(s, n)| format!("{:.1}", s / f64::from(*n)))
        };
        let _ = writeln!(
            s,
            "| {lo:.0} | {:.1} | {} | {} | {errs} | {bp} | {conns} |",
            rsum / f64::from(*rn),
            avg(&fds),
            avg(&ok),
        );
    }
}

fn human_duration(s: f64) -> String {
    if s >= 120.0 && (s % 60.0).abs() < 0.5 {
        format!("{:.0} min", s / 60.0)
    } else {
        format!("{s:.0} s")
    }
}

/// `acked / missing` of the verification, or `-`.
pub(super) fn fmt_verify(v: &Option<VerifyResult>) -> String {
    v.as_ref()
        .map_or("-".into(), |v| format!("{} / {}", v.acked, v.missing))
}

pub(super) fn one_line(g: &GatewaySoak) -> String {
    let t = &g.run.totals;
    let rss = g.rss_mib.as_ref().map_or("-".into(), |r| {
        format!(
            "RSS {:.1} -> {:.1} MiB ({:+.1} MiB = {:+.1}%; after {:.0} s {:+.1} MiB = {:+.1}%; {:+.1} MiB/h)",
            r.first_avg,
            r.last_avg,
            r.growth,
            growth_pct(r),
            r.settled_from_s,
            r.settled_growth,
            settled_pct(r),
            r.slope_per_hour
        )
    });
    let fds = g.fds.as_ref().map_or("-".into(), |f| {
        format!(
            "fds {:.0} -> {:.0} ({:+.1})",
            f.first_avg, f.last_avg, f.growth
        )
    });
    format!(
        "{}: {:.0} ok/s of {:.0} req/s, {} errors, {} backpressure, {} stall(s); {rss}; {fds}; acked/missing {}; {}",
        g.gateway,
        t.ok_per_sec,
        g.rate,
        t.errors,
        t.backpressure,
        g.run.stalls.len(),
        fmt_verify(&g.verify),
        outcome::verdict(&g.failures)
    )
}
