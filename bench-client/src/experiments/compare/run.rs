//! Running the comparison ([`compare`]), in its steps: [`setup`] (arguments → plan,
//! threads, binaries), the plan printed (and `--dry-run` stopping there), Kafka started,
//! the gateways described, then the two phases of the plan — [`search_phase`] (a
//! saturation search per variant and scenario that claims a maximum) and [`rounds_phase`]
//! (every cell in shuffled rounds, with the bare producer once per round) — the peers after
//! each, and `summary.json` written as it goes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::args::CompareArgs;
use super::execute::{
    decide, finish_gateway, new_record, note_first_start, one_run, search_one, start_gateway,
    RunCtx,
};
use super::peers;
use super::plan::{self, Plan, Selection, Sink};
use super::producer::bare_producer;
use super::progress::{progress_line, steps_line};
use super::retry::RetryQueue;
use super::summary::{CompareManifest, GatewayDesc, PeerDesc, Phase, Summary, SUMMARY_VERSION};
use crate::engine::probes::cost;
use crate::engine::probes::manifest::Manifest;
use crate::experiments::idle;
use crate::lab::{self, KafkaMock, Pinning};
use crate::reporting::progress::Overall;

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

/// What the arguments resolve to before anything starts.
struct Setup {
    machine: Manifest,
    pinning: Pinning,
    /// The client's fd limit after raising it.
    nofile: u64,
    peers: Vec<PeerDesc>,
    plan: Plan,
    gateway_threads: usize,
    client_threads: usize,
    bin_dir: PathBuf,
    /// Every gateway binary the plan needs, located.
    bins: BTreeMap<&'static str, PathBuf>,
}

