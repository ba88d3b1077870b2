//! `soak`: run each gateway for a bounded time (default 10 min) at a fraction of its
//! measured maximum throughput, with connection churn, and watch its resources.
//!
//! Per gateway: start `kafka-mock` (unless `--brokers`) and the gateway on port 0, probe
//! the maximum briefly (closed loop), then drive an open loop at `--fraction` of it while
//! every keep-alive connection is closed and reopened after `--reconnect-after` requests.
//! A sampler thread reads the gateway's RSS, fd count, threads and CPU from /proc every
//! second. The report: RSS and fds over time and their growth (last-window average minus
//! first-window average, the same from the window after `--settle`, and a least-squares
//! slope per hour), throughput over time, errors and stalls; `soak.json`, `soak.md` and SVG
//! charts overlaying every gateway soaked ([`report`]).
//!
//! Entry points: [`cli_main`], [`run_soak`]. Depends on the engine, the lab and the
//! reporting; no other module depends on it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};

use crate::engine::analysis::stats::HistSummary;
use crate::engine::config::{parse_duration, Ack, Mode, PayloadSize, RunConfig};
use crate::engine::probes::manifest::Manifest;
use crate::engine::result::RunResult;
use crate::experiments::shared::{Experiment, ExperimentArgs};
use crate::experiments::verify::{verify, VerifyArgs, VerifyResult};
use crate::lab::{
    self, ExitInfo, Gateway, GatewayKind, GatewaySpec, KafkaMock, ProcSample, Sampler,
};
use crate::reporting::outcome;
use crate::reporting::progress::Overall;

mod report;
pub use report::{soak_charts, soak_markdown, write_soak};

/// Version of the `soak.json` layout.
pub const SOAK_SCHEMA_VERSION: u32 = 1;

/// The window averaged at each end for the growth figure (shorter runs use a third).
const GROWTH_WINDOW_S: f64 = 60.0;

/// Soak one gateway (or all in turn) at a fraction of its maximum, with connection churn.
#[derive(Debug, Clone, clap::Args)]
pub struct SoakArgs {
    #[command(flatten)]
    pub shared: ExperimentArgs,
    /// Soak time per gateway (after the probe and warmup), e.g. 10m, 2m, 90s.
    #[arg(long, value_parser = parse_duration, default_value = "10m")]
    pub duration: Duration,
    /// Kafka bootstrap servers; default: a fresh kafka-mock per gateway.
    #[arg(long)]
    pub brokers: Option<String>,
    /// Load as a fraction of the probed maximum throughput.
    #[arg(long, default_value_t = 0.8)]
    pub fraction: f64,
    /// Fixed open-loop rate (requests/s) instead of probing the maximum.
    #[arg(long, value_name = "PER_SEC")]
    pub rate: Option<f64>,
    /// Closed-loop probe of the maximum throughput.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub probe: Duration,
    /// Connection churn: each keep-alive connection is closed and reopened after this
    /// many requests (the first time after 1..=N, drawn per connection: continuous churn,
    /// not every connection at once).
    #[arg(long, default_value_t = 1000)]
    pub reconnect_after: u64,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Requests in flight per connection (probe and soak).
    #[arg(long, default_value_t = 8)]
    pub pipeline: usize,
    /// Record value size in bytes, or a range LOW..HIGH.
    #[arg(long, default_value = "100")]
    pub payload: PayloadSize,
    /// Ack mode requested from the gateway.
    #[arg(long, value_enum, default_value_t = Ack::Kafka)]
    pub ack: Ack,
    /// Kafka topic.
    #[arg(long, default_value = "soak")]
    pub topic: String,
    /// Old name of --client-threads.
    #[arg(long = "threads", hide = true)]
    pub threads_old: Option<usize>,
    /// Any other gateway argument, verbatim, repeatable (e.g. --gateway-arg=--backlog
    /// --gateway-arg=64); producer properties go in -X.
    #[arg(long, allow_hyphen_values = true)]
    pub gateway_arg: Vec<String>,
    /// Sampling period of the gateway's RSS and fds.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub sample_every: Duration,
    /// Exit non-zero when a gateway's RSS grew by more than this after --settle (MiB, last
    /// window average minus the average of the window starting at --settle).
    #[arg(long, value_name = "MIB")]
    pub fail_on_growth: Option<f64>,
    /// Exit non-zero when a gateway's RSS grew by more than this percentage after --settle
    /// (of the average of the window starting at --settle).
    #[arg(long, value_name = "PERCENT")]
    pub fail_on_growth_pct: Option<f64>,
    /// Growth limits are judged from the window that starts this long into the soak (at the
    /// latest where a window still fits before the last one): the first minutes are the
    /// connections' ramp and the allocator reaching its high-water mark under churn (a 10k
    /// soak's RSS climbs ~4 min, then stays flat). 0: from the first window. Growth from the
    /// first window is reported either way.
    #[arg(long, value_parser = parse_duration, default_value = "2m")]
    pub settle: Duration,
    /// Do not check that the acknowledged records are in Kafka after each gateway's soak
    /// (with ack=kafka every acknowledged id is looked up in the topic by default).
    #[arg(long)]
    pub no_verify: bool,
    /// Verify only the most recently acknowledged ids, this many (0: all). kafka-mock keeps
    /// a bounded log per partition (librdkafka's mock cluster trims old segments): a
    /// 10-minute soak at 15k/s acknowledges ~9M records, of which it keeps ~1.6M.
    #[arg(long, default_value_t = 1_000_000)]
    pub verify_last: usize,
}

