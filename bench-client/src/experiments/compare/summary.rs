//! What a comparison produced, as `summary.json` holds it: [`Summary`] (the manifest,
//! the plan and every [`RunRecord`]), read and written atomically; and the search
//! outcome a summary implies ([`Summary::search_max`]).
//!
//! Plain data: depends on the engine's result types, the lab's descriptions of gateways
//! and pinning, and the [`plan`](super::plan); never on the run logic or the report.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::plan::{best_step, Plan, Step, StepOutcome};
use crate::engine::analysis::bound::STEAL;
use crate::engine::probes::manifest::Manifest;
use crate::engine::result::RunResult;
use crate::experiments::idle::IdleResult;
use crate::lab::Pinning;

/// Layout version of `summary.json`.
pub const SUMMARY_VERSION: u32 = 2;

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
    /// `--client-procs`: client processes per load run, merged (1 in older files).
    #[serde(default = "one")]
    pub client_procs: usize,
    /// Why system calls per request were not counted in this run (tracefs missing), if
    /// they were not; absent in older files and whenever they were counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syscalls_missing: Option<String>,
    /// `--retries`: how many times a round run with hypervisor steal ≥ 15% on the gateway's
    /// or the client's CPUs was run again at most (absent in older files: never re-run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<usize>,
}

fn one() -> usize {
    1
}

fn one_attempt() -> u32 {
    1
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

/// Gateway memory around a load run: VmRSS of the fresh gateway before the load, and at
/// the end of the measured phase, with the run's connections still open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadMemory {
    pub connections: usize,
    pub rss_before_kib: u64,
    pub rss_loaded_kib: u64,
    /// (loaded - before) / connections, in bytes: what each connection costs under load
    /// (its buffers in flight included; with few connections, mostly the producer's
    /// and the runtime's own growth).
    pub bytes_per_conn: f64,
}

impl LoadMemory {
    pub fn of(before: Option<u64>, loaded: Option<u64>, connections: usize) -> Option<Self> {
        let (b, l) = (before?, loaded?);
        (connections > 0).then(|| LoadMemory {
            connections,
            rss_before_kib: b,
            rss_loaded_kib: l,
            bytes_per_conn: (l as f64 - b as f64) * 1024.0 / connections as f64,
        })
    }
}

/// Which phase a run belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// A step of a saturation search.
    Search,
    /// A cell of a round.
    Round,
}

/// One run of one cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub phase: Phase,
    pub round: usize,
    pub scenario: String,
    pub variant: String,
    /// Offered concurrency (connections x depth) of a load run.
    pub step: Option<Step>,
    /// Open loop: the rate asked for (req/s) and where it came from.
    pub rate: Option<f64>,
    pub rate_from: Option<String>,
    pub result: Option<RunResult>,
    pub idle: Option<IdleResult>,
    /// Load runs: the gateway's memory before the load and with the run's connections
    /// open (absent in older files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<LoadMemory>,
    pub gateway: Option<GatewayStats>,
    /// `gateway_info{…}` of this run's process.
    pub gateway_info: Option<String>,
    /// First line of the gateway's `--version` (the whole text is in the manifest).
    pub gateway_version: Option<String>,
    /// Why this run has no figures, or what went wrong around it (e.g. a non-zero exit
    /// after SIGTERM). A run with an error never counts as a clean figure.
    pub error: Option<String>,
    pub wall_s: f64,
    /// How many times this run was made: more than 1 when earlier attempts had hypervisor
    /// steal ≥ 15% (`--retries`); the record holds the last attempt (1 in older files).
    #[serde(default = "one_attempt")]
    pub attempts: u32,
}

impl RunRecord {
    /// The hypervisor took ≥ [`STEAL`] of a CPU the gateway or the client ran on (every
    /// CPU when unpinned) over the measured phase: the figure is not the gateways'.
    pub fn stolen(&self, pinning: &Pinning) -> bool {
        let Some(r) = &self.result else {
            return false;
        };
        let pinned = !pinning.gateway.is_empty() || !pinning.client.is_empty();
        r.cpu_steal.iter().any(|(cpu, &x)| {
            x >= STEAL && (!pinned || pinning.gateway.contains(cpu) || pinning.client.contains(cpu))
        })
    }
}

/// The bare producer (`producer-bench`): the gateways' producer configuration sending
/// the same records to the same broker as fast as it can from one thread pinned to the
/// gateway's CPUs. The ceiling of the Kafka path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProducerRun {
    pub round: usize,
    pub records: u64,
    pub seconds: f64,
    pub records_per_sec: f64,
    /// CPU of the whole producer process (its thread, the poll loop and librdkafka's).
    pub cpu_s: f64,
    pub cpu_us_per_record: f64,
    pub command: Vec<String>,
    pub error: Option<String>,
}

/// Everything `compare` produced; `report` needs nothing else.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub summary_version: u32,
    pub manifest: CompareManifest,
    pub plan: Plan,
    pub runs: Vec<RunRecord>,
    /// The bare-producer baseline, once per round (empty without a Kafka sink).
    #[serde(default)]
    pub producer: Vec<ProducerRun>,
    /// External gateways (`--peer`) run through the HTTP scenarios; their runs are in
    /// `runs` under [`PeerDesc::variant`] (absent in older files).
    #[serde(default)]
    pub peers: Vec<PeerDesc>,
}

/// An external gateway compare drove but did not start (`--peer NAME=URL`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerDesc {
    pub name: String,
    pub url: String,
    /// `--peer-pid`: its CPU was measured; `None`: "not measured".
    pub pid: Option<u32>,
    /// The request format it was driven with.
    pub format: crate::engine::config::Format,
}

impl PeerDesc {
    /// The `variant` of its runs: `NAME (external)`.
    pub fn variant(&self) -> String {
        format!("{} (external)", self.name)
    }
}

impl Summary {
    /// The finished saturation search of `scenario` for `variant`, in step order.
    pub fn search_steps(&self, scenario: &str, variant: &str) -> Vec<&RunRecord> {
        self.runs
            .iter()
            .filter(|r| r.phase == Phase::Search && r.scenario == scenario && r.variant == variant)
            .collect()
    }

    /// The maximum point the search found for `variant` in `scenario`.
    pub fn search_max(&self, scenario: &str, variant: &str) -> Option<StepOutcome> {
        best_step(&outcomes(&self.search_steps(scenario, variant)))
    }

    /// The best search step with one request in flight per connection (no pipelining):
    /// what an open loop, which sends one request per free connection, can be compared
    /// with. Open-loop and cost rates derive from it.
    pub fn search_max_unpipelined(&self, scenario: &str, variant: &str) -> Option<StepOutcome> {
        let steps: Vec<StepOutcome> = outcomes(&self.search_steps(scenario, variant))
            .into_iter()
            .filter(|s| s.step.depth == 1)
            .collect();
        best_step(&steps)
    }
}

/// Search steps as the search logic sees them (a failed step counts as 0 ok/s).
pub(crate) fn outcomes(runs: &[&RunRecord]) -> Vec<StepOutcome> {
    runs.iter()
        .filter_map(|r| {
            Some(StepOutcome {
                step: r.step?,
                ok_per_sec: r
                    .result
                    .as_ref()
                    .filter(|_| r.error.is_none())
                    .map_or(0.0, |x| x.totals.ok_per_sec),
            })
        })
        .collect()
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
