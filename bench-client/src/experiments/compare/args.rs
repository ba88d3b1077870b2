//! `compare`'s arguments: [`CompareArgs`], the shared flags plus the matrix, the timing,
//! the pinning, Kafka and the peers.

use std::time::Duration;

use crate::engine::config::{parse_duration, Format};
use crate::experiments::shared::ExperimentArgs;

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
    /// connectors, one request per connection; --quick: 2,000 / 1,000 / 256); the TLS cells
    /// http-max-tls, ws-max-tls, cost-low-tls, accept-storm-tls, accept-storm-tls-resumed.
    #[arg(long, value_delimiter = ',')]
    pub scenarios: Vec<String>,
    /// Add the TLS cells (HTTPS / WSS against a gateway serving a test certificate compare
    /// makes): http-max-tls, ws-max-tls, cost-low-tls (cost-low's rate over HTTPS),
    /// accept-storm-tls (full handshakes) and accept-storm-tls-resumed; also selectable by
    /// name with --scenarios.
    #[arg(long)]
    pub tls: bool,
    /// Rounds of every cell after the search (default 5; --quick: 1).
    #[arg(long, alias = "runs")]
    pub repeats: Option<usize>,
    /// Measured time of each load run and search step (default 2s; --quick: 1s).
    #[arg(short = 'd', long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Warmup of each load run and search step, excluded from every figure (default 500ms).
    #[arg(long, value_parser = parse_duration)]
    pub warmup: Option<Duration>,
    /// Re-run a round run whose gateway or client CPUs had ≥ 15% hypervisor steal up to N
    /// times, queued after the other runs (never back to back); the last attempt's figures
    /// are kept and the attempts recorded. 0: never re-run.
    #[arg(long, default_value_t = 2)]
    pub retries: usize,
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
