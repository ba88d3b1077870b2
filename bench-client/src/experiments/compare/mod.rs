//! `bench-client compare`: every gateway side by side on one machine.
//!
//! Starts `kafka-mock` (unless `--brokers`), measures the bare producer (the ceiling of
//! the Kafka path), then runs the two phases of the [`Plan`] (see [`plan`]): a
//! saturation search per variant for every scenario that claims a maximum, then rounds of
//! every cell in a shuffled order. Each gateway process gets identical arguments
//! (threads, backlog, producer config), pinned per `--pin`; `compare` waits for
//! `/readyz`, runs the scenario through [`crate::engine::run`] with the gateway's and
//! kafka-mock's PIDs (so every run carries the gateway's CPU per thread class, syscalls
//! and context switches over the measured phase, and the label of what bound it), stops
//! it with SIGTERM and requires exit status 0. Everything lands in `summary.json`
//! ([`summary`]); [`render`] turns that into `report.md` ([`report`]) and SVG charts
//! ([`charts`]).
//!
//! Entry points: [`Compare`] (the [`Experiment`]: [`compare`] runs → [`Summary`] →
//! [`render`]) and [`report_dir`] (`bench-client report DIR`). Files: `plan.rs` (the scenario matrix and the search logic),
//! `summary.rs` (the result types), `report.rs` (markdown), `charts.rs` (SVG). Only this
//! file runs anything; the other four never depend on it.

pub mod cell;
pub mod charts;
pub mod peers;
pub mod plan;
pub mod procs;
pub mod report;
pub mod summary;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use self::plan::{next_step, Offer, Plan, Selection, Shape, Sink, Step, Variant, MAX_SCENARIO};
use self::summary::outcomes;
pub use self::summary::{
    CompareManifest, GatewayDesc, GatewayStats, PeerDesc, Phase, ProducerRun, RunRecord, Summary,
    SUMMARY_VERSION,
};
use crate::engine::config::{parse_duration, Format, Mode, PayloadSize};
use crate::engine::probes::manifest::Manifest;
use crate::engine::RunConfig;
use crate::experiments::idle;
use crate::experiments::shared::{Experiment, ExperimentArgs};
use crate::lab::{self, Gateway, GatewaySpec, KafkaMock, Pinning};
use crate::reporting::format::{fmt_rate, fmt_us};
use crate::reporting::progress::Overall;

