//! `bench-client merge`: the shards of one run (`run --start-at T --shard I/N`, on one host
//! or many) combined into one [`RunResult`] as if one client had made all the requests.
//!
//! * counts are sums; rates (`*_per_sec`) are the sums of the shards' rates;
//! * every histogram is merged from the stored HdrHistograms (`hdr`) and re-quantiled —
//!   percentiles are never averaged;
//! * the per-second timeline is aligned on wall-clock seconds: shard row `k` lands in
//!   merged row `k + round((start_shard - start_earliest) / 1 s)`;
//! * stalls keep the shard they came from (`stall.shard`), their start moved to the merged
//!   origin;
//! * `manifest.shards` lists every shard: host, commit, affinity, self-check, binding.
//!
//! Shards of different scenarios are refused ([`scenario_mismatch`]); windows that differ
//! by more than a second, client-bound shards and missing shards are warnings.
//!
//! Entry points: [`merge`], [`merge_files`], [`shards_summary`]. Part of the
//! [engine](crate::engine): depends on nothing outside it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{bail, Context as _};

use crate::engine::analysis::bound::{Binding, Bound};
use crate::engine::analysis::errors::{ErrorCount, Phase};
use crate::engine::analysis::self_check::SelfCheck;
use crate::engine::analysis::stats::{self, HistSummary};
use crate::engine::analysis::timeline::{SecondStats, Stall};
use crate::engine::config::{Mode, RunConfig};
use crate::engine::printer::summary;
use crate::engine::probes::manifest::ShardEntry;
use crate::engine::result::{read_json, write_json, RunResult, TlsFigures, Totals, SCHEMA_VERSION};

/// Measured windows further apart than this (start or end) are warned about.
pub const WINDOW_TOLERANCE_MS: f64 = 1000.0;

/// A merged result and what the merge found worth saying.
#[derive(Debug, Clone)]
pub struct Merged {
    pub result: RunResult,
    pub warnings: Vec<String>,
}

/// Read and merge result files (`run --json`).
pub fn merge_files(paths: &[PathBuf]) -> anyhow::Result<Merged> {
    let mut inputs = Vec::with_capacity(paths.len());
    for p in paths {
        let r = read_json(p)
            .with_context(|| format!("{} is not a bench-client run result", p.display()))?;
        inputs.push((p.display().to_string(), r));
    }
    merge(&inputs)
}

/// Wall-clock start of a result's measured phase (unix ms), also for files written before
/// the field existed.
pub fn measured_start_ms(r: &RunResult) -> f64 {
    if r.measured_start_unix_ms > 0.0 {
        r.measured_start_unix_ms
    } else {
        r.started_at_unix_ms as f64 + r.config.warmup_s * 1e3
    }
}

fn shard_label(r: &RunResult, pos: usize) -> String {
    match r.config.shard {
        Some(s) => s.to_string(),
        None => format!("#{pos}"),
    }
}

/// The URL path of a target (`http://host:port/path` → `/path`).
fn target_path(t: &str) -> &str {
    let rest = t.strip_prefix("http://").unwrap_or(t);
    rest.find('/').map_or("", |i| &rest[i..])
}

/// Why `b` is not the same scenario as `a`, if it is not.
pub fn scenario_mismatch(a: &RunResult, b: &RunResult) -> Option<String> {
    let (x, y) = (&a.config, &b.config);
    let depth = |c: &RunConfig| match c.mode {
        Mode::Http => c.pipeline,
        Mode::HttpClose => 1,
        Mode::Ws => c.window,
    };
    let diffs: [(&str, String, String); 11] = [
        (
            "schema_version",
            a.schema_version.to_string(),
            b.schema_version.to_string(),
        ),
        ("mode", format!("{:?}", x.mode), format!("{:?}", y.mode)),
        ("ack", x.ack.as_str().into(), y.ack.as_str().into()),
        (
            "payload",
            format!("{}..{}", x.payload.min, x.payload.max),
            format!("{}..{}", y.payload.min, y.payload.max),
        ),
        ("topic", x.topic.clone(), y.topic.clone()),
        (
            "target path",
            target_path(&x.target).into(),
            target_path(&y.target).into(),
        ),
        (
            "depth (pipeline/window)",
            depth(x).to_string(),
            depth(y).to_string(),
        ),
        (
            "loop",
            if a.open_loop { "open" } else { "closed" }.into(),
            if b.open_loop { "open" } else { "closed" }.into(),
        ),
        (
            "duration",
            format!("{:?}", x.duration_s),
            format!("{:?}", y.duration_s),
        ),
        (
            "requests",
            format!("{:?}", x.requests),
            format!("{:?}", y.requests),
        ),
        (
            "reconnect_after",
            format!("{:?}", x.reconnect_after),
            format!("{:?}", y.reconnect_after),
        ),
    ];
    let bad: Vec<String> = diffs
        .iter()
        .filter(|(_, l, r)| l != r)
        .map(|(k, l, r)| format!("{k} {l} vs {r}"))
        .collect();
    (!bad.is_empty()).then(|| bad.join(", "))
}

