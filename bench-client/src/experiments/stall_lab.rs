//! `bench-client stall-lab`: reproduce, classify and fix the tokio-uring accept stall of
//! the seed report ("stops accepting new TCP connections", "no ephemeral ports assigned").
//!
//! Each plausible cause is run against each gateway twice over: once in a *reproduction*
//! configuration (a gateway `--fault` flag, a low limit, or the naive client), once in the
//! gateway's *default* configuration under the same load. Every run records what
//! bench-client saw (stalls and their class) next to server-side evidence sampled from
//! /proc while it ran: the listener's accept-queue length, listen overflows and drops, the
//! gateway's open fds, and the client's sockets in TIME_WAIT. No root sysctl is touched:
//! the port-exhaustion case binds the client to a small source-port range instead.
//!
//! Entry points: [`StallLab`] (the [`Experiment`]), [`stall_lab`], [`rerender`]. Depends on the engine, the lab and the
//! reporting; no other module depends on it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use crate::engine::analysis::timeline::StallClass;
use crate::engine::config::{Ack, BindRange, Mode, RunConfig};
use crate::engine::probes::procnet;
use crate::experiments::shared::{Experiment, ExperimentArgs};
use crate::lab::{self, Gateway, GatewayKind, GatewaySpec, KafkaMock, Pinning};
use crate::reporting::charts::line_chart;
use crate::reporting::progress::Overall;

/// The causes the lab reproduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cause {
    /// Connection per request, client closes first: its ports pile up in TIME_WAIT.
    TimeWait,
    /// The accept loop dies on EMFILE (`?` on accept) with a low fd limit.
    Emfile,
    /// A blocking producer call on the I/O thread (flush per record, slow broker).
    Blocking,
    /// Listen-backlog overflow under a connect burst with a small backlog.
    Backlog,
    /// io_uring only: the accept loop drops in-flight accepts (`--fault uring-cancel-accept`).
    UringCancelAccept,
    /// io_uring only: completion-queue overflow with a tiny ring (`--fault uring-tiny-ring`).
    UringTinyRing,
    /// io_uring only: a full submission queue in a connect burst (`--fault uring-sq-full`).
    UringSqFull,
}

/// What the reproduction of a cause must show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expectation {
    /// It stalls, and bench-client gives the longest stall this class.
    Stall(StallClass),
    /// It does not stall, and the server-side evidence shows the mechanism was exercised
    /// (see [`Cause::exercised`]): what the measured runs showed for a cause the runtime
    /// absorbs.
    NoStall,
}

