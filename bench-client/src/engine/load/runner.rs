//! `run`: spawn the connection tasks, the pacer and the client sampler (which ticks the
//! live [monitor](crate::engine::monitor)), wait for the end (duration, request
//! count, or a stop request such as SIGINT), abort everything, merge the per-thread
//! recorders into a [`RunResult`].
//!
//! Entry points: [`run`], [`run_blocking`] and their `_until` forms that take a stop
//! flag. Part of the [engine](crate::engine): must not depend on anything outside it.

use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use tokio::task::JoinSet;
use tokio::time::sleep_until;

use crate::engine::analysis::timeline::BUCKET_NS;
use crate::engine::build::{build_result, Costs};
use crate::engine::config::{Mode, RunConfig};
use crate::engine::load::shared::Shared;
use crate::engine::load::tls::Tls;
use crate::engine::load::{http, ws};
use crate::engine::monitor::{Monitor, Progress};
use crate::engine::probes::cost;
use crate::engine::probes::manifest::process_cpu_ns;
use crate::engine::probes::procnet::ServerProbe;
use crate::engine::result::RunResult;

/// Run one scenario on the current tokio runtime (its worker count is the caller's
/// business; [`run_blocking`] builds one with `cfg.threads` workers).
pub async fn run(cfg: RunConfig) -> anyhow::Result<RunResult> {
    run_until(cfg, None).await
}

