//! `run`: spawn the connection tasks and the monitor, wait for the end (duration or
//! request count), abort everything, merge the per-thread recorders into a [`RunResult`].
//!
//! Entry points: [`run`], [`run_blocking`]. Part of the [engine](crate::engine): must not
//! depend on anything outside it.

use std::io::IsTerminal as _;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinSet;
use tokio::time::sleep_until;

use crate::engine::config::{Mode, RunConfig};
use crate::engine::cost;
use crate::engine::manifest::process_cpu_ns;
use crate::engine::procnet::ServerProbe;
use crate::engine::recorder::Shared;
use crate::engine::result::{build_result, Costs, RunResult};
use crate::engine::timeline::BUCKET_NS;
use crate::engine::{http, ws};

/// Run one scenario on the current tokio runtime (its worker count is the caller's
/// business; [`run_blocking`] builds one with `cfg.threads` workers).
pub async fn run(cfg: RunConfig) -> anyhow::Result<RunResult> {
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
    let sh = Arc::new(Shared::new(cfg.clone(), addr, run_id));
    let t_start_unix_ns = unix_now_ns();
    if let Some(d) = cfg.duration_s {
        // Known in advance: events after the end are never measured, even before the
        // tasks are aborted.
        let end = sh.measure_start_ns + align(Duration::from_secs_f64(d)).as_nanos() as u64;
        sh.end_ns.store(end, Relaxed);
    }

    let progress = (cfg.progress && std::io::stderr().is_terminal()).then(|| {
        let pb = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        pb.set_style(
            ProgressStyle::with_template("{spinner} {msg}").expect("static template is valid"),
        );
        pb
    });

    let pacer = sh.open_loop().then(|| {
        let sh = sh.clone();
        std::thread::Builder::new()
            .name("bench-pacer".into())
            .spawn(move || sh.pacer())
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
    tasks.spawn(monitor(sh.clone(), progress.clone()));
    if sh.open_loop() {
        let sh = sh.clone();
        tasks.spawn(async move { sh.pacer_relay().await });
    }
    for i in 0..cfg.connections as u64 {
        let sh = sh.clone();
        match cfg.mode {
            Mode::Http => tasks.spawn(http::keepalive_task(sh, i)),
            Mode::HttpClose => tasks.spawn(http::close_task(sh, i)),
            Mode::Ws => tasks.spawn(ws::ws_task(sh, i)),
        };
    }

    let warm_end = sh.t_start + cfg.warmup();
    sleep_until(warm_end.into()).await;
    // The cost of the measured phase only: target, broker and CPUs from here to the end.
    let probes = Probes::start(&cfg);
    let end = match (cfg.duration_s, cfg.requests) {
        (Some(d), _) => {
            let end = warm_end + align(Duration::from_secs_f64(d));
            sleep_until(end.into()).await;
            end
        }
        (None, Some(_)) => {
            // Every sequence number below the limit gets exactly one outcome.
            loop {
                let limit = sh.limit.load(Relaxed);
                if limit != u64::MAX
                    && sh.claimed() >= limit
                    && sh.live.resolved.load(Relaxed) >= limit
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let now = sh.ns(Instant::now());
            sh.t_start + Duration::from_nanos(now.div_ceil(BUCKET_NS) * BUCKET_NS)
        }
        (None, None) => unreachable!("RunConfig always has a duration or a request count"),
    };
    let costs = probes.finish();
    sh.end_ns.store(sh.ns(end), Relaxed);
    sh.stop.store(true, Relaxed);
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    if let Some(p) = pacer {
        let _ = p.join();
    }
    if let Some(p) = prober {
        let _ = p.join();
    }
    if let Some(pb) = progress {
        pb.finish_and_clear();
    }
    sh.censor_at_end();
    let recorders = sh.registry.drain();
    let mut r = build_result(&sh, recorders, started_at_unix_ms, costs);
    r.measured_start_unix_ms = (t_start_unix_ns + sh.measure_start_ns) as f64 / 1e6;
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
        Costs {
            target: self.target.and_then(cost::Probe::finish),
            broker: self.broker.and_then(cost::Probe::finish),
            cpu_busy: self.cpus.finish(),
        }
    }
}

/// [`run`] on a fresh multi-thread runtime with `cfg.threads` workers.
pub fn run_blocking(cfg: RunConfig) -> anyhow::Result<RunResult> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cfg.threads.max(1))
        .enable_all()
        .build()?;
    rt.block_on(run(cfg))
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
        sh.on_accept_queue(Instant::now(), q);
        std::thread::sleep(tick);
    }
}

/// Samples the client itself every 10 ms: timer lateness of the runtime (client
/// saturation shows up here first) and process CPU; drives the progress line.
async fn monitor(sh: Arc<Shared>, progress: Option<ProgressBar>) {
    let tick = Duration::from_millis(10);
    let mut next = Instant::now() + tick;
    let mut last_cpu = process_cpu_ns();
    let mut last_draw = Instant::now();
    let mut last_ok = 0u64;
    loop {
        sleep_until(next.into()).await;
        let now = Instant::now();
        sh.on_runtime_lag(now, now.saturating_duration_since(next));
        let cpu = process_cpu_ns();
        sh.on_cpu(now, cpu.saturating_sub(last_cpu));
        last_cpu = cpu;
        next = now + tick;
        if let Some(pb) = &progress {
            if now - last_draw >= Duration::from_millis(250) {
                let l = &sh.live;
                let ok = l.ok.load(Relaxed);
                let rate = (ok - last_ok) as f64 / (now - last_draw).as_secs_f64();
                let t = sh.ns(now) as f64 / 1e9 - sh.cfg.warmup_s;
                let phase = if t < 0.0 { "warmup" } else { "run" };
                pb.set_message(format!(
                    "{phase} {t:>6.1}s | ok {ok} ({rate:.0}/s) | backpressure {} | errors {} | open {} | in flight {}",
                    l.backpressure.load(Relaxed),
                    l.errors.load(Relaxed),
                    l.open.load(Relaxed),
                    l.sent.load(Relaxed).saturating_sub(l.resolved.load(Relaxed)),
                ));
                pb.tick();
                last_draw = now;
                last_ok = ok;
            }
        }
    }
}
