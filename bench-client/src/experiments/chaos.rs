//! `chaos`: load a gateway at ack=kafka while kafka-mock injects faults, then check that
//! nothing acknowledged is missing from Kafka and how throughput came back.
//!
//! Per gateway: a fresh `kafka-mock --control-stdin` and the gateway (with a short
//! `message.timeout.ms`, so an outage longer than it surfaces as 503s rather than as slow
//! 200s); an open loop at a modest rate (the mock keeps only ~100k records / 5 MB per
//! partition, and verification reads everything back), collecting every acknowledged id.
//! During the run (`--faults` selects): every broker down for 5 s, then a 200 ms RTT on
//! one broker, then injected produce errors, then every partition's leader moved to
//! another broker three times (see [`plan`]). After it, while kafka-mock still runs,
//! [`verify`] reads the topic back: any acknowledged id missing is a
//! failure. The report gives, per fault, the per-second series around it, the 503 and
//! error counts, the seconds slowed below half the baseline, and the time to recover.
//!
//! Entry point: [`cli_main`]. Depends on the engine, the lab, the reporting and
//! [`verify`](super::verify); no other module depends on it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};

use crate::engine::analysis::timeline::SecondStats;
use crate::engine::config::{parse_duration, Ack, Mode, PayloadSize, RunConfig};
use crate::engine::probes::manifest::Manifest;
use crate::engine::result::RunResult;
use crate::experiments::shared::{Experiment, ExperimentArgs};
use crate::experiments::verify::{verify, VerifyArgs, VerifyResult};
use crate::lab::{self, ExitInfo, Gateway, GatewayKind, GatewaySpec, KafkaMock};
use crate::reporting::charts::line_chart;
use crate::reporting::outcome;
use crate::reporting::progress::Overall;

pub const CHAOS_SCHEMA_VERSION: u32 = 1;

/// Partitions of the topics kafka-mock creates up front.
const MOCK_PARTITIONS: u32 = 4;

/// Load at ack=kafka through broker outage, RTT, produce errors and partition leader
/// changes; verify nothing acknowledged was lost.
#[derive(Debug, Clone, clap::Args)]
pub struct ChaosArgs {
    #[command(flatten)]
    pub shared: ExperimentArgs,
    /// Measured run time per gateway; the faults are spread over it (all four need 30s;
    /// 40s leaves more room to watch each recovery; leaders alone: 10s).
    #[arg(long, value_parser = parse_duration, default_value = "40s")]
    pub duration: Duration,
    /// Faults to inject, in this order (comma-separated): outage (every broker down 5 s),
    /// rtt (added round-trip time on broker 1), produce-errors, leaders (every partition's
    /// leader moved three times).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "outage,rtt,produce-errors,leaders"
    )]
    pub faults: Vec<FaultKind>,
    /// Open-loop rate (requests/s). Keep rate x duration within the mock's retention
    /// (~100k records / 5 MB per partition, 4 partitions).
    #[arg(long, default_value_t = 2000.0)]
    pub rate: f64,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// Requests in flight per connection.
    #[arg(long, default_value_t = 32)]
    pub pipeline: usize,
    /// Record value size in bytes, or a range LOW..HIGH.
    #[arg(long, default_value = "100")]
    pub payload: PayloadSize,
    /// Kafka topic (created with 4 partitions).
    #[arg(long, default_value = "chaos")]
    pub topic: String,
    /// The gateway's `message.timeout.ms`: records undelivered this long become 503s.
    #[arg(long, value_parser = parse_duration, default_value = "3s")]
    pub message_timeout: Duration,
    /// Round-trip time added to broker 1 in the RTT phase.
    #[arg(long, value_parser = parse_duration, default_value = "200ms")]
    pub rtt: Duration,
    /// Old form of --rtt: milliseconds as a bare number.
    #[arg(long, hide = true, conflicts_with = "rtt")]
    pub rtt_ms: Option<u64>,
    /// Produce requests failed in the produce-error phase (half not-enough-replicas, half
    /// transport errors).
    #[arg(long, default_value_t = 60)]
    pub produce_errors: u64,
    /// Client per-request timeout.
    #[arg(long, value_parser = parse_duration, default_value = "15s")]
    pub timeout: Duration,
    /// Old name of --client-threads.
    #[arg(long = "threads", hide = true)]
    pub threads_old: Option<usize>,
    /// Any other gateway argument, verbatim, repeatable (e.g. --gateway-arg=--backlog
    /// --gateway-arg=64); producer properties go in -X.
    #[arg(long, allow_hyphen_values = true)]
    pub gateway_arg: Vec<String>,
}