/// [`run`], ended early when `stop` becomes true (the binary sets it on SIGINT/SIGTERM):
/// the result then covers the part that ran and says `interrupted`.
pub async fn run_until(cfg: RunConfig, stop: Option<Arc<AtomicBool>>) -> anyhow::Result<RunResult> {
    // Before anything starts: a bad `--ca` is an error of the scenario, not of the run.
    let tls = cfg.tls.as_ref().map(Tls::new).transpose()?;
    let addr = tokio::net::lookup_host(&cfg.authority)
        .await
        .with_context(|| format!("resolving {}", cfg.authority))?
        .next()
        .with_context(|| format!("{} resolves to no address", cfg.authority))?;
    let mut cfg = cfg;
    // Bucket-aligned warmup: the per-second series and the histograms then cover exactly
    // the same events.
    cfg.warmup_s = align(cfg.warmup()).as_secs_f64();
    if let Some(at) = cfg.start_at_unix_ms {
        cfg.warmup_s = wait_for_start(at, cfg.warmup()).await?.as_secs_f64();
    }
    let run_id = match (cfg.shard, cfg.start_at_unix_ms) {
        // Every shard of one run gets the same id prefix (its seqs are interleaved).
        (Some(_), Some(at)) => shared_run_id(at),
        _ => new_run_id(),
    };
    let started_at_unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut sh = Shared::new(cfg.clone(), addr, run_id);
    sh.tls = tls;
    let sh = Arc::new(sh);
    let t_start_unix_ns = unix_now_ns();
    if let Some(d) = cfg.duration_s {
        // Known in advance: events after the end are never measured, even before the
        // tasks are aborted.
        let end = sh.rec.measure_start_ns + align(Duration::from_secs_f64(d)).as_nanos() as u64;
        sh.rec.end_ns.store(end, Relaxed);
    }

    let progress = Progress::new(&cfg);
    let pacer = sh.open_loop().then(|| {
        let sh = sh.clone();
        std::thread::Builder::new()
            .name("bench-pacer".into())
            .spawn(move || sh.pacer.run(&sh.stop))
    });
    let pacer = pacer.transpose().context("starting the pacer thread")?;
    let probe = match cfg.server_probe {
        true => ServerProbe::for_target(addr),
        false => None,
    };
    let prober = probe.map(|p| {
        let sh = sh.clone();
        std::thread::Builder::new()
            .name("bench-probe".into())
            .spawn(move || probe_server(&sh, p))
    });
    let prober = prober
        .transpose()
        .context("starting the server probe thread")?;

    let mut tasks = JoinSet::new();
    tasks.spawn(sample_client(
        sh.clone(),
        Monitor::new(&cfg, progress.clone()),
    ));
    let stop = stop.as_deref();
    if sh.open_loop() {
        let sh = sh.clone();
        tasks.spawn(async move { sh.pacer.relay(&sh.stop).await });
    }
    for i in 0..cfg.connections as u64 {
        let sh = sh.clone();
        match cfg.mode {
            Mode::Http => tasks.spawn(http::keepalive_task(sh, i)),
            Mode::HttpClose => tasks.spawn(http::close_task(sh, i)),
            Mode::Ws => tasks.spawn(ws::ws_task(sh, i)),
        };
    }

    let warm_end = sh.rec.t_start + cfg.warmup();
    let mut interrupted = wait_or_stop(warm_end, stop).await;
    // The cost of the measured phase only: target, broker and CPUs from here to the end.
    let probes = Probes::start(&cfg);
    let end = match (cfg.duration_s, cfg.requests) {
        _ if interrupted => warm_end,
        (Some(d), _) => {
            let end = warm_end + align(Duration::from_secs_f64(d));
            interrupted = wait_or_stop(end, stop).await;
            if interrupted {
                aligned_now(&sh).min(end)
            } else {
                end
            }
        }
        (None, Some(_)) => {
            // Every sequence number below the limit gets exactly one outcome.
            loop {
                let limit = sh.limit.load(Relaxed);
                if limit != u64::MAX
                    && sh.claimed() >= limit
                    && sh.rec.live.resolved.load(Relaxed) >= limit
                {
                    break;
                }
                if stop.is_some_and(|s| s.load(Relaxed)) {
                    interrupted = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            aligned_now(&sh)
        }
        (None, None) => unreachable!("RunConfig always has a duration or a request count"),
    };
    let costs = probes.finish();
    sh.rec.end_ns.store(sh.ns(end), Relaxed);
    sh.stop.store(true, Relaxed);
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    if let Some(p) = pacer {
        let _ = p.join();
    }
    if let Some(p) = prober {
        let _ = p.join();
    }
    progress.finish();
    if interrupted && cfg.progress {
        eprintln!(
            "bench-client: interrupted; writing what was measured (a second signal exits at once)"
        );
    }
    sh.censor_at_end();
    let recorders = sh.rec.registry.drain();
    let mut r = build_result(&sh, recorders, started_at_unix_ms, costs);
    r.measured_start_unix_ms = (t_start_unix_ns + sh.rec.measure_start_ns) as f64 / 1e6;
    r.interrupted = interrupted;
    Ok(r)
}

fn unix_now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// `--start-at`: sleep until the warmup must begin so that the measured phase starts at
/// `at_ms`; returns the warmup to use (shortened, bucket-aligned, when the start is
/// closer than `warmup`). A start already past is an error.
async fn wait_for_start(at_ms: u64, warmup: Duration) -> anyhow::Result<Duration> {
    let now = unix_now_ns();
    let at = at_ms.saturating_mul(1_000_000);
    if now >= at {
        anyhow::bail!(
            "--start-at {at_ms} is already {:.3} s in the past (warmup {:.3} s): give every shard a start far enough ahead to launch them all",
            (now - at) as f64 / 1e9,
            warmup.as_secs_f64()
        );
    }
    let left = at - now;
    let warm = warmup.as_nanos() as u64;
    let warm = if left > warm {
        warm
    } else {
        let w = left / BUCKET_NS * BUCKET_NS;
        tracing::warn!(
            "--start-at is {:.3} s away: warmup shortened from {:.3} s to {:.3} s",
            left as f64 / 1e9,
            warm as f64 / 1e9,
            w as f64 / 1e9
        );
        w
    };
    // Sleep on the wall clock: re-read it after a coarse sleep for the last milliseconds.
    let coarse = Duration::from_nanos((left - warm).saturating_sub(2_000_000));
    tokio::time::sleep(coarse).await;
    let begin = at - warm;
    loop {
        let now = unix_now_ns();
        if now >= begin {
            break;
        }
        std::thread::sleep(Duration::from_nanos((begin - now).min(200_000)));
    }
    Ok(Duration::from_nanos(warm))
}

/// The run id every shard of one `--start-at` derives alike (10 hex digits).
fn shared_run_id(at_ms: u64) -> String {
    // splitmix64 of the start instant: runs started at different instants differ.
    let mut z = at_ms.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    format!("{:010x}", z & 0xff_ffff_ffff)
}

/// Sleep until `until`, or until `stop` is set (checked every 20 ms): `true` if stopped.
async fn wait_or_stop(until: Instant, stop: Option<&AtomicBool>) -> bool {
    let Some(stop) = stop else {
        sleep_until(until.into()).await;
        return false;
    };
    loop {
        if stop.load(Relaxed) {
            return true;
        }
        let now = Instant::now();
        if now >= until {
            return false;
        }
        sleep_until(until.min(now + Duration::from_millis(20)).into()).await;
    }
}

/// Now, rounded up to the next timeline bucket.
fn aligned_now(sh: &Shared) -> Instant {
    let now = sh.ns(Instant::now());
    sh.rec.t_start + Duration::from_nanos(now.div_ceil(BUCKET_NS) * BUCKET_NS)
}

/// The measured-phase probes of the processes a run was told about.
struct Probes {
    target: Option<cost::Probe>,
    broker: Option<cost::Probe>,
    cpus: cost::CpuProbe,
}

impl Probes {
    fn start(cfg: &RunConfig) -> Probes {
        Probes {
            target: cfg
                .target_pid
                .and_then(|p| cost::Probe::start(p, cfg.count_syscalls)),
            broker: cfg.broker_pid.and_then(|p| cost::Probe::start(p, false)),
            cpus: cost::CpuProbe::start(),
        }
    }

    fn finish(self) -> Costs {
        let cpus = self.cpus.finish();
        Costs {
            target: self.target.and_then(cost::Probe::finish),
            broker: self.broker.and_then(cost::Probe::finish),
            cpu_busy: cpus.busy,
            cpu_steal: cpus.steal,
        }
    }
}

/// [`run`] on a fresh multi-thread runtime with `cfg.threads` workers.
pub fn run_blocking(cfg: RunConfig) -> anyhow::Result<RunResult> {
    run_blocking_until(cfg, None)
}

/// [`run_until`] on a fresh multi-thread runtime with `cfg.threads` workers.
pub fn run_blocking_until(
    cfg: RunConfig,
    stop: Option<Arc<AtomicBool>>,
) -> anyhow::Result<RunResult> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cfg.threads.max(1))
        .enable_all()
        .build()?;
    rt.block_on(run_until(cfg, stop))
}

