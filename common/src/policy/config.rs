//! The plain, validated configuration every layer above reads (`Config`, `Limits`), and the
//! operator's choices it is made of (`SinkKind`, `Fault`). Built from the command line by
//! `process::args`; nothing here parses or validates.

use std::net::SocketAddr;
use std::time::Duration;

use clap::ValueEnum;

use super::ack::AckMode;

/// Buffer capacity a connection may keep between exchanges, per buffer (the written output
/// buffer handed back for the next answers, WebSocket stream buffers): enough for a typical
/// answer, so a busy connection does not allocate per response, and little enough that an
/// idle one costs almost nothing. Larger buffers are released once they are empty; the
/// output buffer is released whenever there is nothing to write (`take_output`).
pub const IDLE_BUFFER_FLOOR: usize = 512;

/// Where records go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SinkKind {
    /// A real (or the embedded mock) Kafka cluster through rdkafka's BaseProducer.
    Kafka,
    /// Acknowledge every record at once: measures the gateway's own cost.
    Null,
}

/// Faulty behaviours that reproduce the accept stalls of the seed report on purpose.
/// Off by default; each one is a reproduction, never a tuning knob.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Fault {
    /// Reproduction: the accept loop exits on the first accept error (`?` on accept),
    /// e.g. EMFILE; the process lives on with a dead listener.
    AcceptExitOnError,
    /// Reproduction: the I/O thread blocks on every record until the producer delivered it
    /// (a producer flush inside the runtime), stalling every connection on that thread.
    BlockingProduce,
    /// Reproduction: answer one request per connection and close it (the original
    /// tokio-uring server), so the client's ports pile up in TIME_WAIT.
    OneRequestPerConnection,
    /// Reproduction, io_uring only: the accept loop races each accept against a 100 ms
    /// timer and drops the loser, the way a careless server polls a shutdown flag. A dropped
    /// tokio-uring accept is not cancelled: the kernel still accepts a connection into it
    /// and its completion (the new fd) is discarded.
    UringCancelAccept,
    /// Reproduction, io_uring only: a tiny ring (2 submission, 4 completion entries), so a
    /// connection burst overflows the completion queue.
    UringTinyRing,
    /// Reproduction, io_uring only: a 2-entry submission queue (the completion queue kept
    /// large), so a connection burst finds the submission queue full.
    UringSqFull,
}

impl Fault {
    /// Every fault, in declaration order.
    pub fn all() -> &'static [Fault] {
        Fault::value_variants()
    }

    /// The `--fault` spelling.
    pub fn name(self) -> String {
        self.to_possible_value()
            .map_or_else(|| format!("{self:?}"), |v| v.get_name().to_string())
    }

    /// The runtime (as `RuntimeInfo::runtime` names it) a fault is specific to, or `None`
    /// when every gateway reproduces it.
    pub fn only_runtime(self) -> Option<&'static str> {
        match self {
            Fault::UringCancelAccept | Fault::UringTinyRing | Fault::UringSqFull => {
                Some("tokio-uring")
            }
            Fault::AcceptExitOnError | Fault::BlockingProduce | Fault::OneRequestPerConnection => {
                None
            }
        }
    }
}

/// Validated configuration, shared read-only by every connection.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub threads: usize,
    pub default_ack: AckMode,
    pub sink: SinkKind,
    pub limits: Limits,
    pub backlog: u32,
    pub max_connections: usize,
    pub idle_timeout: Duration,
    pub request_timeout: Duration,
    pub shutdown_timeout: Duration,
    pub faults: Vec<Fault>,
}

/// Per-connection limits: what bounds a connection's memory.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_head: usize,
    pub max_headers: usize,
    pub max_body: usize,
    pub max_pipeline: usize,
    pub ws_max_inflight: usize,
    /// Records per REST v2 produce request.
    pub max_records: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head: 16 * 1024,
            max_headers: 64,
            max_body: 1024 * 1024,
            max_pipeline: 256,
            ws_max_inflight: 1024,
            max_records: 1000,
        }
    }
}

impl Config {
    pub fn has_fault(&self, f: Fault) -> bool {
        self.faults.contains(&f)
    }
}