impl SoakArgs {
    /// Defaults as on the command line, for programmatic use (tests).
    pub fn new(gateway: &str) -> anyhow::Result<Self> {
        use clap::Parser;
        #[derive(Parser)]
        struct P {
            #[command(flatten)]
            a: SoakArgs,
        }
        Ok(P::try_parse_from(["soak", "--gateways", gateway])?.a)
    }

    /// Client worker threads: --client-threads, or its old name --threads.
    pub fn client_threads(&self) -> Option<usize> {
        self.shared.client_threads.or(self.threads_old)
    }
}

/// Growth of a series over a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Growth {
    /// Length of the windows averaged at the start and at the end, seconds.
    pub window_s: f64,
    pub first_avg: f64,
    pub last_avg: f64,
    /// `last_avg - first_avg`.
    pub growth: f64,
    /// Where the settled window starts, seconds after the first point: the asked settle
    /// time, at most the span minus two windows.
    #[serde(default)]
    pub settled_from_s: f64,
    /// Average over `[settled_from_s, settled_from_s + window_s]`.
    #[serde(default)]
    pub settled_avg: f64,
    /// `last_avg - settled_avg`: growth after the warm-up. A series that rises while the
    /// process warms up (the allocator's high-water mark under churn) and then stays flat
    /// has a large `growth` and a `settled_growth` near 0; a leak has both.
    #[serde(default)]
    pub settled_growth: f64,
    /// Least-squares slope over every sample, units per hour.
    pub slope_per_hour: f64,
    pub min: f64,
    pub max: f64,
}

/// Growth of `points` (`(seconds, value)`, in time order): averages over the first and
/// the last `window_s` (at most a third of the span each) and over the window starting
/// `settle_s` after the first point (at most at the span minus two windows), and the
/// fitted slope.
pub fn growth(points: &[(f64, f64)], window_s: f64, settle_s: f64) -> Option<Growth> {
    let (first, last) = (points.first()?, points.last()?);
    let span = last.0 - first.0;
    if points.len() < 2 || span <= 0.0 {
        return None;
    }
    let w = window_s.min(span / 3.0);
    let avg = |sel: &dyn Fn(f64) -> bool| {
        let v: Vec<f64> = points.iter().filter(|p| sel(p.0)).map(|p| p.1).collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    let first_avg = avg(&|t| t <= first.0 + w);
    let last_avg = avg(&|t| t >= last.0 - w);
    let settled_from_s = settle_s.clamp(0.0, span - 2.0 * w);
    let from = first.0 + settled_from_s;
    let settled_avg = avg(&|t| t >= from && t <= from + w);
    Some(Growth {
        window_s: w,
        first_avg,
        last_avg,
        growth: last_avg - first_avg,
        settled_from_s,
        settled_avg,
        settled_growth: last_avg - settled_avg,
        slope_per_hour: slope(points) * 3600.0,
        min: points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min),
        max: points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max),
    })
}

/// Least-squares slope of `y` over `x` (0 when `x` does not vary).
pub fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx == 0.0 {
        0.0
    } else {
        sxy / sxx
    }
}