/// Run every gateway through the scenario matrix and write a report.
#[derive(Debug, Clone, clap::Args)]
pub struct CompareArgs {
    /// Smoke-test matrix (CI): fewer scenarios, 1 repeat, 1 s runs, smaller scale scenarios;
    /// under 3 minutes on 2 cores.
    #[arg(long)]
    pub quick: bool,
    #[command(flatten)]
    pub shared: ExperimentArgs,
    /// Sinks (comma-separated): kafka, null. Null-sink variants run only the scenarios
    /// marked for it (http-max, ws-max, cost-*), which separates the gateway's own cost
    /// from Kafka's.
    #[arg(long, value_delimiter = ',', default_value = "kafka,null")]
    pub sinks: Vec<String>,
    /// Scenarios (comma-separated ids; default: the default or --quick set). Known:
    /// http-max, ws-max, http-max-10k, http-close (maxima, by saturation search),
    /// http-load-25/50/75/90 (open loop at a fraction of the gateway's own maximum),
    /// cost-low, cost-high (open loop at rates common to all gateways), idle-http, idle-ws,
    /// and the scale scenarios: http-many (15,000 keep-alive connections at 30% of the
    /// smallest http-max maximum; brings its twin http-many-64, the same rate over 64
    /// connections), ws-many (10,000 WebSockets x 2 messages/s), accept-storm (1,024
    /// connectors, one request per connection; --quick: 2,000 / 1,000 / 256).
    #[arg(long, value_delimiter = ',')]
    pub scenarios: Vec<String>,
    /// Rounds of every cell after the search (default 5; --quick: 1).
    #[arg(long, alias = "runs")]
    pub repeats: Option<usize>,
    /// Measured time of each load run and search step (default 2s; --quick: 1s).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Warmup of each load run and search step, excluded from every figure (default 500ms).
    #[arg(long, value_parser = parse_duration)]
    pub warmup: Option<Duration>,
    /// Seed of the shuffled run order (default: from the clock; recorded in summary.json).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Idle connections of the memory scenarios (default: min(5000, fd limit - 256);
    /// --quick: 1000).
    #[arg(long)]
    pub idle_conns: Option<usize>,
    /// CPU pinning: `auto` (1 CPU: none; otherwise gateway on the upper half of the CPUs,
    /// bench-client + kafka-mock on the lower half; on 2 cores gateway on CPU 1, the rest
    /// on CPU 0), `none`, or `GATEWAY_CPUS/CLIENT_CPUS` such as `1/0` or `4-7/0-3`.
    #[arg(long, default_value = "auto")]
    pub pin: String,
    /// Old name of --gateway-threads (default: the number of gateway CPUs, all CPUs when
    /// unpinned; --client-threads: the number of client CPUs, unpinned half the CPUs).
    #[arg(long = "threads", hide = true)]
    pub threads_old: Option<usize>,
    /// Use this Kafka (host:port,...) instead of starting kafka-mock.
    #[arg(long)]
    pub brokers: Option<String>,
    /// Kafka topic.
    #[arg(long, default_value = "bench")]
    pub topic: String,
    /// Print the plan (cells, runs, estimated time) and exit.
    #[arg(long)]
    pub dry_run: bool,
    /// Client processes per load run: N `bench-client run` shards with a common start,
    /// each pinned to one client CPU (round robin) with its share of the connections,
    /// rate and client threads, merged exactly (`bench-client merge`).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub client_procs: u16,
    /// An external gateway, `NAME=URL` (repeatable): driven through the same HTTP scenarios
    /// after the gateways (never started, stopped or pinned by compare), in its own report
    /// section marked external. It must produce to the same Kafka: use `--brokers`.
    #[arg(long = "peer", value_name = "NAME=URL")]
    pub peers: Vec<String>,
    /// `NAME=PID` of a peer running on this host: its CPU is measured (else "not measured").
    #[arg(long = "peer-pid", value_name = "NAME=PID")]
    pub peer_pids: Vec<String>,
    /// Request body format for the peers (the gateways always get `raw`).
    #[arg(long, value_enum, default_value_t = Format::Raw)]
    pub peer_format: Format,
}

/// Write `report.md` and the charts of `s` into `dir`.
pub fn render(s: &Summary, dir: &Path) -> anyhow::Result<()> {
    let p = dir.join("report.md");
    std::fs::write(&p, report::markdown(s)).with_context(|| format!("writing {}", p.display()))?;
    charts::draw_all(s, dir)?;
    Ok(())
}

/// `bench-client report DIR`: re-render `report.md` and the charts from `summary.json`.
pub fn report_dir(dir: &Path) -> anyhow::Result<()> {
    let s = Summary::read(dir)?;
    render(&s, dir)
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
    /// What was measured (`None` after `--dry-run`).
    pub summary: Option<Summary>,
}