fn merge_hists<'a>(
    hs: impl Iterator<Item = &'a HistSummary>,
    what: &str,
) -> anyhow::Result<Option<HistSummary>> {
    let mut acc: Option<stats::Hist> = None;
    for h in hs {
        let d = h
            .histogram()
            .with_context(|| format!("decoding a shard's {what} histogram"))?;
        match &mut acc {
            Some(a) => stats::merge(a, &d),
            None => acc = Some(d),
        }
    }
    Ok(acc.map(|h| HistSummary::of(&h)))
}

fn merge_req<'a>(
    hs: impl Iterator<Item = &'a HistSummary>,
    what: &str,
) -> anyhow::Result<HistSummary> {
    Ok(merge_hists(hs, what)?.unwrap_or_else(|| HistSummary::of(&stats::new_hist())))
}

/// Merge the shards (`(source name, result)`) of one run.
pub fn merge(inputs: &[(String, RunResult)]) -> anyhow::Result<Merged> {
    let Some((_, first)) = inputs.first() else {
        bail!("nothing to merge: give at least one result file");
    };
    let labels: Vec<String> = inputs
        .iter()
        .enumerate()
        .map(|(i, (_, r))| shard_label(r, i))
        .collect();
    let mut warnings = refuse_or_warn(inputs, &labels)?;
    let w = Windows::of(inputs);
    warnings.extend(w.warnings(inputs, &labels));

    let rs: Vec<&RunResult> = inputs.iter().map(|(_, r)| r).collect();
    let fsum = |f: fn(&RunResult) -> f64| rs.iter().map(|r| f(r)).sum::<f64>();
    let totals = sum_totals(&rs);
    let measured_s =
        w.ends.iter().copied().fold(f64::NEG_INFINITY, f64::max) / 1e3 - w.origin / 1e3;
    let (errors, http_status) = sum_errors_and_statuses(&rs);
    let threads: usize = rs.iter().map(|r| r.config.threads).sum();
    let timeline = align_timeline(&rs, &w, threads);
    let stalls = shard_stalls(&rs, &w, &labels);
    let hists = Hists::of(&rs)?;
    let rate: Option<f64> = rs.iter().map(|r| r.config.rate).sum::<Option<f64>>();
    let self_check = merged_self_check(&rs, &labels, threads, rate, &totals, &hists);
    let binding = merged_binding(&rs, &labels, self_check.generator_bound);
    let config = merged_config(first, &rs, threads, rate);
    let hosts: BTreeSet<Option<&str>> = rs.iter().map(|r| r.manifest.hostname.as_deref()).collect();
    let mut manifest = first.manifest.clone();
    manifest.args = std::env::args().collect();
    manifest.shards = shard_entries(inputs, &labels, &w.starts);
    let run_ids: BTreeSet<&str> = rs.iter().map(|r| r.run_id.as_str()).collect();

    let result = RunResult {
        schema_version: SCHEMA_VERSION,
        run_id: run_ids.into_iter().collect::<Vec<_>>().join("+"),
        started_at_unix_ms: rs.iter().map(|r| r.started_at_unix_ms).min().unwrap_or(0),
        config,
        manifest,
        open_loop: first.open_loop,
        measured_s,
        totals,
        latency: hists.latency,
        latency_uncorrected: hists.latency_uncorrected,
        connect_latency: hists.connect_latency,
        tls: merged_tls(&rs)?,
        errors,
        http_status,
        timeline,
        stalls,
        server_accept_queue: rs.iter().filter_map(|r| r.server_accept_queue).max(),
        self_check,
        latency_backpressure: hists.latency_backpressure,
        little_in_flight: fsum(|r| r.little_in_flight),
        window: rs.iter().map(|r| r.window).sum::<Option<u64>>(),
        // One process seen by every shard: taken once, never summed.
        target_cost: rs.iter().find_map(|r| r.target_cost.clone()),
        broker_cost: rs.iter().find_map(|r| r.broker_cost.clone()),
        // CPU busy fractions only mean something for one host.
        cpu_busy: if hosts.len() == 1 {
            first.cpu_busy.clone()
        } else {
            BTreeMap::new()
        },
        cpu_steal: if hosts.len() == 1 {
            first.cpu_steal.clone()
        } else {
            BTreeMap::new()
        },
        binding,
        acked: rs.iter().map(|r| r.acked).sum::<u64>(),
        measured_start_unix_ms: w.origin,
        acked_ids: Vec::new(),
        intervals: Vec::new(),
        // Any shard stopped by a signal makes the merged window partial too.
        interrupted: rs.iter().any(|r| r.interrupted),
    };
    Ok(Merged { result, warnings })
}