impl ChaosArgs {
    /// Defaults as on the command line, for programmatic use (tests).
    pub fn new(gateway: &str) -> anyhow::Result<Self> {
        use clap::Parser;
        #[derive(Parser)]
        struct P {
            #[command(flatten)]
            a: ChaosArgs,
        }
        Ok(P::try_parse_from(["chaos", "--gateways", gateway])?.a)
    }

    /// Client worker threads: --client-threads, or its old name --threads.
    pub fn client_threads(&self) -> Option<usize> {
        self.shared.client_threads.or(self.threads_old)
    }

    /// The RTT of the RTT phase: --rtt, or the old --rtt-ms.
    pub fn rtt(&self) -> Duration {
        self.rtt_ms.map_or(self.rtt, Duration::from_millis)
    }
}

/// A kind of fault `chaos` can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// Every broker down for 5 s.
    Outage,
    /// Added round-trip time on broker 1.
    Rtt,
    /// Injected produce errors.
    ProduceErrors,
    /// Every partition's leader moved to another broker, three times.
    Leaders,
}

/// What [`plan`] lays out.
#[derive(Debug, Clone)]
pub struct PlanSpec<'a> {
    pub kinds: &'a [FaultKind],
    pub rtt_ms: u64,
    pub produce_errors: u64,
    /// Topic and partition count of the leader changes.
    pub topic: &'a str,
    pub partitions: u32,
}

/// One planned fault: commands at `start_s` and at `end_s` (seconds of the measured phase).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    pub name: String,
    pub start_s: f64,
    pub end_s: f64,
    pub begin: Vec<String>,
    pub end: Vec<String>,
    /// Commands between the two, `(seconds of the measured phase, command)` (absent in
    /// older files).
    #[serde(default)]
    pub during: Vec<(f64, String)>,
}

/// The schedule for a run of `d` seconds: a baseline, then each fault of `spec.kinds` in
/// order, with a gap after each, and a tail to watch the recovery: all brokers down for
/// 5 s; RTT on broker 1; produce errors; every partition's leader moved three times. An
/// error when they do not fit in `d`.
pub fn plan(d: f64, spec: &PlanSpec) -> Result<Vec<Fault>, String> {
    let base = (0.15 * d).max(3.0);
    let gap = (0.1 * d).max(2.5);
    let brokers = |cmd: &str| (1..=3).map(|b| format!("{cmd} {b}")).collect::<Vec<_>>();
    let half = spec.produce_errors.div_ceil(2);
    let (rtt_ms, errors) = (spec.rtt_ms, spec.produce_errors);
    // Round r moves partition p's leadership to broker (p + r + 1) % 3 + 1: three rounds
    // give each partition every broker once.
    let leaders = |r: u32| -> Vec<String> {
        (0..spec.partitions)
            .map(|p| format!("leader {} {p} {}", spec.topic, (p + r + 1) % 3 + 1))
            .collect()
    };
    let mut out = Vec::new();
    let mut t = base;
    for &k in spec.kinds {
        let (len, mut f) = match k {
            FaultKind::Outage => (
                5.0,
                Fault {
                    name: "all brokers down 5 s".into(),
                    begin: brokers("broker-down"),
                    end: brokers("broker-up"),
                    ..Fault::default()
                },
            ),
            FaultKind::Rtt => (
                (0.1 * d).max(2.5),
                Fault {
                    name: format!("{rtt_ms} ms RTT on broker 1"),
                    begin: vec![format!("rtt 1 {rtt_ms}")],
                    end: vec!["rtt 1 0".into()],
                    ..Fault::default()
                },
            ),
            FaultKind::ProduceErrors => (
                (0.1 * d).max(2.0),
                Fault {
                    name: format!("{errors} produce errors"),
                    begin: vec![
                        format!("produce-errors {half} not-enough-replicas"),
                        format!("produce-errors {} transport", errors - half),
                    ],
                    end: vec!["clear-errors".into()],
                    ..Fault::default()
                },
            ),
            FaultKind::Leaders => (
                (0.1 * d).max(3.0),
                Fault {
                    name: format!("{} partition leaders moved 3 times", spec.partitions),
                    begin: leaders(0),
                    ..Fault::default()
                },
            ),
        };
        f.start_s = t;
        f.end_s = t + len;
        if k == FaultKind::Leaders {
            for r in 1..3u32 {
                let at = t + len * f64::from(r) / 3.0;
                f.during.extend(leaders(r).into_iter().map(|c| (at, c)));
            }
        }
        t = f.end_s + gap;
        out.push(f);
    }
    // At least 2.5 s after the last fault to show the recovery.
    let last_end = out.last().map_or(0.0, |f: &Fault| f.end_s);
    if last_end + 2.5 > d {
        let names: Vec<String> = spec
            .kinds
            .iter()
            .filter_map(clap::ValueEnum::to_possible_value)
            .map(|v| v.get_name().to_string())
            .collect();
        return Err(format!(
            "--duration {d}s is too short for --faults {}: with the baseline, gaps and a 2.5 s recovery tail they take {:.1}s (give a longer --duration or fewer --faults)",
            names.join(","),
            last_end + 2.5
        ));
    }
    Ok(out)
}