/// Run the comparison into `out`, writing summary.json as it goes (partial results
/// survive an interrupted run); [`Compare::render`] then writes report.md and the charts.
pub fn compare(a: &CompareArgs, out: &Path) -> anyhow::Result<Outcome> {
    let t_start = Instant::now();
    let machine = Manifest::collect();
    let cpus = machine.cpu_count.max(1);
    let pinning = Pinning::parse(&a.pin, cpus).map_err(anyhow::Error::msg)?;
    let nofile = idle::raise_nofile();
    let gateways = a.shared.gateways.0.clone();
    let sinks = a
        .sinks
        .iter()
        .map(|s| Sink::parse(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    let peers = peers::parse_peers(&a.peers, &a.peer_pids, a.peer_format)?;
    if !peers.is_empty() && a.brokers.is_none() {
        eprintln!(
            "compare: warning: --peer without --brokers: the peers produce to their own Kafka, not to the kafka-mock compare starts"
        );
    }
    let idle_conns = a
        .idle_conns
        .unwrap_or_else(|| idle::default_idle_conns(nofile, if a.quick { 1000 } else { 5000 }));
    let plan = plan::plan(&Selection {
        gateways,
        sinks,
        scenarios: a.scenarios.clone(),
        quick: a.quick,
        repeats: a.repeats,
        warmup_s: a.warmup.map(|d| d.as_secs_f64()),
        duration_s: a.duration.map(|d| d.as_secs_f64()),
        idle_conns,
        seed: a.seed.unwrap_or_else(lab::now_unix_ms),
    })
    .map_err(anyhow::Error::msg)?;
    let gateway_threads = a
        .shared
        .gateway_threads
        .or(a.threads_old)
        .unwrap_or(if pinning.gateway.is_empty() {
            cpus
        } else {
            pinning.gateway.len()
        })
        .max(1);
    let client_threads = a
        .shared
        .client_threads
        .unwrap_or(if pinning.client.is_empty() {
            cpus.div_ceil(2)
        } else {
            pinning.client.len()
        })
        .max(1);

    let bin_dir = a.shared.bin_dir()?;
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

    let out = out.to_path_buf();

    let est = plan.estimate_s();
    eprintln!(
        "compare: {} variants x {} scenarios = {} cells; search: {} ladders; rounds: {} x cells = {} runs; estimated at most {:.0} s ({:.1} min); order seed {}; pinning: {}; gateway --threads {gateway_threads}, client threads {client_threads}; output {}",
        plan.variants.len(),
        plan.scenarios.len(),
        plan.cells(),
        plan.search_slots().len(),
        plan.repeats,
        plan.slots().len(),
        est,
        est / 60.0,
        plan.seed,
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
            summary: None,
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
    gateway_args.extend(a.shared.producer_args());

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
            producer_overrides: a.shared.producer.clone(),
            producer_config: None,
            topic: a.topic.clone(),
            gateways: gateways_desc,
            client_nofile: nofile,
            client_procs: usize::from(a.client_procs),
        },
        plan: plan.clone(),
        runs: Vec::new(),
        producer: Vec::new(),
        peers: peers.clone(),
    };

    let ctx = RunCtx {
        plan: &plan,
        client_threads,
        topic: &a.topic,
        gateway_args: &gateway_args,
        bins: &bins,
        pinning: &pinning,
        broker_pid: kafka.as_ref().map(|k| k.proc.pid()),
        client_procs: usize::from(a.client_procs),
    };
    let has_kafka_sink = plan.variants.iter().any(|v| v.sink == Sink::Kafka);
    let producer_bin = lab::locate(&bin_dir, "producer-bench").ok();

    // Phase 1: the saturation searches.
    let search = plan.search_slots();
    let total_search = search.len();
    let mut overall = Overall::new(
        "runs",
        total_search + plan.slots().len(),
        Some(Duration::from_secs_f64(est)),
        a.shared.quiet,
        true,
    );
    for &(si, vi) in search.iter() {
        let v = plan.variants[vi];
        let sc = &plan.scenarios[si];
        let t0 = Instant::now();
        let recs = search_one(&ctx, &mut summary, v, sc);
        overall.inc();
        overall.line(&format!(
            "search {:<13} {:<20} {}  [{:.1} s]",
            sc.id,
            v.name(),
            steps_line(&recs),
            t0.elapsed().as_secs_f64()
        ));
        summary.runs.extend(recs);
    }
    peers::search(&ctx, &plan, &peers, &mut summary);
    summary.write(&out)?;

    // Phase 2: the rounds.
    let slots = plan.slots();
    let mut last_round = usize::MAX;
    for sl in slots.iter() {
        if sl.round != last_round {
            // Partial results survive an interrupted run.
            summary.write(&out)?;
            last_round = sl.round;
            if has_kafka_sink {
                let p = bare_producer(
                    producer_bin.as_deref(),
                    &summary.manifest.bootstrap,
                    &a.topic,
                    &a.shared.producer,
                    &pinning.gateway,
                    plan.duration_s.max(1.0),
                    sl.round,
                );
                overall.line(&format!(
                    "round {} bare producer: {}",
                    sl.round + 1,
                    match &p.error {
                        Some(e) => format!("ERROR: {e}"),
                        None => format!(
                            "{:.0} records/s, {:.2} µs CPU per record",
                            p.records_per_sec, p.cpu_us_per_record
                        ),
                    }
                ));
                summary.producer.push(p);
            }
        }
        let v = plan.variants[sl.variant];
        let sc = &plan.scenarios[sl.scenario];
        let t0 = Instant::now();
        let mut rec = new_record(&summary, Phase::Round, sl.round, v, sc);
        let (own, own_kafka) = (v.name(), v.with_sink(Sink::Kafka).name());
        let work = decide(&ctx, &summary, &own, &own_kafka, sc, &mut rec).and_then(|cfg| {
            let producer = &mut summary.manifest.producer_config;
            let mut g = start_gateway(&ctx, v, producer, &mut rec)?;
            let r = one_run(&ctx, &mut g, sc, cfg, &mut rec);
            finish_gateway(g, r)
        });
        if let Err(e) = work {
            rec.error = Some(format!("{e:#}"));
        }
        rec.wall_s = t0.elapsed().as_secs_f64();
        note_first_start(&mut summary, v, &rec, &ctx);
        overall.inc();
        overall.line(&format!(
            "round {}/{} {:<13} {:<20} {}",
            sl.round + 1,
            plan.repeats,
            sc.id,
            v.name(),
            progress_line(&rec)
        ));
        summary.runs.push(rec);
    }
    // The peers' rounds, after the gateways' (they are not restarted between runs).
    peers::rounds(&ctx, &plan, &peers, &mut summary);
    overall.finish();
    drop(kafka);
    summary.manifest.finished_at = Some(now_stamp());
    summary.manifest.wall_s = t_start.elapsed().as_secs_f64();
    summary.write(&out)?;
    let failed_runs = summary.runs.iter().filter(|r| r.error.is_some()).count();
    eprintln!(
        "compare: done in {:.0} s (estimated at most {est:.0} s), {failed_runs} failed run(s)",
        summary.manifest.wall_s,
    );
    Ok(Outcome {
        dir: out,
        failed_runs,
        summary: Some(summary),
    })
}

/// The comparison in the shared shape: run (writing summary.json as it goes) → render
/// report.md and the charts → exit status 1 when a run failed.
pub struct Compare;

impl Experiment for Compare {
    type Args = CompareArgs;
    type Summary = Outcome;

    fn shared(a: &CompareArgs) -> &ExperimentArgs {
        &a.shared
    }
    fn default_out(_: &CompareArgs) -> PathBuf {
        let machine = Manifest::collect();
        lab::default_out_dir(&host_tag(
            machine.cpu_count.max(1),
            machine.hostname.as_deref(),
        ))
    }
    fn run(a: &CompareArgs, dir: &Path) -> anyhow::Result<Outcome> {
        compare(a, dir)
    }
    fn render(o: &Outcome, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
        match &o.summary {
            Some(s) => {
                s.write(dir)?;
                render(s, dir)?;
                Ok(vec![dir.join("summary.json"), dir.join("report.md")])
            }
            None => Ok(vec![]),
        }
    }
    fn finish(_: &CompareArgs, o: &Outcome, files: &[PathBuf]) -> u8 {
        if let Some(r) = files.iter().find(|f| f.ends_with("report.md")) {
            eprintln!("compare: report in {}", r.display());
        }
        u8::from(o.failed_runs > 0)
    }
}

/// What every run shares.
struct RunCtx<'a> {
    plan: &'a Plan,
    client_threads: usize,
    topic: &'a str,
    gateway_args: &'a [String],
    bins: &'a BTreeMap<&'static str, PathBuf>,
    pinning: &'a Pinning,
    broker_pid: Option<u32>,
    /// `--client-procs`.
    client_procs: usize,
}