fn align(d: Duration) -> Duration {
    Duration::from_nanos((d.as_nanos() as u64).div_ceil(BUCKET_NS) * BUCKET_NS)
}

/// Short, unique enough to tell runs apart in a shared topic.
fn new_run_id() -> String {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let x = t ^ (u64::from(std::process::id()) << 40) ^ fastrand::u64(..);
    format!("{:010x}", x & 0xff_ffff_ffff)
}

/// Samples the accept queue of the target's listeners every 50 ms until the run stops
/// (a std thread: reading /proc must not hold up the client's runtime). It is what tells
/// a connection the process never accepted from one it accepted and never served.
fn probe_server(sh: &Shared, probe: ServerProbe) {
    let tick = Duration::from_millis(50);
    while !sh.stop.load(Relaxed) {
        let q = probe.accept_queue();
        sh.rec.on_accept_queue(Instant::now(), q);
        std::thread::sleep(tick);
    }
}

/// Samples the client itself every 10 ms: timer lateness of the runtime (client
/// saturation shows up here first) and process CPU; ticks the live display.
async fn sample_client(sh: Arc<Shared>, mut monitor: Monitor) {
    let tick = Duration::from_millis(10);
    let mut next = Instant::now() + tick;
    let mut last_cpu = process_cpu_ns();
    loop {
        sleep_until(next.into()).await;
        let now = Instant::now();
        sh.rec
            .on_runtime_lag(now, now.saturating_duration_since(next));
        let cpu = process_cpu_ns();
        sh.rec.on_cpu(now, cpu.saturating_sub(last_cpu));
        last_cpu = cpu;
        next = now + tick;
        monitor.tick(now, sh.ns(now) as f64 / 1e9, &sh.rec.live);
    }
}
