//! `chaos`'s outputs, from a [`ChaosReport`] alone: `chaos.json`, `chaos.md`, the
//! throughput and 503 charts with the faults as bands, and the one-line outcome per gateway.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::summary::{ChaosReport, GatewayChaos};
use crate::engine::analysis::timeline::SecondStats;
use crate::reporting::charts::line_chart;
use crate::reporting::outcome;

pub(super) fn one_line(g: &GatewayChaos) -> String {
    let eff: Vec<String> = g
        .effects
        .iter()
        .map(|e| {
            format!(
                "[{}: {:.0} ok/s during, {} x 503, {} slowed s, recovered {}]",
                e.fault.name,
                e.ok_per_sec_during,
                e.backpressure,
                e.slowed_seconds,
                e.recovered_after_s
                    .map_or("no".into(), |r| format!("within {r:.1} s"))
            )
        })
        .collect();
    format!(
        "{}: {} acked, {} missing, {} duplicated; {} x 503, {} errors; {}; {}",
        g.gateway,
        g.verify.acked,
        g.verify.missing,
        g.verify.duplicates,
        g.status_503,
        g.run.totals.errors,
        eff.join(" "),
        outcome::verdict(&g.failures)
    )
}

/// Writes `chaos.json`, `chaos.md`, `chaos-throughput.svg`, `chaos-backpressure.svg`.
pub fn write_chaos(r: &ChaosReport, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let bands: Vec<(String, f64, f64)> = r
        .plan
        .iter()
        .map(|f| (f.name.clone(), f.start_s, f.end_s))
        .collect();
    let series = |f: &dyn Fn(&SecondStats) -> u64| -> Vec<(String, Vec<(f64, f64)>)> {
        r.gateways
            .iter()
            .map(|g| {
                let pts = g
                    .run
                    .timeline
                    .iter()
                    .map(|s| (s.second as f64 + 0.5, f(s) as f64))
                    .collect();
                (g.gateway.clone(), pts)
            })
            .collect()
    };
    let chart = |title: &str, y: &str, f: &dyn Fn(&SecondStats) -> u64| {
        line_chart(title, "seconds", y, &series(f), &bands, true)
    };
    let files = [
        ("chaos.json", serde_json::to_string_pretty(r)? + "\n"),
        (
            "chaos-throughput.svg",
            chart(
                "Acknowledged (ack=kafka) per second through the faults",
                "ok/s",
                &|s| s.ok,
            )?,
        ),
        (
            "chaos-backpressure.svg",
            chart("503 per second through the faults", "503/s", &|s| {
                s.backpressure
            })?,
        ),
        ("chaos.md", chaos_markdown(r)),
    ];
    outcome::write_files(dir, &files)
}

/// The whole `chaos.md`.
pub fn chaos_markdown(r: &ChaosReport) -> String {
    let mut s = String::new();
    intro(&mut s, r);
    fault_list(&mut s, r);
    verdict_table(&mut s, r);
    per_fault_table(&mut s, r);
    for g in &r.gateways {
        gateway_section(&mut s, g);
    }
    let _ = writeln!(
        s,
        "Data: `chaos.json` (per gateway: injected commands with their times, per-fault \
         series, the verification and the full run result). Command: `{}`.",
        r.manifest.args.join(" ")
    );
    s
}

/// The title and what was run, on what.
fn intro(s: &mut String, r: &ChaosReport) {
    let m = &r.manifest;
    let _ = writeln!(s, "# Chaos: faults under load at ack=kafka\n");
    let _ = writeln!(
        s,
        "Each gateway against its own kafka-mock (3 brokers, 4 partitions), open loop at \
         {:.0} req/s for {:.0} s, HTTP keep-alive, ack=kafka, gateway `message.timeout.ms={}`. \
         Every acknowledged id is read back from Kafka afterwards (`verify`). Machine: {} x {}, \
         kernel {}; commit {}{}.\n",
        r.rate,
        r.duration_s,
        r.message_timeout_ms,
        m.cpu_count,
        m.cpu_model.as_deref().unwrap_or("?"),
        m.kernel.as_deref().unwrap_or("?"),
        m.commit.as_deref().map_or("?", |c| &c[..c.len().min(12)]),
        m.dirty_note()
    );
}