fn new_record(
    summary: &Summary,
    phase: Phase,
    round: usize,
    v: Variant,
    sc: &plan::Scenario,
) -> RunRecord {
    RunRecord {
        phase,
        round,
        scenario: sc.id.clone(),
        variant: v.name(),
        step: None,
        rate: None,
        rate_from: None,
        result: None,
        idle: None,
        memory: None,
        gateway: None,
        gateway_info: None,
        gateway_version: summary
            .manifest
            .gateways
            .get(&v.name())
            .and_then(|d| d.version.lines().next().map(str::to_string)),
        error: None,
        wall_s: 0.0,
    }
}

/// First successful start of a variant: keep its command and info line.
fn note_first_start(summary: &mut Summary, v: Variant, rec: &RunRecord, ctx: &RunCtx<'_>) {
    if let Some(d) = summary.manifest.gateways.get_mut(&v.name()) {
        if d.info.is_none() && rec.gateway_info.is_some() {
            d.info.clone_from(&rec.gateway_info);
            d.command = spec(ctx, v).command_line();
        }
    }
}

fn spec(ctx: &RunCtx<'_>, v: Variant) -> GatewaySpec {
    let mut args = ctx.gateway_args.to_vec();
    args.extend(["--sink".to_string(), v.sink.name().to_string()]);
    GatewaySpec {
        kind: v.gateway,
        bin: ctx.bins[v.gateway.bin()].clone(),
        brokers: None,
        threads: None,
        args,
        cpus: ctx.pinning.gateway.clone(),
        ready_timeout: Duration::from_secs(30),
        prime_topic: Some(ctx.topic.to_string()),
    }
}

