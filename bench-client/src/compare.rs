//! `bench-client compare`: every gateway side by side on one machine.
//!
//! Starts `kafka-mock` (unless `--brokers`), then for each run of the [`Plan`] a fresh
//! gateway process with identical arguments (threads, backlog, producer config), pinned
//! per `--pin`; waits for `/readyz`, runs one scenario through [`crate::run`] (or holds
//! idle connections for the memory scenarios), stops it with SIGTERM and requires exit
//! status 0. Runs are interleaved across gateways (A B C D A B C D …). Everything lands in
//! `summary.json`; [`crate::compare_report`] turns that into `report.md` and SVG charts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::config::{parse_duration, Mode, PayloadSize};
use crate::idle::{self, IdleResult};
use crate::lab::{self, Gateway, GatewayKind, GatewaySpec, KafkaMock, Pinning};
use crate::manifest::Manifest;
use crate::matrix::{self, Plan, Selection, Shape, Sink, Variant, MAX_SCENARIO};
use crate::report::RunResult;
use crate::RunConfig;

/// Layout version of `summary.json`.
pub const SUMMARY_VERSION: u32 = 1;

/// Run every gateway through the scenario matrix and write a report.
#[derive(Debug, Clone, clap::Args)]
pub struct CompareArgs {
    /// Smoke-test matrix (CI): fewer scenarios, 1 repeat, 1 s runs; about 2 minutes on 2 cores.
    #[arg(long)]
    pub quick: bool,
    /// Gateways to compare (comma-separated): tokio-multi, tokio-per-core, uring, compio.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "tokio-multi,tokio-per-core,uring,compio"
    )]
    pub gateways: Vec<String>,
    /// Sinks (comma-separated): kafka, null. Null-sink variants run only the scenarios
    /// marked for it (http-max, ws-max), which separates the gateway's own cost from Kafka's.
    #[arg(long, value_delimiter = ',', default_value = "kafka,null")]
    pub sinks: Vec<String>,
    /// Scenarios (comma-separated ids; default: the default or --quick set). Known:
    /// http-max, http-25, http-50, http-75, http-max-10k, http-close, ws-max, ws-max-10k,
    /// idle-http, idle-ws.
    #[arg(long, value_delimiter = ',')]
    pub scenarios: Vec<String>,
    /// Runs of each cell (default 3; --quick: 1).
    #[arg(long)]
    pub repeats: Option<usize>,
    /// Measured time of each load run (default 3s; --quick: 1s).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Warmup of each load run, excluded from every figure (default 1s; --quick: 500ms).
    #[arg(long, value_parser = parse_duration)]
    pub warmup: Option<Duration>,
    /// Idle connections of the memory scenarios (default: min(5000, fd limit - 256);
    /// --quick: 1000).
    #[arg(long)]
    pub idle_conns: Option<usize>,
    /// CPU pinning: `auto` (1 CPU: none; otherwise gateway on the upper half of the CPUs,
    /// bench-client + kafka-mock on the lower half; on 2 cores gateway on CPU 1, the rest
    /// on CPU 0), `none`, or `GATEWAY_CPUS/CLIENT_CPUS` such as `1/0` or `4-7/0-3`.
    #[arg(long, default_value = "auto")]
    pub pin: String,
    /// Gateway I/O threads (default: the number of gateway CPUs, all CPUs when unpinned).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Client worker threads (default: the number of client CPUs; unpinned: half the CPUs).
    #[arg(long)]
    pub client_threads: Option<usize>,
    /// Use this Kafka (host:port,...) instead of starting kafka-mock.
    #[arg(long)]
    pub brokers: Option<String>,
    /// librdkafka producer property for every gateway, repeatable (`-X linger.ms=5`).
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    pub producer: Vec<String>,
    /// Kafka topic.
    #[arg(long, default_value = "bench")]
    pub topic: String,
    /// Directory of the gateway and kafka-mock binaries (default: bench-client's own).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Output directory (default: results/<YYYY-MM-DD>-<cpus>c-<short hostname>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the plan (cells, runs, estimated time) and exit.
    #[arg(long)]
    pub dry_run: bool,
}

/// How one gateway binary describes itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GatewayDesc {
    pub binary: String,
    /// The whole `--version` text (runtime, asymmetries).
    pub version: String,
    /// `gateway_info{…}` from `/metrics` of its first process (per-run lines are in the runs).
    pub info: Option<String>,
    /// The command line of its first process.
    pub command: Vec<String>,
}

