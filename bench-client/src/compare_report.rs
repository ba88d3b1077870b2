//! `report.md` (and, through [`crate::charts`], the SVG charts) from a `summary.json`
//! alone, so `bench-client report DIR` re-renders what `compare` wrote.
//!
//! Per cell (scenario × variant): throughput is the median over the repeats with its
//! spread (min–max); latency percentiles come from the repeats' histograms merged with
//! `add` (never averaged); ratios divide a variant's median by tokio-multi's median
//! (same sink) from the same run. A cell without figures shows the error that emptied it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;

use crate::compare::{RunRecord, Summary};
use crate::matrix::{Scenario, Shape, Sink, Variant};
use crate::stats::{merge, new_hist, HistSummary};

/// Median and range of a set of figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Spread {
    /// None for an empty set; the median of an even count is the mean of the middle two.
    pub fn of(values: &[f64]) -> Option<Spread> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
            n,
        })
    }

    /// (max - min) / median.
    pub fn relative_range(&self) -> f64 {
        if self.median == 0.0 {
            0.0
        } else {
            (self.max - self.min) / self.median
        }
    }
}

/// `a / b`, None when either is missing or b is zero.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 && a.is_finite() && b.is_finite() => Some(a / b),
        _ => None,
    }
}

/// What the report says about one cell.
#[derive(Debug, Clone, Default)]
pub struct Cell {
    pub runs: usize,
    /// Runs that produced figures.
    pub measured: usize,
    /// `round N: error` for every run that reported one.
    pub errors: Vec<String>,
    pub throughput: Option<Spread>,
    pub latency: Option<HistSummary>,
    pub latency_uncorrected: Option<HistSummary>,
    pub client_errors: u64,
    pub backpressure: u64,
    pub stalls: usize,
    pub stall_ms: f64,
    pub generator_bound: usize,
    /// Gateway CPU busy (cores) during the runs.
    pub gateway_cores: Option<Spread>,
    /// Gateway CPU microseconds per successful request.
    pub cpu_us_per_req: Option<Spread>,
    pub rate: Option<Spread>,
    pub rate_achieved: Option<Spread>,
    /// Memory scenarios: bytes per idle connection.
    pub bytes_per_conn: Option<Spread>,
    pub idle_open: Option<Spread>,
    pub idle_rss_before_kib: Option<Spread>,
    pub idle_rss_after_kib: Option<Spread>,
}

impl Cell {
    pub fn of(runs: &[&RunRecord]) -> Cell {
        let mut c = Cell {
            runs: runs.len(),
            ..Cell::default()
        };
        let (mut tp, mut cores, mut cpr, mut rate, mut ach) =
            (vec![], vec![], vec![], vec![], vec![]);
        let (mut bpc, mut open, mut before, mut after) = (vec![], vec![], vec![], vec![]);
        let mut lat = new_hist();
        let mut unc = new_hist();
        let mut any_unc = false;
        for r in runs {
            if let Some(e) = &r.error {
                c.errors.push(format!(
                    "round {}: {}",
                    r.round + 1,
                    e.lines().next().unwrap_or_default()
                ));
            }
            if let Some(res) = &r.result {
                c.measured += 1;
                tp.push(res.totals.ok_per_sec);
                if let Ok(h) = res.latency.histogram() {
                    merge(&mut lat, &h);
                }
                if let Some(u) = &res.latency_uncorrected {
                    if let Ok(h) = u.histogram() {
                        merge(&mut unc, &h);
                        any_unc = true;
                    }
                }
                c.client_errors += res.totals.errors;
                c.backpressure += res.totals.backpressure;
                c.stalls += res.stalls.len();
                c.stall_ms += res.stalls.iter().map(|s| s.length_ms).sum::<f64>();
                c.generator_bound += usize::from(res.self_check.generator_bound);
                if let Some(a) = res.self_check.rate_achieved {
                    ach.push(a);
                }
                if let Some(g) = &r.gateway {
                    if let (Some(cpu), true) = (g.cpu_s, g.wall_s > 0.0) {
                        let busy = cpu / g.wall_s;
                        cores.push(busy);
                        if res.totals.ok_per_sec > 0.0 {
                            cpr.push(busy * 1e6 / res.totals.ok_per_sec);
                        }
                    }
                }
                if let Some(x) = r.rate {
                    rate.push(x);
                }
            }
            if let Some(i) = &r.idle {
                c.measured += 1;
                bpc.push(i.bytes_per_conn);
                open.push(i.open as f64);
                before.push(i.rss_before_kib as f64);
                after.push(i.rss_after_kib as f64);
                c.client_errors += i.errors.values().sum::<u64>();
            }
        }
        c.throughput = Spread::of(&tp);
        if !lat.is_empty() {
            c.latency = Some(HistSummary::of(&lat));
        }
        if any_unc {
            c.latency_uncorrected = Some(HistSummary::of(&unc));
        }
        c.gateway_cores = Spread::of(&cores);
        c.cpu_us_per_req = Spread::of(&cpr);
        c.rate = Spread::of(&rate);
        c.rate_achieved = Spread::of(&ach);
        c.bytes_per_conn = Spread::of(&bpc);
        c.idle_open = Spread::of(&open);
        c.idle_rss_before_kib = Spread::of(&before);
        c.idle_rss_after_kib = Spread::of(&after);
        c
    }