fn start_gateway(
    ctx: &RunCtx<'_>,
    v: Variant,
    producer_config: &mut Option<String>,
    rec: &mut RunRecord,
) -> anyhow::Result<Gateway> {
    let g = Gateway::start(&spec(ctx, v))?;
    if producer_config.is_none() {
        producer_config.clone_from(&g.producer_config);
    }
    rec.gateway_info = g.info_line().ok();
    Ok(g)
}

/// Stop the gateway after the work; an unclean exit fails the run even if the work did not.
fn finish_gateway(g: Gateway, work: anyhow::Result<()>) -> anyhow::Result<()> {
    let stopped = g.stop(Duration::from_secs(30));
    match (work, stopped) {
        (Ok(()), s) => s,
        (Err(e), Ok(())) => Err(e),
        (Err(e), Err(s)) => Err(e.context(format!("stopping the gateway failed too: {s:#}"))),
    }
}

/// A load config for `sc` at `step` (closed loop) or `rate` (open loop).
fn load_config(
    ctx: &RunCtx<'_>,
    mode: Mode,
    payload: usize,
    step: Step,
    rate: Option<f64>,
    search: bool,
) -> anyhow::Result<RunConfig> {
    let plan = ctx.plan;
    let mut c = RunConfig::new("http://127.0.0.1:1")?;
    c.mode = mode;
    c.connections = step.connections;
    match mode {
        Mode::Ws => c.window = step.depth,
        _ => c.pipeline = step.depth,
    }
    c.payload = PayloadSize {
        min: payload,
        max: payload,
    };
    c.topic = ctx.topic.to_string();
    c.threads = ctx.client_threads;
    (c.warmup_s, c.duration_s) = if search {
        (plan.search_warmup_s, Some(plan.search_duration_s))
    } else {
        (plan.warmup_s, Some(plan.duration_s))
    };
    c.requests = None;
    c.progress = false;
    c.rate = rate;
    c.broker_pid = ctx.broker_pid;
    Ok(c)
}

