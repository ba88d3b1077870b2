//! Server-side [`Evidence`] of a run: what /proc, the gateway's `/metrics` and the io_uring
//! tracepoints showed while it went on.

use serde::{Deserialize, Serialize};

/// Server-side evidence sampled while a run went on.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Evidence {
    /// Most connections waiting in the listener's accept queue (/proc/net/tcp rx_queue).
    pub max_accept_queue: u64,
    /// TcpExt ListenOverflows / ListenDrops during the run (host-wide counters).
    pub listen_overflows: u64,
    pub listen_drops: u64,
    /// Most fds the gateway held.
    pub max_gateway_fds: u64,
    /// Most client sockets in TIME_WAIT on the bound source-port range.
    pub max_client_time_wait: u64,
    /// The gateway's own accept-error counters at the end (from /metrics, if reachable).
    pub accept_errors_emfile: Option<u64>,
    /// Gateway fds still open once the client closed every connection, minus those open
    /// before the load: connections the process took and never served nor closed.
    pub gateway_fds_left: Option<u64>,
    /// io_uring runs (gateway-uring): tracepoint counts on the gateway's threads over the
    /// run (`None`: not measured). Completions that found the completion queue full
    /// (`io_uring:io_uring_cqe_overflow`)...
    pub uring_cq_overflows: Option<u64>,
    /// ... `io_uring_enter` calls (`syscalls:sys_enter_io_uring_enter`) ...
    pub uring_enters: Option<u64>,
    /// ... and SQEs submitted (`io_uring:io_uring_submit_req`).
    pub uring_sqes: Option<u64>,
}

impl Evidence {
    /// SQEs submitted per `io_uring_enter` call, where both were measured.
    pub fn sqes_per_enter(&self) -> Option<f64> {
        match (self.uring_sqes, self.uring_enters) {
            (Some(s), Some(e)) if e > 0 => Some(s as f64 / e as f64),
            _ => None,
        }
    }
}