/// Where and how the comparison ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareManifest {
    /// `YYYY-MM-DD HH:MM:SS UTC`.
    pub started_at: String,
    pub finished_at: Option<String>,
    pub wall_s: f64,
    /// Commit, kernel, CPU model and count, bench-client's affinity and command line.
    pub machine: Manifest,
    pub pinning: Pinning,
    pub gateway_threads: usize,
    pub client_threads: usize,
    /// Arguments every gateway got (plus `--listen`, `--sink` and its runtime flag).
    pub gateway_args: Vec<String>,
    /// `kafka-mock …` or `--brokers …`.
    pub kafka: String,
    pub bootstrap: String,
    /// `-X` properties given to every gateway.
    pub producer_overrides: Vec<String>,
    /// The producer configuration the gateways logged at start.
    pub producer_config: Option<String>,
    pub topic: String,
    /// Per variant name.
    pub gateways: BTreeMap<String, GatewayDesc>,
    /// Client RLIMIT_NOFILE after raising it.
    pub client_nofile: u64,
}

/// Gateway-side figures of one run (from /proc, around the measured work).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GatewayStats {
    pub pid: u32,
    /// CPU seconds (user + system) spent during the run, warmup included.
    pub cpu_s: Option<f64>,
    pub rss_kib: Option<u64>,
    /// Peak RSS of the process.
    pub hwm_kib: Option<u64>,
    /// Wall seconds between the two CPU samples (`cpu_s / wall_s` = cores busy).
    pub wall_s: f64,
}

/// One run of one cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub round: usize,
    pub scenario: String,
    pub variant: String,
    /// Open loop: the rate asked for (req/s) and where it came from.
    pub rate: Option<f64>,
    pub rate_from: Option<String>,
    pub result: Option<RunResult>,
    pub idle: Option<IdleResult>,
    pub gateway: Option<GatewayStats>,
    /// `gateway_info{…}` of this run's process.
    pub gateway_info: Option<String>,
    /// First line of the gateway's `--version` (the whole text is in the manifest).
    pub gateway_version: Option<String>,
    /// Why this run has no figures, or what went wrong around it (e.g. a non-zero exit
    /// after SIGTERM). A run with an error never counts as a clean figure.
    pub error: Option<String>,
    pub wall_s: f64,
}

/// Everything `compare` produced; `report` needs nothing else.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub summary_version: u32,
    pub manifest: CompareManifest,
    pub plan: Plan,
    pub runs: Vec<RunRecord>,
}

impl Summary {
    pub fn read(dir: &Path) -> anyhow::Result<Self> {
        let p = dir.join("summary.json");
        let s = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        serde_json::from_str(&s).with_context(|| format!("parsing {}", p.display()))
    }

    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        let p = dir.join("summary.json");
        let tmp = dir.join("summary.json.tmp");
        let f =
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let mut w = std::io::BufWriter::new(f);
        serde_json::to_writer_pretty(&mut w, self)?;
        std::io::Write::flush(&mut w)?;
        drop(w);
        std::fs::rename(&tmp, &p).with_context(|| format!("writing {}", p.display()))?;
        Ok(())
    }
}

fn now_stamp() -> String {
    let (d, t) = lab::utc_date_time(lab::now_unix());
    format!("{d} {t} UTC")
}

/// `<cpus>c-<short hostname>`.
pub fn host_tag(cpus: usize, hostname: Option<&str>) -> String {
    let h = hostname
        .unwrap_or("host")
        .split('.')
        .next()
        .unwrap_or("host");
    let h: String = h
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{cpus}c-{h}")
}

/// What a finished comparison left behind.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub dir: PathBuf,
    /// Runs that recorded an error (their cells say which).
    pub failed_runs: usize,
}