/// One saturation search: one gateway process, the ladder climbed until the gains stop.
fn search_one(
    ctx: &RunCtx<'_>,
    summary: &mut Summary,
    v: Variant,
    sc: &plan::Scenario,
) -> Vec<RunRecord> {
    let (Some((conns, depth, depths)), Some(mode)) = (sc.search(), sc.mode()) else {
        return Vec::new();
    };
    let Shape::Load { payload, .. } = sc.shape else {
        return Vec::new();
    };
    let mut recs: Vec<RunRecord> = Vec::new();
    let mut rec0 = new_record(summary, Phase::Search, 0, v, sc);
    let producer = &mut summary.manifest.producer_config;
    let mut g = match start_gateway(ctx, v, producer, &mut rec0) {
        Ok(g) => g,
        Err(e) => {
            rec0.error = Some(format!("{e:#}"));
            rec0.step = Some(Step {
                connections: conns[0],
                depth,
            });
            return vec![rec0];
        }
    };
    let info = rec0.gateway_info.clone();
    loop {
        let refs: Vec<&RunRecord> = recs.iter().collect();
        let Some(step) = next_step(conns, depth, depths, &outcomes(&refs)) else {
            break;
        };
        let t0 = Instant::now();
        let mut rec = new_record(summary, Phase::Search, 0, v, sc);
        rec.step = Some(step);
        rec.gateway_info.clone_from(&info);
        let work = load_config(ctx, mode, payload, step, None, true)
            .and_then(|c| one_run(ctx, &mut g, sc, Some(c), &mut rec));
        if let Err(e) = work {
            rec.error = Some(format!("{e:#}"));
        }
        rec.wall_s = t0.elapsed().as_secs_f64();
        let failed = rec.error.is_some();
        recs.push(rec);
        if failed || g.proc.exited() {
            break;
        }
    }
    if let Err(e) = finish_gateway(g, Ok(())) {
        if let Some(last) = recs.last_mut() {
            last.error.get_or_insert_with(|| format!("{e:#}"));
        }
    }
    recs
}

/// The config of a rounds-phase run, with the rate (and where it came from) in `rec`;
/// `None` for the memory scenarios.
/// `own` is the variant's name, `own_kafka` the name of the same gateway with Kafka (for
/// open-loop rates derived from its own maximum).
fn decide(
    ctx: &RunCtx<'_>,
    summary: &Summary,
    own: &str,
    own_kafka: &str,
    sc: &plan::Scenario,
    rec: &mut RunRecord,
) -> anyhow::Result<Option<RunConfig>> {
    let Shape::Load {
        mode,
        payload,
        ref offer,
    } = sc.shape
    else {
        return Ok(None);
    };
    let (step, rate) = match offer {
        Offer::Search { .. } => {
            let m = summary
                .search_max(&sc.id, own)
                .with_context(|| format!("the saturation search of {} found no maximum", sc.id))?;
            (m.step, None)
        }
        Offer::OwnMax { pct } => {
            let own = own_kafka;
            let m = summary
                .search_max_unpipelined(MAX_SCENARIO, own)
                .with_context(|| {
                    format!("no {MAX_SCENARIO} maximum of {own} to derive the rate from")
                })?;
            let rate = m.ok_per_sec * f64::from(*pct) / 100.0;
            rec.rate_from = Some(format!(
                "{pct}% of {own}'s {MAX_SCENARIO} search maximum without pipelining ({:.0}/s at {})",
                m.ok_per_sec, m.step
            ));
            let conns = m.step.in_flight().clamp(256, 2048);
            (
                Step {
                    connections: conns,
                    depth: 1,
                },
                Some(rate),
            )
        }
        Offer::Common { pct, connections } | Offer::ManyCommon { pct, connections } => {
            let (min, from) = common_max(summary).with_context(|| {
                format!("no {MAX_SCENARIO} maximum (Kafka sink) to derive the common rate from")
            })?;
            rec.rate_from = Some(format!(
                "{pct}% of the smallest {MAX_SCENARIO} search maximum without pipelining with Kafka ({from}: {min:.0}/s)"
            ));
            (
                Step {
                    connections: *connections,
                    depth: 1,
                },
                offer.rate(Some(min), None),
            )
        }
        Offer::PerConnection {
            connections,
            per_conn,
        } => {
            rec.rate_from = Some(format!(
                "{connections} connections x {per_conn} per second each"
            ));
            (
                Step {
                    connections: *connections,
                    // One message in flight per WebSocket at a time is the traffic asked
                    // for; a small window lets a late ack not hold the next message back.
                    depth: 4,
                },
                offer.rate(None, None),
            )
        }
        Offer::Storm { connections } => (
            Step {
                connections: *connections,
                depth: 1,
            },
            None,
        ),
    };
    rec.step = Some(step);
    rec.rate = rate;
    let mut c = load_config(ctx, mode, payload, step, rate, false)?;
    if offer.is_scale() {
        c.warmup_s = offer.warmup_s(ctx.plan.warmup_s);
        c.source_ips = Some(plan::SCALE_SOURCE_IPS.parse().map_err(anyhow::Error::msg)?);
        if !matches!(offer, Offer::Storm { .. }) {
            c.connect_rate = Some(plan::SCALE_CONNECT_RATE);
        }
    }
    Ok(Some(c))
}

