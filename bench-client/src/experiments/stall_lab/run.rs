//! Running the lab ([`stall_lab`]): every cause x gateway x configuration x repeat, each a
//! fresh gateway (and kafka-mock for the blocking cause) under the cause's load while a
//! sampler gathers the server-side [`Evidence`].

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::args::StallLabArgs;
use super::cause::Cause;
use super::evidence::Evidence;
use super::summary::{LabReport, LabRun};
use crate::engine::config::{Ack, BindRange, Mode, RunConfig};
use crate::engine::probes::procnet;
use crate::engine::result::RunResult;
use crate::experiments::shared::ExperimentArgs;
use crate::lab::{self, Gateway, GatewayKind, GatewaySpec, KafkaMock, Pinning};
use crate::reporting::progress::Overall;

/// The gateways the lab runs `cause` against, and those it skips with the reason.
pub fn plan(
    cause: Cause,
    gateways: &[GatewayKind],
) -> (Vec<GatewayKind>, Vec<(GatewayKind, &'static str)>) {
    let mut run = Vec::new();
    let mut skip = Vec::new();
    for &gw in gateways {
        match cause.skip_reason(gw) {
            Some(why) => skip.push((gw, why)),
            None => run.push(gw),
        }
    }
    (run, skip)
}

/// Runs the lab and writes `stall-lab.json`, `stall-lab.md` and one SVG per cause.
pub fn stall_lab(args: &StallLabArgs) -> anyhow::Result<LabReport> {
    let sh = &args.shared;
    // 1000 client connections in the backlog case: raise our own soft fd limit.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let bin_dir = sh.bin_dir()?;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pin = Pinning::parse(&args.pin, cpus).map_err(anyhow::Error::msg)?;
    pin.check_taskset(&args.pin)?;
    lab::pin_self(&pin.client)?;
    let gateways = &sh.gateways.0;
    let mut skipped = Vec::new();
    let mut pairs = 0;
    for &cause in &args.causes {
        let (run, skip) = plan(cause, gateways);
        pairs += run.len();
        for (gw, why) in skip {
            skipped.push((cause, gw.name().to_string(), why.to_string()));
        }
    }
    let total = pairs * 2 * args.repeats;
    if !sh.quiet {
        eprintln!(
            "stall-lab: {total} runs of {:?} each ({} cause x gateway pairs x 2 configurations x {} repeats), pinning: {}",
            args.duration,
            pairs,
            args.repeats,
            pin.description
        );
        for (cause, gw, why) in &skipped {
            eprintln!("stall-lab: {} skipped on {gw}: {why}", cause.name());
        }
    }
    let per_run = args.duration + Duration::from_secs(2);
    let mut overall = Overall::new("runs", total, Some(per_run * total as u32), sh.quiet, true);
    let mut port_base = 33_000u16;
    let mut runs = Vec::new();
    for &cause in &args.causes {
        let (cause_gateways, _) = plan(cause, gateways);
        for run in 1..=args.repeats {
            // Interleave gateways and configurations so drift hits all alike.
            for gw in &cause_gateways {
                for reproduction in [true, false] {
                    let ports = port_base;
                    port_base = port_base.wrapping_add(256);
                    let trial = Trial {
                        cause,
                        gw: *gw,
                        reproduction,
                        run,
                        duration: args.duration,
                        ports,
                    };
                    let r = one_run(&bin_dir, &pin, sh, trial);
                    overall.inc();
                    overall.line(&format!(
                        "{:<19} {:<15} {:<12} run {run}: {}",
                        cause.name(),
                        gw.name(),
                        if reproduction {
                            "reproduction"
                        } else {
                            "default"
                        },
                        match (&r.error, r.class) {
                            (Some(e), _) => format!("error: {e}"),
                            (None, Some(c)) => format!(
                                "{} stall(s), first at {:.0} ms, class {c}",
                                r.stalls,
                                r.first_stall_ms.unwrap_or(0.0)
                            ),
                            (None, None) => format!("no stall ({} ok)", r.ok),
                        }
                    ));
                    runs.push(r);
                }
            }
        }
    }
    overall.finish();
    Ok(LabReport {
        manifest: crate::engine::probes::manifest::Manifest::collect(),
        pinning: pin.description.clone(),
        duration_s: args.duration.as_secs_f64(),
        runs,
        skipped,
    })
}

/// One run of the lab: which cause, against which gateway, in which configuration.
#[derive(Debug, Clone, Copy)]
struct Trial {
    cause: Cause,
    gw: GatewayKind,
    /// The reproduction configuration, else the gateway's default.
    reproduction: bool,
    /// 1-based repeat.
    run: usize,
    duration: Duration,
    /// First of the source ports the time-wait cause binds the client to.
    ports: u16,
}

fn one_run(bin_dir: &Path, pin: &Pinning, sh: &ExperimentArgs, t: Trial) -> LabRun {
    let mut row = LabRun {
        cause: t.cause,
        gateway: t.gw.name().to_string(),
        config: if t.reproduction {
            "reproduction"
        } else {
            "default"
        }
        .to_string(),
        run: t.run,
        gateway_args: Vec::new(),
        stalls: 0,
        first_stall_ms: None,
        total_stall_ms: 0.0,
        class: None,
        ok: 0,
        errors: 0,
        evidence: Evidence::default(),
        per_second: Vec::new(),
        error: None,
        gateway_exit: None,
    };
    if let Err(e) = run_inner(bin_dir, pin, sh, t, &mut row) {
        row.error = Some(format!("{e:#}"));
    }
    row
}

/// The gateway in the trial's configuration under its load, the evidence sampled
/// alongside, the outcome written into `row`.
fn run_inner(
    bin_dir: &Path,
    pin: &Pinning,
    sh: &ExperimentArgs,
    t: Trial,
    row: &mut LabRun,
) -> anyhow::Result<()> {
    let (kafka, brokers, mut gw_args) = gateway_setup(bin_dir, pin, t)?;
    gw_args.extend(sh.producer_args());
    row.gateway_args = gw_args.clone();
    let mut gateway = Gateway::start(&GatewaySpec {
        brokers: Some(brokers),
        threads: Some(sh.gateway_threads.unwrap_or(2)),
        args: gw_args,
        cpus: pin.gateway.clone(),
        ..GatewaySpec::new(t.gw, bin_dir)?
    })?;
    let (cfg, range) = load_config(sh, pin, t, &gateway)?;
    if t.cause == Cause::UringCancelAccept {
        // A server idle between bursts: the careless loop drops an accept every 100 ms.
        std::thread::sleep(Duration::from_secs(1));
    }
    let (result, ev) = run_sampled(&gateway, t, cfg, range);
    row.evidence = ev;
    row.gateway_exit = gateway
        .terminate(Duration::from_secs(15))
        .ok()
        .and_then(|x| x.code);
    drop(kafka);
    fill_row(row, &result?);
    Ok(())
}

/// The gateway's arguments for the trial (and the kafka-mock the blocking cause needs,
/// with its bootstrap; the null-sink causes get an address never dialled).
fn gateway_setup(
    bin_dir: &Path,
    pin: &Pinning,
    t: Trial,
) -> anyhow::Result<(Option<KafkaMock>, String, Vec<String>)> {
    let (cause, reproduction) = (t.cause, t.reproduction);
    let mut kafka = None;
    // Null-sink cases need no Kafka; the address is never dialled.
    let mut brokers = "127.0.0.1:9".to_string();
    let mut gw_args: Vec<String> = vec!["--shutdown-timeout".into(), "3s".into()];
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    match cause {
        Cause::TimeWait => {
            // The cause is the client's: connection per request, closing first.
            gw_args.extend(s(&["--sink", "null"]));
        }
        Cause::Emfile => {
            gw_args.extend(s(&["--sink", "null"]));
            if reproduction {
                gw_args.extend(s(&["--fd-limit", "256", "--fault", "accept-exit-on-error"]));
            }
        }
        Cause::Blocking => {
            let mut k = KafkaMock::start(bin_dir, &["stall-lab"], true, &pin.client)?;
            for b in 1..=3 {
                k.control(&format!("rtt {b} 1000"))?;
            }
            brokers = k.bootstrap.clone();
            gw_args.extend(s(&["--ack", "enqueue"]));
            if reproduction {
                gw_args.extend(s(&["--fault", "blocking-produce"]));
            }
            kafka = Some(k);
        }
        Cause::Backlog => {
            gw_args.extend(s(&["--sink", "null"]));
            if reproduction {
                gw_args.extend(s(&["--backlog", "8"]));
            }
        }
        Cause::UringCancelAccept | Cause::UringTinyRing | Cause::UringSqFull => {
            gw_args.extend(s(&["--sink", "null"]));
            if reproduction {
                let fault = match cause {
                    Cause::UringCancelAccept => "uring-cancel-accept",
                    Cause::UringTinyRing => "uring-tiny-ring",
                    _ => "uring-sq-full",
                };
                gw_args.extend(s(&["--fault", fault]));
            }
        }
    }
    Ok((kafka, brokers, gw_args))
}

/// The client's load for the trial against `gateway`, and the source-port range it is
/// bound to (the time-wait cause only).
fn load_config(
    sh: &ExperimentArgs,
    pin: &Pinning,
    t: Trial,
    gateway: &Gateway,
) -> anyhow::Result<(RunConfig, Option<(u16, u16)>)> {
    let (cause, reproduction, ports) = (t.cause, t.reproduction, t.ports);
    let addr = gateway.addr;
    let mut cfg = RunConfig::new(&format!("http://{addr}"))?;
    cfg.duration_s = Some(t.duration.as_secs_f64());
    cfg.warmup_s = 0.0;
    cfg.progress = false;
    cfg.threads = sh.client_threads.unwrap_or(pin.client.len()).max(1);
    cfg.timeout_s = 10.0;
    cfg.topic = "stall-lab".into();
    cfg.ack = Ack::None;
    let mut range = None;
    match cause {
        Cause::TimeWait => {
            let r = BindRange {
                ip: "127.0.0.1".parse().unwrap(),
                low: ports,
                high: ports + 199,
            };
            cfg.bind_range = Some(r);
            range = Some((ports, ports + 199));
            cfg.connections = 32;
            cfg.mode = if reproduction {
                Mode::HttpClose
            } else {
                Mode::Http
            };
        }
        Cause::Emfile => {
            cfg.connections = 400;
            cfg.mode = Mode::Http;
        }
        Cause::Blocking => {
            // Two connections, answered during the warmup: what follows is the blocked I/O
            // thread (about one answer per broker round trip), not the start.
            cfg.connections = 2;
            cfg.mode = Mode::Http;
            cfg.ack = Ack::Enqueue;
            cfg.warmup_s = 3.0;
        }
        Cause::Backlog => {
            // 1000, not more: the burst must be the server's problem, not the client's.
            // 2000 connects take this one-core client ~400 ms to open on its own (the
            // same against every gateway, backlog 4096 or not), and in about 1 default
            // run of 35 that start-up crossed the 500 ms stall window. 1000 open within
            // ~200 ms, while `--backlog 8` still overflows by hundreds.
            cfg.connections = 1000;
            cfg.mode = Mode::Http;
        }
        Cause::UringCancelAccept => {
            cfg.connections = 400;
            cfg.mode = Mode::Http;
        }
        Cause::UringTinyRing | Cause::UringSqFull => {
            // The backlog cause's burst (1000 opens within ~200 ms on this client).
            cfg.connections = 1000;
            cfg.mode = Mode::Http;
        }
    }
    Ok((cfg, range))
}

/// Runs the load while a sampler thread reads the gateway's fds and the client's
/// TIME_WAIT sockets; the evidence gathered before, during and after it.
fn run_sampled(
    gateway: &Gateway,
    t: Trial,
    cfg: RunConfig,
    range: Option<(u16, u16)>,
) -> (anyhow::Result<RunResult>, Evidence) {
    let (gw, cause, reproduction) = (t.gw, t.cause, t.reproduction);
    let pid = gateway.pid();
    let fds_before = lab::proc_fds(pid);
    let uring = (gw == GatewayKind::Uring).then(|| {
        use crate::engine::probes::cost::TracepointCounter as T;
        (
            T::open(pid, "io_uring", "io_uring_cqe_overflow"),
            T::open(pid, "syscalls", "sys_enter_io_uring_enter"),
            T::open(pid, "io_uring", "io_uring_submit_req"),
        )
    });

    let before = procnet::listen_overflows();
    let stop = Arc::new(AtomicBool::new(false));
    let evidence = Arc::new(Mutex::new(Evidence::default()));
    let sampler = {
        let (stop, evidence) = (stop.clone(), evidence.clone());
        let pid = gateway.pid();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let fds = lab::proc_fds(pid).unwrap_or(0);
                let tw = range.map_or(0, |(lo, hi)| procnet::time_wait_in_range(lo, hi));
                {
                    let mut e = evidence.lock().unwrap();
                    e.max_gateway_fds = e.max_gateway_fds.max(fds);
                    e.max_client_time_wait = e.max_client_time_wait.max(tw);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let result = crate::engine::run_blocking(cfg);
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let after = procnet::listen_overflows();
    let mut ev = evidence.lock().unwrap().clone();
    ev.listen_overflows = after.0.saturating_sub(before.0);
    ev.listen_drops = after.1.saturating_sub(before.1);
    if let Some((overflows, enters, sqes)) = &uring {
        ev.uring_cq_overflows = overflows.as_ref().map(|c| c.total());
        ev.uring_enters = enters.as_ref().map(|c| c.total());
        ev.uring_sqes = sqes.as_ref().map(|c| c.total());
    }
    ev.gateway_fds_left = fds_before.and_then(|b| Some(fds_settled(pid)?.saturating_sub(b)));
    // A careless gateway-uring keeps arming accepts that swallow new connections: a
    // /metrics request would only wait out its timeout there.
    ev.accept_errors_emfile = if cause == Cause::UringCancelAccept && reproduction {
        None
    } else {
        gateway
            .metrics()
            .ok()
            .and_then(|m| {
                m.get("gateway_accept_errors_total{errno=\"EMFILE\"}")
                    .copied()
            })
            .map(|v| v as u64)
    };
    (result, ev)
}

/// The run's stalls, completions and errors into `row`.
fn fill_row(row: &mut LabRun, r: &RunResult) {
    row.stalls = r.stalls.len();
    row.first_stall_ms = r.stalls.first().map(|s| s.start_ms);
    row.total_stall_ms = r.stalls.iter().map(|s| s.length_ms).sum();
    row.class = r
        .stalls
        .iter()
        .max_by(|a, b| a.length_ms.total_cmp(&b.length_ms))
        .map(|s| s.class);
    // The run itself sampled the listener's accept queue (the gateway listens here).
    row.evidence.max_accept_queue = r.server_accept_queue.unwrap_or(0);
    row.ok = r.totals.ok;
    row.errors = r.errors.iter().map(|e| e.count).sum();
    row.per_second = r.timeline.iter().map(|s| s.completed).collect();
}

/// The gateway's fd count once it stopped falling after the client closed its
/// connections (at most 2 s).
fn fds_settled(pid: u32) -> Option<u64> {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    let mut last = lab::proc_fds(pid)?;
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let now = lab::proc_fds(pid)?;
        if now >= last || std::time::Instant::now() >= deadline {
            return Some(now.min(last));
        }
        last = now;
    }
}