/// A fault-injection command as sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Injected {
    /// Seconds since the measured phase began.
    pub at_s: f64,
    pub command: String,
    /// `ok` or the error.
    pub reply: String,
}

/// What one fault did to the load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultEffect {
    pub fault: Fault,
    /// Mean ok/s over the seconds before the first fault.
    pub baseline_ok_per_sec: f64,
    /// Mean ok/s over the seconds the fault was active.
    pub ok_per_sec_during: f64,
    pub min_ok_per_sec: u64,
    /// From the fault's start to the next fault (or the end): 503/nack responses.
    pub backpressure: u64,
    /// Same span: failed requests.
    pub errors: u64,
    /// Same span: seconds with ok/s below half the baseline.
    pub slowed_seconds: u64,
    /// Seconds from the fault's end until a second reached 90% of the baseline again
    /// (`None`: not before the next fault or the end of the run).
    pub recovered_after_s: Option<f64>,
    /// Per-second series from 3 s before the fault to the next fault (or the end);
    /// `second` counts from the start of the measured phase.
    pub series: Vec<SecondStats>,
}

/// Effects of `faults` (in time order) on a per-second `timeline`.
pub fn effects(timeline: &[SecondStats], faults: &[Fault]) -> Vec<FaultEffect> {
    let end = timeline.len() as f64;
    let first = faults.first().map_or(end, |f| f.start_s);
    let before: Vec<f64> = timeline
        .iter()
        // The first second after warmup can carry warmup leftovers; skip it if possible.
        .filter(|s| (s.second as f64 + 1.0) <= first && (s.second > 0 || first < 3.0))
        .map(|s| s.ok as f64)
        .collect();
    let baseline = before.iter().sum::<f64>() / before.len().max(1) as f64;
    faults
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let until = faults.get(i + 1).map_or(end, |n| n.start_s);
            let within = |s: &&SecondStats, from: f64, to: f64| {
                let t = s.second as f64;
                t + 1.0 > from && t < to
            };
            let during: Vec<&SecondStats> = timeline
                .iter()
                .filter(|s| within(s, f.start_s, f.end_s))
                .collect();
            let span: Vec<&SecondStats> = timeline
                .iter()
                .filter(|s| within(s, f.start_s, until))
                .collect();
            let recovered_after_s = timeline
                .iter()
                .filter(|s| s.second as f64 >= f.end_s.floor() && (s.second as f64) < until)
                .find(|s| s.ok as f64 >= 0.9 * baseline)
                .map(|s| (s.second as f64 + 1.0 - f.end_s).max(0.0));
            FaultEffect {
                fault: f.clone(),
                baseline_ok_per_sec: baseline,
                ok_per_sec_during: during.iter().map(|s| s.ok as f64).sum::<f64>()
                    / during.len().max(1) as f64,
                min_ok_per_sec: during.iter().map(|s| s.ok).min().unwrap_or(0),
                backpressure: span.iter().map(|s| s.backpressure).sum(),
                errors: span.iter().map(|s| s.errors).sum(),
                slowed_seconds: span
                    .iter()
                    .filter(|s| (s.ok as f64) < 0.5 * baseline)
                    .count() as u64,
                recovered_after_s,
                series: timeline
                    .iter()
                    .filter(|s| within(s, f.start_s - 3.0, until))
                    .cloned()
                    .collect(),
            }
        })
        .collect()
}

/// One gateway's chaos run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GatewayChaos {
    pub gateway: String,
    pub version: Option<String>,
    pub injected: Vec<Injected>,
    pub effects: Vec<FaultEffect>,
    /// HTTP 503 responses over the measured phase.
    pub status_503: u64,
    pub verify: VerifyResult,
    /// `/metrics` at the end (histogram buckets left out).
    pub metrics_end: BTreeMap<String, f64>,
    pub exit: Option<ExitInfo>,
    /// The load run, with its per-second timeline.
    pub run: RunResult,
    /// Why this gateway failed (empty: passed).
    pub failures: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChaosReport {
    pub schema_version: u32,
    pub started_at_unix_ms: u64,
    pub duration_s: f64,
    pub rate: f64,
    pub message_timeout_ms: u64,
    pub plan: Vec<Fault>,
    pub manifest: Manifest,
    pub gateways: Vec<GatewayChaos>,
    /// Gateways that could not be run at all: `(gateway, error)`.
    pub not_run: Vec<(String, String)>,
    pub passed: bool,
}

fn say(quiet: bool, msg: impl AsRef<str>) {
    if !quiet {
        eprintln!("chaos: {}", msg.as_ref());
    }
}