impl Cause {
    pub const ALL: [Cause; 7] = [
        Cause::TimeWait,
        Cause::Emfile,
        Cause::Blocking,
        Cause::Backlog,
        Cause::UringCancelAccept,
        Cause::UringTinyRing,
        Cause::UringSqFull,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Cause::TimeWait => "time-wait",
            Cause::Emfile => "emfile",
            Cause::Blocking => "blocking",
            Cause::Backlog => "backlog",
            Cause::UringCancelAccept => "uring-cancel-accept",
            Cause::UringTinyRing => "uring-tiny-ring",
            Cause::UringSqFull => "uring-sq-full",
        }
    }

    /// The cause named `s` (as `--causes` spells it).
    pub fn parse(s: &str) -> Option<Cause> {
        Cause::ALL.into_iter().find(|c| c.name() == s.trim())
    }

    /// What the reproduction must show (decided from the measured runs, see the README).
    pub fn expectation(self) -> Expectation {
        match self {
            Cause::TimeWait => Expectation::Stall(StallClass::ClientExhaustion),
            // A dropped tokio-uring accept: the stall begins while the burst's connects are
            // pending and lasts for the connections the process never took (io_uring took
            // them off the accept queue for a completion the driver discards): *accept*,
            // what the measured runs showed. The server-side tell is `gateway_fds_left`.
            Cause::Emfile | Cause::Backlog | Cause::UringCancelAccept => {
                Expectation::Stall(StallClass::Accept)
            }
            Cause::Blocking => Expectation::Stall(StallClass::Service),
            // The kernel keeps overflowing completions (IORING_FEAT_NODROP) and tokio-uring
            // submits whenever the submission queue is full: slower, never stuck.
            Cause::UringTinyRing | Cause::UringSqFull => Expectation::NoStall,
        }
    }

    /// The class bench-client must give the reproduction's stalls; `None` when the
    /// reproduction is expected not to stall.
    pub fn expected_class(self) -> Option<StallClass> {
        match self.expectation() {
            Expectation::Stall(c) => Some(c),
            Expectation::NoStall => None,
        }
    }

    /// The gateway fault this cause reproduces only on tokio-uring; `None` for causes every
    /// gateway reproduces.
    pub fn uring_only(self) -> bool {
        matches!(
            self,
            Cause::UringCancelAccept | Cause::UringTinyRing | Cause::UringSqFull
        )
    }

    /// Whether the lab runs this cause against `gw`; if not, why (for the report).
    pub fn skip_reason(self, gw: GatewayKind) -> Option<&'static str> {
        (self.uring_only() && gw != GatewayKind::Uring).then_some(
            "an io_uring (tokio-uring) fault: the other gateways refuse it at start, and their \
             default configuration is the same as in the other causes",
        )
    }

    /// For a cause expected not to stall: whether the reproduction's evidence shows the
    /// mechanism really happened (else "no stall" would prove nothing). Always true for
    /// the causes that must stall.
    pub fn exercised(self, e: &Evidence) -> bool {
        match self {
            // Completions went to the kernel's overflow list.
            Cause::UringTinyRing => e.uring_cq_overflows.is_some_and(|n| n > 0),
            // Every io_uring_enter submitted at most what the tiny queue holds.
            Cause::UringSqFull => e
                .sqes_per_enter()
                .is_some_and(|x| x <= URING_TINY_SQ as f64),
            _ => true,
        }
    }

    fn description(self) -> &'static str {
        match self {
            Cause::TimeWait => "the naive client: a new connection per request, closed by the client first (so TIME_WAIT lands on the client, for 60 s), bound to 200 source ports (a stand-in for the whole ephemeral range, without root sysctls). Default: the same client with keep-alive connections (what every gateway offers by default).",
            Cause::Emfile => "400 keep-alive connections against `--fd-limit 256 --fault accept-exit-on-error` (the accept loop `?`s out on EMFILE). Default: fd limit raised to the hard limit, accept loop that backs off.",
            Cause::Blocking => "ack=enqueue load while every broker has 1 s RTT; `--fault blocking-produce` flushes the producer on the I/O thread for every record. Default: the I/O thread only calls the non-blocking send.",
            Cause::Backlog => "a burst of 1000 connects against `--backlog 8`: SYNs are dropped and retransmitted after 1 s. Default: backlog 4096.",
            Cause::UringCancelAccept => "gateway-uring only. The gateway idles 1 s, then 400 keep-alive connections arrive; `--fault uring-cancel-accept` races every accept against a 100 ms timer and drops the loser (a careless shutdown check). tokio-uring 0.5 does not cancel a dropped accept: the SQE stays armed, the kernel accepts the next connection into it and the driver discards the completion, so that connection is never served and its fd is never closed. Default: accepts are never dropped (shutdown(2) on the listener ends them).",
            Cause::UringTinyRing => "gateway-uring only. A burst of 1000 keep-alive connections against `--fault uring-tiny-ring`: a 2-entry submission and 4-entry completion queue, fewer completion slots than the 16 accepts kept in flight alone, so the completion queue overflows. Default: 4096/8192 entries.",
            Cause::UringSqFull => "gateway-uring only. A burst of 1000 keep-alive connections against `--fault uring-sq-full`: a 2-entry submission queue (completion queue kept at 8192), so every turn of the ring has more submissions than the queue holds. Default: 4096 submission entries.",
        }
    }
}

/// The submission queue of the `uring-tiny-ring` and `uring-sq-full` reproductions
/// (gateway-uring's `TINY_SQ_ENTRIES`).
const URING_TINY_SQ: u32 = 2;

