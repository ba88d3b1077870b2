//! Running `chaos`: per gateway a fresh kafka-mock and gateway, the load with the faults
//! driven alongside ([`drive_faults`]), then the gateway stopped and every acknowledged id
//! verified ([`run_chaos`] → [`ChaosReport`]).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use super::args::ChaosArgs;
use super::faults::{effects, plan, Fault, PlanSpec};
use super::report::one_line;
use super::summary::{ChaosReport, GatewayChaos, Injected, CHAOS_SCHEMA_VERSION};
use crate::engine::config::{Ack, Mode, RunConfig};
use crate::engine::probes::manifest::Manifest;
use crate::engine::result::RunResult;
use crate::experiments::verify::{verify, VerifyArgs, VerifyResult};
use crate::lab::{self, ExitInfo, Gateway, GatewayKind, GatewaySpec, KafkaMock};
use crate::reporting::progress::Overall;

/// Partitions of the topics kafka-mock creates up front.
const MOCK_PARTITIONS: u32 = 4;

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

/// One gateway through the faults: start kafka-mock and the gateway, run the load with the
/// faults driven alongside, stop the gateway, verify what it acknowledged.
fn chaos_one(
    kind: GatewayKind,
    a: &ChaosArgs,
    bin_dir: &Path,
    faults: &[Fault],
) -> anyhow::Result<GatewayChaos> {
    let name = kind.name();
    let mut kafka = KafkaMock::start(bin_dir, &[&a.topic], true, &[])?;
    let mut gw = start_gateway(kind, a, bin_dir, &kafka)?;
    let version = Manifest::target_version_of(&gw.bin);
    let c = load_config(a, &gw.target())?;
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
    let (metrics_end, exit) = stop_gateway(&mut kafka, &mut gw, &mut failures);
    say(
        a.shared.quiet,
        format!("{name}: verifying {} acknowledged ids", run.acked),
    );
    let v = verify_acked(kafka, a, name, &run)?;
    judge_verification(&v, &run, &mut failures);

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

/// The gateway against `kafka`, with the short `message.timeout.ms` and the user's `-X`
/// and gateway arguments.
fn start_gateway(
    kind: GatewayKind,
    a: &ChaosArgs,
    bin_dir: &Path,
    kafka: &KafkaMock,
) -> anyhow::Result<Gateway> {
    let mut extra = vec![
        "-X".to_string(),
        format!("message.timeout.ms={}", a.message_timeout.as_millis()),
    ];
    extra.extend(a.shared.producer_args());
    extra.extend(a.gateway_arg.iter().cloned());
    Gateway::start(&GatewaySpec {
        brokers: Some(kafka.bootstrap.clone()),
        threads: a.shared.gateway_threads,
        args: extra,
        ..GatewaySpec::new(kind, bin_dir)?
    })
}

/// The load: an open loop at ack=kafka collecting every acknowledged id.
fn load_config(a: &ChaosArgs, target: &str) -> anyhow::Result<RunConfig> {
    let mut c = RunConfig::new(target)?;
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
    Ok(c)
}

/// Winds the faults back, reads the gateway's final `/metrics` and stops it with SIGTERM;
/// an unclean exit is a failure.
fn stop_gateway(
    kafka: &mut KafkaMock,
    gw: &mut Gateway,
    failures: &mut Vec<String>,
) -> (BTreeMap<String, f64>, Option<ExitInfo>) {
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
    let metrics_end = lab::final_metrics(gw, "run", failures);
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
    (metrics_end, exit)
}

/// Reads the topic back from `kafka` (stopped afterwards) and checks every id `run` saw
/// acknowledged.
fn verify_acked(
    kafka: KafkaMock,
    a: &ChaosArgs,
    name: &str,
    run: &RunResult,
) -> anyhow::Result<VerifyResult> {
    let acked_file = std::env::temp_dir().join(format!(
        "bench-chaos-{}-{}-{}.acked",
        std::process::id(),
        name,
        run.run_id
    ));
    crate::engine::result::write_acked(run, &acked_file)?;
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
    v.context("verifying against kafka-mock")
}

/// The verification's failures: acknowledged records missing, partitions not read to
/// their end, nothing acknowledged at all.
fn judge_verification(v: &VerifyResult, run: &RunResult, failures: &mut Vec<String>) {
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
}
