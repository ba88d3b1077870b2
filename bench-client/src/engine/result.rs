//! The result data of a run ([`RunResult`], serialized as documented in `SCHEMA.md`) and
//! how it is written and read: JSON, HDR interval log, acked-id file.
//!
//! Building it from the recorders is `engine::build`; printing it is
//! [`printer`](crate::engine::printer). Entry points: [`write_json`], [`read_json`].

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder;
use hdrhistogram::serialization::V2DeflateSerializer;
use serde::{Deserialize, Serialize};

use crate::engine::analysis::bound::{Binding, Bound};
use crate::engine::analysis::errors::ErrorCount;
use crate::engine::analysis::self_check::SelfCheck;
use crate::engine::analysis::stats::{self, HistSummary};
use crate::engine::analysis::timeline::{SecondStats, Stall};
use crate::engine::config::RunConfig;
use crate::engine::probes::cost::ProcessCost;
use crate::engine::probes::manifest::Manifest;

/// Version of the JSON layout; bump on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

/// Counts over the measured phase (after warmup, until the end).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub sent: u64,
    /// Responses of any kind.
    pub completed: u64,
    pub ok: u64,
    /// 503 responses and WebSocket nacks.
    pub backpressure: u64,
    /// Failed requests (error status, transport error, timeout) plus failed connects and
    /// handshakes: the sum of `errors[].count`.
    pub errors: u64,
    /// Sent but unresolved when the run ended.
    pub in_flight_at_end: u64,
    /// Open loop: measured requests that were due but unsent, or sent but unanswered, at
    /// the end; each is in the corrected histogram with its wait until the end (censored),
    /// never dropped.
    #[serde(default)]
    pub censored: u64,
    pub connects: u64,
    pub connect_errors: u64,
    pub ok_per_sec: f64,
    /// Record-value bytes of the successful requests per second: `ok_per_sec` × the
    /// payload size (its mean for a `LOW..HIGH` range; the file size with `--body-file`).
    #[serde(default)]
    pub ok_bytes_per_sec: f64,
    pub completed_per_sec: f64,
    pub sent_per_sec: f64,
}

/// TLS handshakes of an `https://` or `wss://` run, over the measured phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TlsFigures {
    /// `--tls-resume on`: the connections shared one session store.
    pub resume: bool,
    /// Completed handshakes that were full ones.
    pub full: u64,
    /// Completed handshakes that resumed a session (abbreviated).
    pub resumed: u64,
    /// Failed handshakes: the sum of the `tls` phase's `errors[].count`.
    pub failed: u64,
    /// Completed handshakes, from the TCP connect to the end of the handshake.
    pub handshake_latency: HistSummary,
}

