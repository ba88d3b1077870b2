//! `soak`'s arguments: [`SoakArgs`], the shared flags plus the load, the churn, the
//! sampling and the limits.

use std::time::Duration;

use crate::engine::config::{parse_duration, Ack, PayloadSize};
use crate::experiments::shared::ExperimentArgs;

/// Soak one gateway (or all in turn) at a fraction of its maximum, with connection churn.
#[derive(Debug, Clone, clap::Args)]
pub struct SoakArgs {
    #[command(flatten)]
    pub shared: ExperimentArgs,
    /// Soak time per gateway (after the probe and warmup), e.g. 10m, 2m, 90s.
    #[arg(short = 'd', long, value_parser = parse_duration, default_value = "10m")]
    pub duration: Duration,
    /// Kafka bootstrap servers; default: a fresh kafka-mock per gateway.
    #[arg(long)]
    pub brokers: Option<String>,
    /// Load as a fraction of the probed maximum throughput.
    #[arg(long, default_value_t = 0.8)]
    pub fraction: f64,
    /// Fixed open-loop rate (requests/s) instead of probing the maximum.
    #[arg(short = 'R', long, value_name = "PER_SEC")]
    pub rate: Option<f64>,
    /// Closed-loop probe of the maximum throughput.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub probe: Duration,
    /// Connection churn: each keep-alive connection is closed and reopened after this
    /// many requests (the first time after 1..=N, drawn per connection: continuous churn,
    /// not every connection at once).
    #[arg(long, default_value_t = 1000)]
    pub reconnect_after: u64,
    /// Concurrent keep-alive connections.
    #[arg(short = 'c', long, default_value_t = 16)]
    pub connections: usize,
    /// Requests in flight per connection (probe and soak). 8, where run has 1: the probe is
    /// a closed loop over --connections, and with one request in flight per connection the
    /// window, not the gateway, would bound the maximum the soak is a fraction of.
    #[arg(long, default_value_t = 8)]
    pub pipeline: usize,
    /// Record value size in bytes, or a range LOW..HIGH.
    #[arg(long, default_value = "100")]
    pub payload: PayloadSize,
    /// Ack mode requested from the gateway.
    #[arg(long, value_enum, default_value_t = Ack::Kafka)]
    pub ack: Ack,
    /// Kafka topic.
    #[arg(long, default_value = "soak")]
    pub topic: String,
    /// Old name of --client-threads.
    #[arg(long = "threads", hide = true)]
    pub threads_old: Option<usize>,
    /// Any other gateway argument, verbatim, repeatable (e.g. --gateway-arg=--backlog
    /// --gateway-arg=64); producer properties go in -X.
    #[arg(long, allow_hyphen_values = true)]
    pub gateway_arg: Vec<String>,
    /// Sampling period of the gateway's RSS and fds.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub sample_every: Duration,
    /// Exit non-zero when a gateway's RSS grew by more than this after --settle (MiB, last
    /// window average minus the average of the window starting at --settle).
    #[arg(long, value_name = "MIB")]
    pub fail_on_growth: Option<f64>,
    /// Exit non-zero when a gateway's RSS grew by more than this percentage after --settle
    /// (of the average of the window starting at --settle).
    #[arg(long, value_name = "PERCENT")]
    pub fail_on_growth_pct: Option<f64>,
    /// Growth limits are judged from the window that starts this long into the soak (at the
    /// latest where a window still fits before the last one): the first minutes are the
    /// connections' ramp and the allocator reaching its high-water mark under churn (a 10k
    /// soak's RSS climbs ~4 min, then stays flat). 0: from the first window. Growth from the
    /// first window is reported either way.
    #[arg(long, value_parser = parse_duration, default_value = "2m")]
    pub settle: Duration,
    /// Do not check that the acknowledged records are in Kafka after each gateway's soak
    /// (with ack=kafka every acknowledged id is looked up in the topic by default).
    #[arg(long)]
    pub no_verify: bool,
    /// Verify only the most recently acknowledged ids, this many (0: all). kafka-mock keeps
    /// a bounded log per partition (librdkafka's mock cluster trims old segments): a
    /// 10-minute soak at 15k/s acknowledges ~9M records, of which it keeps ~1.6M.
    #[arg(long, default_value_t = 1_000_000)]
    pub verify_last: usize,
}

impl SoakArgs {
    /// Defaults as on the command line, for programmatic use (tests).
    pub fn new(gateway: &str) -> anyhow::Result<Self> {
        use clap::Parser;
        #[derive(Parser)]
        struct P {
            #[command(flatten)]
            a: SoakArgs,
        }
        Ok(P::try_parse_from(["soak", "--gateways", gateway])?.a)
    }

    /// Client worker threads: --client-threads, or its old name --threads.
    pub fn client_threads(&self) -> Option<usize> {
        self.shared.client_threads.or(self.threads_old)
    }
}
