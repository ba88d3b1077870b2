//! How the comparison was made: machine, pinning, Kafka, the gateways' arguments, the
//! search and the rounds (`## Machine and method`), the hypervisor's steal, and the bare
//! producer's runs.

use std::fmt::Write as _;

use super::super::plan::MIN_GAIN;
use super::super::summary::Summary;
use crate::reporting::format::{fmt_rate, md, Spread};

/// `## Machine and method`.
pub(super) fn method(o: &mut String, s: &Summary) {
    let m = &s.manifest;
    let _ = writeln!(o, "## Machine and method\n");
    let mm = &m.machine;
    let _ = writeln!(
        o,
        "- commit `{}`{}; kernel {}",
        mm.commit.as_deref().unwrap_or("unknown"),
        mm.dirty_note(),
        mm.kernel.as_deref().unwrap_or("unknown")
    );
    let _ = writeln!(
        o,
        "- CPU: {} × {}",
        mm.cpu_count,
        mm.cpu_model.as_deref().unwrap_or("unknown")
    );
    if let Some(line) = steal_line(s) {
        let _ = writeln!(o, "{line}");
    }
    if let Some(line) = super::verdict::stolen_cells_line(s) {
        let _ = writeln!(o, "{line}");
    }
    let _ = writeln!(
        o,
        "- pinning: {}; gateway `--threads {}`, client {} thread(s){}",
        m.pinning.description,
        m.gateway_threads,
        m.client_threads,
        if m.client_procs > 1 {
            format!(
                " in {} pinned client processes per run, merged (`--client-procs {}`)",
                m.client_procs, m.client_procs
            )
        } else {
            String::new()
        }
    );
    let _ = writeln!(o, "- Kafka: `{}` (bootstrap {})", m.kafka, m.bootstrap);
    let _ = writeln!(
        o,
        "- every gateway: `{}` plus `--listen 127.0.0.1:0 --sink kafka|null` and its runtime flag",
        m.gateway_args.join(" ")
    );
    if let Some(p) = &m.producer_config {
        let _ = writeln!(o, "- producer (as logged by the gateway): `{}`", md(p));
    }
    if !m.producer_overrides.is_empty() {
        let _ = writeln!(o, "- `-X` overrides: `{}`", m.producer_overrides.join(" "));
    }
    let _ = writeln!(
        o,
        "- search: every maximum climbs a ladder of offered concurrency (connections, then pipeline \
         depth or WebSocket window at the best connection count) with one gateway process, \
         {} s warmup + {} s per step, until a step adds less than {:.0}% to the best so far",
        s.plan.search_warmup_s,
        s.plan.search_duration_s,
        MIN_GAIN * 100.0
    );
    let _ = writeln!(
        o,
        "- rounds: {} round(s) of every cell, each round in an order shuffled with seed {} + round \
         (recorded), {} s warmup (excluded) + {} s measured, a fresh gateway process per run, \
         primed with 16 ack=kafka requests once `/readyz` is 200, stopped with SIGTERM (exit \
         status must be 0); memory cells in the first {} round(s)",
        s.plan.repeats,
        s.plan.seed + 1,
        s.plan.warmup_s,
        s.plan.duration_s,
        s.plan.idle_repeats
    );
    let _ = writeln!(
        o,
        "- throughput: median [min–max] over the rounds; latency: the rounds' HdrHistograms merged \
         (open loop: from the intended send time, coordinated omission corrected; requests \
         unanswered at the end are censored into it, never dropped)"
    );
    let _ = writeln!(
        o,
        "- gateway cost: per-thread CPU time (`/proc/PID/task/*/schedstat`), context switches \
         (`/proc/PID/task/*/status`) and system calls (a `raw_syscalls:sys_enter` perf counter per \
         thread) over the measured phase only, divided by the successful requests; threads \
         grouped as I/O (`io-N`, `tokio-worker`), poll (`kafka-poll`), librdkafka (`rdk:*`), other"
    );
    if let Some(why) = &m.syscalls_missing {
        let _ = writeln!(
            o,
            "- **system calls per request were not measured in this run** (every `syscalls/req` \
             is –): {why}; `{}` as root enables them (compare does it itself when run as root)",
            crate::engine::probes::cost::TRACEFS_MOUNT_CMD
        );
    }
    let _ = writeln!(
        o,
        "- started {}, finished {}, {:.0} s wall; command: `{}`\n",
        m.started_at,
        m.finished_at.as_deref().unwrap_or("(interrupted)"),
        m.wall_s,
        mm.args.join(" ")
    );
}

/// `## Bare producer`: each round's `producer-bench` run (nothing without one).
pub(super) fn bare_producer(o: &mut String, s: &Summary) {
    if !s.producer.is_empty() {
        let _ = writeln!(o, "## Bare producer\n");
        let _ = writeln!(
            o,
            "`producer-bench`: the gateways' producer configuration sending 100 B records to the \
             same broker and topic as fast as it can, from one thread pinned to the gateway's CPUs. \
             Each gateway's Kafka maximum is also given as a fraction of it.\n"
        );
        let _ = writeln!(o, "| round | records/s | CPU µs/record | note |");
        let _ = writeln!(o, "|---:|---:|---:|---|");
        for p in &s.producer {
            let _ = writeln!(
                o,
                "| {} | {} | {:.2} | {} |",
                p.round + 1,
                fmt_rate(p.records_per_sec),
                p.cpu_us_per_record,
                p.error.as_deref().map(md).unwrap_or_default()
            );
        }
        let _ = writeln!(o);
    }
}

/// The hypervisor's steal per CPU over the runs' measured phases (absent in older files):
/// a figure measured while the host took a share of the CPUs understates what ran there.
fn steal_line(s: &Summary) -> Option<String> {
    let mut per_cpu: std::collections::BTreeMap<usize, Vec<f64>> = Default::default();
    for r in s.runs.iter().filter_map(|r| r.result.as_ref()) {
        for (&cpu, &x) in &r.cpu_steal {
            per_cpu.entry(cpu).or_default().push(x);
        }
    }
    if per_cpu.is_empty() {
        return None;
    }
    let parts: Vec<String> = per_cpu
        .iter()
        .filter_map(|(cpu, v)| {
            let sp = Spread::of(v)?;
            let high = v
                .iter()
                .filter(|&&x| x >= crate::engine::analysis::bound::STEAL)
                .count();
            Some(format!(
                "CPU {cpu} median {:.0}%, max {:.0}%, {high} of {} runs ≥ {:.0}%",
                sp.median * 100.0,
                sp.max * 100.0,
                v.len(),
                crate::engine::analysis::bound::STEAL * 100.0
            ))
        })
        .collect();
    Some(format!(
        "- hypervisor steal over the measured runs: {} (a gateway run with that much on its CPUs is labelled *unknown*)",
        parts.join("; ")
    ))
}