/// Run the comparison into `out`, writing summary.json as it goes (partial results
/// survive an interrupted run); [`Compare::render`](super::Compare) then writes report.md
/// and the charts.
pub fn compare(a: &CompareArgs, out: &Path) -> anyhow::Result<Outcome> {
    let t_start = Instant::now();
    let st = setup(a)?;
    let out = out.to_path_buf();
    let est = st.plan.estimate_s();
    announce(&st, est, &out);
    if a.dry_run {
        print_plan(&st.plan);
        return Ok(Outcome {
            dir: out,
            failed_runs: 0,
            summary: None,
        });
    }
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let syscalls_missing = tracefs_or_warn();
    // The client (this process, and the runtimes it builds per run) on the client CPUs.
    lab::pin_self(&st.pinning.client)?;
    let (kafka, bootstrap) = start_kafka(a, &st)?;
    let mut gateway_args = vec![
        "--threads".to_string(),
        st.gateway_threads.to_string(),
        "--backlog".into(),
        "4096".into(),
        "--brokers".into(),
        bootstrap.clone(),
    ];
    gateway_args.extend(a.shared.producer_args());
    let kafka_command = match &kafka {
        Some(k) => k.command.join(" "),
        None => format!("--brokers {bootstrap}"),
    };
    let mut summary = new_summary(a, &st, gateway_args.clone(), kafka_command, bootstrap)?;
    summary.manifest.syscalls_missing = syscalls_missing;
    let pki = super::tls::pki_for(&st.plan, &out)?;
    let ctx = RunCtx {
        plan: &st.plan,
        client_threads: st.client_threads,
        topic: &a.topic,
        gateway_args: &gateway_args,
        bins: &st.bins,
        pinning: &st.pinning,
        broker_pid: kafka.as_ref().map(|k| k.proc.pid()),
        client_procs: usize::from(a.client_procs),
        pki: pki.as_ref(),
    };
    let mut overall = Overall::new(
        "runs",
        st.plan.search_slots().len() + st.plan.slots().len(),
        Some(Duration::from_secs_f64(est)),
        a.shared.quiet,
        true,
    );
    search_phase(&ctx, &mut summary, &mut overall);
    peers::search(&ctx, &st.plan, &st.peers, &mut summary);
    summary.write(&out)?;
    rounds_phase(a, &st, &ctx, &mut summary, &mut overall, &out)?;
    // The peers' rounds, after the gateways' (they are not restarted between runs).
    peers::rounds(&ctx, &st.plan, &st.peers, &mut summary);
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

/// The arguments resolved: pinning, the plan, thread counts, every binary located (a
/// missing one fails now, not twenty minutes in).
fn setup(a: &CompareArgs) -> anyhow::Result<Setup> {
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
        tls: a.tls,
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
    Ok(Setup {
        machine,
        pinning,
        nofile,
        peers,
        plan,
        gateway_threads,
        client_threads,
        bin_dir,
        bins,
    })
}

/// Mounts tracefs if it can; otherwise says in one line, before anything runs, which figures
/// will be missing and how to get them. Returns the reason they are missing, if they are.
fn tracefs_or_warn() -> Option<String> {
    match cost::ensure_tracefs() {
        cost::Tracefs::Available => None,
        cost::Tracefs::Mounted => {
            eprintln!(
                "compare: mounted tracefs at {} to count system calls per request",
                cost::TRACEFS
            );
            None
        }
        cost::Tracefs::Missing(why) => {
            eprintln!(
                "compare: warning: system calls per request will be missing (–) from every cell: {why}; to count them run `{}` as root",
                cost::TRACEFS_MOUNT_CMD
            );
            Some(why)
        }
    }
}

/// The plan in one line: cells, ladders, runs, the time it may take, pinning, threads.
fn announce(st: &Setup, est: f64, out: &Path) {
    let plan = &st.plan;
    eprintln!(
        "compare: {} variants x {} scenarios = {} cells; search: {} ladders; rounds: {} x cells = {} runs; estimated at most {:.0} s ({:.1} min); order seed {}; pinning: {}; gateway --threads {}, client threads {}; output {}",
        plan.variants.len(),
        plan.scenarios.len(),
        plan.cells(),
        plan.search_slots().len(),
        plan.repeats,
        plan.slots().len(),
        est,
        est / 60.0,
        plan.seed,
        st.pinning.description,
        st.gateway_threads,
        st.client_threads,
        out.display()
    );
}

/// `--dry-run`: every scenario with the variants that run it.
fn print_plan(plan: &Plan) {
    for sc in &plan.scenarios {
        let vs: Vec<String> = plan
            .variants_for(sc)
            .into_iter()
            .map(|i| plan.variants[i].name())
            .collect();
        eprintln!("  {:<13} {} | {}", sc.id, sc.title, vs.join(" "));
    }
}

/// kafka-mock on the client CPUs unless `--brokers`; the bootstrap either way.
fn start_kafka(a: &CompareArgs, st: &Setup) -> anyhow::Result<(Option<KafkaMock>, String)> {
    let kafka = match &a.brokers {
        None => {
            let k = KafkaMock::start(&st.bin_dir, &[&a.topic], false, &st.pinning.client)?;
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
    Ok((kafka, bootstrap))
}

/// The summary before any run: the manifest (machine, pinning, threads, Kafka, every
/// variant's binary and version), the plan, the peers.
fn new_summary(
    a: &CompareArgs,
    st: &Setup,
    gateway_args: Vec<String>,
    kafka: String,
    bootstrap: String,
) -> anyhow::Result<Summary> {
    let mut gateways_desc = BTreeMap::new();
    for v in &st.plan.variants {
        let bin = &st.bins[v.gateway.bin()];
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
    Ok(Summary {
        summary_version: SUMMARY_VERSION,
        manifest: CompareManifest {
            started_at: now_stamp(),
            finished_at: None,
            wall_s: 0.0,
            machine: st.machine.clone(),
            pinning: st.pinning.clone(),
            gateway_threads: st.gateway_threads,
            client_threads: st.client_threads,
            gateway_args,
            kafka,
            bootstrap,
            producer_overrides: a.shared.producer.clone(),
            producer_config: None,
            topic: a.topic.clone(),
            gateways: gateways_desc,
            client_nofile: st.nofile,
            client_procs: usize::from(a.client_procs),
            syscalls_missing: None,
            retries: Some(a.retries),
        },
        plan: st.plan.clone(),
        runs: Vec::new(),
        producer: Vec::new(),
        peers: st.peers.clone(),
    })
}

/// Phase 1: the saturation searches, one gateway process each.
fn search_phase(ctx: &RunCtx<'_>, summary: &mut Summary, overall: &mut Overall) {
    let plan = ctx.plan;
    for &(si, vi) in plan.search_slots().iter() {
        let v = plan.variants[vi];
        let sc = &plan.scenarios[si];
        let t0 = Instant::now();
        let recs = search_one(ctx, summary, v, sc);
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
}

/// Phase 2: the rounds, every cell once per round in the plan's shuffled order, a fresh
/// gateway process per run; the bare producer at the start of each round (when a variant
/// produces to Kafka) and summary.json rewritten there; then the runs with hypervisor
/// steal made again (`--retries`, see `retry.rs`), each replacing its record.
fn rounds_phase(
    a: &CompareArgs,
    st: &Setup,
    ctx: &RunCtx<'_>,
    summary: &mut Summary,
    overall: &mut Overall,
    out: &Path,
) -> anyhow::Result<()> {
    let plan = ctx.plan;
    let has_kafka_sink = plan.variants.iter().any(|v| v.sink == Sink::Kafka);
    let producer_bin = lab::locate(&st.bin_dir, "producer-bench").ok();
    let mut last_round = usize::MAX;
    let slots = plan.slots();
    // Where each slot's record is in `summary.runs` (a re-run replaces it).
    let mut at: Vec<Option<usize>> = vec![None; slots.len()];
    let mut queue = RetryQueue::new(slots.len(), a.retries);
    while let Some((q, follows_itself)) = queue.next() {
        let sl = &slots[q.slot];
        if follows_itself {
            // Nothing else is left to put between the two attempts: give the host time.
            std::thread::sleep(ALONE_PAUSE);
        }
        if q.attempt == 1 && sl.round != last_round {
            // Partial results survive an interrupted run.
            summary.write(out)?;
            last_round = sl.round;
            if has_kafka_sink {
                let p = bare_producer(
                    producer_bin.as_deref(),
                    &summary.manifest.bootstrap,
                    &a.topic,
                    &a.shared.producer,
                    &st.pinning.gateway,
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
        let mut rec = new_record(summary, Phase::Round, sl.round, v, sc);
        let (own, own_kafka) = (v.name(), v.with_sink(Sink::Kafka).name());
        let work = decide(ctx, summary, &own, &own_kafka, sc, &mut rec).and_then(|cfg| {
            let producer = &mut summary.manifest.producer_config;
            let mut g = start_gateway(ctx, v, sc, producer, &mut rec)?;
            let r = one_run(ctx, &mut g, sc, cfg, &mut rec);
            finish_gateway(g, r)
        });
        if let Err(e) = work {
            rec.error = Some(format!("{e:#}"));
        }
        rec.wall_s = t0.elapsed().as_secs_f64();
        note_first_start(summary, v, &rec, ctx);
        rec.attempts = q.attempt;
        if q.attempt == 1 {
            overall.inc();
        }
        let again = queue.done(q, rec.stolen(&st.pinning));
        overall.line(&format!(
            "round {}/{} {:<13} {:<20} {}{}",
            sl.round + 1,
            plan.repeats,
            sc.id,
            v.name(),
            progress_line(&rec),
            retry_note(q.attempt, again)
        ));
        match at[q.slot] {
            Some(i) => summary.runs[i] = rec,
            None => {
                at[q.slot] = Some(summary.runs.len());
                summary.runs.push(rec);
            }
        }
    }
    Ok(())
}

/// How long a re-run waits when it would otherwise follow its own stolen attempt.
const ALONE_PAUSE: Duration = Duration::from_secs(10);

/// ` (attempt 2)`, ` — steal ≥ 15%: queued again`.
fn retry_note(attempt: u32, again: bool) -> String {
    let mut s = String::new();
    if attempt > 1 {
        s.push_str(&format!(" (attempt {attempt})"));
    }
    if again {
        s.push_str(" — hypervisor steal ≥ 15%: queued again");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::host_tag;

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