pub fn run_chaos(a: &ChaosArgs) -> anyhow::Result<ChaosReport> {
    let d = a.duration.as_secs_f64();
    let faults = plan(
        d,
        &PlanSpec {
            kinds: &a.faults,
            rtt_ms: a.rtt().as_millis() as u64,
            produce_errors: a.produce_errors,
            topic: &a.topic,
            partitions: MOCK_PARTITIONS,
        },
    )
    .map_err(anyhow::Error::msg)?;
    if !(a.rate > 0.0 && a.rate.is_finite()) {
        bail!("--rate must be positive");
    }
    let per_partition = a.rate * d / 4.0;
    if per_partition > 90_000.0 || per_partition * a.payload.max as f64 > 4.5e6 {
        say(
            a.shared.quiet,
            format!(
                "warning: about {per_partition:.0} records per partition may exceed the mock's \
                 retention (~100k records / 5 MB per partition): lower --rate or --duration"
            ),
        );
    }
    let bin_dir = a.shared.bin_dir()?;
    lab::locate(&bin_dir, "kafka-mock")?;
    for k in &a.shared.gateways.0 {
        lab::locate(&bin_dir, k.bin())?;
    }
    let started_at_unix_ms = lab::now_unix_ms();
    let kinds = &a.shared.gateways.0;
    // The runs draw their own bar: the overall status prefixes the lines instead.
    let overall = std::cell::RefCell::new(Overall::new(
        "gateways",
        kinds.len(),
        Some((a.duration + Duration::from_secs(10)) * kinds.len() as u32),
        a.shared.quiet,
        false,
    ));
    let (gateways, not_run) = lab::each_gateway(
        kinds,
        "not run",
        |k| chaos_one(k, a, &bin_dir, &faults),
        one_line,
        |l| {
            overall.borrow_mut().inc();
            overall.borrow().line(&format!("chaos: {l}"));
        },
    );
    let passed = not_run.is_empty() && gateways.iter().all(|g| g.failures.is_empty());
    Ok(ChaosReport {
        schema_version: CHAOS_SCHEMA_VERSION,
        started_at_unix_ms,
        duration_s: d,
        rate: a.rate,
        message_timeout_ms: a.message_timeout.as_millis() as u64,
        plan: faults,
        manifest: Manifest::collect(),
        gateways,
        not_run,
        passed,
    })
}

/// Sends every command of `faults` at its time (relative to `t0`), recording the replies.
fn drive_faults(kafka: &mut KafkaMock, faults: &[Fault], t0: Instant) -> Vec<Injected> {
    let mut events: Vec<(f64, &String)> = faults
        .iter()
        .flat_map(|f| {
            f.begin
                .iter()
                .map(|c| (f.start_s, c))
                .chain(f.during.iter().map(|(at, c)| (*at, c)))
                .chain(f.end.iter().map(|c| (f.end_s, c)))
        })
        .collect();
    events.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut out = Vec::new();
    for (at, cmd) in events {
        let when = t0 + Duration::from_secs_f64(at);
        if let Some(w) = when.checked_duration_since(Instant::now()) {
            std::thread::sleep(w);
        }
        let reply = match kafka.control(cmd) {
            Ok(()) => "ok".to_string(),
            Err(e) => format!("error: {e:#}"),
        };
        out.push(Injected {
            at_s: Instant::now().saturating_duration_since(t0).as_secs_f64(),
            command: cmd.clone(),
            reply,
        });
    }
    out
}