/// Refuse shards of different scenarios, a shard given twice and shards that disagree on
/// their count; warn about missing shards.
fn refuse_or_warn(
    inputs: &[(String, RunResult)],
    labels: &[String],
) -> anyhow::Result<Vec<String>> {
    let first = &inputs[0].1;
    let mut warnings = Vec::new();
    for (i, (name, r)) in inputs.iter().enumerate().skip(1) {
        if let Some(why) = scenario_mismatch(first, r) {
            bail!("{name} is not the same scenario as {}: {why}", inputs[0].0);
        }
        for (j, (other, o)) in inputs.iter().enumerate().take(i) {
            if o.run_id == r.run_id && o.config.shard == r.config.shard {
                bail!(
                    "{name} and {other} are the same shard (run {} shard {}): a shard must be merged once",
                    r.run_id,
                    labels[j]
                );
            }
        }
    }
    let counts: BTreeSet<u32> = inputs
        .iter()
        .filter_map(|(_, r)| r.config.shard.map(|s| s.count))
        .collect();
    if counts.len() > 1 {
        bail!("the shards disagree on their count N (--shard I/N): {counts:?}");
    }
    if let Some(&n) = counts.iter().next() {
        let have: BTreeSet<u32> = inputs
            .iter()
            .filter_map(|(_, r)| r.config.shard.map(|s| s.index))
            .collect();
        let missing: Vec<String> = (0..n)
            .filter(|i| !have.contains(i))
            .map(|i| format!("{i}/{n}"))
            .collect();
        if !missing.is_empty() {
            warnings.push(format!("missing shard(s): {}", missing.join(", ")));
        }
    }
    Ok(warnings)
}

/// The shards' measured windows on the wall clock (unix ms).
struct Windows {
    starts: Vec<f64>,
    ends: Vec<f64>,
    /// The earliest start: the merged result's second 0.
    origin: f64,
}

impl Windows {
    fn of(inputs: &[(String, RunResult)]) -> Windows {
        let starts: Vec<f64> = inputs.iter().map(|(_, r)| measured_start_ms(r)).collect();
        let ends: Vec<f64> = inputs
            .iter()
            .zip(&starts)
            .map(|((_, r), s)| s + r.measured_s * 1e3)
            .collect();
        let origin = starts.iter().copied().fold(f64::INFINITY, f64::min);
        Windows {
            starts,
            ends,
            origin,
        }
    }

    /// Windows too far apart, and client-bound shards.
    fn warnings(&self, inputs: &[(String, RunResult)], labels: &[String]) -> Vec<String> {
        let mut warnings = Vec::new();
        let spread = |v: &[f64]| {
            v.iter().copied().fold(f64::NEG_INFINITY, f64::max)
                - v.iter().copied().fold(f64::INFINITY, f64::min)
        };
        let (ds, de) = (spread(&self.starts), spread(&self.ends));
        if ds > WINDOW_TOLERANCE_MS || de > WINDOW_TOLERANCE_MS {
            warnings.push(format!(
                "measured windows differ: starts {:.3} s apart, ends {:.3} s apart (use a common --start-at)",
                ds / 1e3,
                de / 1e3
            ));
        }
        for ((_, r), l) in inputs.iter().zip(labels) {
            if r.binding.bound == Bound::Client || r.self_check.generator_bound {
                warnings.push(format!(
                    "shard {l} was client-bound: {}",
                    r.self_check.reasons.join("; ")
                ));
            }
        }
        warnings
    }
}