/// Run the comparison, write summary.json, report.md and the charts.
pub fn compare(a: &CompareArgs) -> anyhow::Result<Outcome> {
    let t_start = Instant::now();
    let machine = Manifest::collect();
    let cpus = machine.cpu_count.max(1);
    let pinning = Pinning::parse(&a.pin, cpus).map_err(anyhow::Error::msg)?;
    let nofile = idle::raise_nofile();
    let gateways = a
        .gateways
        .iter()
        .map(|g| GatewayKind::parse(g))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    let sinks = a
        .sinks
        .iter()
        .map(|s| Sink::parse(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    let idle_conns = a
        .idle_conns
        .unwrap_or_else(|| idle::default_idle_conns(nofile, if a.quick { 1000 } else { 5000 }));
    let plan = matrix::plan(&Selection {
        gateways,
        sinks,
        scenarios: a.scenarios.clone(),
        quick: a.quick,
        repeats: a.repeats,
        warmup_s: a.warmup.map(|d| d.as_secs_f64()),
        duration_s: a.duration.map(|d| d.as_secs_f64()),
        idle_conns,
    })
    .map_err(anyhow::Error::msg)?;
    let gateway_threads = a
        .threads
        .unwrap_or(if pinning.gateway.is_empty() {
            cpus
        } else {
            pinning.gateway.len()
        })
        .max(1);
    let client_threads = a
        .client_threads
        .unwrap_or(if pinning.client.is_empty() {
            cpus.div_ceil(2)
        } else {
            pinning.client.len()
        })
        .max(1);

    let bin_dir = match &a.bin_dir {
        Some(d) => d.clone(),
        None => lab::default_bin_dir()?,
    };
    // Every binary up front: a missing one fails now, not twenty minutes in.
    let mut bins = BTreeMap::new();
    for v in &plan.variants {
        let b = v.gateway.bin();
        if !bins.contains_key(b) {
            bins.insert(b, lab::locate(&bin_dir, b)?);
        }
    }
    if a.brokers.is_none() {
        lab::locate(&bin_dir, "kafka-mock")?;
    }
    pinning.check_taskset(&a.pin)?;

    let out = match &a.out {
        Some(d) => d.clone(),
        None => lab::default_out_dir(&host_tag(cpus, machine.hostname.as_deref())),
    };

    let est = plan.estimate_s();
    eprintln!(
        "compare: {} variants x {} scenarios = {} cells x {} repeat(s) = {} runs, estimated {:.0} s ({:.1} min); pinning: {}; gateway --threads {gateway_threads}, client threads {client_threads}; output {}",
        plan.variants.len(),
        plan.scenarios.len(),
        plan.cells(),
        plan.repeats,
        plan.slots().len(),
        est,
        est / 60.0,
        pinning.description,
        out.display()
    );

    if a.dry_run {
        for sc in &plan.scenarios {
            let vs: Vec<String> = plan
                .variants_for(sc)
                .into_iter()
                .map(|i| plan.variants[i].name())
                .collect();
            eprintln!("  {:<13} {} | {}", sc.id, sc.title, vs.join(" "));
        }
        return Ok(Outcome {
            dir: out,
            failed_runs: 0,
        });
    }
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    // The client (this process, and the runtimes it builds per run) on the client CPUs.
    lab::pin_self(&pinning.client)?;
    let kafka = match &a.brokers {
        None => {
            let k = KafkaMock::start(&bin_dir, &[&a.topic], false, &pinning.client)?;
            eprintln!("compare: kafka-mock at {}", k.bootstrap);
            Some(k)
        }
        Some(_) => None,
    };
    let bootstrap = match (&kafka, &a.brokers) {
        (Some(k), _) => k.bootstrap.clone(),
        (None, Some(b)) => b.clone(),
        (None, None) => unreachable!("kafka-mock is started when --brokers is absent"),
    };

    let mut gateway_args = vec![
        "--threads".to_string(),
        gateway_threads.to_string(),
        "--backlog".into(),
        "4096".into(),
        "--brokers".into(),
        bootstrap.clone(),
    ];
    for x in &a.producer {
        gateway_args.push("-X".into());
        gateway_args.push(x.clone());
    }

    let mut gateways_desc = BTreeMap::new();
    for v in &plan.variants {
        let bin = &bins[v.gateway.bin()];
        let version = lab::version_text(bin)?;
        gateways_desc.insert(
            v.name(),
            GatewayDesc {
                binary: bin.display().to_string(),
                version,
                info: None,
                command: vec![],
            },
        );
    }

    let mut summary = Summary {
        summary_version: SUMMARY_VERSION,
        manifest: CompareManifest {
            started_at: now_stamp(),
            finished_at: None,
            wall_s: 0.0,
            machine,
            pinning: pinning.clone(),
            gateway_threads,
            client_threads,
            gateway_args: gateway_args.clone(),
            kafka: match &kafka {
                Some(k) => k.command.join(" "),
                None => format!("--brokers {bootstrap}"),
            },
            bootstrap,
            producer_overrides: a.producer.clone(),
            producer_config: None,
            topic: a.topic.clone(),
            gateways: gateways_desc,
            client_nofile: nofile,
        },
        plan: plan.clone(),
        runs: Vec::new(),
    };

    let slots = plan.slots();
    let total = slots.len();
    let mut last_round = 0;
    for (i, sl) in slots.iter().enumerate() {
        if sl.round != last_round {
            // Partial results survive an interrupted run.
            summary.write(&out)?;
            last_round = sl.round;
        }
        let v = plan.variants[sl.variant];
        let sc = &plan.scenarios[sl.scenario];
        let mut cmd_args = gateway_args.clone();
        cmd_args.extend(["--sink".to_string(), v.sink.name().to_string()]);
        // The flavour arguments come last, after these.
        let cmd = GatewaySpec {
            kind: v.gateway,
            bin: bins[v.gateway.bin()].clone(),
            brokers: None,
            threads: None,
            args: cmd_args,
            cpus: pinning.gateway.clone(),
            ready_timeout: Duration::from_secs(30),
            prime_topic: Some(a.topic.clone()),
        };
        let t0 = Instant::now();
        let mut rec = RunRecord {
            round: sl.round,
            scenario: sc.id.clone(),
            variant: v.name(),
            rate: None,
            rate_from: None,
            result: None,
            idle: None,
            gateway: None,
            gateway_info: None,
            gateway_version: summary
                .manifest
                .gateways
                .get(&v.name())
                .and_then(|d| d.version.lines().next().map(str::to_string)),
            error: None,
            wall_s: 0.0,
        };
        let ctx = RunCtx {
            plan: &plan,
            client_threads,
            topic: &a.topic,
        };
        let producer = &mut summary.manifest.producer_config;
        if let Err(e) = one_run(
            &ctx,
            &summary.runs,
            sl.round,
            v,
            sc,
            &cmd,
            &mut rec,
            producer,
        ) {
            rec.error = Some(format!("{e:#}"));
        }
        rec.wall_s = t0.elapsed().as_secs_f64();
        // First successful start of a variant: keep its command and info line.
        if let Some(d) = summary.manifest.gateways.get_mut(&v.name()) {
            if d.info.is_none() {
                d.info.clone_from(&rec.gateway_info);
                d.command = cmd.command_line();
            }
        }
        eprintln!(
            "[{}/{total}] round {}/{} {:<13} {:<20} {}",
            i + 1,
            sl.round + 1,
            plan.repeats,
            sc.id,
            v.name(),
            progress_line(&rec)
        );
        summary.runs.push(rec);
    }
    drop(kafka);
    summary.manifest.finished_at = Some(now_stamp());
    summary.manifest.wall_s = t_start.elapsed().as_secs_f64();
    summary.write(&out)?;
    crate::compare_report::render(&summary, &out)?;
    let failed_runs = summary.runs.iter().filter(|r| r.error.is_some()).count();
    eprintln!(
        "compare: done in {:.0} s (estimated {est:.0} s), {failed_runs} failed run(s); report in {}",
        summary.manifest.wall_s,
        out.join("report.md").display()
    );
    Ok(Outcome {
        dir: out,
        failed_runs,
    })
}

/// Open-loop rate for `variant` in `round`: `pct`% of tokio-multi's (same sink)
/// `http-max` throughput in the same round, else the variant's own.
fn open_rate(runs: &[RunRecord], round: usize, v: Variant, pct: u32) -> Option<(f64, String)> {
    let max_of = |name: &str| {
        runs.iter()
            .filter(|r| r.round == round && r.scenario == MAX_SCENARIO && r.variant == name)
            .find_map(|r| r.result.as_ref().filter(|_| r.error.is_none()))
            .map(|r| r.totals.ok_per_sec)
            .filter(|&x| x > 0.0)
    };
    let base = v.baseline().name();
    let (max, from) = match max_of(&base) {
        Some(m) => (m, base),
        None => (max_of(&v.name())?, v.name()),
    };
    Some((
        max * f64::from(pct) / 100.0,
        format!(
            "{pct}% of {from} {MAX_SCENARIO} round {} ({max:.0}/s)",
            round + 1
        ),
    ))
}

/// What every run shares.
struct RunCtx<'a> {
    plan: &'a Plan,
    client_threads: usize,
    topic: &'a str,
}

/// One gateway process, one scenario: fills `rec`; an error empties the cell.
#[allow(clippy::too_many_arguments)]
fn one_run(
    ctx: &RunCtx<'_>,
    runs: &[RunRecord],
    round: usize,
    v: Variant,
    sc: &matrix::Scenario,
    cmd: &GatewaySpec,
    rec: &mut RunRecord,
    producer_config: &mut Option<String>,
) -> anyhow::Result<()> {
    let (plan, topic) = (ctx.plan, ctx.topic);
    // Decide the work before starting anything, so a missing rate costs no process.
    let mut cfg = None;
    if let Shape::Load {
        mode,
        connections,
        depth,
        payload,
        open_pct,
    } = sc.shape
    {
        let mut c = RunConfig::new("http://127.0.0.1:1")?;
        c.mode = mode;
        c.connections = connections;
        match mode {
            Mode::Ws => c.window = depth,
            _ => c.pipeline = depth,
        }
        c.payload = PayloadSize {
            min: payload,
            max: payload,
        };
        c.topic = topic.to_string();
        c.threads = ctx.client_threads;
        c.warmup_s = plan.warmup_s;
        c.duration_s = Some(plan.duration_s);
        c.requests = None;
        c.progress = false;
        if let Some(pct) = open_pct {
            let (rate, from) = open_rate(runs, round, v, pct).with_context(|| {
                format!(
                    "no {MAX_SCENARIO} result in round {} to derive the open-loop rate from",
                    round + 1
                )
            })?;
            c.rate = Some(rate.max(1.0));
            rec.rate = c.rate;
            rec.rate_from = Some(from);
        }
        cfg = Some(c);
    }

    let g = Gateway::start(cmd)?;
    let pid = g.pid();
    if producer_config.is_none() {
        producer_config.clone_from(&g.producer_config);
    }
    rec.gateway_info = g.info_line().ok();
    let cpu0 = lab::proc_cpu_s(pid);
    let wall0 = Instant::now();
    let work: anyhow::Result<()> = (|| {
        match (&sc.shape, cfg) {
            (Shape::Load { .. }, Some(mut c)) => {
                c.target = format!("http://{}", g.addr);
                c.authority = g.addr.to_string();
                let mut r = crate::run_blocking(c)?;
                r.manifest.target_version.clone_from(&rec.gateway_version);
                rec.result = Some(r);
            }
            (Shape::Idle { ws, connections }, _) => {
                let payload = vec![b'x'; 100];
                rec.idle = Some(idle::hold_idle(
                    g.addr,
                    pid,
                    *connections,
                    *ws,
                    topic,
                    &payload,
                )?);
            }
            (Shape::Load { .. }, None) => unreachable!("load scenarios get a config above"),
        }
        Ok(())
    })();
    rec.gateway = Some(GatewayStats {
        pid,
        cpu_s: lab::proc_cpu_s(pid)
            .zip(cpu0)
            .map(|(b, a)| (b - a).max(0.0)),
        rss_kib: lab::proc_status_kib(pid, "VmRSS"),
        hwm_kib: lab::proc_status_kib(pid, "VmHWM"),
        wall_s: wall0.elapsed().as_secs_f64(),
    });
    let stopped = g.stop(Duration::from_secs(30));
    match (work, stopped) {
        (Ok(()), s) => s,
        (Err(e), Ok(())) => Err(e),
        (Err(e), Err(s)) => Err(e.context(format!("stopping the gateway failed too: {s:#}"))),
    }
}

fn progress_line(r: &RunRecord) -> String {
    let mut s = String::new();
    if let Some(res) = &r.result {
        s = format!(
            "{:>9.0} ok/s  p50 {}  p99 {}  max {}  errors {}  stalls {}",
            res.totals.ok_per_sec,
            crate::compare_report::fmt_us(res.latency.p50_us),
            crate::compare_report::fmt_us(res.latency.p99_us),
            crate::compare_report::fmt_us(res.latency.max_us),
            res.totals.errors,
            res.stalls.len()
        );
        if let Some(rate) = r.rate {
            s.push_str(&format!("  (open loop {rate:.0}/s)"));
        }
        if res.self_check.generator_bound {
            s.push_str("  GENERATOR-BOUND");
        }
    }
    if let Some(i) = &r.idle {
        s = format!(
            "{}/{} open, RSS {} -> {} KiB = {:.1} KiB/conn",
            i.open,
            i.requested,
            i.rss_before_kib,
            i.rss_after_kib,
            i.bytes_per_conn / 1024.0
        );
    }
    if let Some(e) = &r.error {
        let first = e.lines().next().unwrap_or_default();
        s.push_str(&format!("  ERROR: {first}"));
    }
    format!("{s}  [{:.1} s]", r.wall_s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        use crate::lab::utc_date_time;
        assert_eq!(utc_date_time(0), ("1970-01-01".into(), "00:00:00".into()));
        // 2024-02-29 12:34:56 UTC
        assert_eq!(
            utc_date_time(1_709_210_096),
            ("2024-02-29".into(), "12:34:56".into())
        );
        assert_eq!(utc_date_time(1_735_689_599).0, "2024-12-31");
        assert_eq!(host_tag(2, Some("vm.example.org")), "2c-vm");
    }
}