/// One gateway's soak.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GatewaySoak {
    pub gateway: String,
    /// First line of `<binary> --version`.
    pub version: Option<String>,
    /// Closed-loop maximum (ok/s) the rate was derived from; `None` with `--rate`.
    pub probe_ok_per_sec: Option<f64>,
    pub probe_latency: Option<HistSummary>,
    /// Open-loop rate of the soak (requests/s).
    pub rate: f64,
    /// Gateway samples; `t_s` counts from the start of the soak run (its warmup included).
    pub samples: Vec<ProcSample>,
    /// Growth of the RSS in MiB over the measured phase (samples after warmup).
    pub rss_mib: Option<Growth>,
    /// Growth of the open fd count over the measured phase.
    pub fds: Option<Growth>,
    /// The soak run (per-second timeline, errors, stalls, latency).
    pub run: RunResult,
    /// `/metrics` at the end (histogram buckets left out).
    pub metrics_end: BTreeMap<String, f64>,
    /// How the gateway ended on SIGTERM after the run.
    pub exit: Option<ExitInfo>,
    /// The acknowledged ids looked up in Kafka after the soak (`None`: not checked).
    #[serde(default)]
    pub verify: Option<VerifyResult>,
    /// Why this gateway failed the soak (empty: passed).
    pub failures: Vec<String>,
}