fn chaos_one(
    kind: GatewayKind,
    a: &ChaosArgs,
    bin_dir: &Path,
    faults: &[Fault],
) -> anyhow::Result<GatewayChaos> {
    let name = kind.name();
    let mut kafka = KafkaMock::start(bin_dir, &[&a.topic], true, &[])?;
    let mut extra = vec![
        "-X".to_string(),
        format!("message.timeout.ms={}", a.message_timeout.as_millis()),
    ];
    extra.extend(a.shared.producer_args());
    extra.extend(a.gateway_arg.iter().cloned());
    let mut gw = Gateway::start(&GatewaySpec {
        brokers: Some(kafka.bootstrap.clone()),
        threads: a.shared.gateway_threads,
        args: extra,
        ..GatewaySpec::new(kind, bin_dir)?
    })?;
    let version = Manifest::target_version_of(&gw.bin);

    let mut c = RunConfig::new(&gw.target())?;
    c.mode = Mode::Http;
    c.ack = Ack::Kafka;
    c.collect_acks = true;
    c.rate = Some(a.rate);
    c.connections = a.connections.max(1);
    c.pipeline = a.pipeline.max(1);
    c.payload = a.payload;
    c.topic = a.topic.clone();
    c.duration_s = Some(a.duration.as_secs_f64());
    c.timeout_s = a.timeout.as_secs_f64();
    c.warmup_s = 1.0;
    c.progress = !a.shared.quiet;
    if let Some(t) = a.client_threads() {
        c.threads = t.max(1);
    }
    say(
        a.shared.quiet,
        format!(
            "{name}: {:.0} req/s at ack=kafka for {:?}; faults at {}",
            a.rate,
            a.duration,
            faults
                .iter()
                .map(|f| format!("{:.1}-{:.1} s {}", f.start_s, f.end_s, f.name))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    let t0 = Instant::now() + c.warmup();
    let (run, injected) = std::thread::scope(|s| {
        let driver = s.spawn(|| drive_faults(&mut kafka, faults, t0));
        let run = crate::engine::run_blocking(c);
        let injected = driver.join().unwrap_or_default();
        (run, injected)
    });
    let mut run = run?;
    run.manifest.target_version = version.clone();

    let mut failures = Vec::new();
    for i in injected.iter().filter(|i| i.reply != "ok") {
        failures.push(format!("fault command {:?} failed: {}", i.command, i.reply));
    }
    // Wind the faults back in case the run ended early, so verification can read.
    for cmd in [
        "broker-up 1",
        "broker-up 2",
        "broker-up 3",
        "rtt 1 0",
        "clear-errors",
    ] {
        let _ = kafka.control(cmd);
    }
    let metrics_end = lab::final_metrics(&gw, "run", &mut failures);
    // SIGTERM drains and flushes; acknowledged records are in Kafka whatever happens next.
    let exit = gw.terminate(Duration::from_secs(30)).ok();
    match &exit {
        Some(e) if e.clean => {}
        Some(e) => failures.push(format!(
            "gateway did not exit cleanly on SIGTERM (code {:?} after {:.1} s)",
            e.code, e.after_s
        )),
        None => failures.push("could not stop the gateway".into()),
    }

    say(
        a.shared.quiet,
        format!("{name}: verifying {} acknowledged ids", run.acked),
    );
    let acked_file = std::env::temp_dir().join(format!(
        "bench-chaos-{}-{}-{}.acked",
        std::process::id(),
        name,
        run.run_id
    ));
    crate::engine::result::write_acked(&run, &acked_file)?;
    let v = verify(&VerifyArgs {
        brokers: kafka.bootstrap.clone(),
        topic: a.topic.clone(),
        acked_file: acked_file.clone(),
        timeout: Duration::from_secs(90),
        json: None,
        property: vec![],
    });
    let _ = std::fs::remove_file(&acked_file);
    drop(kafka);
    let v = v.context("verifying against kafka-mock")?;
    if v.missing > 0 {
        failures.push(format!(
            "{} acknowledged record(s) missing from Kafka{}",
            v.missing,
            if v.retention_trimmed {
                " (retention trimmed some partitions: lower --rate or --duration)"
            } else {
                ""
            }
        ));
    }
    if !v.complete {
        failures.push("verification could not read every partition to its end".into());
    }
    if run.acked == 0 {
        failures.push("nothing was acknowledged".into());
    }

    let effects = effects(&run.timeline, faults);
    Ok(GatewayChaos {
        gateway: name.to_string(),
        version,
        injected,
        effects,
        status_503: run.http_status.get(&503).copied().unwrap_or(0),
        verify: v,
        metrics_end,
        exit,
        run,
        failures,
    })
}

fn one_line(g: &GatewayChaos) -> String {
    let eff: Vec<String> = g
        .effects
        .iter()
        .map(|e| {
            format!(
                "[{}: {:.0} ok/s during, {} x 503, {} slowed s, recovered {}]",
                e.fault.name,
                e.ok_per_sec_during,
                e.backpressure,
                e.slowed_seconds,
                e.recovered_after_s
                    .map_or("no".into(), |r| format!("within {r:.1} s"))
            )
        })
        .collect();
    format!(
        "{}: {} acked, {} missing, {} duplicated; {} x 503, {} errors; {}; {}",
        g.gateway,
        g.verify.acked,
        g.verify.missing,
        g.verify.duplicates,
        g.status_503,
        g.run.totals.errors,
        eff.join(" "),
        outcome::verdict(&g.failures)
    )
}

/// `bench-client chaos`: run, write the outputs, print the summary; the exit code is 0
/// when every gateway passed (nothing acknowledged missing), 1 otherwise.
pub fn cli_main(a: &ChaosArgs) -> anyhow::Result<u8> {
    crate::experiments::shared::main::<Chaos>(a)
}

/// The chaos experiment in the shared shape.
pub struct Chaos;

impl Experiment for Chaos {
    type Args = ChaosArgs;
    type Summary = ChaosReport;

    fn shared(a: &ChaosArgs) -> &ExperimentArgs {
        &a.shared
    }
    fn default_out(_: &ChaosArgs) -> PathBuf {
        lab::default_out_dir("chaos")
    }
    fn run(a: &ChaosArgs, _dir: &Path) -> anyhow::Result<ChaosReport> {
        run_chaos(a)
    }
    fn render(r: &ChaosReport, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
        write_chaos(r, dir)
    }
    fn finish(_: &ChaosArgs, r: &ChaosReport, files: &[PathBuf]) -> u8 {
        outcome::print_outcome(
            "chaos",
            r.gateways.iter().map(one_line),
            "not run",
            &r.not_run,
            r.passed,
            files,
        )
    }
}

/// Writes `chaos.json`, `chaos.md`, `chaos-throughput.svg`, `chaos-backpressure.svg`.
pub fn write_chaos(r: &ChaosReport, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let bands: Vec<(String, f64, f64)> = r
        .plan
        .iter()
        .map(|f| (f.name.clone(), f.start_s, f.end_s))
        .collect();
    let series = |f: &dyn Fn(&SecondStats) -> u64| -> Vec<(String, Vec<(f64, f64)>)> {
        r.gateways
            .iter()
            .map(|g| {
                let pts = g
                    .run
                    .timeline
                    .iter()
                    .map(|s| (s.second as f64 + 0.5, f(s) as f64))
                    .collect();
                (g.gateway.clone(), pts)
            })
            .collect()
    };
    let chart = |title: &str, y: &str, f: &dyn Fn(&SecondStats) -> u64| {
        line_chart(title, "seconds", y, &series(f), &bands, true)
    };
    let files = [
        ("chaos.json", serde_json::to_string_pretty(r)? + "\n"),
        (
            "chaos-throughput.svg",
            chart(
                "Acknowledged (ack=kafka) per second through the faults",
                "ok/s",
                &|s| s.ok,
            )?,
        ),
        (
            "chaos-backpressure.svg",
            chart("503 per second through the faults", "503/s", &|s| {
                s.backpressure
            })?,
        ),
        ("chaos.md", chaos_markdown(r)),
    ];
    outcome::write_files(dir, &files)
}

pub fn chaos_markdown(r: &ChaosReport) -> String {
    let mut s = String::new();
    let m = &r.manifest;
    let _ = writeln!(s, "# Chaos: faults under load at ack=kafka\n");
    let _ = writeln!(
        s,
        "Each gateway against its own kafka-mock (3 brokers, 4 partitions), open loop at \
         {:.0} req/s for {:.0} s, HTTP keep-alive, ack=kafka, gateway `message.timeout.ms={}`. \
         Every acknowledged id is read back from Kafka afterwards (`verify`). Machine: {} x {}, \
         kernel {}; commit {}{}.\n",
        r.rate,
        r.duration_s,
        r.message_timeout_ms,
        m.cpu_count,
        m.cpu_model.as_deref().unwrap_or("?"),
        m.kernel.as_deref().unwrap_or("?"),
        m.commit.as_deref().map_or("?", |c| &c[..c.len().min(12)]),
        m.dirty_note()
    );
    let _ = writeln!(s, "Faults (seconds of the measured phase):\n");
    for f in &r.plan {
        let mut steps = vec![format!("`{}`", f.begin.join("`, `"))];
        let mut at = f64::NAN;
        for (t, c) in &f.during {
            if *t != at {
                steps.push(format!("at {t:.1} s `{c}`"));
                at = *t;
            } else if let Some(last) = steps.last_mut() {
                last.push_str(&format!(", `{c}`"));
            }
        }
        if !f.end.is_empty() {
            steps.push(format!("`{}`", f.end.join("`, `")));
        }
        let _ = writeln!(
            s,
            "- {:.1}-{:.1} s: **{}** ({})",
            f.start_s,
            f.end_s,
            f.name,
            steps.join(", then ")
        );
    }
    let _ = writeln!(
        s,
        "\nVerdict: **{}** (fails on any acknowledged record missing from Kafka)\n",
        if r.passed { "PASS" } else { "FAIL" }
    );
    let _ = writeln!(
        s,
        "| gateway | acked | missing | duplicated | ok/s | 503 | errors | in flight at end | SIGTERM exit | verdict |"
    );
    let _ = writeln!(s, "|{}", "---|".repeat(10));
    for g in &r.gateways {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.0} | {} | {} | {} | {} | {} |",
            g.gateway,
            g.verify.acked,
            g.verify.missing,
            g.verify.duplicates,
            g.run.totals.ok_per_sec,
            g.status_503,
            g.run.totals.errors,
            g.run.totals.in_flight_at_end,
            g.exit.as_ref().map_or("-".into(), |e| format!(
                "{} in {:.1} s",
                e.code.map_or("signal".into(), |c| c.to_string()),
                e.after_s
            )),
            if g.failures.is_empty() {
                "pass".to_string()
            } else {
                format!("FAIL: {}", g.failures.join("; "))
            }
        );
    }
    for (gw, e) in &r.not_run {
        let _ = writeln!(s, "\n**{gw} was not run**: {e}");
    }
    let _ = writeln!(
        s,
        "\n![throughput through the faults](chaos-throughput.svg)\n\n![503 through the faults](chaos-backpressure.svg)\n"
    );
    let _ = writeln!(s, "## Per fault\n");
    let _ = writeln!(
        s,
        "Baseline: mean ok/s before the first fault. Span: from the fault's start to the next \
         fault. Slowed: seconds of the span below half the baseline. Recovered: from the \
         fault's end to the first second at 90% of the baseline.\n"
    );
    let _ = writeln!(
        s,
        "| gateway | fault | baseline ok/s | ok/s during | min ok/s | 503 in span | errors in span | slowed s | recovered after |"
    );
    let _ = writeln!(s, "|{}", "---|".repeat(9));
    for g in &r.gateways {
        for e in &g.effects {
            let _ = writeln!(
                s,
                "| {} | {} | {:.0} | {:.0} | {} | {} | {} | {} | {} |",
                g.gateway,
                e.fault.name,
                e.baseline_ok_per_sec,
                e.ok_per_sec_during,
                e.min_ok_per_sec,
                e.backpressure,
                e.errors,
                e.slowed_seconds,
                e.recovered_after_s
                    .map_or("not in span".into(), |r| format!("{r:.1} s"))
            );
        }
    }
    for g in &r.gateways {
        let _ = writeln!(s, "\n## {}\n", g.gateway);
        if let Some(v) = &g.version {
            let _ = writeln!(s, "`{v}`\n");
        }
        let _ = writeln!(
            s,
            "Per second (ok / 503 / errors): {}\n",
            g.run
                .timeline
                .iter()
                .map(|x| format!("{}/{}/{}", x.ok, x.backpressure, x.errors))
                .collect::<Vec<_>>()
                .join(" ")
        );
        if !g.run.errors.is_empty() {
            let list: Vec<String> = g
                .run
                .errors
                .iter()
                .map(|e| format!("{} {}: {}", e.phase, e.kind, e.count))
                .collect();
            let _ = writeln!(s, "Errors: {}.\n", list.join(", "));
        }
        let _ = writeln!(
            s,
            "Gateway counters at the end: delivered {}, failed {}, rejected {}.\n",
            metric(&g.metrics_end, "gateway_records_delivered_total"),
            metric_sum(&g.metrics_end, "gateway_records_failed_total"),
            metric(&g.metrics_end, "gateway_records_rejected_total"),
        );
        let _ = writeln!(
            s,
            "{}",
            crate::experiments::verify::verify_summary(&g.verify)
        );
    }
    let _ = writeln!(
        s,
        "Data: `chaos.json` (per gateway: injected commands with their times, per-fault \
         series, the verification and the full run result). Command: `{}`.",
        m.args.join(" ")
    );
    s
}

