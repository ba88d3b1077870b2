//! Running a soak: per gateway a fresh kafka-mock (unless `--brokers`) and the gateway, a
//! closed-loop probe of the maximum, the open loop with churn while a sampler reads /proc,
//! the acknowledged ids verified, and the gateway judged ([`run_soak`] → [`SoakReport`]).

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context as _};

use super::args::SoakArgs;
use super::growth::settled_pct;
use super::report::one_line;
use super::summary::{GatewaySoak, SoakReport, SOAK_SCHEMA_VERSION};
use crate::engine::config::{Ack, Mode, RunConfig};
use crate::engine::probes::manifest::Manifest;
use crate::engine::result::RunResult;
use crate::experiments::verify::{verify, VerifyArgs, VerifyResult};
use crate::lab::{self, Gateway, GatewayKind, GatewaySpec, KafkaMock, Sampler};
use crate::reporting::progress::Overall;

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
pub(super) struct Limits {
    pub(super) growth_mib: Option<f64>,
    pub(super) growth_pct: Option<f64>,
}

/// Fills `failures`: stalls, RSS growth over the limits, acknowledged records missing from
/// Kafka, missing samples, unclean exit.
pub(super) fn judge(g: &mut GatewaySoak, limits: Limits, period: Duration) {
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