/// Counts and rates are sums.
fn sum_totals(rs: &[&RunResult]) -> Totals {
    let sum = |f: fn(&RunResult) -> u64| rs.iter().map(|r| f(r)).sum::<u64>();
    let fsum = |f: fn(&RunResult) -> f64| rs.iter().map(|r| f(r)).sum::<f64>();
    Totals {
        sent: sum(|r| r.totals.sent),
        completed: sum(|r| r.totals.completed),
        ok: sum(|r| r.totals.ok),
        backpressure: sum(|r| r.totals.backpressure),
        errors: sum(|r| r.totals.errors),
        in_flight_at_end: sum(|r| r.totals.in_flight_at_end),
        censored: sum(|r| r.totals.censored),
        connects: sum(|r| r.totals.connects),
        connect_errors: sum(|r| r.totals.connect_errors),
        ok_per_sec: fsum(|r| r.totals.ok_per_sec),
        completed_per_sec: fsum(|r| r.totals.completed_per_sec),
        sent_per_sec: fsum(|r| r.totals.sent_per_sec),
        ok_bytes_per_sec: fsum(|r| r.totals.ok_bytes_per_sec),
    }
}

/// Error counts (most frequent first) and status counts, summed.
fn sum_errors_and_statuses(rs: &[&RunResult]) -> (Vec<ErrorCount>, BTreeMap<u16, u64>) {
    let mut errors: BTreeMap<(Phase, String), u64> = BTreeMap::new();
    let mut http_status: BTreeMap<u16, u64> = BTreeMap::new();
    for r in rs {
        for e in &r.errors {
            *errors.entry((e.phase, e.kind.clone())).or_default() += e.count;
        }
        for (s, n) in &r.http_status {
            *http_status.entry(*s).or_default() += n;
        }
    }
    let mut errors: Vec<ErrorCount> = errors
        .into_iter()
        .map(|((phase, kind), count)| ErrorCount { phase, kind, count })
        .collect();
    errors.sort_by(|a, b| b.count.cmp(&a.count).then(a.phase.cmp(&b.phase)));
    (errors, http_status)
}

/// The per-second timeline on wall-clock seconds: shard row `k` lands in merged row
/// `k + round((start_shard - origin) / 1 s)`; seconds no shard covered are zero rows.
fn align_timeline(rs: &[&RunResult], w: &Windows, threads: usize) -> Vec<SecondStats> {
    let mut rows: BTreeMap<u64, (SecondStats, f64)> = BTreeMap::new();
    for (r, s) in rs.iter().zip(&w.starts) {
        let off = ((s - w.origin) / 1e3).round() as u64;
        for row in &r.timeline {
            let k = row.second + off;
            let (m, cpu) = rows
                .entry(k)
                .or_insert_with(|| (SecondStats::empty(k), 0.0));
            m.sent += row.sent;
            m.completed += row.completed;
            m.ok += row.ok;
            m.errors += row.errors;
            m.backpressure += row.backpressure;
            m.connects += row.connects;
            m.connect_errors += row.connect_errors;
            m.open_connections += row.open_connections;
            *cpu += row.cpu_util * r.config.threads as f64;
        }
    }
    let last = rows.keys().next_back().copied();
    match last {
        None => Vec::new(),
        Some(last) => (0..=last)
            .map(|k| match rows.remove(&k) {
                Some((mut m, cpu)) => {
                    m.cpu_util = cpu / threads.max(1) as f64;
                    m
                }
                None => SecondStats::empty(k),
            })
            .collect(),
    }
}

/// Stalls keep the shard they came from, their start moved to the merged origin.
fn shard_stalls(rs: &[&RunResult], w: &Windows, labels: &[String]) -> Vec<Stall> {
    let mut stalls = Vec::new();
    for ((r, s), l) in rs.iter().zip(&w.starts).zip(labels) {
        for st in &r.stalls {
            let mut st = st.clone();
            st.start_ms += s - w.origin;
            st.shard = Some(l.clone());
            stalls.push(st);
        }
    }
    stalls.sort_by(|a, b| a.start_ms.total_cmp(&b.start_ms));
    stalls
}

