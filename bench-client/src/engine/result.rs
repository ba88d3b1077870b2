//! The result of a run ([`RunResult`], serialized as documented in `SCHEMA.md`), how it is
//! built from the per-thread recorders, and how it is written: human summary, JSON, HDR
//! interval log, acked-id file.
//!
//! Entry points: `build_result` (for the runner), [`summary`], [`write_json`]. Part of the
//! [engine](crate::engine): must not depend on anything outside it.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder;
use hdrhistogram::serialization::V2DeflateSerializer;
use serde::{Deserialize, Serialize};

use crate::engine::bound::{classify, Binding, Bound, Signals};
use crate::engine::config::RunConfig;
use crate::engine::cost::ProcessCost;
use crate::engine::errors::{ErrorCount, ErrorKey};
use crate::engine::manifest::Manifest;
use crate::engine::recorder::{Recorder, Shared};
use crate::engine::stats::{self, merge, new_hist, HistSummary};
use crate::engine::timeline::{
    detect_stalls, SecondStats, Stall, StallParams, Timeline, BUCKET_NS,
};

/// Version of the JSON layout; bump on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

/// Counts over the measured phase (after warmup, until the end).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub sent: u64,
    /// Responses of any kind.
    pub completed: u64,
    pub ok: u64,
    /// 503 responses and WebSocket nacks.
    pub backpressure: u64,
    /// Failed requests (error status, transport error, timeout) plus failed connects and
    /// handshakes: the sum of `errors[].count`.
    pub errors: u64,
    /// Sent but unresolved when the run ended.
    pub in_flight_at_end: u64,
    /// Open loop: measured requests that were due but unsent, or sent but unanswered, at
    /// the end; each is in the corrected histogram with its wait until the end (censored),
    /// never dropped.
    #[serde(default)]
    pub censored: u64,
    pub connects: u64,
    pub connect_errors: u64,
    pub ok_per_sec: f64,
    /// Record-value bytes of the successful requests per second: `ok_per_sec` × the
    /// payload size (its mean for a `LOW..HIGH` range; the file size with `--body-file`).
    #[serde(default)]
    pub ok_bytes_per_sec: f64,
    pub completed_per_sec: f64,
    pub sent_per_sec: f64,
}

/// The client checking itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelfCheck {
    pub threads: usize,
    /// Process CPU time over the measured phase.
    pub cpu_seconds: f64,
    /// `cpu_seconds / (measured seconds x threads)`.
    pub cpu_util: f64,
    /// Open loop: how late sends left when a connection was free to send.
    pub schedule_lag: Option<HistSummary>,
    /// Lateness of a 10 ms timer on the client's runtime.
    pub runtime_lag: HistSummary,
    /// Open loop: achieved send rate / `--rate`.
    pub rate_achieved: Option<f64>,
    /// The client, not the server, was the limit.
    pub generator_bound: bool,
    pub reasons: Vec<String>,
}

