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

use crate::engine::config::{Ack, BindRange, Mode, RunConfig};
use crate::engine::procnet;
use crate::engine::timeline::StallClass;
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
}

impl Cause {
    pub const ALL: [Cause; 4] = [
        Cause::TimeWait,
        Cause::Emfile,
        Cause::Blocking,
        Cause::Backlog,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Cause::TimeWait => "time-wait",
            Cause::Emfile => "emfile",
            Cause::Blocking => "blocking",
            Cause::Backlog => "backlog",
        }
    }

    /// The class bench-client must give the reproduction's stalls.
    pub fn expected_class(self) -> StallClass {
        match self {
            Cause::TimeWait => StallClass::ClientExhaustion,
            Cause::Emfile | Cause::Backlog => StallClass::Accept,
            Cause::Blocking => StallClass::Service,
        }
    }

    fn description(self) -> &'static str {
        match self {
            Cause::TimeWait => "the naive client: a new connection per request, closed by the client first (so TIME_WAIT lands on the client, for 60 s), bound to 200 source ports (a stand-in for the whole ephemeral range, without root sysctls). Default: the same client with keep-alive connections (what every gateway offers by default).",
            Cause::Emfile => "400 keep-alive connections against `--fd-limit 256 --fault accept-exit-on-error` (the accept loop `?`s out on EMFILE). Default: fd limit raised to the hard limit, accept loop that backs off.",
            Cause::Blocking => "ack=enqueue load while every broker has 1 s RTT; `--fault blocking-produce` flushes the producer on the I/O thread for every record. Default: the I/O thread only calls the non-blocking send.",
            Cause::Backlog => "a burst of 1000 connects against `--backlog 8`: SYNs are dropped and retransmitted after 1 s. Default: backlog 4096.",
        }
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct StallLabArgs {
    #[command(flatten)]
    pub shared: ExperimentArgs,
    /// Causes to reproduce.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "time-wait,emfile,blocking,backlog"
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
    /// Exit non-zero unless every reproduction stalled with the expected class and every
    /// default run had no stall.
    #[arg(long)]
    pub check: bool,
}

/// Server-side evidence sampled while a run went on.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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
    pub manifest: crate::engine::manifest::Manifest,
    pub pinning: String,
    pub duration_s: f64,
    pub runs: Vec<LabRun>,
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
    let total = args.causes.len() * gateways.len() * 2 * args.repeats;
    if !sh.quiet {
        eprintln!(
            "stall-lab: {total} runs of {:?} each ({} causes x {} gateways x 2 configurations x {} repeats), pinning: {}",
            args.duration,
            args.causes.len(),
            gateways.len(),
            args.repeats,
            pin.description
        );
    }
    let per_run = args.duration + Duration::from_secs(2);
    let mut overall = Overall::new("runs", total, Some(per_run * total as u32), sh.quiet, true);
    let mut port_base = 33_000u16;
    let mut runs = Vec::new();
    for &cause in &args.causes {
        for run in 1..=args.repeats {
            // Interleave gateways and configurations so drift hits all alike.
            for gw in gateways {
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
                        "{:<9} {:<15} {:<12} run {run}: {}",
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
        manifest: crate::engine::manifest::Manifest::collect(),
        pinning: pin.description.clone(),
        duration_s: args.duration.as_secs_f64(),
        runs,
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

/// True if every reproduction stalled with the expected class and no default run stalled.
pub fn expectations_met(r: &LabReport) -> bool {
    r.runs.iter().all(|x| {
        x.error.is_none()
            && if x.config == "reproduction" {
                x.stalls > 0 && x.class == Some(x.cause.expected_class())
            } else {
                x.stalls == 0
            }
    })
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
    }

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
    ev.accept_errors_emfile = gateway
        .metrics()
        .ok()
        .and_then(|m| {
            m.get("gateway_accept_errors_total{errno=\"EMFILE\"}")
                .copied()
        })
        .map(|v| v as u64);
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
    let mut causes: Vec<Cause> = r.runs.iter().map(|x| x.cause).collect();
    causes.dedup();
    for cause in causes {
        let _ = writeln!(s, "## {}\n\n{}\n", cause.name(), cause.description());
        let _ = writeln!(
            s,
            "Expected class of the reproduction: **{}**.\n",
            cause.expected_class()
        );
        let _ = writeln!(
            s,
            "| gateway | config | stalled | classes | first stall (ms, median) | stall time (ms, median) | ok (median) | accept queue max | listen overflows | gateway fds max | client TIME_WAIT max | EMFILE accept errors |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|");
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
                        "| {gw} | {config} | error: {} | | | | | | | | | |",
                        errs[0].replace('|', "/")
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
                let _ = writeln!(
                    s,
                    "| {gw} | {config} | {stalled}/{} | {} | {} | {:.0} | {:.0} | {} | {} | {} | {} | {} |",
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
            "every reproduction stalled with the expected class; no default run stalled."
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
