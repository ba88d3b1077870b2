//! Building a [`RunResult`] once a run is over: the per-thread recorders folded into one,
//! totals counted on the fine timeline over the measured phase, stalls detected offline,
//! the binding signals classified, the client's self-check, the acked ids.
//!
//! Entry point: [`build_result`] (for the runner). The result data is
//! [`result`](crate::engine::result); printing it is [`printer`](crate::engine::printer).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering::Relaxed;

use crate::engine::analysis::bound::{classify, Binding, Bound, Signals};
use crate::engine::analysis::errors::{ErrorCount, ErrorKey, Phase};
use crate::engine::analysis::self_check::SelfCheck;
use crate::engine::analysis::stats::{self, merge, new_hist, HistSummary};
use crate::engine::analysis::timeline::{
    detect_stalls, ConnectSpan, StallParams, Timeline, BUCKET_NS,
};
use crate::engine::config::RunConfig;
use crate::engine::load::recorder::Recorder;
use crate::engine::load::shared::Shared;
use crate::engine::probes::cost::ProcessCost;
use crate::engine::probes::manifest::{affinity_of, Manifest};
use crate::engine::result::{RunResult, TlsFigures, Totals, SCHEMA_VERSION};

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

/// What the client itself measured, beside the requests' figures.
struct ClientFigures {
    client_cores: f64,
    client_busy: f64,
    rate_achieved: Option<f64>,
    schedule_lag_p99_ms: Option<f64>,
    little_in_flight: f64,
}

/// The binding signals of a finished run.
fn signals(cfg: &RunConfig, costs: &Costs, c: &ClientFigures) -> Signals {
    let client_aff = affinity_of(0);
    let target_aff = costs.target.as_ref().map(|t| affinity_of(t.pid));
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
        client_busy: c.client_busy,
        broker_cores: costs.broker.as_ref().map(ProcessCost::cores),
        client_cpus_busy: mean_over(&client_aff, &costs.cpu_busy),
        client_cores: c.client_cores,
        rate_achieved: c.rate_achieved,
        schedule_lag_p99_ms: c.schedule_lag_p99_ms,
        little_in_flight: c.little_in_flight,
        window: Some((cfg.connections * cfg.depth()) as f64),
        open_loop: cfg.rate.is_some(),
    }
}

/// Every thread's recorder folded into one.
struct Folded {
    tl: Timeline,
    lat: stats::Hist,
    unc: stats::Hist,
    con: stats::Hist,
    tls: stats::Hist,
    tls_full: u64,
    tls_resumed: u64,
    sched: stats::Hist,
    rt: stats::Hist,
    bp: stats::Hist,
    censored: u64,
    errors: HashMap<ErrorKey, u64>,
    statuses: BTreeMap<u16, u64>,
    spans: Vec<ConnectSpan>,
    acked: Vec<u64>,
    intervals: BTreeMap<u64, stats::Hist>,
}

impl Folded {
    /// Histograms merged with `add`, counts summed, lists concatenated.
    fn of(recs: Vec<Recorder>) -> Folded {
        let mut f = Folded {
            tl: Timeline::default(),
            lat: new_hist(),
            unc: new_hist(),
            con: new_hist(),
            tls: new_hist(),
            tls_full: 0,
            tls_resumed: 0,
            sched: new_hist(),
            rt: new_hist(),
            bp: new_hist(),
            censored: 0,
            errors: HashMap::new(),
            statuses: BTreeMap::new(),
            spans: Vec::new(),
            acked: Vec::new(),
            intervals: BTreeMap::new(),
        };
        for r in recs {
            f.tl.merge(&r.timeline);
            merge(&mut f.lat, &r.latency);
            merge(&mut f.unc, &r.latency_uncorrected);
            merge(&mut f.con, &r.connect);
            merge(&mut f.tls, &r.tls_handshake);
            f.tls_full += r.tls_full;
            f.tls_resumed += r.tls_resumed;
            merge(&mut f.sched, &r.schedule_lag);
            merge(&mut f.rt, &r.runtime_lag);
            merge(&mut f.bp, &r.backpressure);
            f.censored += r.censored;
            for (k, n) in r.errors {
                *f.errors.entry(k).or_default() += n;
            }
            for (s, n) in r.statuses {
                *f.statuses.entry(s).or_default() += n;
            }
            f.spans.extend(r.spans);
            f.acked.extend(r.acked);
            for (sec, bytes) in r.intervals {
                if let Ok(h) = stats::decode_bytes(&bytes) {
                    merge(f.intervals.entry(sec).or_insert_with(new_hist), &h);
                }
            }
        }
        f
    }
}

/// The measured phase: `from_ns..end_ns` since the run's start, `measured_s` long.
#[derive(Clone, Copy)]
struct Window {
    from_ns: u64,
    end_ns: u64,
    measured_s: f64,
}

/// Totals from the fine timeline over the measured, bucket-aligned phase, with the client's
/// CPU time over it and the longest accept queue sampled in it.
fn count_totals(
    tl: &Timeline,
    w: Window,
    censored: u64,
    cfg: &RunConfig,
) -> (Totals, u64, Option<u64>) {
    let first = (w.from_ns / BUCKET_NS) as usize;
    let last = (w.end_ns / BUCKET_NS) as usize;
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
    if w.measured_s > 0.0 {
        t.ok_per_sec = t.ok as f64 / w.measured_s;
        t.ok_bytes_per_sec = t.ok_per_sec * (cfg.payload.min + cfg.payload.max) as f64 / 2.0;
        t.completed_per_sec = t.completed as f64 / w.measured_s;
        t.sent_per_sec = t.sent as f64 / w.measured_s;
    }
    (t, cpu_ns, server_accept_queue)
}