/// The faults, each with its commands, in seconds of the measured phase.
fn fault_list(s: &mut String, r: &ChaosReport) {
    let _ = writeln!(s, "Faults (seconds of the measured phase):\n");
    for f in &r.plan {
        let mut steps = vec![format!("`{}`", f.begin.join("`, `"))];
        let mut at = f64::NAN;
        for (t, c) in &f.during {
            if *t != at {
                steps.push(format!("at {t:.1} s `{c}`"));
                at = *t;
            } else if let Some(last) = steps.last_mut() {
                last.push_str(&format!(", `{c}`"));
            }
        }
        if !f.end.is_empty() {
            steps.push(format!("`{}`", f.end.join("`, `")));
        }
        let _ = writeln!(
            s,
            "- {:.1}-{:.1} s: **{}** ({})",
            f.start_s,
            f.end_s,
            f.name,
            steps.join(", then ")
        );
    }
}

/// The verdict, one row per gateway (acked, missing, 503, exit) and the charts.
fn verdict_table(s: &mut String, r: &ChaosReport) {
    let _ = writeln!(
        s,
        "\nVerdict: **{}** (fails on any acknowledged record missing from Kafka)\n",
        if r.passed { "PASS" } else { "FAIL" }
    );
    let _ = writeln!(
        s,
        "| gateway | acked | missing | duplicated | ok/s | 503 | errors | in flight at end | SIGTERM exit | verdict |"
    );
    let _ = writeln!(s, "|{}", "---|".repeat(10));
    for g in &r.gateways {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.0} | {} | {} | {} | {} | {} |",
            g.gateway,
            g.verify.acked,
            g.verify.missing,
            g.verify.duplicates,
            g.run.totals.ok_per_sec,
            g.status_503,
            g.run.totals.errors,
            g.run.totals.in_flight_at_end,
            g.exit.as_ref().map_or("-".into(), |e| format!(
                "{} in {:.1} s",
                e.code.map_or("signal".into(), |c| c.to_string()),
                e.after_s
            )),
            if g.failures.is_empty() {
                "pass".to_string()
            } else {
                format!("FAIL: {}", g.failures.join("; "))
            }
        );
    }
    for (gw, e) in &r.not_run {
        let _ = writeln!(s, "\n**{gw} was not run**: {e}");
    }
    let _ = writeln!(
        s,
        "\n![throughput through the faults](chaos-throughput.svg)\n\n![503 through the faults](chaos-backpressure.svg)\n"
    );
}

/// Per gateway and fault: baseline, throughput during, 503 and errors in the span, the
/// seconds slowed and the time to recover.
fn per_fault_table(s: &mut String, r: &ChaosReport) {
    let _ = writeln!(s, "## Per fault\n");
    let _ = writeln!(
        s,
        "Baseline: mean ok/s before the first fault. Span: from the fault's start to the next \
         fault. Slowed: seconds of the span below half the baseline. Recovered: from the \
         fault's end to the first second at 90% of the baseline.\n"
    );
    let _ = writeln!(
        s,
        "| gateway | fault | baseline ok/s | ok/s during | min ok/s | 503 in span | errors in span | slowed s | recovered after |"
    );
    let _ = writeln!(s, "|{}", "---|".repeat(9));
    for g in &r.gateways {
        for e in &g.effects {
            let _ = writeln!(
                s,
                "| {} | {} | {:.0} | {:.0} | {} | {} | {} | {} | {} |",
                g.gateway,
                e.fault.name,
                e.baseline_ok_per_sec,
                e.ok_per_sec_during,
                e.min_ok_per_sec,
                e.backpressure,
                e.errors,
                e.slowed_seconds,
                e.recovered_after_s
                    .map_or("not in span".into(), |r| format!("{r:.1} s"))
            );
        }
    }
}