/// Everything a run measured. Serialize it for `--json`; deserialize it to compare runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub schema_version: u32,
    /// Prefix of every record id of this run (`<run_id>-<seq>`).
    pub run_id: String,
    pub started_at_unix_ms: u64,
    pub config: RunConfig,
    pub manifest: Manifest,
    pub open_loop: bool,
    /// The run was stopped by SIGINT/SIGTERM before its end: every figure covers the part
    /// that ran (`measured_s`), not `config.duration_s` / `config.requests`.
    #[serde(default)]
    pub interrupted: bool,
    pub measured_s: f64,
    pub totals: Totals,
    /// Successful requests. Open loop: from the intended send time (coordinated-omission
    /// corrected). Closed loop: from the actual send.
    pub latency: HistSummary,
    /// Open loop only: the same requests measured from the actual send.
    pub latency_uncorrected: Option<HistSummary>,
    pub connect_latency: HistSummary,
    pub errors: Vec<ErrorCount>,
    /// Response status counts (HTTP modes).
    pub http_status: BTreeMap<u16, u64>,
    /// Per second of the measured phase, zero seconds included.
    pub timeline: Vec<SecondStats>,
    pub stalls: Vec<Stall>,
    /// Longest accept queue of the target's listeners sampled during the measured phase;
    /// `None` when the target does not listen on this host (or `--no-server-probe`).
    #[serde(default)]
    pub server_accept_queue: Option<u64>,
    pub self_check: SelfCheck,
    /// 503 / nack answers, from the intended send time like `latency`.
    #[serde(default)]
    pub latency_backpressure: Option<HistSummary>,
    /// Little's law: ok/s × mean latency, the requests that were in flight on average.
    #[serde(default)]
    pub little_in_flight: f64,
    /// Closed loop: the configured in-flight requests (connections × depth).
    #[serde(default)]
    pub window: Option<u64>,
    /// What the target (gateway) spent over the measured phase (`--target-pid`).
    #[serde(default)]
    pub target_cost: Option<ProcessCost>,
    /// What the broker spent (`--broker-pid`).
    #[serde(default)]
    pub broker_cost: Option<ProcessCost>,
    /// Busy fraction of every CPU over the measured phase.
    #[serde(default)]
    pub cpu_busy: BTreeMap<usize, f64>,
    /// Steal (the hypervisor running something else) of every CPU over the measured phase,
    /// as a fraction of it; part of `cpu_busy`.
    #[serde(default)]
    pub cpu_steal: BTreeMap<usize, f64>,
    /// What bound this run, from the signals above.
    #[serde(default = "unknown_binding")]
    pub binding: Binding,
    /// Requests acknowledged with ack=kafka, warmup included (counted only when
    /// `--acked-file` is used, else 0).
    pub acked: u64,
    /// Wall clock at the start of the measured phase (unix ms, sub-ms precision): second
    /// `k` of `timeline` starts `k` s after it. 0 in older files (then
    /// `started_at_unix_ms + warmup`).
    #[serde(default)]
    pub measured_start_unix_ms: f64,
    /// The acknowledged ids (not serialized: they go to `--acked-file`).
    #[serde(skip)]
    pub acked_ids: Vec<String>,
    /// Per-second latency histograms for `--hdr-log` (not serialized).
    #[serde(skip)]
    pub intervals: Vec<(u64, stats::Hist)>,
}

fn unknown_binding() -> Binding {
    Binding {
        bound: Bound::Unknown,
        reasons: vec![],
    }
}

/// What the measured-phase probes found.
pub(crate) struct Costs {
    pub target: Option<ProcessCost>,
    pub broker: Option<ProcessCost>,
    pub cpu_busy: BTreeMap<usize, f64>,
    pub cpu_steal: BTreeMap<usize, f64>,
}