/// The smallest Kafka-sink `http-max` search maximum over the variants, and whose.
fn common_max(summary: &Summary) -> Option<(f64, String)> {
    summary
        .plan
        .variants
        .iter()
        .filter(|v| v.sink == Sink::Kafka)
        .filter_map(|v| {
            Some((
                summary
                    .search_max_unpipelined(MAX_SCENARIO, &v.name())?
                    .ok_per_sec,
                v.name(),
            ))
        })
        .min_by(|a, b| a.0.total_cmp(&b.0))
}

/// One scenario against a running gateway (`cfg`: the load, `None` for the memory
/// scenarios): fills `rec`.
fn one_run(
    ctx: &RunCtx<'_>,
    g: &mut Gateway,
    sc: &plan::Scenario,
    cfg: Option<RunConfig>,
    rec: &mut RunRecord,
) -> anyhow::Result<()> {
    let pid = g.pid();
    let rss0 = lab::proc_status_kib(pid, "VmRSS");
    let cpu0 = lab::proc_cpu_s(pid);
    let wall0 = Instant::now();
    let work: anyhow::Result<()> = (|| {
        match (cfg, &sc.shape) {
            (Some(mut c), _) => {
                c.target = format!("http://{}", g.addr);
                c.authority = g.addr.to_string();
                c.target_pid = Some(pid);
                let mut r = if ctx.client_procs > 1 {
                    let exe = std::env::current_exe().context("locating bench-client")?;
                    procs::run_sharded(&exe, &c, ctx.client_procs, &ctx.pinning.client)?
                } else {
                    crate::engine::run_blocking(c)?
                };
                r.manifest.target_version.clone_from(&rec.gateway_version);
                rec.memory = summary::LoadMemory::of(
                    rss0,
                    r.target_cost.as_ref().and_then(|t| t.rss_kib),
                    r.config.connections,
                );
                rec.result = Some(r);
            }
            (None, Shape::Idle { ws, connections }) => {
                let payload = vec![b'x'; 100];
                rec.idle = Some(idle::hold_idle(
                    g.addr,
                    pid,
                    *connections,
                    *ws,
                    ctx.topic,
                    &payload,
                )?);
            }
            (None, Shape::Load { .. }) => anyhow::bail!("a load scenario without a load config"),
        }
        Ok(())
    })();
    rec.gateway = Some(gateway_stats(pid, cpu0, wall0));
    work
}