fn metric(m: &BTreeMap<String, f64>, k: &str) -> String {
    m.get(k).map_or("-".into(), |v| format!("{v:.0}"))
}

/// A family's series summed over its labels (`gateway_records_failed_total{reason=…}`;
/// older reports stored it unlabelled).
fn metric_sum(m: &BTreeMap<String, f64>, family: &str) -> String {
    let labelled = format!("{family}{{");
    let values: Vec<f64> = m
        .iter()
        .filter(|(k, _)| k.as_str() == family || k.starts_with(&labelled))
        .map(|(_, v)| *v)
        .collect();
    if values.is_empty() {
        "-".into()
    } else {
        format!("{:.0}", values.iter().sum::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sec(i: u64, ok: u64, bp: u64) -> SecondStats {
        SecondStats {
            second: i,
            sent: ok + bp,
            completed: ok + bp,
            ok,
            errors: 0,
            backpressure: bp,
            connects: 0,
            connect_errors: 0,
            open_connections: 8,
            cpu_util: 0.1,
        }
    }

    const THREE: [FaultKind; 3] = [FaultKind::Outage, FaultKind::Rtt, FaultKind::ProduceErrors];
    const ALL: [FaultKind; 4] = [
        FaultKind::Outage,
        FaultKind::Rtt,
        FaultKind::ProduceErrors,
        FaultKind::Leaders,
    ];

    fn spec(kinds: &[FaultKind]) -> PlanSpec<'_> {
        PlanSpec {
            kinds,
            rtt_ms: 200,
            produce_errors: 60,
            topic: "chaos",
            partitions: 4,
        }
    }

    #[test]
    fn plan_fits_the_run() {
        for (kinds, d) in [
            (&THREE[..], 20.0),
            (&ALL[..], 30.0),
            (&ALL[..], 40.0),
            (&ALL[..], 600.0),
        ] {
            let p = plan(d, &spec(kinds)).unwrap();
            assert_eq!(p.len(), kinds.len());
            assert!((p[0].end_s - p[0].start_s - 5.0).abs() < 1e-9);
            for w in p.windows(2) {
                assert!(w[0].end_s < w[1].start_s, "{p:?}");
            }
            assert!(p.last().unwrap().end_s < d, "{d}: {p:?}");
            assert_eq!(p[2].begin.len(), 2);
        }
        assert!(plan(20.0, &spec(&ALL)).is_err());
        assert!(plan(8.0, &spec(&[FaultKind::Leaders])).is_err());
    }

    #[test]
    fn leader_changes_move_every_partition_to_every_broker() {
        let p = plan(10.0, &spec(&[FaultKind::Leaders])).unwrap();
        let f = &p[0];
        assert_eq!((f.start_s, f.end_s), (3.0, 6.0));
        assert!(f.end.is_empty());
        let mut cmds: Vec<(f64, &str)> = f.begin.iter().map(|c| (f.start_s, c.as_str())).collect();
        cmds.extend(f.during.iter().map(|(t, c)| (*t, c.as_str())));
        assert_eq!(cmds.len(), 12);
        for part in 0..4 {
            let mut brokers: Vec<&str> = cmds
                .iter()
                .filter_map(|(_, c)| c.strip_prefix(&format!("leader chaos {part} ")))
                .collect();
            brokers.sort_unstable();
            assert_eq!(brokers, ["1", "2", "3"], "partition {part}");
        }
        // The rounds are spread over the phase, inside it.
        assert!(f.during.iter().all(|(t, _)| *t > f.start_s && *t < f.end_s));
    }

    #[test]
    fn effects_of_an_outage() {
        let faults = plan(20.0, &spec(&THREE)).unwrap();
        // Outage 3..8 s: nothing acknowledged, 503s from second 6 on, a surge at 8.
        let tl: Vec<SecondStats> = (0..20)
            .map(|i| match i {
                3..=7 => sec(i, 0, if i >= 6 { 500 } else { 0 }),
                8 => sec(i, 4000, 0),
                _ => sec(i, 2000, 0),
            })
            .collect();
        let e = effects(&tl, &faults);
        assert_eq!(e[0].baseline_ok_per_sec, 2000.0);
        assert_eq!(e[0].ok_per_sec_during, 0.0);
        assert_eq!(e[0].backpressure, 1000);
        assert_eq!(e[0].slowed_seconds, 5);
        assert_eq!(e[0].recovered_after_s, Some(1.0));
        assert_eq!(e[0].series.first().unwrap().second, 0);
        // The RTT phase did not slow anything here.
        assert_eq!(e[1].slowed_seconds, 0);
        assert_eq!(e[1].recovered_after_s, Some(1.0));
    }

    #[test]
    fn renders_a_report() {
        let faults = plan(20.0, &spec(&THREE)).unwrap();
        let mut run = crate::experiments::soak::tests::synthetic_run(20, |i| {
            if (3..8).contains(&i) {
                0
            } else {
                2000
            }
        });
        run.config.collect_acks = true;
        let v = VerifyResult {
            topic: "chaos".into(),
            acked: 30_000,
            found: 30_000,
            missing: 0,
            duplicates: 0,
            scanned: 30_100,
            unacked_same_run: 100,
            partitions: vec![],
            complete: true,
            retention_trimmed: false,
            missing_sample: vec![],
            duplicate_sample: vec![],
        };
        let g = GatewayChaos {
            gateway: "tokio-multi".into(),
            version: None,
            injected: vec![],
            effects: effects(&run.timeline, &faults),
            status_503: 1,
            verify: v,
            metrics_end: BTreeMap::new(),
            exit: None,
            run,
            failures: vec![],
        };
        let r = ChaosReport {
            schema_version: CHAOS_SCHEMA_VERSION,
            started_at_unix_ms: 0,
            duration_s: 20.0,
            rate: 2000.0,
            message_timeout_ms: 3000,
            plan: faults,
            manifest: Manifest::collect(),
            gateways: vec![g],
            not_run: vec![],
            passed: true,
        };
        let md = chaos_markdown(&r);
        assert!(md.contains("| tokio-multi | 30000 | 0 |"), "{md}");
        assert!(md.contains("all brokers down 5 s"));
        let dir = std::env::temp_dir().join(format!("chaos-render-{}", std::process::id()));
        let files = write_chaos(&r, &dir).unwrap();
        assert_eq!(files.len(), 4);
        let svg = std::fs::read_to_string(dir.join("chaos-throughput.svg")).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("all brokers down"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