    /// The error that left this cell without figures.
    pub fn empty_reason(&self) -> Option<String> {
        (self.measured == 0).then(|| {
            self.errors
                .first()
                .cloned()
                .unwrap_or_else(|| "no run recorded".to_string())
        })
    }
}

/// Cells keyed by (scenario id, variant name).
pub fn cells(s: &Summary) -> BTreeMap<(String, String), Cell> {
    let mut groups: BTreeMap<(String, String), Vec<&RunRecord>> = BTreeMap::new();
    for r in &s.runs {
        groups
            .entry((r.scenario.clone(), r.variant.clone()))
            .or_default()
            .push(r);
    }
    let mut out = BTreeMap::new();
    for sc in &s.plan.scenarios {
        for &vi in &s.plan.variants_for(sc) {
            let v = s.plan.variants[vi].name();
            let runs = groups
                .remove(&(sc.id.clone(), v.clone()))
                .unwrap_or_default();
            out.insert((sc.id.clone(), v), Cell::of(&runs));
        }
    }
    out
}

pub fn fmt_us(us: f64) -> String {
    if us >= 1_000_000.0 {
        format!("{:.2} s", us / 1e6)
    } else if us >= 10_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

/// 45200 → `45.2k`.
pub fn fmt_rate(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e4 {
        format!("{:.1}k", x / 1e3)
    } else if x >= 1e3 {
        format!("{:.2}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

fn fmt_spread(s: &Spread, f: impl Fn(f64) -> String) -> String {
    if s.n <= 1 || s.min == s.max {
        f(s.median)
    } else {
        format!("{} [{}–{}]", f(s.median), f(s.min), f(s.max))
    }
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "–".to_string(), |r| format!("{r:.2}×"))
}

fn kib(b: f64) -> String {
    format!("{:.1} KiB", b / 1024.0)
}

/// Markdown table cells can't hold `|` or newlines.
fn md(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn failed(reason: &str) -> String {
    format!("**FAILED**: {}", md(reason))
}

fn variants_of(s: &Summary, sc: &Scenario) -> Vec<Variant> {
    s.plan
        .variants_for(sc)
        .into_iter()
        .map(|i| s.plan.variants[i])
        .collect()
}

/// The whole `report.md`.
pub fn markdown(s: &Summary) -> String {
    let cells = cells(s);
    let cell = |sc: &str, v: &Variant| cells.get(&(sc.to_string(), v.name()));
    let m = &s.manifest;
    let mut o = String::new();
    let host = m.machine.hostname.as_deref().unwrap_or("?");
    let _ = writeln!(
        o,
        "# Gateway comparison: {} on {host} ({} CPU)\n",
        m.started_at, m.machine.cpu_count
    );
    let _ = writeln!(
        o,
        "Written by `bench-client compare`; `bench-client report DIR` re-renders this file and the \
         charts from `summary.json`, which holds every run's full result and manifest.\n"
    );

    // ---- headline
    let _ = writeln!(o, "## Headline\n");
    let head_ids: Vec<&Scenario> = s.plan.scenarios.iter().collect();
    let _ = write!(o, "| gateway |");
    for sc in &head_ids {
        let unit = match sc.shape {
            Shape::Idle { .. } => "per conn",
            Shape::Load {
                open_pct: Some(_), ..
            } => "p99",
            Shape::Load { .. } => "ok/s",
        };
        let _ = write!(o, " {} {unit} |", sc.id);
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "|---|{}", "---:|".repeat(head_ids.len()));
    for v in &s.plan.variants {
        let _ = write!(o, "| {} |", v.name());
        for sc in &head_ids {
            let txt = if !variants_of(s, sc).contains(v) {
                "".to_string()
            } else {
                match cell(&sc.id, v) {
                    Some(c) => headline_cell(c, cell(&sc.id, &v.baseline()), v, &sc.shape),
                    None => "".into(),
                }
            };
            let _ = write!(o, " {txt} |");
        }
        let _ = writeln!(o);
    }
    let _ = writeln!(
        o,
        "\nMedian of {} repeat(s); `(1.05×)` = ratio to tokio-multi with the same sink in this run. \
         `/null` = `--sink null` (the gateway's own cost, no Kafka). \
         `http-NN p99`: latency at NN% of tokio-multi's http-max (open loop, corrected); lower is \
         better there and for memory, higher for ok/s. ⚠: a run of that cell reported an error \
         (see Failed runs).\n",
        s.plan.repeats
    );

    // ---- method
    let _ = writeln!(o, "## Machine and method\n");
    let mm = &m.machine;
    let _ = writeln!(
        o,
        "- commit `{}`{}; kernel {}",
        mm.commit.as_deref().unwrap_or("unknown"),
        mm.dirty_note(),
        mm.kernel.as_deref().unwrap_or("unknown")
    );
    let _ = writeln!(
        o,
        "- CPU: {} × {}",
        mm.cpu_count,
        mm.cpu_model.as_deref().unwrap_or("unknown")
    );
    let _ = writeln!(
        o,
        "- pinning: {}; gateway `--threads {}`, client {} thread(s)",
        m.pinning.description, m.gateway_threads, m.client_threads
    );
    let _ = writeln!(o, "- Kafka: `{}` (bootstrap {})", m.kafka, m.bootstrap);
    let _ = writeln!(
        o,
        "- every gateway: `{}` plus `--listen 127.0.0.1:0 --sink kafka|null` and its runtime flag",
        m.gateway_args.join(" ")
    );
    if let Some(p) = &m.producer_config {
        let _ = writeln!(o, "- producer (as logged by the gateway): `{}`", md(p));
    }
    if !m.producer_overrides.is_empty() {
        let _ = writeln!(o, "- `-X` overrides: `{}`", m.producer_overrides.join(" "));
    }
    let _ = writeln!(
        o,
        "- each load run: {} s warmup (excluded) + {} s measured; {} repeat(s) per cell, interleaved \
         across gateways (A B C D A B C D …), a fresh gateway process per run, primed with 16 \
         ack=kafka requests once `/readyz` is 200 (so the producer's start-up is not measured), \
         stopped with SIGTERM (exit status must be 0)",
        s.plan.warmup_s, s.plan.duration_s, s.plan.repeats
    );
    let _ = writeln!(
        o,
        "- throughput: median [min–max] over the repeats; latency percentiles: from the repeats' \
         HdrHistograms merged (open loop: measured from the intended send time, coordinated \
         omission corrected); open-loop rates: a percentage of tokio-multi's http-max in the same \
         round, so every gateway gets the same offered load"
    );
    let _ = writeln!(
        o,
        "- gateway CPU: /proc/PID/stat user+system over the run (warmup included) / wall time; \
         µs/req = that / ok per second"
    );
    let _ = writeln!(
        o,
        "- started {}, finished {}, {:.0} s wall; command: `{}`\n",
        m.started_at,
        m.finished_at.as_deref().unwrap_or("(interrupted)"),
        m.wall_s,
        mm.args.join(" ")
    );

    // ---- per scenario
    for sc in &s.plan.scenarios {
        let _ = writeln!(o, "## {}: {}\n", sc.id, sc.title);
        match sc.shape {
            Shape::Load { open_pct, .. } => {
                let open = open_pct.is_some();
                let _ = write!(o, "| gateway | ok/s median [min–max] | vs tokio-multi |");
                if open {
                    let _ = write!(o, " target rate | sent/target |");
                }
                let _ = writeln!(
                    o,
                    " p50 | p90 | p99 | p99.9 | max |{} errors | backpressure | stalls | gw CPU | gw µs/req | notes |",
                    if open { " p99 uncorrected |" } else { "" }
                );
                let ncol = 14 + if open { 3 } else { 0 };
                let _ = writeln!(o, "|---|{}---|", "---:|".repeat(ncol - 2));
                for v in variants_of(s, sc) {
                    let Some(c) = cell(&sc.id, &v) else { continue };
                    let _ = write!(o, "| {} |", v.name());
                    if let Some(reason) = c.empty_reason() {
                        let _ = write!(o, " {} |", failed(&reason));
                        let _ = writeln!(o, "{}", " |".repeat(ncol - 2));
                        continue;
                    }
                    let base = cell(&sc.id, &v.baseline());
                    let tp = c.throughput.map(|t| t.median);
                    let _ = write!(
                        o,
                        " {} | {} |",
                        c.throughput
                            .as_ref()
                            .map_or("–".into(), |t| fmt_spread(t, fmt_rate)),
                        fmt_ratio(ratio(tp, base.and_then(|b| b.throughput.map(|t| t.median))))
                    );
                    if open {
                        let _ = write!(
                            o,
                            " {} | {} |",
                            c.rate
                                .as_ref()
                                .map_or("–".into(), |r| fmt_spread(r, fmt_rate)),
                            c.rate_achieved
                                .as_ref()
                                .map_or("–".into(), |r| format!("{:.0}%", r.median * 100.0))
                        );
                    }
                    match &c.latency {
                        Some(l) => {
                            let _ = write!(
                                o,
                                " {} | {} | {} | {} | {} |",
                                fmt_us(l.p50_us),
                                fmt_us(l.p90_us),
                                fmt_us(l.p99_us),
                                fmt_us(l.p999_us),
                                fmt_us(l.max_us)
                            );
                        }
                        None => {
                            let _ = write!(o, "{}", " – |".repeat(5));
                        }
                    }
                    if open {
                        let _ = write!(
                            o,
                            " {} |",
                            c.latency_uncorrected
                                .as_ref()
                                .map_or("–".into(), |l| fmt_us(l.p99_us))
                        );
                    }
                    let stalls = if c.stalls == 0 {
                        "0".to_string()
                    } else {
                        format!("{} ({:.0} ms)", c.stalls, c.stall_ms)
                    };
                    let _ = write!(
                        o,
                        " {} | {} | {stalls} | {} | {} |",
                        c.client_errors,
                        c.backpressure,
                        c.gateway_cores
                            .as_ref()
                            .map_or("–".into(), |x| format!("{:.0}%", x.median * 100.0)),
                        c.cpu_us_per_req
                            .as_ref()
                            .map_or("–".into(), |x| format!("{:.1}", x.median)),
                    );
                    let _ = writeln!(o, " {} |", notes(c));
                }
            }
            Shape::Idle { .. } => {
                let _ = writeln!(
                    o,
                    "| gateway | per connection median [min–max] | vs tokio-multi | open | RSS before | RSS after | errors | notes |"
                );
                let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|---:|---|");
                for v in variants_of(s, sc) {
                    let Some(c) = cell(&sc.id, &v) else { continue };
                    let _ = write!(o, "| {} |", v.name());
                    if let Some(reason) = c.empty_reason() {
                        let _ = writeln!(o, " {} |{}", failed(&reason), " |".repeat(6));
                        continue;
                    }
                    let base = cell(&sc.id, &v.baseline());
                    let b = c.bytes_per_conn.map(|x| x.median);
                    let _ = writeln!(
                        o,
                        " {} | {} | {} | {} | {} | {} | {} |",
                        c.bytes_per_conn
                            .as_ref()
                            .map_or("–".into(), |x| fmt_spread(x, kib)),
                        fmt_ratio(ratio(
                            b,
                            base.and_then(|b| b.bytes_per_conn.map(|x| x.median))
                        )),
                        c.idle_open
                            .as_ref()
                            .map_or("–".into(), |x| format!("{:.0}", x.median)),
                        c.idle_rss_before_kib
                            .as_ref()
                            .map_or("–".into(), |x| format!("{:.1} MiB", x.median / 1024.0)),
                        c.idle_rss_after_kib
                            .as_ref()
                            .map_or("–".into(), |x| format!("{:.1} MiB", x.median / 1024.0)),
                        c.client_errors,
                        notes(c)
                    );
                }
            }
        }
        if matches!(sc.shape, Shape::Load { .. }) {
            let _ = writeln!(
                o,
                "\n![throughput over time](throughput-{id}.svg) ![latency percentiles](latency-{id}.svg)",
                id = sc.id
            );
        }
        let _ = writeln!(o);
    }
    if s.plan
        .scenarios
        .iter()
        .any(|sc| matches!(sc.shape, Shape::Idle { .. }))
    {
        let _ = writeln!(o, "![memory per connection](memory.svg)\n");
    }

    // ---- errors
    let mut errs = Vec::new();
    for r in &s.runs {
        if let Some(e) = &r.error {
            errs.push(format!(
                "- round {} {} {}: {}",
                r.round + 1,
                r.scenario,
                r.variant,
                e.lines().next().unwrap_or_default()
            ));
        }
    }
    let _ = writeln!(o, "## Failed runs\n");
    if errs.is_empty() {
        let _ = writeln!(
            o,
            "None: every run produced figures and every gateway exited 0.\n"
        );
    } else {
        let _ = writeln!(
            o,
            "Full messages (with the gateway's last log lines) are in summary.json `runs[].error`.\n"
        );
        for e in errs {
            let _ = writeln!(o, "{e}");
        }
        let _ = writeln!(o);
    }

    // ---- asymmetries
    let _ = writeln!(o, "## Runtimes and their asymmetries\n");
    let _ = writeln!(
        o,
        "Each gateway's `--version` and its `/metrics` `gateway_info` line (first run).\n"
    );
    let mut seen = Vec::new();
    for v in &s.plan.variants {
        let Some(d) = m.gateways.get(&v.name()) else {
            continue;
        };
        let key = (v.gateway, &d.version);
        if v.sink == Sink::Null && seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let _ = writeln!(o, "### {}\n", v.gateway.name());
        let _ = writeln!(o, "```\n{}\n```\n", d.version);
        if let Some(i) = &d.info {
            let _ = writeln!(o, "```\n{i}\n```\n");
        }
        if !d.command.is_empty() {
            let _ = writeln!(o, "command: `{}`\n", d.command.join(" "));
        }
    }
    o
}

fn headline_cell(c: &Cell, base: Option<&Cell>, v: &Variant, shape: &Shape) -> String {
    if let Some(reason) = c.empty_reason() {
        return failed(&reason);
    }
    let (val, b) = match shape {
        Shape::Load {
            open_pct: Some(_), ..
        } => (
            c.latency.as_ref().map(|l| l.p99_us),
            base.and_then(|b| b.latency.as_ref().map(|l| l.p99_us)),
        ),
        Shape::Idle { .. } => (
            c.bytes_per_conn.map(|x| x.median),
            base.and_then(|b| b.bytes_per_conn.map(|x| x.median)),
        ),
        Shape::Load { .. } => (
            c.throughput.map(|x| x.median),
            base.and_then(|b| b.throughput.map(|x| x.median)),
        ),
    };
    let Some(val) = val else {
        return "–".into();
    };
    let txt = match shape {
        Shape::Load {
            open_pct: Some(_), ..
        } => fmt_us(val),
        Shape::Idle { .. } => kib(val),
        Shape::Load { .. } => fmt_rate(val),
    };
    let mark = if c.errors.is_empty() { "" } else { " ⚠" };
    if v.baseline() == *v {
        format!("{txt}{mark}")
    } else {
        format!("{txt} ({}){mark}", fmt_ratio(ratio(Some(val), b)))
    }
}

fn notes(c: &Cell) -> String {
    let mut n = Vec::new();
    if c.measured < c.runs {
        n.push(format!("{}/{} runs have figures", c.measured, c.runs));
    }
    if c.generator_bound > 0 {
        n.push(format!(
            "client-bound in {}/{} runs",
            c.generator_bound, c.measured
        ));
    }
    if let Some(t) = &c.throughput {
        if t.n > 1 && t.relative_range() > 0.2 {
            n.push(format!("spread {:.0}%", t.relative_range() * 100.0));
        }
    }
    for e in &c.errors {
        n.push(format!("⚠ {}", md(e)));
    }
    n.join("; ")
}

/// Write `report.md` and the charts into `dir`.
pub fn render(s: &Summary, dir: &Path) -> anyhow::Result<()> {
    let p = dir.join("report.md");
    std::fs::write(&p, markdown(s)).with_context(|| format!("writing {}", p.display()))?;
    crate::charts::draw_all(s, dir)?;
    Ok(())
}

/// `bench-client report DIR`.
pub fn report_dir(dir: &Path) -> anyhow::Result<()> {
    let s = Summary::read(dir)?;
    render(&s, dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::compare::{CompareManifest, GatewayDesc, GatewayStats, RunRecord};
    use crate::idle::IdleResult;
    use crate::lab::GatewayKind;
    use crate::lab::Pinning;
    use crate::manifest::Manifest;
    use crate::matrix::{self, Selection};
    use crate::report::{RunResult, SelfCheck, Totals};
    use crate::stats::record_ns;
    use crate::timeline::Timeline;
    use crate::RunConfig;

    fn result(ok_per_sec: f64, lat_ms: u64) -> RunResult {
        let mut h = new_hist();
        for i in 0..1000 {
            record_ns(&mut h, lat_ms * 1_000_000 + i * 1000);
        }
        let mut timeline = Timeline::default().per_second(0, 2_000_000_000, 1);
        for t in &mut timeline {
            t.ok = ok_per_sec as u64;
        }
        RunResult {
            schema_version: 1,
            run_id: "0123456789".into(),
            started_at_unix_ms: 0,
            config: RunConfig::new("http://127.0.0.1:1").unwrap(),
            manifest: Manifest::collect(),
            open_loop: false,
            measured_s: 2.0,
            totals: Totals {
                sent: 2 * ok_per_sec as u64,
                completed: 2 * ok_per_sec as u64,
                ok: 2 * ok_per_sec as u64,
                backpressure: 0,
                errors: 0,
                in_flight_at_end: 0,
                connects: 4,
                connect_errors: 0,
                ok_per_sec,
                completed_per_sec: ok_per_sec,
                sent_per_sec: ok_per_sec,
            },
            latency: HistSummary::of(&h),
            latency_uncorrected: None,
            connect_latency: HistSummary::of(&new_hist()),
            errors: vec![],
            http_status: BTreeMap::new(),
            timeline,
            stalls: vec![],
            server_accept_queue: None,
            self_check: SelfCheck {
                threads: 1,
                cpu_seconds: 0.5,
                cpu_util: 0.25,
                schedule_lag: None,
                runtime_lag: HistSummary::of(&new_hist()),
                rate_achieved: None,
                generator_bound: false,
                reasons: vec![],
            },
            acked: 0,
            acked_ids: vec![],
            intervals: vec![],
        }
    }

    /// Every slot of the quick matrix filled, except compio/null http-max (failed).
    pub(crate) fn synthetic() -> Summary {
        let plan = matrix::plan(&Selection {
            gateways: GatewayKind::ALL.to_vec(),
            sinks: vec![Sink::Kafka, Sink::Null],
            scenarios: vec![],
            quick: true,
            repeats: Some(3),
            warmup_s: None,
            duration_s: None,
            idle_conns: 100,
        })
        .unwrap();
        let mut runs = Vec::new();
        for sl in plan.slots() {
            let v = plan.variants[sl.variant];
            let sc = &plan.scenarios[sl.scenario];
            let mut r = RunRecord {
                round: sl.round,
                scenario: sc.id.clone(),
                variant: v.name(),
                rate: None,
                rate_from: None,
                result: None,
                idle: None,
                gateway: Some(GatewayStats {
                    pid: 1,
                    cpu_s: Some(1.0),
                    rss_kib: Some(10_000),
                    hwm_kib: Some(12_000),
                    wall_s: 2.0,
                }),
                gateway_info: Some("gateway_info{runtime=\"x\"} 1".into()),
                gateway_version: Some("gateway-x 0.1.0".into()),
                error: None,
                wall_s: 3.0,
            };
            let k = (sl.variant + 1) as f64;
            match sc.shape {
                Shape::Load { .. } => {
                    if v.gateway == GatewayKind::Compio
                        && v.sink == Sink::Null
                        && sc.id == "http-max"
                    {
                        r.error = Some("gateway exited with exit status: 1 after SIGTERM".into());
                    } else {
                        r.result = Some(result(10_000.0 * k + sl.round as f64 * 100.0, k as u64));
                    }
                }
                Shape::Idle { ws, connections } => {
                    r.idle = Some(IdleResult {
                        ws,
                        requested: connections,
                        open: connections,
                        answered: connections,
                        rss_before_kib: 10_000,
                        rss_after_kib: 10_000 + 10 * connections as u64 * k as u64,
                        bytes_per_conn: 10.0 * 1024.0 * k,
                        setup_s: 0.1,
                        errors: BTreeMap::new(),
                    })
                }
            }
            runs.push(r);
        }
        let gateways = plan
            .variants
            .iter()
            .map(|v| {
                (
                    v.name(),
                    GatewayDesc {
                        binary: v.gateway.bin().into(),
                        version: format!("{} 0.1.0\nasymmetries: test", v.gateway.bin()),
                        info: Some("gateway_info{runtime=\"x\"} 1".into()),
                        command: vec![v.gateway.bin().into()],
                    },
                )
            })
            .collect();
        Summary {
            summary_version: crate::compare::SUMMARY_VERSION,
            manifest: CompareManifest {
                started_at: "2026-01-01 00:00:00 UTC".into(),
                finished_at: None,
                wall_s: 1.0,
                machine: Manifest::collect(),
                pinning: Pinning::parse("auto", 2).unwrap(),
                gateway_threads: 1,
                client_threads: 1,
                gateway_args: vec!["--threads".into(), "1".into()],
                kafka: "kafka-mock".into(),
                bootstrap: "127.0.0.1:9092".into(),
                producer_overrides: vec![],
                producer_config: Some("producer configuration conf=[]".into()),
                topic: "bench".into(),
                gateways,
                client_nofile: 1024,
            },
            plan,
            runs,
        }
    }

    #[test]
    fn cells_aggregate_repeats() {
        let s = synthetic();
        let c = cells(&s);
        let v = s.plan.variants[1].name();
        let cell = &c[&("http-max".to_string(), v)];
        assert_eq!(cell.measured, 3);
        let t = cell.throughput.unwrap();
        assert_eq!((t.min, t.median, t.max), (20_000.0, 20_100.0, 20_200.0));
        // Merged, not averaged: all 3000 samples.
        assert_eq!(cell.latency.as_ref().unwrap().count, 3000);
        let failed = &c[&("http-max".to_string(), "compio/null".to_string())];
        assert!(failed.empty_reason().unwrap().contains("exit status: 1"));
    }

    #[test]
    fn report_has_every_cell_and_valid_charts() {
        let s = synthetic();
        let md = markdown(&s);
        for sc in &s.plan.scenarios {
            let section = md
                .split(&format!("## {}: ", sc.id))
                .nth(1)
                .unwrap_or_else(|| panic!("no section for {}", sc.id));
            let section = section.split("\n## ").next().unwrap();
            for &vi in &s.plan.variants_for(sc) {
                let name = s.plan.variants[vi].name();
                let row = section
                    .lines()
                    .find(|l| l.starts_with(&format!("| {name} |")))
                    .unwrap_or_else(|| panic!("no row {name} in {}", sc.id));
                // Filled: a figure, or the error that emptied it.
                let first = row.split('|').nth(2).unwrap().trim();
                assert!(!first.is_empty() && first != "–", "{row}");
                let cols = row.matches(" |").count();
                let header = section
                    .lines()
                    .find(|l| l.starts_with("| gateway |"))
                    .unwrap();
                assert_eq!(cols, header.matches(" |").count(), "{row}");
            }
        }
        assert!(md.contains("**FAILED**: round 1: gateway exited with exit status: 1"));
        assert!(md.contains("asymmetries: test"));
        // 2× tokio-multi's throughput → 2.00× in the headline.
        assert!(md.contains("(2.00×)"), "{md}");

        let dir = std::env::temp_dir().join(format!("compare-report-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        s.write(&dir).unwrap();
        report_dir(&dir).unwrap();
        assert_eq!(Summary::read(&dir).unwrap(), s);
        assert!(std::fs::read_to_string(dir.join("report.md")).unwrap() == md);
        let mut svgs = vec!["memory.svg".to_string()];
        for sc in &s.plan.scenarios {
            if matches!(sc.shape, Shape::Load { .. }) {
                svgs.push(format!("throughput-{}.svg", sc.id));
                svgs.push(format!("latency-{}.svg", sc.id));
            }
        }
        for f in svgs {
            let t = std::fs::read_to_string(dir.join(&f)).unwrap();
            assert!(
                t.starts_with("<svg") && t.trim_end().ends_with("</svg>"),
                "{f}"
            );
            assert!(t.contains("tokio-multi"), "{f} has no legend");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn median_and_spread() {
        assert_eq!(Spread::of(&[]), None);
        let s = Spread::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
        let s = Spread::of(&[4.0, 1.0, 2.0, 10.0]).unwrap();
        assert_eq!(s.median, 3.0);
        assert!((s.relative_range() - 3.0).abs() < 1e-9);
        assert_eq!(Spread::of(&[f64::NAN, 5.0]).unwrap().median, 5.0);
    }

    #[test]
    fn ratios() {
        assert_eq!(ratio(Some(3.0), Some(2.0)), Some(1.5));
        assert_eq!(ratio(Some(3.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(2.0)), None);
        assert_eq!(fmt_ratio(Some(1.0 / 3.0)), "0.33×");
    }

    #[test]
    fn formats() {
        assert_eq!(fmt_us(850.0), "850 µs");
        assert_eq!(fmt_us(1234.0), "1.23 ms");
        assert_eq!(fmt_us(25_000.0), "25.0 ms");
        assert_eq!(fmt_rate(45_230.0), "45.2k");
        assert_eq!(fmt_rate(999.0), "999");
    }
}