/// Mean of a per-CPU fraction (busy, steal) over `cpus` (`None` when they are all of the
/// machine's, or unknown).
fn mean_over(cpus: &[usize], busy: &BTreeMap<usize, f64>) -> Option<f64> {
    if cpus.is_empty() || cpus.len() >= busy.len() {
        return None;
    }
    let v: Vec<f64> = cpus.iter().filter_map(|c| busy.get(c)).copied().collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// The binding signals of a finished run.
#[allow(clippy::too_many_arguments)]
pub(crate) fn signals(
    cfg: &RunConfig,
    costs: &Costs,
    client_cores: f64,
    client_busy: f64,
    rate_achieved: Option<f64>,
    schedule_lag_p99_ms: Option<f64>,
    little_in_flight: f64,
) -> Signals {
    let client_aff = crate::engine::manifest::affinity_of(0);
    let target_aff = costs
        .target
        .as_ref()
        .map(|t| crate::engine::manifest::affinity_of(t.pid));
    Signals {
        gateway_busy: costs.target.as_ref().map(|t| {
            let n = target_aff.as_ref().map_or(1, |a| a.len().max(1));
            t.cores() / n as f64
        }),
        gateway_cpus_busy: target_aff
            .as_ref()
            .and_then(|a| mean_over(a, &costs.cpu_busy)),
        gateway_cpus_steal: target_aff
            .as_ref()
            .and_then(|a| mean_over(a, &costs.cpu_steal)),
        client_busy,
        broker_cores: costs.broker.as_ref().map(ProcessCost::cores),
        client_cpus_busy: mean_over(&client_aff, &costs.cpu_busy),
        client_cores,
        rate_achieved,
        schedule_lag_p99_ms,
        little_in_flight,
        window: Some((cfg.connections * cfg.depth()) as f64),
        open_loop: cfg.rate.is_some(),
    }
}

pub(crate) fn build_result(
    sh: &Shared,
    recs: Vec<Recorder>,
    started_at_unix_ms: u64,
    costs: Costs,
) -> RunResult {
    let cfg = &sh.cfg;
    let end_ns = sh.end_ns.load(std::sync::atomic::Ordering::Relaxed);
    let from_ns = sh.measure_start_ns;
    let measured_s = end_ns.saturating_sub(from_ns) as f64 / 1e9;

    let mut tl = Timeline::default();
    let (mut lat, mut unc, mut con, mut sched, mut rt, mut bp) = (
        new_hist(),
        new_hist(),
        new_hist(),
        new_hist(),
        new_hist(),
        new_hist(),
    );
    let mut censored = 0;
    let mut errors: HashMap<ErrorKey, u64> = HashMap::new();
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    let mut spans = Vec::new();
    let mut acked = Vec::new();
    let mut intervals: BTreeMap<u64, stats::Hist> = BTreeMap::new();
    for r in recs {
        tl.merge(&r.timeline);
        merge(&mut lat, &r.latency);
        merge(&mut unc, &r.latency_uncorrected);
        merge(&mut con, &r.connect);
        merge(&mut sched, &r.schedule_lag);
        merge(&mut rt, &r.runtime_lag);
        merge(&mut bp, &r.backpressure);
        censored += r.censored;
        for (k, n) in r.errors {
            *errors.entry(k).or_default() += n;
        }
        for (s, n) in r.statuses {
            *statuses.entry(s).or_default() += n;
        }
        spans.extend(r.spans);
        acked.extend(r.acked);
        for (sec, bytes) in r.intervals {
            if let Ok(h) = stats::decode_bytes(&bytes) {
                merge(intervals.entry(sec).or_insert_with(new_hist), &h);
            }
        }
    }

    // Totals from the fine timeline over the measured, bucket-aligned phase.
    let first = (from_ns / BUCKET_NS) as usize;
    let last = (end_ns / BUCKET_NS) as usize;
    let mut t = Totals {
        sent: 0,
        completed: 0,
        ok: 0,
        backpressure: 0,
        errors: 0,
        in_flight_at_end: 0,
        censored,
        connects: 0,
        connect_errors: 0,
        ok_per_sec: 0.0,
        ok_bytes_per_sec: 0.0,
        completed_per_sec: 0.0,
        sent_per_sec: 0.0,
    };
    let mut outstanding: i64 = 0;
    let mut cpu_ns = 0u64;
    let mut server_accept_queue = None;
    for (i, b) in tl.buckets.iter().enumerate().take(last) {
        outstanding += b.sent as i64 - b.responses as i64 - b.aborted as i64;
        if i < first {
            continue;
        }
        t.sent += b.sent;
        t.completed += b.responses;
        t.ok += b.ok;
        t.backpressure += b.backpressure;
        t.errors += b.errors();
        t.connects += b.connect_ok;
        t.connect_errors += b.connect_failed;
        cpu_ns += b.cpu_ns;
        if b.queue_samples > 0 {
            server_accept_queue = Some(server_accept_queue.unwrap_or(0).max(b.accept_queue_max));
        }
    }
    t.in_flight_at_end = outstanding.max(0) as u64;
    if measured_s > 0.0 {
        t.ok_per_sec = t.ok as f64 / measured_s;
        t.ok_bytes_per_sec = t.ok_per_sec * (cfg.payload.min + cfg.payload.max) as f64 / 2.0;
        t.completed_per_sec = t.completed as f64 / measured_s;
        t.sent_per_sec = t.sent as f64 / measured_s;
    }

    let timeline = tl.per_second(from_ns, end_ns, cfg.threads);
    let stalls = detect_stalls(
        &tl,
        &spans,
        &StallParams {
            window_ns: sh.window_ns,
            measure_start_ns: from_ns,
            end_ns,
            threads: cfg.threads,
        },
    );

    let open_loop = cfg.rate.is_some();
    let cpu_seconds = cpu_ns as f64 / 1e9;
    let cpu_util = if measured_s > 0.0 {
        cpu_seconds / (measured_s * cfg.threads as f64)
    } else {
        0.0
    };
    let rate_achieved = cfg.rate.map(|r| t.sent_per_sec / r);
    let sched_p99_ms = sched.value_at_quantile(0.99) as f64 / 1e6;
    let rt_p99_ms = rt.value_at_quantile(0.99) as f64 / 1e6;
    let little_in_flight = t.ok_per_sec * lat_uncorrected_mean_s(&unc, &lat, open_loop);
    let client_cores = if measured_s > 0.0 {
        cpu_seconds / measured_s
    } else {
        0.0
    };
    let sig = signals(
        cfg,
        &costs,
        client_cores,
        cpu_util,
        rate_achieved,
        open_loop.then_some(sched_p99_ms),
        little_in_flight,
    );
    let binding = classify(&sig);
    let mut reasons = Vec::new();
    if binding.bound == Bound::Client {
        reasons.clone_from(&binding.reasons);
    }
    if rt_p99_ms >= 5.0 {
        // Reported, but on its own it does not make the client the limit.
        reasons.push(format!("client runtime timer lag p99 {rt_p99_ms:.1} ms"));
    }
    let self_check = SelfCheck {
        threads: cfg.threads,
        cpu_seconds,
        cpu_util,
        schedule_lag: open_loop.then(|| HistSummary::of(&sched)),
        runtime_lag: HistSummary::of(&rt),
        rate_achieved,
        generator_bound: binding.bound == Bound::Client,
        reasons,
    };

    let mut errors: Vec<ErrorCount> = errors
        .into_iter()
        .map(|(k, count)| ErrorCount {
            phase: k.phase,
            kind: k.kind,
            count,
        })
        .collect();
    errors.sort_by(|a, b| b.count.cmp(&a.count).then(a.phase.cmp(&b.phase)));

    acked.sort_unstable();
    // One id per record: a request of `--batch` N records acknowledges N ids.
    let acked_ids: Vec<String> = acked.iter().flat_map(|&s| sh.record_ids(s)).collect();

    // Explicit empty intervals for seconds without a success.
    let mut iv = Vec::new();
    if cfg.interval_histograms {
        for s in 0..timeline.len() as u64 {
            iv.push((s, intervals.remove(&s).unwrap_or_else(new_hist)));
        }
    }

    RunResult {
        schema_version: SCHEMA_VERSION,
        run_id: sh.run_id.clone(),
        started_at_unix_ms,
        config: cfg.clone(),
        manifest: Manifest::collect(),
        open_loop,
        interrupted: false,
        measured_s,
        totals: t,
        latency: HistSummary::of(&lat),
        latency_uncorrected: open_loop.then(|| HistSummary::of(&unc)),
        connect_latency: HistSummary::of(&con),
        errors,
        http_status: statuses,
        timeline,
        stalls,
        server_accept_queue,
        self_check,
        latency_backpressure: Some(HistSummary::of(&bp)),
        little_in_flight,
        window: cfg.window(),
        target_cost: costs.target,
        broker_cost: costs.broker,
        cpu_busy: costs.cpu_busy,
        cpu_steal: costs.cpu_steal,
        binding,
        acked: acked_ids.len() as u64,
        measured_start_unix_ms: started_at_unix_ms as f64 + cfg.warmup_s * 1e3,
        acked_ids,
        intervals: iv,
    }
}

/// Mean time a request spent in flight, seconds: from the actual send (what Little's law
/// counts), which in closed loop is the one histogram kept.
fn lat_uncorrected_mean_s(unc: &stats::Hist, lat: &stats::Hist, open_loop: bool) -> f64 {
    let h = if open_loop { unc } else { lat };
    if h.is_empty() {
        0.0
    } else {
        h.mean() / 1e9
    }
}

fn ms(us: f64) -> String {
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} us")
    }
}

