//! One run of the comparison against a gateway: the context every run shares
//! ([`RunCtx`]), starting and stopping a gateway process, the load of a search step or of
//! a rounds-phase cell ([`decide`]), one saturation search ([`search_one`]) and one
//! scenario against a running gateway ([`one_run`]). `run.rs` and `peers.rs` drive these.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::plan::{self, next_step, Offer, Plan, Shape, Sink, Step, Variant, MAX_SCENARIO};
use super::procs;
use super::summary::{self, outcomes, GatewayStats, Phase, RunRecord, Summary};
use super::tls::TestPki;
use crate::engine::config::{Mode, PayloadSize};
use crate::engine::RunConfig;
use crate::experiments::idle;
use crate::lab::{self, Gateway, GatewaySpec, Pinning};

/// What every run shares.
pub(super) struct RunCtx<'a> {
    pub(super) plan: &'a Plan,
    pub(super) client_threads: usize,
    pub(super) topic: &'a str,
    pub(super) gateway_args: &'a [String],
    pub(super) bins: &'a BTreeMap<&'static str, PathBuf>,
    pub(super) pinning: &'a Pinning,
    pub(super) broker_pid: Option<u32>,
    /// `--client-procs`.
    pub(super) client_procs: usize,
    /// The test certificate of the TLS cells (made when the plan has any).
    pub(super) pki: Option<&'a TestPki>,
}

pub(super) fn new_record(
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
        attempts: 1,
    }
}

/// First successful start of a variant: keep its command and info line.
pub(super) fn note_first_start(
    summary: &mut Summary,
    v: Variant,
    rec: &RunRecord,
    ctx: &RunCtx<'_>,
) {
    if let Some(d) = summary.manifest.gateways.get_mut(&v.name()) {
        if d.info.is_none() && rec.gateway_info.is_some() {
            d.info.clone_from(&rec.gateway_info);
            d.command = spec(ctx, v, None).command_line();
        }
    }
}

/// The gateway of `v`; serving TLS with the test certificate when `pki` is given.
fn spec(ctx: &RunCtx<'_>, v: Variant, pki: Option<&TestPki>) -> GatewaySpec {
    let mut args = ctx.gateway_args.to_vec();
    args.extend(["--sink".to_string(), v.sink.name().to_string()]);
    args.extend(pki.map(TestPki::gateway_args).unwrap_or_default());
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

/// Start the gateway of `v` for a run of `sc` (a TLS scenario's serves TLS).
pub(super) fn start_gateway(
    ctx: &RunCtx<'_>,
    v: Variant,
    sc: &plan::Scenario,
    producer_config: &mut Option<String>,
    rec: &mut RunRecord,
) -> anyhow::Result<Gateway> {
    let pki = match sc.tls {
        None => None,
        Some(_) => Some(
            ctx.pki
                .context("a TLS scenario without compare's test certificate")?,
        ),
    };
    let probe = pki
        .map(|p| lab::ProbeTls::new(&p.ca, super::tls::SERVER_NAME))
        .transpose()?;
    let g = Gateway::start_tls(&spec(ctx, v, pki), probe)?;
    if producer_config.is_none() {
        producer_config.clone_from(&g.producer_config);
    }
    rec.gateway_info = g.info_line().ok();
    Ok(g)
}

/// Stop the gateway after the work; an unclean exit fails the run even if the work did not.
pub(super) fn finish_gateway(g: Gateway, work: anyhow::Result<()>) -> anyhow::Result<()> {
    let stopped = g.stop(Duration::from_secs(30));
    match (work, stopped) {
        (Ok(()), s) => s,
        (Err(e), Ok(())) => Err(e),
        (Err(e), Err(s)) => Err(e.context(format!("stopping the gateway failed too: {s:#}"))),
    }
}

/// A load config for `sc` at `step` (closed loop) or `rate` (open loop).
pub(super) fn load_config(
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
pub(super) fn search_one(
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
    let mut g = match start_gateway(ctx, v, sc, producer, &mut rec0) {
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
pub(super) fn decide(
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
pub(super) fn one_run(
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
                if let Some(hs) = sc.tls {
                    let pki = ctx
                        .pki
                        .context("a TLS scenario without a test certificate")?;
                    c.target = format!("https://{}", g.addr);
                    c.tls = Some(pki.client(hs == plan::TlsHandshakes::Resumed));
                }
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
pub(super) fn gateway_stats(pid: u32, cpu0: Option<f64>, wall0: Instant) -> GatewayStats {
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