impl GatewaySoak {
    fn rss_points(&self) -> Vec<(f64, f64)> {
        self.samples
            .iter()
            .map(|s| (s.t_s, s.rss_kib as f64 / 1024.0))
            .collect()
    }
    fn fd_points(&self) -> Vec<(f64, f64)> {
        self.samples.iter().map(|s| (s.t_s, s.fds as f64)).collect()
    }
    /// The points of the measured phase (after warmup): growth is judged under load only,
    /// not from the idle first sample.
    fn measured(&self, pts: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
        let from = self.run.config.warmup_s;
        pts.into_iter().filter(|p| p.0 >= from).collect()
    }
    fn compute_growth(&mut self, settle_s: f64) {
        self.rss_mib = growth(&self.measured(self.rss_points()), GROWTH_WINDOW_S, settle_s);
        self.fds = growth(&self.measured(self.fd_points()), GROWTH_WINDOW_S, settle_s);
    }
    /// ok/s per second, on the samples' clock (seconds since the soak run started).
    fn ok_points(&self) -> Vec<(f64, f64)> {
        let w = self.run.config.warmup_s;
        self.run
            .timeline
            .iter()
            .map(|s| (w + s.second as f64 + 0.5, s.ok as f64))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SoakReport {
    pub schema_version: u32,
    pub started_at_unix_ms: u64,
    pub duration_s: f64,
    pub fraction: f64,
    pub reconnect_after: u64,
    pub fail_on_growth_mib: Option<f64>,
    #[serde(default)]
    pub fail_on_growth_pct: Option<f64>,
    /// `--settle`: where the growth limits start judging, seconds into the measured phase.
    #[serde(default)]
    pub settle_s: f64,
    pub manifest: Manifest,
    pub gateways: Vec<GatewaySoak>,
    /// Gateways that could not be soaked at all: `(gateway, error)`.
    pub not_run: Vec<(String, String)>,
    pub passed: bool,
}

/// Soak every gateway of `a.gateway` in turn.
pub fn run_soak(a: &SoakArgs) -> anyhow::Result<SoakReport> {
    if !(a.fraction > 0.0 && a.fraction <= 2.0) {
        bail!("--fraction must be in (0, 2]");
    }
    if a.reconnect_after == 0 {
        bail!("--reconnect-after must be at least 1");
    }
    if a.duration < Duration::from_secs(3) {
        bail!("--duration must be at least 3s");
    }
    let bin_dir = a.shared.bin_dir()?;
    // Fail fast on missing binaries rather than after soaking the first gateway.
    for k in &a.shared.gateways.0 {
        lab::locate(&bin_dir, k.bin())?;
    }
    if a.brokers.is_none() {
        lab::locate(&bin_dir, "kafka-mock")?;
    }
    let started_at_unix_ms = lab::now_unix_ms();
    let kinds = &a.shared.gateways.0;
    let per_gateway = a.duration + a.probe + Duration::from_secs(5);
    // The runs draw their own bar: the overall status prefixes the lines instead.
    let overall = std::cell::RefCell::new(Overall::new(
        "gateways",
        kinds.len(),
        Some(per_gateway * kinds.len() as u32),
        a.shared.quiet,
        false,
    ));
    let (gateways, not_run) = lab::each_gateway(
        kinds,
        "not soaked",
        |k| soak_one(k, a, &bin_dir, &overall.borrow()),
        one_line,
        |l| {
            overall.borrow_mut().inc();
            overall.borrow().line(&format!("soak: {l}"));
        },
    );
    let passed = not_run.is_empty() && gateways.iter().all(|g| g.failures.is_empty());
    Ok(SoakReport {
        schema_version: SOAK_SCHEMA_VERSION,
        started_at_unix_ms,
        duration_s: a.duration.as_secs_f64(),
        fraction: a.fraction,
        reconnect_after: a.reconnect_after,
        fail_on_growth_mib: a.fail_on_growth,
        fail_on_growth_pct: a.fail_on_growth_pct,
        settle_s: a.settle.as_secs_f64(),
        manifest: Manifest::collect(),
        gateways,
        not_run,
        passed,
    })
}

fn load_config(a: &SoakArgs, target: &str) -> anyhow::Result<RunConfig> {
    let mut c = RunConfig::new(target)?;
    c.mode = Mode::Http;
    c.connections = a.connections.max(1);
    c.pipeline = a.pipeline.max(1);
    c.payload = a.payload;
    c.ack = a.ack;
    c.topic = a.topic.clone();
    if let Some(t) = a.client_threads() {
        c.threads = t.max(1);
    }
    c.warmup_s = 1.0;
    c.progress = !a.shared.quiet;
    Ok(c)
}

fn soak_one(
    kind: GatewayKind,
    a: &SoakArgs,
    bin_dir: &Path,
    overall: &Overall,
) -> anyhow::Result<GatewaySoak> {
    let name = kind.name();
    let kafka = match &a.brokers {
        Some(_) => None,
        None => Some(KafkaMock::start(bin_dir, &[&a.topic], true, &[])?),
    };
    let brokers = match (&a.brokers, &kafka) {
        (Some(b), _) => b.clone(),
        (None, Some(k)) => k.bootstrap.clone(),
        (None, None) => unreachable!("kafka-mock started without --brokers"),
    };
    let mut args = a.shared.producer_args();
    args.extend(a.gateway_arg.iter().cloned());
    let mut gw = Gateway::start(&GatewaySpec {
        brokers: Some(brokers.clone()),
        threads: a.shared.gateway_threads,
        args,
        ..GatewaySpec::new(kind, bin_dir)?
    })?;
    let version = Manifest::target_version_of(&gw.bin);

    let (rate, probe_ok_per_sec, probe_latency) = match a.rate {
        Some(r) => (r, None, None),
        None => {
            overall.line(&format!(
                "soak: {name}: probing the maximum for {:?} (closed loop)",
                a.probe
            ));
            let mut c = load_config(a, &gw.target())?;
            c.duration_s = Some(a.probe.as_secs_f64());
            let p = crate::engine::run_blocking(c)?;
            if p.totals.ok_per_sec <= 0.0 {
                bail!(
                    "{name}: the probe got no successful response ({} errors, {} backpressure)",
                    p.totals.errors,
                    p.totals.backpressure
                );
            }
            (
                a.fraction * p.totals.ok_per_sec,
                Some(p.totals.ok_per_sec),
                Some(p.latency),
            )
        }
    };
    overall.line(&format!(
        "soak: {name}: soaking {:?} at {rate:.0} req/s, {} connections reconnecting every {} requests",
        a.duration, a.connections, a.reconnect_after
    ));
    let mut c = load_config(a, &gw.target())?;
    c.rate = Some(rate);
    c.reconnect_after = Some(a.reconnect_after);
    // Keep the acknowledged ids for the check against Kafka after the run.
    c.collect_acks = !a.no_verify && a.ack == Ack::Kafka;
    c.duration_s = Some(a.duration.as_secs_f64());
    let sampler = Sampler::start(gw.proc.pid(), Some(gw.addr), a.sample_every);
    let run = crate::engine::run_blocking(c);
    let samples = sampler.stop();
    let mut run = run?;
    run.manifest.target_version = version.clone();

    let mut failures = Vec::new();
    let metrics_end = lab::final_metrics(&gw, "soak", &mut failures);
    // SIGTERM drains and flushes: what was acknowledged is in Kafka from here on.
    let exit = gw.terminate(Duration::from_secs(30)).ok();
    let verify = if a.no_verify || a.ack != Ack::Kafka {
        None
    } else {
        overall.line(&format!(
            "soak: {name}: verifying {} of {} acknowledged ids (the most recent)",
            if a.verify_last == 0 {
                run.acked_ids.len()
            } else {
                run.acked_ids.len().min(a.verify_last)
            },
            run.acked_ids.len()
        ));
        Some(verify_acked(&run, a.verify_last, &brokers, &a.topic, name)?)
    };
    run.acked_ids = Vec::new();
    drop(kafka);

    let mut g = GatewaySoak {
        gateway: name.to_string(),
        version,
        probe_ok_per_sec,
        probe_latency,
        rate,
        samples,
        rss_mib: None,
        fds: None,
        run,
        metrics_end,
        exit,
        verify,
        failures,
    };
    g.compute_growth(a.settle.as_secs_f64());
    judge(
        &mut g,
        Limits {
            growth_mib: a.fail_on_growth,
            growth_pct: a.fail_on_growth_pct,
        },
        a.sample_every,
    );
    Ok(g)
}

/// The acknowledged ids of `run`, looked up in `topic`.
fn verify_acked(
    run: &RunResult,
    last: usize,
    brokers: &str,
    topic: &str,
    name: &str,
) -> anyhow::Result<VerifyResult> {
    let acked_file = std::env::temp_dir().join(format!(
        "bench-soak-{}-{}-{}.acked",
        std::process::id(),
        name,
        run.run_id
    ));
    // The ids are in request order: the last ones are the most recently acknowledged.
    let ids = &run.acked_ids;
    let skip = if last == 0 {
        0
    } else {
        ids.len().saturating_sub(last)
    };
    crate::engine::result::write_ids(&ids[skip..], &acked_file)?;
    let v = verify(&VerifyArgs {
        brokers: brokers.to_string(),
        topic: topic.to_string(),
        acked_file: acked_file.clone(),
        // Millions of records after a long soak: reading them takes a while.
        timeout: Duration::from_secs(600),
        json: None,
        property: vec![],
    });
    let _ = std::fs::remove_file(&acked_file);
    v.with_context(|| format!("{name}: verifying the acknowledged records"))
}

/// What fails a soak besides stalls, lost records, missing samples and an unclean exit.
#[derive(Debug, Clone, Copy, Default)]
struct Limits {
    growth_mib: Option<f64>,
    growth_pct: Option<f64>,
}

/// Fills `failures`: stalls, RSS growth over the limits, acknowledged records missing from
/// Kafka, missing samples, unclean exit.
fn judge(g: &mut GatewaySoak, limits: Limits, period: Duration) {
    let fail_on_growth = limits.growth_mib;
    if !g.run.stalls.is_empty() {
        let worst = g.run.stalls.iter().map(|s| s.length_ms).fold(0.0, f64::max);
        g.failures.push(format!(
            "{} stall(s), longest {:.0} ms",
            g.run.stalls.len(),
            worst
        ));
    }
    if let (Some(limit), Some(r)) = (fail_on_growth, &g.rss_mib) {
        if r.settled_growth > limit {
            g.failures.push(format!(
                "RSS grew {:.1} MiB after {:.0} s (limit {limit} MiB)",
                r.settled_growth, r.settled_from_s
            ));
        }
    }
    if let (Some(limit), Some(r)) = (limits.growth_pct, &g.rss_mib) {
        let pct = settled_pct(r);
        if pct > limit {
            g.failures.push(format!(
                "RSS grew {pct:.1}% after {:.0} s (limit {limit}%)",
                r.settled_from_s
            ));
        }
    }
    if let Some(v) = &g.verify {
        if v.missing > 0 {
            g.failures.push(format!(
                "{} acknowledged record(s) missing from Kafka{}",
                v.missing,
                if v.retention_trimmed {
                    " (retention trimmed some partitions)"
                } else {
                    ""
                }
            ));
        }
    }
    // The sampler stops early only when the process is gone.
    let expected = g.run.measured_s + g.run.config.warmup_s;
    let covered = g.samples.last().map_or(0.0, |s| s.t_s) + period.as_secs_f64();
    if covered + 2.0 * period.as_secs_f64() < expected {
        g.failures.push(format!(
            "gateway samples stop at {covered:.0} s of {expected:.0} s: the process died"
        ));
    }
    match &g.exit {
        Some(e) if e.clean => {}
        Some(e) => g.failures.push(format!(
            "gateway did not exit cleanly on SIGTERM (code {:?} after {:.1} s)",
            e.code, e.after_s
        )),
        None => g.failures.push("could not stop the gateway".into()),
    }
}

/// `part` as a percentage of `of` (0 when `of` is not positive).
fn pct(part: f64, of: f64) -> f64 {
    if of > 0.0 {
        part / of * 100.0
    } else {
        0.0
    }
}

/// RSS growth as a percentage of the first window's average.
fn growth_pct(r: &Growth) -> f64 {
    pct(r.growth, r.first_avg)
}

/// Growth after the settle time as a percentage of the settled window's average.
fn settled_pct(r: &Growth) -> f64 {
    pct(r.settled_growth, r.settled_avg)
}

/// `acked / missing` of the verification, or `-`.
fn fmt_verify(v: &Option<VerifyResult>) -> String {
    v.as_ref()
        .map_or("-".into(), |v| format!("{} / {}", v.acked, v.missing))
}

fn one_line(g: &GatewaySoak) -> String {
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

/// `bench-client soak`: run, write the outputs, print the summary; the exit code is 0 when
/// every gateway passed, 1 otherwise.
pub fn cli_main(a: &SoakArgs) -> anyhow::Result<u8> {
    crate::experiments::shared::main::<Soak>(a)
}

/// The soak experiment in the shared shape.
pub struct Soak;

impl Experiment for Soak {
    type Args = SoakArgs;
    type Summary = SoakReport;

    fn shared(a: &SoakArgs) -> &ExperimentArgs {
        &a.shared
    }
    fn default_out(_: &SoakArgs) -> PathBuf {
        lab::default_out_dir("soak")
    }
    fn run(a: &SoakArgs, _dir: &Path) -> anyhow::Result<SoakReport> {
        run_soak(a)
    }
    fn render(r: &SoakReport, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
        write_soak(r, dir)
    }
    fn finish(_: &SoakArgs, r: &SoakReport, files: &[PathBuf]) -> u8 {
        outcome::print_outcome(
            "soak",
            r.gateways.iter().map(one_line),
            "not soaked",
            &r.not_run,
            r.passed,
            files,
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::engine::analysis::self_check::SelfCheck;
    use crate::engine::analysis::stats::new_hist;
    use crate::engine::analysis::timeline::SecondStats;
    use crate::engine::result::Totals;

    #[test]
    fn growth_of_a_line() {
        // 1 MiB per minute for 10 minutes, sampled every second.
        let pts: Vec<(f64, f64)> = (0..=600)
            .map(|t| (t as f64, 100.0 + t as f64 / 60.0))
            .collect();
        let g = growth(&pts, 60.0, 0.0).unwrap();
        assert_eq!(g.window_s, 60.0);
        assert!((g.slope_per_hour - 60.0).abs() < 1e-6, "{g:?}");
        // First minute averages 100.5, last minute 109.5.
        assert!((g.first_avg - 100.5).abs() < 1e-9, "{g:?}");
        assert!((g.last_avg - 109.5).abs() < 1e-9, "{g:?}");
        assert!((g.growth - 9.0).abs() < 1e-9);
        // Settle 0: the settled window is the first.
        assert_eq!((g.settled_from_s, g.settled_growth), (0.0, g.growth));
        assert_eq!((g.min, g.max), (100.0, 110.0));
    }

    #[test]
    fn a_warm_up_to_a_plateau_is_not_settled_growth_and_a_leak_is() {
        // Rises 6 MiB over the first 2 minutes, then flat (the 10k soak's shape).
        let plateau: Vec<(f64, f64)> = (0..=600)
            .map(|t| (t as f64, 36.0 + 6.0 * (t.min(120) as f64 / 120.0)))
            .collect();
        let g = growth(&plateau, 60.0, 120.0).unwrap();
        assert!((g.growth - 4.5).abs() < 1e-9, "{g:?}");
        assert_eq!(g.settled_from_s, 120.0);
        assert!(g.settled_growth.abs() < 1e-9, "{g:?}");
        assert!((g.settled_avg - 42.0).abs() < 1e-9, "{g:?}");
        // A steady leak keeps growing after the settle time: 1 MiB per 100 s, the
        // settled window [120, 180] averages 37.5 and the last [540, 600] 41.7.
        let leak: Vec<(f64, f64)> = (0..=600)
            .map(|t| (t as f64, 36.0 + t as f64 / 100.0))
            .collect();
        let g = growth(&leak, 60.0, 120.0).unwrap();
        assert!((g.growth - 5.4).abs() < 1e-6, "{g:?}");
        assert!((g.settled_growth - 4.2).abs() < 1e-6, "{g:?}");
        // A settle time past where a window still fits stops there: the span minus two
        // windows (600 - 120 = 480).
        let g = growth(&leak, 60.0, 1e9).unwrap();
        assert_eq!(g.settled_from_s, 480.0);
        assert!((g.settled_growth - 0.6).abs() < 1e-6, "{g:?}");
    }

    #[test]
    fn growth_of_flat_and_short_series() {
        let flat: Vec<(f64, f64)> = (0..30).map(|t| (t as f64, 42.0)).collect();
        let g = growth(&flat, 60.0, 0.0).unwrap();
        // A 29 s run: windows of a third of it.
        assert!((g.window_s - 29.0 / 3.0).abs() < 1e-9);
        assert_eq!((g.growth, g.slope_per_hour), (0.0, 0.0));
        // A step in the middle shows as growth; noise around a level does not.
        let step: Vec<(f64, f64)> = (0..90)
            .map(|t| (t as f64, if t < 45 { 10.0 } else { 20.0 } + (t % 2) as f64))
            .collect();
        let g = growth(&step, 60.0, 0.0).unwrap();
        assert!((g.growth - 10.0).abs() < 0.1, "{g:?}");
        assert!(g.slope_per_hour > 0.0);
        assert!(growth(&[(1.0, 1.0)], 60.0, 0.0).is_none());
        assert!(growth(&[], 60.0, 0.0).is_none());
        assert_eq!(slope(&[(1.0, 5.0), (1.0, 7.0)]), 0.0);
    }

    /// A run result with a synthetic timeline of `secs` seconds at `ok` per second.
    pub(crate) fn synthetic_run(secs: u64, ok: impl Fn(u64) -> u64) -> RunResult {
        let h = HistSummary::of(&new_hist());
        let timeline: Vec<SecondStats> = (0..secs)
            .map(|i| SecondStats {
                second: i,
                sent: ok(i),
                completed: ok(i),
                ok: ok(i),
                errors: 0,
                backpressure: u64::from(i == 3),
                connects: 2,
                connect_errors: 0,
                open_connections: 16,
                cpu_util: 0.2,
            })
            .collect();
        let total: u64 = timeline.iter().map(|s| s.ok).sum();
        let mut config = RunConfig::new("http://127.0.0.1:1").unwrap();
        config.rate = Some(1000.0);
        config.reconnect_after = Some(100);
        RunResult {
            schema_version: crate::engine::result::SCHEMA_VERSION,
            run_id: "0123456789".into(),
            started_at_unix_ms: 0,
            config,
            manifest: Manifest::collect(),
            open_loop: true,
            interrupted: false,
            measured_s: secs as f64,
            totals: Totals {
                sent: total,
                completed: total,
                ok: total,
                backpressure: 1,
                errors: 0,
                in_flight_at_end: 0,
                censored: 0,
                connects: 2 * secs,
                connect_errors: 0,
                ok_per_sec: total as f64 / secs as f64,
                ok_bytes_per_sec: 0.0,
                completed_per_sec: total as f64 / secs as f64,
                sent_per_sec: total as f64 / secs as f64,
            },
            latency: h.clone(),
            latency_uncorrected: Some(h.clone()),
            connect_latency: h.clone(),
            tls: None,
            errors: vec![],
            http_status: BTreeMap::from([(200, total), (503, 1)]),
            timeline,
            stalls: vec![],
            server_accept_queue: None,
            self_check: SelfCheck {
                threads: 1,
                cpu_seconds: 1.0,
                cpu_util: 0.2,
                schedule_lag: Some(h.clone()),
                runtime_lag: h,
                rate_achieved: Some(1.0),
                generator_bound: false,
                reasons: vec![],
            },
            latency_backpressure: None,
            little_in_flight: 0.0,
            window: None,
            target_cost: None,
            broker_cost: None,
            cpu_busy: BTreeMap::new(),
            cpu_steal: BTreeMap::new(),
            binding: crate::engine::analysis::bound::Binding {
                bound: crate::engine::analysis::bound::Bound::Unknown,
                reasons: vec![],
            },
            acked: 0,
            measured_start_unix_ms: 0.0,
            acked_ids: vec![],
            intervals: vec![],
        }
    }

    fn synthetic_gateway(name: &str, leak_kib_per_s: u64) -> GatewaySoak {
        let samples: Vec<ProcSample> = (0..=240)
            .map(|t| ProcSample {
                t_s: t as f64,
                rss_kib: 20_000 + t * leak_kib_per_s + (t % 7) * 30,
                fds: 40 + t % 3,
                threads: 8,
                cpu_s: t as f64 * 0.5,
                connections_open: Some(17.0),
                records_inflight: Some(3.0),
            })
            .collect();
        let mut g = GatewaySoak {
            gateway: name.into(),
            version: Some(format!("{name} 0.1.0")),
            probe_ok_per_sec: Some(1250.0),
            probe_latency: None,
            rate: 1000.0,
            samples,
            rss_mib: None,
            fds: None,
            run: synthetic_run(239, |i| 1000 - (i % 5)),
            metrics_end: BTreeMap::new(),
            exit: Some(ExitInfo {
                clean: true,
                code: Some(0),
                after_s: 0.2,
            }),
            verify: None,
            failures: vec![],
        };
        g.compute_growth(120.0);
        judge(
            &mut g,
            Limits {
                growth_mib: Some(5.0),
                growth_pct: Some(5.0),
            },
            Duration::from_secs(1),
        );
        g
    }

    #[test]
    fn growth_in_percent_and_lost_acks_fail_a_soak() {
        // 40 KiB/s on a 20 MiB base: ~7 MiB between the first and last minute, ~35%.
        let leaky = synthetic_gateway("uring", 40);
        assert!(
            leaky.failures.iter().any(|f| f.contains("%")),
            "{:?}",
            leaky.failures
        );
        let mut lost = synthetic_gateway("compio", 0);
        assert!(lost.failures.is_empty(), "{:?}", lost.failures);
        lost.verify = Some(VerifyResult {
            topic: "soak".into(),
            acked: 1000,
            found: 997,
            missing: 3,
            duplicates: 0,
            scanned: 997,
            unacked_same_run: 0,
            partitions: vec![],
            complete: true,
            retention_trimmed: false,
            missing_sample: vec![],
            duplicate_sample: vec![],
        });
        judge(&mut lost, Limits::default(), Duration::from_secs(1));
        assert_eq!(
            lost.failures,
            vec!["3 acknowledged record(s) missing from Kafka".to_string()]
        );
        assert_eq!(fmt_verify(&lost.verify), "1000 / 3");
    }

    #[test]
    fn renders_a_report_from_synthetic_samples() {
        let flat = synthetic_gateway("tokio-multi", 0);
        assert!(flat.failures.is_empty(), "{:?}", flat.failures);
        // 40 KiB/s for 4 minutes: about 7 MiB between the first and the last minute.
        let leaky = synthetic_gateway("uring", 40);
        let g = leaky.rss_mib.as_ref().unwrap();
        assert!(
            (g.slope_per_hour - 40.0 * 3600.0 / 1024.0).abs() < 1.0,
            "{g:?}"
        );
        assert!(
            leaky.failures.iter().any(|f| f.contains("RSS grew")),
            "{:?}",
            leaky.failures
        );
        let r = SoakReport {
            schema_version: SOAK_SCHEMA_VERSION,
            started_at_unix_ms: 0,
            duration_s: 239.0,
            fraction: 0.8,
            reconnect_after: 100,
            fail_on_growth_mib: Some(5.0),
            fail_on_growth_pct: Some(5.0),
            settle_s: 120.0,
            manifest: Manifest::collect(),
            gateways: vec![flat, leaky],
            not_run: vec![("compio".into(), "binary missing".into())],
            passed: false,
        };
        let charts = soak_charts(&r).unwrap();
        assert_eq!(charts.len(), 3);
        for (name, svg) in &charts {
            assert!(
                svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
                "{name}"
            );
            assert!(
                svg.contains("tokio-multi") && svg.contains("uring"),
                "{name}: legend"
            );
            assert!(
                svg.contains("<polyline") || svg.contains("<path"),
                "{name}: no line"
            );
        }
        let md = soak_markdown(&r);
        assert!(
            md.contains("| tokio-multi |") && md.contains("FAIL: RSS grew"),
            "{md}"
        );
        assert!(md.contains("compio was not soaked"));
        assert!(md.contains("soak-rss.svg"));
        // Minute buckets: a 4-minute run has rows for minutes 0..=4.
        assert!(md.contains("| 180 |"), "{md}");
        // The JSON round-trips.
        let back: SoakReport = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back.gateways.len(), 2);
        let dir = std::env::temp_dir().join(format!("soak-render-{}", std::process::id()));
        let files = write_soak(&r, &dir).unwrap();
        assert_eq!(files.len(), 5);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