/// `980 B`, `9.8 KiB`, `97.7 MiB`, `1.2 GiB`.
pub(crate) fn human_bytes(b: f64) -> String {
    const K: f64 = 1024.0;
    if b < K {
        format!("{b:.0} B")
    } else if b < K * K {
        format!("{:.1} KiB", b / K)
    } else if b < K * K * K {
        format!("{:.1} MiB", b / (K * K))
    } else {
        format!("{:.2} GiB", b / (K * K * K))
    }
}

fn hist_line(h: &HistSummary) -> String {
    format!(
        "p50 {}  p90 {}  p99 {}  p99.9 {}  p99.99 {}  max {}  (n={})",
        ms(h.p50_us),
        ms(h.p90_us),
        ms(h.p99_us),
        ms(h.p999_us),
        ms(h.p9999_us),
        ms(h.max_us),
        h.count
    )
}

/// The human summary printed after a run.
pub fn summary(r: &RunResult) -> String {
    let c = &r.config;
    let t = &r.totals;
    let mut s = String::new();
    let shape = match c.mode {
        crate::engine::config::Mode::Http => {
            format!("{} connections x pipeline {}", c.connections, c.pipeline)
        }
        crate::engine::config::Mode::HttpClose => {
            format!("{} concurrent connect-per-request", c.connections)
        }
        crate::engine::config::Mode::Ws => {
            format!("{} connections x window {}", c.connections, c.window)
        }
    };
    let loop_ = match c.rate {
        Some(rate) => format!("open loop at {rate} req/s"),
        None => "closed loop".to_string(),
    };
    let payload = match (&c.body_file, c.payload) {
        (Some(f), p) => format!("payload {} ({})", human_bytes(p.min as f64), f.display()),
        (None, p) if p.min == p.max => format!("payload {}", human_bytes(p.min as f64)),
        (None, p) => format!("payload {}..{} B", p.min, p.max),
    };
    let _ = writeln!(
        s,
        "{} {} ack={} topic={} {payload}",
        c.mode.label(),
        c.target,
        c.ack.as_str(),
        c.topic,
    );
    let _ = writeln!(s, "  {shape}, {loop_}, {} client thread(s)", c.threads);
    let _ = writeln!(
        s,
        "measured {:.2} s after {:.2} s warmup, run id {}{}",
        r.measured_s,
        c.warmup_s,
        r.run_id,
        if r.interrupted {
            " -- INTERRUPTED: figures cover the part that ran"
        } else {
            ""
        }
    );
    let _ = writeln!(
        s,
        "throughput {:.0} ok/s  {}/s   ({} ok, {} sent, {} backpressure, {} errors, {} in flight at end)",
        t.ok_per_sec,
        human_bytes(t.ok_bytes_per_sec),
        t.ok,
        t.sent,
        t.backpressure,
        t.errors,
        t.in_flight_at_end
    );
    if c.format != crate::engine::config::Format::Raw || c.batch > 1 {
        let _ = writeln!(
            s,
            "records     {:.0} records/s ok   ({:?}, {} records per request)",
            t.ok_per_sec * c.batch as f64,
            c.format,
            c.batch
        );
    }
    let label = if r.open_loop {
        "latency (corrected)   "
    } else {
        "latency    "
    };
    let _ = writeln!(s, "{label}{}", hist_line(&r.latency));
    if let Some(u) = &r.latency_uncorrected {
        let _ = writeln!(s, "latency (uncorrected) {}", hist_line(u));
    }
    if t.connects + t.connect_errors == 0 {
        let _ = writeln!(s, "connect    none in the measured phase");
    } else {
        let _ = writeln!(
            s,
            "connect    {} connects, {} failed; {}",
            t.connects,
            t.connect_errors,
            hist_line(&r.connect_latency)
        );
    }
    if r.errors.is_empty() {
        let _ = writeln!(s, "errors     none");
    } else {
        let list: Vec<String> = r
            .errors
            .iter()
            .map(|e| format!("{} {}: {}", e.phase, e.kind, e.count))
            .collect();
        let _ = writeln!(s, "errors     {}", list.join(", "));
    }
    if !r.http_status.is_empty() {
        let list: Vec<String> = r
            .http_status
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        let _ = writeln!(s, "status     {}", list.join(", "));
    }
    let sc = &r.self_check;
    let _ = write!(
        s,
        "client     cpu {:.0}% of {} thread(s), timer lag p99 {}",
        sc.cpu_util * 100.0,
        sc.threads,
        ms(sc.runtime_lag.p99_us)
    );
    if let Some(l) = &sc.schedule_lag {
        let _ = write!(
            s,
            ", schedule lag p99 {} max {}",
            ms(l.p99_us),
            ms(l.max_us)
        );
    }
    if let Some(a) = sc.rate_achieved {
        let _ = write!(s, ", {:.1}% of target rate sent", a * 100.0);
    }
    let _ = writeln!(s);
    if r.cpu_steal.values().any(|&x| x >= 0.01) {
        let list: Vec<String> = r
            .cpu_steal
            .iter()
            .map(|(cpu, x)| format!("cpu{cpu} {:.0}%", x * 100.0))
            .collect();
        let _ = writeln!(
            s,
            "steal      {} (the hypervisor's share of each CPU over the run)",
            list.join(", ")
        );
    }
    if sc.generator_bound {
        let _ = writeln!(s, "GENERATOR-BOUND: {}", sc.reasons.join("; "));
    }
    if r.stalls.is_empty() {
        let _ = writeln!(s, "no stalls");
    } else {
        let _ = writeln!(s, "{} stall(s):", r.stalls.len());
        for (i, st) in r.stalls.iter().enumerate() {
            let _ = writeln!(
                s,
                "  #{} at {:.3} s for {:.3} s{}  class {}  outstanding {}  pending connects {}  refused {}  connect timeouts {}  exhaustion {}",
                i + 1,
                st.start_ms / 1000.0,
                st.length_ms / 1000.0,
                if st.ongoing_at_end { " (still stalled at end)" } else { "" },
                st.class,
                st.outstanding,
                st.pending_connects,
                st.connect_refused,
                st.connect_timeouts,
                st.connect_exhaustion
            );
        }
    }
    if c.collect_acks {
        let _ = writeln!(s, "acked      {} ids", r.acked);
    }
    s
}

