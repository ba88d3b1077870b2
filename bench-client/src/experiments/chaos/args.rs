//! `chaos`'s arguments: [`ChaosArgs`], the shared flags plus the load and the faults.

use std::time::Duration;

use super::faults::FaultKind;
use crate::engine::config::{parse_duration, PayloadSize};
use crate::experiments::shared::ExperimentArgs;

/// Load at ack=kafka through broker outage, RTT, produce errors and partition leader
/// changes; verify nothing acknowledged was lost.
#[derive(Debug, Clone, clap::Args)]
pub struct ChaosArgs {
    #[command(flatten)]
    pub shared: ExperimentArgs,
    /// Measured run time per gateway; the faults are spread over it (all four need 30s;
    /// 40s leaves more room to watch each recovery; leaders alone: 10s).
    #[arg(short = 'd', long, value_parser = parse_duration, default_value = "40s")]
    pub duration: Duration,
    /// Faults to inject, in this order (comma-separated): outage (every broker down 5 s),
    /// rtt (added round-trip time on broker 1), produce-errors, leaders (every partition's
    /// leader moved three times).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "outage,rtt,produce-errors,leaders"
    )]
    pub faults: Vec<FaultKind>,
    /// Open-loop rate (requests/s). Keep rate x duration within the mock's retention
    /// (~100k records / 5 MB per partition, 4 partitions). Always open loop here: a fault
    /// must not lower the offered load, as a closed loop's would.
    #[arg(short = 'R', long, value_name = "PER_SEC", default_value_t = 2000.0)]
    pub rate: f64,
    /// Concurrent keep-alive connections. Fewer than run's and soak's 16: chaos loads the
    /// Kafka path through faults, not the accept path, so it holds few sockets and many
    /// requests on each (see --pipeline).
    #[arg(short = 'c', long, default_value_t = 8)]
    pub connections: usize,
    /// Requests in flight per connection. 32, where run has 1 and soak 8: at ack=kafka each
    /// request waits for its delivery report, which the outage and the added RTT hold back
    /// for hundreds of milliseconds to seconds; the open loop needs that many in flight
    /// (rate x latency) to keep its schedule meanwhile.
    #[arg(long, default_value_t = 32)]
    pub pipeline: usize,
    /// Record value size in bytes, or a range LOW..HIGH.
    #[arg(long, default_value = "100")]
    pub payload: PayloadSize,
    /// Kafka topic (created with 4 partitions).
    #[arg(long, default_value = "chaos")]
    pub topic: String,
    /// The gateway's `message.timeout.ms`: records undelivered this long become 503s.
    #[arg(long, value_parser = parse_duration, default_value = "3s")]
    pub message_timeout: Duration,
    /// Round-trip time added to broker 1 in the RTT phase.
    #[arg(long, value_parser = parse_duration, default_value = "200ms")]
    pub rtt: Duration,
    /// Old form of --rtt: milliseconds as a bare number.
    #[arg(long, hide = true, conflicts_with = "rtt")]
    pub rtt_ms: Option<u64>,
    /// Produce requests failed in the produce-error phase (half not-enough-replicas, half
    /// transport errors).
    #[arg(long, default_value_t = 60)]
    pub produce_errors: u64,
    /// Client per-request timeout. 15s, where run has 10s: longer than the outage (5s)
    /// plus --message-timeout, so a request held through a fault is judged by the gateway's
    /// answer (an ack or a 503), never cut off by the client.
    #[arg(long, value_parser = parse_duration, default_value = "15s")]
    pub timeout: Duration,
    /// Old name of --client-threads.
    #[arg(long = "threads", hide = true)]
    pub threads_old: Option<usize>,
    /// Any other gateway argument, verbatim, repeatable (e.g. --gateway-arg=--backlog
    /// --gateway-arg=64); producer properties go in -X.
    #[arg(long, allow_hyphen_values = true)]
    pub gateway_arg: Vec<String>,
}

impl ChaosArgs {
    /// Defaults as on the command line, for programmatic use (tests).
    pub fn new(gateway: &str) -> anyhow::Result<Self> {
        use clap::Parser;
        #[derive(Parser)]
        struct P {
            #[command(flatten)]
            a: ChaosArgs,
        }
        Ok(P::try_parse_from(["chaos", "--gateways", gateway])?.a)
    }

    /// Client worker threads: --client-threads, or its old name --threads.
    pub fn client_threads(&self) -> Option<usize> {
        self.shared.client_threads.or(self.threads_old)
    }

    /// The RTT of the RTT phase: --rtt, or the old --rtt-ms.
    pub fn rtt(&self) -> Duration {
        self.rtt_ms.map_or(self.rtt, Duration::from_millis)
    }
}