/// Everything a run measured. Serialize it for `--json`; deserialize it to compare runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub schema_version: u32,
    /// Prefix of every record id of this run (`<run_id>-<seq>`).
    pub run_id: String,
    pub started_at_unix_ms: u64,
    pub config: RunConfig,
    pub manifest: Manifest,
    pub open_loop: bool,
    /// The run was stopped by SIGINT/SIGTERM before its end: every figure covers the part
    /// that ran (`measured_s`), not `config.duration_s` / `config.requests`.
    #[serde(default)]
    pub interrupted: bool,
    pub measured_s: f64,
    pub totals: Totals,
    /// Successful requests. Open loop: from the intended send time (coordinated-omission
    /// corrected). Closed loop: from the actual send.
    pub latency: HistSummary,
    /// Open loop only: the same requests measured from the actual send.
    pub latency_uncorrected: Option<HistSummary>,
    pub connect_latency: HistSummary,
    /// `https://` and `wss://` runs: the TLS handshakes (absent for plaintext).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFigures>,
    pub errors: Vec<ErrorCount>,
    /// Response status counts (HTTP modes).
    pub http_status: BTreeMap<u16, u64>,
    /// Per second of the measured phase, zero seconds included.
    pub timeline: Vec<SecondStats>,
    pub stalls: Vec<Stall>,
    /// Longest accept queue of the target's listeners sampled during the measured phase;
    /// `None` when the target does not listen on this host (or `--no-server-probe`).
    #[serde(default)]
    pub server_accept_queue: Option<u64>,
    pub self_check: SelfCheck,
    /// 503 / nack answers, from the intended send time like `latency`.
    #[serde(default)]
    pub latency_backpressure: Option<HistSummary>,
    /// Little's law: ok/s × mean latency, the requests that were in flight on average.
    #[serde(default)]
    pub little_in_flight: f64,
    /// Closed loop: the configured in-flight requests (connections × depth).
    #[serde(default)]
    pub window: Option<u64>,
    /// What the target (gateway) spent over the measured phase (`--target-pid`).
    #[serde(default)]
    pub target_cost: Option<ProcessCost>,
    /// What the broker spent (`--broker-pid`).
    #[serde(default)]
    pub broker_cost: Option<ProcessCost>,
    /// Busy fraction of every CPU over the measured phase.
    #[serde(default)]
    pub cpu_busy: BTreeMap<usize, f64>,
    /// Steal (the hypervisor running something else) of every CPU over the measured phase,
    /// as a fraction of it; part of `cpu_busy`.
    #[serde(default)]
    pub cpu_steal: BTreeMap<usize, f64>,
    /// What bound this run, from the signals above.
    #[serde(default = "unknown_binding")]
    pub binding: Binding,
    /// Requests acknowledged with ack=kafka, warmup included (counted only when
    /// `--acked-file` is used, else 0).
    pub acked: u64,
    /// Wall clock at the start of the measured phase (unix ms, sub-ms precision): second
    /// `k` of `timeline` starts `k` s after it. 0 in older files (then
    /// `started_at_unix_ms + warmup`).
    #[serde(default)]
    pub measured_start_unix_ms: f64,
    /// The acknowledged ids (not serialized: they go to `--acked-file`).
    #[serde(skip)]
    pub acked_ids: Vec<String>,
    /// Per-second latency histograms for `--hdr-log` (not serialized).
    #[serde(skip)]
    pub intervals: Vec<(u64, stats::Hist)>,
}

fn unknown_binding() -> Binding {
    Binding {
        bound: Bound::Unknown,
        reasons: vec![],
    }
}

pub fn write_json(r: &RunResult, path: &Path) -> anyhow::Result<()> {
    let f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = std::io::BufWriter::new(f);
    serde_json::to_writer_pretty(&mut w, r)?;
    writeln!(w)?;
    w.flush()?;
    Ok(())
}

pub fn read_json(path: &Path) -> anyhow::Result<RunResult> {
    let s = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(serde_json::from_str(&s)?)
}

/// One id per line.
pub fn write_acked(r: &RunResult, path: &Path) -> anyhow::Result<()> {
    write_ids(&r.acked_ids, path)
}

/// Writes `ids`, one per line (the `--acked-file` format `verify` reads).
pub fn write_ids(ids: &[String], path: &Path) -> anyhow::Result<()> {
    let f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = std::io::BufWriter::new(f);
    for id in ids {
        writeln!(w, "{id}")?;
    }
    w.flush()?;
    Ok(())
}

/// HdrHistogram V2 interval log: one latency histogram (ns) per measured second.
pub fn write_hdr_log(r: &RunResult, path: &Path) -> anyhow::Result<()> {
    let f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = std::io::BufWriter::new(f);
    let start = SystemTime::UNIX_EPOCH
        + Duration::from_millis(r.started_at_unix_ms)
        + Duration::from_secs_f64(r.config.warmup_s);
    let mut ser = V2DeflateSerializer::new();
    {
        let mut log = IntervalLogWriterBuilder::new()
            .add_comment(&format!(
                "bench-client run {} target {} mode {}; values in nanoseconds{}",
                r.run_id,
                r.config.target,
                r.config.mode.as_str(),
                if r.open_loop {
                    ", corrected for coordinated omission"
                } else {
                    ""
                }
            ))
            .with_start_time(start)
            .with_base_time(start)
            .with_max_value_divisor(1e6)
            .begin_log_with(&mut w, &mut ser)?;
        for (sec, h) in &r.intervals {
            log.write_histogram(h, Duration::from_secs(*sec), Duration::from_secs(1), None)
                .map_err(|e| anyhow::anyhow!("writing interval {sec}: {e}"))?;
        }
    }
    w.flush()?;
    Ok(())
}