/// The CPU, memory and wall time of process `pid` since `cpu0` (its CPU seconds then) and
/// `wall0`: a gateway's or a measured peer's run.
fn gateway_stats(pid: u32, cpu0: Option<f64>, wall0: Instant) -> GatewayStats {
    GatewayStats {
        pid,
        cpu_s: lab::proc_cpu_s(pid)
            .zip(cpu0)
            .map(|(b, a)| (b - a).max(0.0)),
        rss_kib: lab::proc_status_kib(pid, "VmRSS"),
        hwm_kib: lab::proc_status_kib(pid, "VmHWM"),
        wall_s: wall0.elapsed().as_secs_f64(),
    }
}

/// Runs `producer-bench` pinned to the gateway's CPUs against the same broker and topic,
/// with the same `-X` overrides the gateways get.
fn bare_producer(
    bin: Option<&Path>,
    bootstrap: &str,
    topic: &str,
    overrides: &[String],
    cpus: &[usize],
    secs: f64,
    round: usize,
) -> ProducerRun {
    let mut run = ProducerRun {
        round,
        records: 0,
        seconds: 0.0,
        records_per_sec: 0.0,
        cpu_s: 0.0,
        cpu_us_per_record: 0.0,
        command: vec![],
        error: None,
    };
    let Some(bin) = bin else {
        run.error = Some("producer-bench not found next to bench-client".into());
        return run;
    };
    let mut args = vec![
        "--brokers".to_string(),
        bootstrap.to_string(),
        "--topic".into(),
        topic.into(),
        "--duration".into(),
        format!("{secs}s"),
        "--payload".into(),
        "100".into(),
    ];
    for x in overrides {
        args.extend(["-X".to_string(), x.clone()]);
    }
    let shown = lab::command_line(bin, &args, cpus);
    run.command.clone_from(&shown);
    let out = std::process::Command::new(&shown[0])
        .args(&shown[1..])
        .stdin(std::process::Stdio::null())
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            run.error = Some(format!("starting {}: {e}", shown[0]));
            return run;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let parsed = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l.trim()).ok());
    match (out.status.success(), parsed) {
        (true, Some(j)) => {
            let f = |k: &str| j.get(k).and_then(serde_json::Value::as_f64).unwrap_or(0.0);
            run.records = f("records") as u64;
            run.seconds = f("seconds");
            run.records_per_sec = f("records_per_sec");
            run.cpu_s = f("cpu_s");
            run.cpu_us_per_record = f("cpu_us_per_record");
        }
        _ => {
            run.error = Some(format!(
                "producer-bench failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or_default()
            ))
        }
    }
    run
}

/// A search's steps, one `STEP RATE/s (bound)` per step.
fn steps_line(recs: &[RunRecord]) -> String {
    let steps: Vec<String> = recs
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r.step.map_or("-".into(), |s| s.to_string()),
                progress_rate(r)
            )
        })
        .collect();
    steps.join(" | ")
}

fn progress_rate(r: &RunRecord) -> String {
    match (&r.result, &r.error) {
        (_, Some(e)) => format!("ERROR {}", e.lines().next().unwrap_or_default()),
        (Some(res), None) => format!(
            "{}/s ({})",
            fmt_rate(res.totals.ok_per_sec),
            res.binding.bound
        ),
        (None, None) => "-".into(),
    }
}

fn progress_line(r: &RunRecord) -> String {
    let mut s = String::new();
    if let Some(res) = &r.result {
        s = format!(
            "{:>9.0} ok/s  p50 {}  p99 {}  max {}  errors {}  stalls {}  bound {}",
            res.totals.ok_per_sec,
            fmt_us(res.latency.p50_us),
            fmt_us(res.latency.p99_us),
            fmt_us(res.latency.max_us),
            res.totals.errors,
            res.stalls.len(),
            res.binding.bound,
        );
        if let Some(step) = r.step {
            s.push_str(&format!("  at {step}"));
        }
        if let Some(rate) = r.rate {
            s.push_str(&format!("  (open loop {rate:.0}/s)"));
        }
        if let Some(c) = &res.target_cost {
            if res.totals.ok > 0 {
                s.push_str(&format!(
                    "  gw {:.1} µs/req",
                    c.cpu_s * 1e6 / res.totals.ok as f64
                ));
            }
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