/// The shards' TLS handshakes: counts summed, latencies merged (`None` for plaintext).
fn merged_tls(rs: &[&RunResult]) -> anyhow::Result<Option<TlsFigures>> {
    let tls: Vec<&TlsFigures> = rs.iter().filter_map(|r| r.tls.as_ref()).collect();
    let Some(first) = tls.first() else {
        return Ok(None);
    };
    Ok(Some(TlsFigures {
        resume: first.resume,
        full: tls.iter().map(|t| t.full).sum(),
        resumed: tls.iter().map(|t| t.resumed).sum(),
        failed: tls.iter().map(|t| t.failed).sum(),
        handshake_latency: merge_req(tls.iter().map(|t| &t.handshake_latency), "tls handshake")?,
    }))
}

/// Every histogram merged from the stored HdrHistograms and re-quantiled.
struct Hists {
    latency: HistSummary,
    latency_uncorrected: Option<HistSummary>,
    connect_latency: HistSummary,
    latency_backpressure: Option<HistSummary>,
    schedule_lag: Option<HistSummary>,
    runtime_lag: HistSummary,
}

impl Hists {
    fn of(rs: &[&RunResult]) -> anyhow::Result<Hists> {
        Ok(Hists {
            latency: merge_req(rs.iter().map(|r| &r.latency), "latency")?,
            latency_uncorrected: merge_hists(
                rs.iter().filter_map(|r| r.latency_uncorrected.as_ref()),
                "latency_uncorrected",
            )?,
            connect_latency: merge_req(rs.iter().map(|r| &r.connect_latency), "connect")?,
            latency_backpressure: merge_hists(
                rs.iter().filter_map(|r| r.latency_backpressure.as_ref()),
                "backpressure",
            )?,
            schedule_lag: merge_hists(
                rs.iter().filter_map(|r| r.self_check.schedule_lag.as_ref()),
                "schedule lag",
            )?,
            runtime_lag: merge_req(rs.iter().map(|r| &r.self_check.runtime_lag), "runtime lag")?,
        })
    }
}

/// The client checking itself, per shard and together.
fn merged_self_check(
    rs: &[&RunResult],
    labels: &[String],
    threads: usize,
    rate: Option<f64>,
    totals: &Totals,
    hists: &Hists,
) -> SelfCheck {
    let cpu_seconds: f64 = rs.iter().map(|r| r.self_check.cpu_seconds).sum();
    let thread_seconds: f64 = rs
        .iter()
        .map(|r| r.measured_s * r.config.threads as f64)
        .sum();
    let generator_bound = rs
        .iter()
        .any(|r| r.self_check.generator_bound || r.binding.bound == Bound::Client);
    let mut reasons = Vec::new();
    for (r, l) in rs.iter().zip(labels) {
        for why in &r.self_check.reasons {
            reasons.push(format!("shard {l}: {why}"));
        }
    }
    SelfCheck {
        threads,
        cpu_seconds,
        cpu_util: if thread_seconds > 0.0 {
            cpu_seconds / thread_seconds
        } else {
            0.0
        },
        schedule_lag: hists.schedule_lag.clone(),
        runtime_lag: hists.runtime_lag.clone(),
        rate_achieved: rate.filter(|&r| r > 0.0).map(|r| totals.sent_per_sec / r),
        generator_bound,
        reasons,
    }
}

/// What bound the merged load: the client if any shard was client-bound, else the most
/// binding label any shard measured.
fn merged_binding(rs: &[&RunResult], labels: &[String], generator_bound: bool) -> Binding {
    if generator_bound {
        return Binding {
            bound: Bound::Client,
            reasons: rs
                .iter()
                .zip(labels)
                .filter(|(r, _)| r.binding.bound == Bound::Client)
                .flat_map(|(r, l)| {
                    r.binding
                        .reasons
                        .iter()
                        .map(move |w| format!("shard {l}: {w}"))
                })
                .collect(),
        };
    }
    // Every shard sees the same gateway and broker: the most binding label any shard
    // measured holds for the whole load.
    let bounds: BTreeSet<Bound> = rs.iter().map(|r| r.binding.bound).collect();
    let order = [
        Bound::Gateway,
        Bound::Broker,
        Bound::Concurrency,
        Bound::OfferedLoad,
        Bound::Unknown,
    ];
    Binding {
        bound: order
            .into_iter()
            .find(|b| bounds.contains(b))
            .unwrap_or(Bound::Unknown),
        reasons: rs
            .iter()
            .zip(labels)
            .map(|(r, l)| {
                format!(
                    "shard {l}: {} ({})",
                    r.binding.bound.name(),
                    r.binding.reasons.join("; ")
                )
            })
            .collect(),
    }
}