/// What bound the run, and the client's check on itself: its CPU, its lag, the rate it
/// achieved; Little's law for the in-flight requests.
fn check_client(
    cfg: &RunConfig,
    costs: &Costs,
    f: &Folded,
    t: &Totals,
    w: Window,
    cpu_ns: u64,
) -> (Binding, SelfCheck, f64) {
    let open_loop = cfg.rate.is_some();
    let cpu_seconds = cpu_ns as f64 / 1e9;
    let cpu_util = if w.measured_s > 0.0 {
        cpu_seconds / (w.measured_s * cfg.threads as f64)
    } else {
        0.0
    };
    let rate_achieved = cfg.rate.map(|r| t.sent_per_sec / r);
    let sched_p99_ms = f.sched.value_at_quantile(0.99) as f64 / 1e6;
    let rt_p99_ms = f.rt.value_at_quantile(0.99) as f64 / 1e6;
    let little_in_flight = t.ok_per_sec * lat_uncorrected_mean_s(&f.unc, &f.lat, open_loop);
    let client_cores = if w.measured_s > 0.0 {
        cpu_seconds / w.measured_s
    } else {
        0.0
    };
    let figures = ClientFigures {
        client_cores,
        client_busy: cpu_util,
        rate_achieved,
        schedule_lag_p99_ms: open_loop.then_some(sched_p99_ms),
        little_in_flight,
    };
    let binding = classify(&signals(cfg, costs, &figures));
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
        schedule_lag: open_loop.then(|| HistSummary::of(&f.sched)),
        runtime_lag: HistSummary::of(&f.rt),
        rate_achieved,
        generator_bound: binding.bound == Bound::Client,
        reasons,
    };
    (binding, self_check, little_in_flight)
}

/// The error counts, most frequent first.
fn error_counts(errors: HashMap<ErrorKey, u64>) -> Vec<ErrorCount> {
    let mut errors: Vec<ErrorCount> = errors
        .into_iter()
        .map(|(k, count)| ErrorCount {
            phase: k.phase,
            kind: k.kind,
            count,
        })
        .collect();
    errors.sort_by(|a, b| b.count.cmp(&a.count).then(a.phase.cmp(&b.phase)));
    errors
}

/// The per-second histograms for `--hdr-log`, with explicit empty intervals for seconds
/// without a success.
fn interval_hists(
    mut intervals: BTreeMap<u64, stats::Hist>,
    seconds: usize,
) -> Vec<(u64, stats::Hist)> {
    (0..seconds as u64)
        .map(|s| (s, intervals.remove(&s).unwrap_or_else(new_hist)))
        .collect()
}

pub(crate) fn build_result(
    sh: &Shared,
    recs: Vec<Recorder>,
    started_at_unix_ms: u64,
    costs: Costs,
) -> RunResult {
    let cfg = &sh.cfg;
    let end_ns = sh.rec.end_ns.load(Relaxed);
    let from_ns = sh.rec.measure_start_ns;
    let w = Window {
        from_ns,
        end_ns,
        measured_s: end_ns.saturating_sub(from_ns) as f64 / 1e9,
    };
    let mut f = Folded::of(recs);
    let (totals, cpu_ns, server_accept_queue) = count_totals(&f.tl, w, f.censored, cfg);
    let timeline = f.tl.per_second(from_ns, end_ns, cfg.threads);
    let stalls = detect_stalls(
        &f.tl,
        &f.spans,
        &StallParams {
            window_ns: sh.rec.window_ns,
            measure_start_ns: from_ns,
            end_ns,
            threads: cfg.threads,
        },
    );
    let (binding, self_check, little_in_flight) = check_client(cfg, &costs, &f, &totals, w, cpu_ns);
    let open_loop = cfg.rate.is_some();

    f.acked.sort_unstable();
    // One id per record: a request of `--batch` N records acknowledges N ids.
    let acked_ids: Vec<String> = f
        .acked
        .iter()
        .flat_map(|&s| sh.encoder.record_ids(s))
        .collect();
    let tls = cfg.tls.as_ref().map(|t| TlsFigures {
        resume: t.resume,
        full: f.tls_full,
        resumed: f.tls_resumed,
        failed: f
            .errors
            .iter()
            .filter(|(k, _)| k.phase == Phase::Tls)
            .map(|(_, n)| n)
            .sum(),
        handshake_latency: HistSummary::of(&f.tls),
    });
    let intervals = match cfg.interval_histograms {
        true => interval_hists(std::mem::take(&mut f.intervals), timeline.len()),
        false => Vec::new(),
    };

    RunResult {
        schema_version: SCHEMA_VERSION,
        run_id: sh.encoder.run_id.clone(),
        started_at_unix_ms,
        config: cfg.clone(),
        manifest: Manifest::collect(),
        open_loop,
        interrupted: false,
        measured_s: w.measured_s,
        totals,
        latency: HistSummary::of(&f.lat),
        latency_uncorrected: open_loop.then(|| HistSummary::of(&f.unc)),
        connect_latency: HistSummary::of(&f.con),
        tls,
        errors: error_counts(f.errors),
        http_status: f.statuses,
        timeline,
        stalls,
        server_accept_queue,
        self_check,
        latency_backpressure: Some(HistSummary::of(&f.bp)),
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
        intervals,
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