/// One gateway: its version, the per-second series, errors, final counters, verification.
fn gateway_section(s: &mut String, g: &GatewayChaos) {
    let _ = writeln!(s, "\n## {}\n", g.gateway);
    if let Some(v) = &g.version {
        let _ = writeln!(s, "`{v}`\n");
    }
    let _ = writeln!(
        s,
        "Per second (ok / 503 / errors): {}\n",
        g.run
            .timeline
            .iter()
            .map(|x| format!("{}/{}/{}", x.ok, x.backpressure, x.errors))
            .collect::<Vec<_>>()
            .join(" ")
    );
    if !g.run.errors.is_empty() {
        let list: Vec<String> = g
            .run
            .errors
            .iter()
            .map(|e| format!("{} {}: {}", e.phase, e.kind, e.count))
            .collect();
        let _ = writeln!(s, "Errors: {}.\n", list.join(", "));
    }
    let _ = writeln!(
        s,
        "Gateway counters at the end: delivered {}, failed {}, rejected {}.\n",
        metric(&g.metrics_end, "gateway_records_delivered_total"),
        metric_sum(&g.metrics_end, "gateway_records_failed_total"),
        metric(&g.metrics_end, "gateway_records_rejected_total"),
    );
    let _ = writeln!(
        s,
        "{}",
        crate::experiments::verify::verify_summary(&g.verify)
    );
}

fn metric(m: &BTreeMap<String, f64>, k: &str) -> String {
    m.get(k).map_or("-".into(), |v| format!("{v:.0}"))
}

/// A family's series summed over its labels (`gateway_records_failed_total{reason=…}`;
/// older reports stored it unlabelled).
fn metric_sum(m: &BTreeMap<String, f64>, family: &str) -> String {
    let labelled = format!("{family}{{");
    let values: Vec<f64> = m
        .iter()
        .filter(|(k, _)| k.as_str() == family || k.starts_with(&labelled))
        .map(|(_, v)| *v)
        .collect();
    if values.is_empty() {
        "-".into()
    } else {
        format!("{:.0}", values.iter().sum::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::probes::manifest::Manifest;
    use crate::experiments::chaos::faults::{effects, plan, FaultKind, PlanSpec};
    use crate::experiments::chaos::summary::CHAOS_SCHEMA_VERSION;
    use crate::experiments::verify::VerifyResult;

    #[test]
    fn renders_a_report() {
        let spec = PlanSpec {
            kinds: &[FaultKind::Outage, FaultKind::Rtt, FaultKind::ProduceErrors],
            rtt_ms: 200,
            produce_errors: 60,
            topic: "chaos",
            partitions: 4,
        };
        let faults = plan(20.0, &spec).unwrap();
        let mut run = crate::experiments::test_fixtures::synthetic_run(20, |i| {
            if (3..8).contains(&i) {
                0
            } else {
                2000
            }
        });
        run.config.collect_acks = true;
        let v = VerifyResult {
            topic: "chaos".into(),
            acked: 30_000,
            found: 30_000,
            missing: 0,
            duplicates: 0,
            scanned: 30_100,
            unacked_same_run: 100,
            partitions: vec![],
            complete: true,
            retention_trimmed: false,
            missing_sample: vec![],
            duplicate_sample: vec![],
        };
        let g = GatewayChaos {
            gateway: "tokio-multi".into(),
            version: None,
            injected: vec![],
            effects: effects(&run.timeline, &faults),
            status_503: 1,
            verify: v,
            metrics_end: BTreeMap::new(),
            exit: None,
            run,
            failures: vec![],
        };
        let r = ChaosReport {
            schema_version: CHAOS_SCHEMA_VERSION,
            started_at_unix_ms: 0,
            duration_s: 20.0,
            rate: 2000.0,
            message_timeout_ms: 3000,
            plan: faults,
            manifest: Manifest::collect(),
            gateways: vec![g],
            not_run: vec![],
            passed: true,
        };
        let md = chaos_markdown(&r);
        assert!(md.contains("| tokio-multi | 30000 | 0 |"), "{md}");
        assert!(md.contains("all brokers down 5 s"));
        let dir = std::env::temp_dir().join(format!("chaos-render-{}", std::process::id()));
        let files = write_chaos(&r, &dir).unwrap();
        assert_eq!(files.len(), 4);
        let svg = std::fs::read_to_string(dir.join("chaos-throughput.svg")).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("all brokers down"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