#[derive(clap::Args, Debug, Clone)]
pub struct StallLabArgs {
    #[command(flatten)]
    pub shared: ExperimentArgs,
    /// Causes to reproduce (the `uring-*` causes run against gateway-uring only).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "time-wait,emfile,blocking,backlog,uring-cancel-accept,uring-tiny-ring,uring-sq-full"
    )]
    pub causes: Vec<Cause>,
    /// Runs of each cause x gateway x configuration.
    #[arg(long, alias = "runs", default_value_t = 3)]
    pub repeats: usize,
    /// Length of each run's measured phase.
    #[arg(long, default_value = "4s", value_parser = crate::engine::config::parse_duration)]
    pub duration: Duration,
    /// CPU pinning: `auto` (on 2 cores: gateway on CPU 1, client and kafka-mock on CPU 0),
    /// `none`, or explicit `GATEWAY/CLIENT` CPU lists such as `1/0`.
    #[arg(long, default_value = "auto")]
    pub pin: String,
    /// Exit non-zero unless every reproduction showed what its cause expects (a stall of
    /// the expected class, or for a cause the runtime absorbs no stall with the mechanism
    /// exercised) and every default run had no stall.
    #[arg(long)]
    pub check: bool,
}

/// Server-side evidence sampled while a run went on.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Evidence {
    /// Most connections waiting in the listener's accept queue (/proc/net/tcp rx_queue).
    pub max_accept_queue: u64,
    /// TcpExt ListenOverflows / ListenDrops during the run (host-wide counters).
    pub listen_overflows: u64,
    pub listen_drops: u64,
    /// Most fds the gateway held.
    pub max_gateway_fds: u64,
    /// Most client sockets in TIME_WAIT on the bound source-port range.
    pub max_client_time_wait: u64,
    /// The gateway's own accept-error counters at the end (from /metrics, if reachable).
    pub accept_errors_emfile: Option<u64>,
    /// Gateway fds still open once the client closed every connection, minus those open
    /// before the load: connections the process took and never served nor closed.
    pub gateway_fds_left: Option<u64>,
    /// io_uring runs (gateway-uring): tracepoint counts on the gateway's threads over the
    /// run (`None`: not measured). Completions that found the completion queue full
    /// (`io_uring:io_uring_cqe_overflow`)...
    pub uring_cq_overflows: Option<u64>,
    /// ... `io_uring_enter` calls (`syscalls:sys_enter_io_uring_enter`) ...
    pub uring_enters: Option<u64>,
    /// ... and SQEs submitted (`io_uring:io_uring_submit_req`).
    pub uring_sqes: Option<u64>,
}