pub fn write_json(r: &RunResult, path: &Path) -> anyhow::Result<()> {
    let f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = std::io::BufWriter::new(f);
    serde_json::to_writer_pretty(&mut w, r)?;
    writeln!(w)?;
    w.flush()?;
    Ok(())
}

pub fn read_json(path: &Path) -> anyhow::Result<RunResult> {
    let s = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(serde_json::from_str(&s)?)
}

/// One id per line.
pub fn write_acked(r: &RunResult, path: &Path) -> anyhow::Result<()> {
    write_ids(&r.acked_ids, path)
}

/// Writes `ids`, one per line (the `--acked-file` format `verify` reads).
pub fn write_ids(ids: &[String], path: &Path) -> anyhow::Result<()> {
    let f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = std::io::BufWriter::new(f);
    for id in ids {
        writeln!(w, "{id}")?;
    }
    w.flush()?;
    Ok(())
}

/// HdrHistogram V2 interval log: one latency histogram (ns) per measured second.
pub fn write_hdr_log(r: &RunResult, path: &Path) -> anyhow::Result<()> {
    let f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = std::io::BufWriter::new(f);
    let start = SystemTime::UNIX_EPOCH
        + Duration::from_millis(r.started_at_unix_ms)
        + Duration::from_secs_f64(r.config.warmup_s);
    let mut ser = V2DeflateSerializer::new();
    {
        let mut log = IntervalLogWriterBuilder::new()
            .add_comment(&format!(
                "bench-client run {} target {} mode {}; values in nanoseconds{}",
                r.run_id,
                r.config.target,
                r.config.mode.as_str(),
                if r.open_loop {
                    ", corrected for coordinated omission"
                } else {
                    ""
                }
            ))
            .with_start_time(start)
            .with_base_time(start)
            .with_max_value_divisor(1e6)
            .begin_log_with(&mut w, &mut ser)?;
        for (sec, h) in &r.intervals {
            log.write_histogram(h, Duration::from_secs(*sec), Duration::from_secs(1), None)
                .map_err(|e| anyhow::anyhow!("writing interval {sec}: {e}"))?;
        }
    }
    w.flush()?;
    Ok(())
}