/// The first shard's scenario with the load of all: connections, threads and rates summed.
fn merged_config(
    first: &RunResult,
    rs: &[&RunResult],
    threads: usize,
    rate: Option<f64>,
) -> RunConfig {
    let mut config = first.config.clone();
    config.connections = rs.iter().map(|r| r.config.connections).sum();
    config.threads = threads;
    config.rate = rate;
    config.connect_rate = rs
        .iter()
        .map(|r| r.config.connect_rate)
        .sum::<Option<f64>>();
    config.shard = None;
    let starts_at: BTreeSet<Option<u64>> = rs.iter().map(|r| r.config.start_at_unix_ms).collect();
    if starts_at.len() > 1 {
        config.start_at_unix_ms = None;
    }
    config.collect_acks = rs.iter().any(|r| r.config.collect_acks);
    config
}

/// `manifest.shards`: every shard's host, commit, affinity, self-check and binding.
fn shard_entries(
    inputs: &[(String, RunResult)],
    labels: &[String],
    starts: &[f64],
) -> Vec<ShardEntry> {
    inputs
        .iter()
        .zip(labels)
        .zip(starts)
        .map(|(((file, r), l), s)| ShardEntry {
            shard: l.clone(),
            file: file.clone(),
            run_id: r.run_id.clone(),
            hostname: r.manifest.hostname.clone(),
            commit: r.manifest.commit.clone(),
            dirty: r.manifest.dirty,
            affinity: r.manifest.affinity.clone(),
            target: r.config.target.clone(),
            connections: r.config.connections,
            threads: r.config.threads,
            measured_start_unix_ms: *s,
            measured_s: r.measured_s,
            ok: r.totals.ok,
            p50_us: r.latency.p50_us,
            bound: r.binding.bound,
            self_check: r.self_check.clone(),
        })
        .collect()
}

/// The shards of a merged result, one line each (empty for a single run).
pub fn shards_summary(r: &RunResult) -> String {
    let mut s = String::new();
    if r.manifest.shards.is_empty() {
        return s;
    }
    let origin = measured_start_ms(r);
    let _ = writeln!(s, "merged from {} shard(s):", r.manifest.shards.len());
    for e in &r.manifest.shards {
        let _ = writeln!(
            s,
            "  shard {:<5} {:<20} run {}  start {:+.3} s  measured {:.2} s  {} ok  p50 {:.0} us  {}  cpu {:.0}% of {} thread(s) on CPU {:?}  commit {}{}",
            e.shard,
            e.hostname.as_deref().unwrap_or("?"),
            e.run_id,
            (e.measured_start_unix_ms - origin) / 1e3,
            e.measured_s,
            e.ok,
            e.p50_us,
            e.bound.name(),
            e.self_check.cpu_util * 100.0,
            e.threads,
            e.affinity,
            e.commit.as_deref().map_or("?", |c| &c[..c.len().min(10)]),
            if e.dirty == Some(true) { " (dirty)" } else { "" },
        );
    }
    for st in &r.stalls {
        if let Some(l) = &st.shard {
            let _ = writeln!(
                s,
                "  stall of shard {l} at {:.3} s for {:.3} s, class {}",
                st.start_ms / 1e3,
                st.length_ms / 1e3,
                st.class
            );
        }
    }
    s
}

/// `bench-client merge A.json B.json … [--json OUT]`.
#[derive(Debug, Clone, clap::Args)]
pub struct MergeArgs {
    /// Result files of the shards (`run --json`), one per shard.
    #[arg(required = true, value_name = "RESULT.json")]
    pub files: Vec<PathBuf>,
    /// Write the merged result (same schema as `run --json`).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// No summary on stdout.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Merge, write, print the summary; warnings go to stderr.
pub fn cli_main(a: &MergeArgs) -> anyhow::Result<()> {
    let m = merge_files(&a.files)?;
    for w in &m.warnings {
        eprintln!("bench-client merge: warning: {w}");
    }
    if let Some(p) = &a.json {
        write_json(&m.result, p)?;
    }
    if !a.quiet {
        print!("{}{}", summary(&m.result), shards_summary(&m.result));
    }
    Ok(())
}