impl Evidence {
    /// SQEs submitted per `io_uring_enter` call, where both were measured.
    pub fn sqes_per_enter(&self) -> Option<f64> {
        match (self.uring_sqes, self.uring_enters) {
            (Some(s), Some(e)) if e > 0 => Some(s as f64 / e as f64),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabRun {
    pub cause: Cause,
    pub gateway: String,
    /// `reproduction` or `default`.
    pub config: String,
    pub run: usize,
    pub gateway_args: Vec<String>,
    pub stalls: usize,
    pub first_stall_ms: Option<f64>,
    pub total_stall_ms: f64,
    /// Class of the longest stall.
    pub class: Option<StallClass>,
    pub ok: u64,
    pub errors: u64,
    pub evidence: Evidence,
    /// Completions per second (for the timeline chart).
    pub per_second: Vec<u64>,
    /// Why the run produced no result, if it failed.
    pub error: Option<String>,
    pub gateway_exit: Option<i32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabReport {
    pub manifest: crate::engine::probes::manifest::Manifest,
    pub pinning: String,
    pub duration_s: f64,
    pub runs: Vec<LabRun>,
    /// (cause, gateway, why) for the combinations the lab did not run.
    #[serde(default)]
    pub skipped: Vec<(Cause, String, String)>,
}

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
                    let r = one_run(
                        &bin_dir,
                        &pin,
                        sh,
                        cause,
                        *gw,
                        reproduction,
                        run,
                        args.duration,
                        ports,
                    );
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

/// The stall lab in the shared shape: run → [`LabReport`] → `stall-lab.json`,
/// `stall-lab.md` and a chart per cause → with `--check`, exit status 1 unless
/// [`expectations_met`].
pub struct StallLab;

impl Experiment for StallLab {
    type Args = StallLabArgs;
    type Summary = LabReport;

    fn shared(a: &StallLabArgs) -> &ExperimentArgs {
        &a.shared
    }
    fn default_out(_: &StallLabArgs) -> PathBuf {
        lab::default_out_dir("stall-lab")
    }
    fn run(a: &StallLabArgs, _dir: &Path) -> anyhow::Result<LabReport> {
        stall_lab(a)
    }
    fn render(r: &LabReport, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        write_report(r, dir)?;
        eprintln!("stall-lab: report in {}", dir.display());
        Ok(vec![dir.join("stall-lab.json"), dir.join("stall-lab.md")])
    }
    fn finish(a: &StallLabArgs, r: &LabReport, _files: &[PathBuf]) -> u8 {
        u8::from(a.check && !expectations_met(r))
    }
}

/// True if every reproduction showed what its cause expects and no default run stalled.
pub fn expectations_met(r: &LabReport) -> bool {
    r.runs.iter().all(run_met)
}

/// One run against its expectation (see [`expectations_met`]).
pub fn run_met(x: &LabRun) -> bool {
    x.error.is_none()
        && if x.config == "reproduction" {
            match x.cause.expectation() {
                Expectation::Stall(c) => x.stalls > 0 && x.class == Some(c),
                Expectation::NoStall => x.stalls == 0 && x.cause.exercised(&x.evidence),
            }
        } else {
            x.stalls == 0
        }
}

#[allow(clippy::too_many_arguments)]
fn one_run(
    bin_dir: &Path,
    pin: &Pinning,
    sh: &ExperimentArgs,
    cause: Cause,
    gw: GatewayKind,
    reproduction: bool,
    run: usize,
    duration: Duration,
    ports: u16,
) -> LabRun {
    let mut row = LabRun {
        cause,
        gateway: gw.name().to_string(),
        config: if reproduction {
            "reproduction"
        } else {
            "default"
        }
        .to_string(),
        run,
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
    if let Err(e) = run_inner(
        bin_dir,
        pin,
        sh,
        cause,
        gw,
        reproduction,
        duration,
        ports,
        &mut row,
    ) {
        row.error = Some(format!("{e:#}"));
    }
    row
}

#[allow(clippy::too_many_arguments)]
fn run_inner(
    bin_dir: &Path,
    pin: &Pinning,
    sh: &ExperimentArgs,
    cause: Cause,
    gw: GatewayKind,
    reproduction: bool,
    duration: Duration,
    ports: u16,
    row: &mut LabRun,
) -> anyhow::Result<()> {
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
    gw_args.extend(sh.producer_args());
    row.gateway_args = gw_args.clone();
    let mut gateway = Gateway::start(&GatewaySpec {
        brokers: Some(brokers),
        threads: Some(sh.gateway_threads.unwrap_or(2)),
        args: gw_args,
        cpus: pin.gateway.clone(),
        ..GatewaySpec::new(gw, bin_dir)?
    })?;
    let addr = gateway.addr;

    let mut cfg = RunConfig::new(&format!("http://{addr}"))?;
    cfg.duration_s = Some(duration.as_secs_f64());
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
    if cause == Cause::UringCancelAccept {
        // A server idle between bursts: the careless loop drops an accept every 100 ms.
        std::thread::sleep(Duration::from_secs(1));
    }
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
    row.evidence = ev;
    row.gateway_exit = gateway
        .terminate(Duration::from_secs(15))
        .ok()
        .and_then(|x| x.code);
    drop(kafka);
    let r = result?;
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
    Ok(())
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

fn write_report(r: &LabReport, out: &Path) -> anyhow::Result<()> {
    std::fs::write(out.join("stall-lab.json"), serde_json::to_string_pretty(r)?)?;
    std::fs::write(out.join("stall-lab.md"), render_markdown(r))?;
    for cause in Cause::ALL {
        let rows: Vec<&LabRun> = r
            .runs
            .iter()
            .filter(|x| x.cause == cause && x.run == 1)
            .collect();
        if rows.is_empty() {
            continue;
        }
        let series: Vec<(String, Vec<(f64, f64)>)> = rows
            .iter()
            .map(|x| {
                let pts = (x.per_second.iter().enumerate())
                    .map(|(i, &v)| (i as f64, v as f64))
                    .collect();
                (format!("{} {}", x.gateway, x.config), pts)
            })
            .collect();
        let svg = line_chart(
            &format!("{}: completions per second (run 1)", cause.name()),
            "second of the run",
            "completions / s",
            &series,
            &[],
            true,
        )?;
        std::fs::write(out.join(format!("stall-lab-{}.svg", cause.name())), svg)?;
    }
    Ok(())
}

/// Re-renders `stall-lab.md` and the charts from `stall-lab.json`.
pub fn rerender(dir: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(dir.join("stall-lab.json"))?;
    let r: LabReport = serde_json::from_str(&text)?;
    write_report(&r, dir)
}

fn render_markdown(r: &LabReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "# Stall lab\n");
    let m = &r.manifest;
    let _ = writeln!(
        s,
        "Commit `{}`{}, kernel `{}`, CPU `{}` x {}, pinning: {}. Each run: {:.0} s measured. \
         Produced by `bench-client stall-lab`; raw data in `stall-lab.json`.\n",
        m.commit.as_deref().unwrap_or("?"),
        m.dirty_note(),
        m.kernel.as_deref().unwrap_or("?"),
        m.cpu_model.as_deref().unwrap_or("?"),
        m.cpu_count,
        r.pinning,
        r.duration_s
    );
    let _ = writeln!(
        s,
        "A run *stalled* if bench-client found a window of at least 500 ms with no completion \
         while requests were outstanding, or a connection waiting that long to be accepted or \
         answered. *Class* is bench-client's own classification of the longest stall; the \
         evidence columns are sampled from /proc on the server side while the run went on.\n"
    );
    // Causes that ran, then those skipped on every gateway asked for (their notes only).
    let mut causes: Vec<Cause> = Vec::new();
    for c in r
        .runs
        .iter()
        .map(|x| x.cause)
        .chain(r.skipped.iter().map(|x| x.0))
    {
        if !causes.contains(&c) {
            causes.push(c);
        }
    }
    for cause in causes {
        let _ = writeln!(s, "## {}\n\n{}\n", cause.name(), cause.description());
        let _ = match cause.expectation() {
            Expectation::Stall(c) => {
                writeln!(s, "Expected class of the reproduction: **{c}**.\n")
            }
            Expectation::NoStall => writeln!(
                s,
                "Expected of the reproduction: **no stall**, with the evidence showing the \
                 mechanism happened ({}).\n",
                match cause {
                    Cause::UringTinyRing => "completion-queue overflows > 0",
                    _ => "at most 2 SQEs submitted per io_uring_enter",
                }
            ),
        };
        for (c, gw, why) in r.skipped.iter().filter(|x| x.0 == cause) {
            let _ = writeln!(s, "Not run on {gw}: {why}. ({})\n", c.name());
        }
        let uring = cause.uring_only();
        let _ = writeln!(
            s,
            "| gateway | config | stalled | classes | first stall (ms, median) | stall time (ms, median) | ok (median) | accept queue max | listen overflows | gateway fds max | client TIME_WAIT max | EMFILE accept errors |{}",
            if uring {
                " fds left after the run (max) | CQ overflows (median) | io_uring_enter (median) | SQEs per enter (median) |"
            } else {
                ""
            }
        );
        let _ = writeln!(
            s,
            "|---|---|---|---|---|---|---|---|---|---|---|---|{}",
            if uring { "---|---|---|---|" } else { "" }
        );
        let mut gateways: Vec<String> = Vec::new();
        for x in r.runs.iter().filter(|x| x.cause == cause) {
            if !gateways.contains(&x.gateway) {
                gateways.push(x.gateway.clone());
            }
        }
        for gw in &gateways {
            for config in ["reproduction", "default"] {
                let rows: Vec<&LabRun> = r
                    .runs
                    .iter()
                    .filter(|x| x.cause == cause && &x.gateway == gw && x.config == config)
                    .collect();
                let errs: Vec<&str> = rows.iter().filter_map(|x| x.error.as_deref()).collect();
                if !errs.is_empty() {
                    let _ = writeln!(
                        s,
                        "| {gw} | {config} | error: {} | | | | | | | | | |{}",
                        errs[0].replace('|', "/"),
                        if uring { " | | | |" } else { "" }
                    );
                    continue;
                }
                let stalled = rows.iter().filter(|x| x.stalls > 0).count();
                let classes: Vec<String> = rows
                    .iter()
                    .map(|x| x.class.map_or("-".to_string(), |c| c.to_string()))
                    .collect();
                let first: Vec<f64> = rows.iter().filter_map(|x| x.first_stall_ms).collect();
                let total: Vec<f64> = rows.iter().map(|x| x.total_stall_ms).collect();
                let ok: Vec<f64> = rows.iter().map(|x| x.ok as f64).collect();
                let maxu =
                    |f: &dyn Fn(&LabRun) -> u64| rows.iter().map(|x| f(x)).max().unwrap_or(0);
                let med_u = |f: &dyn Fn(&LabRun) -> Option<f64>| {
                    let v: Vec<f64> = rows.iter().filter_map(|x| f(x)).collect();
                    median(&v)
                };
                let uring_cols = if uring {
                    format!(
                        " {} | {} | {} | {} |",
                        rows.iter()
                            .filter_map(|x| x.evidence.gateway_fds_left)
                            .max()
                            .map_or("-".into(), |v| v.to_string()),
                        med_u(&|x| x.evidence.uring_cq_overflows.map(|v| v as f64))
                            .map_or("not measured".into(), |v| format!("{v:.0}")),
                        med_u(&|x| x.evidence.uring_enters.map(|v| v as f64))
                            .map_or("not measured".into(), |v| format!("{v:.0}")),
                        med_u(&|x| x.evidence.sqes_per_enter())
                            .map_or("not measured".into(), |v| format!("{v:.2}")),
                    )
                } else {
                    String::new()
                };
                let _ = writeln!(
                    s,
                    "| {gw} | {config} | {stalled}/{} | {} | {} | {:.0} | {:.0} | {} | {} | {} | {} | {} |{uring_cols}",
                    rows.len(),
                    classes.join(", "),
                    median(&first).map_or("-".into(), |v| format!("{v:.0}")),
                    median(&total).unwrap_or(0.0) + 0.0, // no "-0" for an empty sum
                    median(&ok).unwrap_or(0.0),
                    maxu(&|x| x.evidence.max_accept_queue),
                    maxu(&|x| x.evidence.listen_overflows),
                    maxu(&|x| x.evidence.max_gateway_fds),
                    maxu(&|x| x.evidence.max_client_time_wait),
                    rows.iter()
                        .filter_map(|x| x.evidence.accept_errors_emfile)
                        .max()
                        .map_or("-".into(), |v| v.to_string()),
                );
            }
        }
        let _ = writeln!(s, "\n![{0}](stall-lab-{0}.svg)\n", cause.name());
    }
    let _ = writeln!(
        s,
        "Verdict: {}",
        if expectations_met(r) {
            "every reproduction showed what its cause expects (a stall of the expected class, \
             or no stall with the mechanism exercised); no default run stalled."
        } else {
            "NOT every expectation held: see the rows above."
        }
    );
    s
}

/// The median, as every report of this crate computes it.
fn median(v: &[f64]) -> Option<f64> {
    crate::reporting::format::Spread::of(v).map(|s| s.median)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cause_names_parse_back_and_match_the_cli() {
        for c in Cause::ALL {
            assert_eq!(Cause::parse(c.name()), Some(c));
            assert_eq!(
                <Cause as ValueEnum>::from_str(c.name(), false),
                Ok(c),
                "--causes spelling"
            );
            assert_eq!(c.uring_only(), c.name().starts_with("uring-"), "{c:?}");
        }
        assert_eq!(Cause::parse("nope"), None);
        // The default --causes list is every cause.
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            a: StallLabArgs,
        }
        let cli = Cli::try_parse_from(["x"]).unwrap();
        assert_eq!(cli.a.causes, Cause::ALL.to_vec());
        let cli = Cli::try_parse_from(["x", "--causes", "uring-tiny-ring,emfile"]).unwrap();
        assert_eq!(cli.a.causes, vec![Cause::UringTinyRing, Cause::Emfile]);
    }

    #[test]
    fn uring_causes_run_on_gateway_uring_only() {
        for c in Cause::ALL {
            let (run, skip) = plan(c, &GatewayKind::ALL);
            if c.uring_only() {
                assert_eq!(run, vec![GatewayKind::Uring], "{c:?}");
                assert_eq!(skip.len(), 3);
                assert!(skip.iter().all(|(_, why)| why.contains("io_uring")));
            } else {
                assert_eq!(run, GatewayKind::ALL.to_vec(), "{c:?}");
                assert!(skip.is_empty());
            }
        }
        let (run, skip) = plan(Cause::UringSqFull, &[GatewayKind::Compio]);
        assert!(run.is_empty());
        assert_eq!(skip[0].0, GatewayKind::Compio);
    }

    fn run(cause: Cause, config: &str, stalls: usize, class: Option<StallClass>) -> LabRun {
        LabRun {
            cause,
            gateway: "uring".into(),
            config: config.into(),
            run: 1,
            gateway_args: Vec::new(),
            stalls,
            first_stall_ms: None,
            total_stall_ms: 0.0,
            class,
            ok: 1,
            errors: 0,
            evidence: Evidence::default(),
            per_second: Vec::new(),
            error: None,
            gateway_exit: Some(0),
        }
    }

    #[test]
    fn expectations_per_cause() {
        let repro = "reproduction";
        // A cause that must stall: with its class only.
        assert!(run_met(&run(
            Cause::UringCancelAccept,
            repro,
            1,
            Some(StallClass::Accept)
        )));
        assert!(!run_met(&run(
            Cause::UringCancelAccept,
            repro,
            1,
            Some(StallClass::Service)
        )));
        assert!(!run_met(&run(Cause::UringCancelAccept, repro, 0, None)));
        // A cause the runtime absorbs: no stall, and only with the mechanism measured.
        let mut tiny = run(Cause::UringTinyRing, repro, 0, None);
        assert!(!run_met(&tiny), "not measured proves nothing");
        tiny.evidence.uring_cq_overflows = Some(0);
        assert!(
            !run_met(&tiny),
            "no overflow: the reproduction reproduced nothing"
        );
        tiny.evidence.uring_cq_overflows = Some(57);
        assert!(run_met(&tiny));
        tiny.stalls = 1;
        tiny.class = Some(StallClass::Service);
        assert!(!run_met(&tiny), "a stall where none is expected");
        let mut sq = run(Cause::UringSqFull, repro, 0, None);
        sq.evidence.uring_sqes = Some(300);
        sq.evidence.uring_enters = Some(100);
        assert!(
            !run_met(&sq),
            "3 SQEs per enter: the queue was not the limit"
        );
        sq.evidence.uring_enters = Some(150);
        assert!(run_met(&sq));
        // Defaults never stall.
        assert!(run_met(&run(Cause::UringSqFull, "default", 0, None)));
        assert!(!run_met(&run(
            Cause::UringSqFull,
            "default",
            1,
            Some(StallClass::Service)
        )));
    }

    #[test]
    fn report_names_the_skipped_gateways() {
        let r = LabReport {
            manifest: crate::engine::probes::manifest::Manifest::collect(),
            pinning: "none".into(),
            duration_s: 1.0,
            runs: vec![run(Cause::Emfile, "default", 0, None)],
            skipped: vec![(
                Cause::UringSqFull,
                "compio".into(),
                Cause::UringSqFull
                    .skip_reason(GatewayKind::Compio)
                    .unwrap()
                    .into(),
            )],
        };
        let md = render_markdown(&r);
        assert!(md.contains("## emfile"), "{md}");
        assert!(md.contains("## uring-sq-full"), "{md}");
        assert!(md.contains("Not run on compio: an io_uring"), "{md}");
    }

    #[test]
    fn old_reports_still_load() {
        // A stall-lab.json written before the io_uring causes: no `skipped`, no uring evidence.
        let ev: Evidence = serde_json::from_str(
            r#"{"max_accept_queue":1,"listen_overflows":0,"listen_drops":0,"max_gateway_fds":9,"max_client_time_wait":0,"accept_errors_emfile":null}"#,
        )
        .unwrap();
        assert_eq!(ev.max_gateway_fds, 9);
        assert_eq!(ev.uring_cq_overflows, None);
        assert_eq!(ev.sqes_per_enter(), None);
    }
}
