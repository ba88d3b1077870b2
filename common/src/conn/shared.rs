//! What every part of a connection shares: the process's read-only `Shared` state, the
//! connection's `Link` to the sink (sending a record under the ack rule, counting the
//! reports it will get), and the figures of its buffers (`Held`).

use std::sync::Arc;
use std::time::Instant;

use crate::observe::metrics::Metrics;
use crate::policy::ack::{self, AckMode, Fate};
use crate::policy::config::{Config, Fault};
use crate::publish::token::ReplyTo;
use crate::publish::{Record, Sink, Ticket};

/// Stop reading a connection whose unwritten output grew past this (slow reader).
pub(super) const MAX_PENDING_OUTPUT: usize = 256 * 1024;

/// Everything a connection needs from its process, shared read-only.
pub struct Shared {
    pub config: Config,
    pub sink: Arc<dyn Sink>,
    pub metrics: Arc<Metrics>,
    /// Labels of `gateway_info` in /metrics (runtime, flavour, ring size, asymmetries).
    pub info: Vec<(String, String)>,
}

impl Shared {
    pub fn render_metrics(&self) -> String {
        self.metrics
            .render(&self.info, self.sink.queue_depth(), self.sink.ready())
    }
}

/// A connection's buffer memory (`Conn::held_bytes`), by capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// Received bytes not yet consumed: the HTTP input and decoder, the WebSocket stream's
    /// read side.
    pub input: usize,
    /// Bytes to send and the buffers kept for them: the output, the WebSocket stream's
    /// write side.
    pub output: usize,
    /// Queues of answers and acks, a WebSocket's topic and key.
    pub other: usize,
}

impl Held {
    pub fn total(&self) -> usize {
        self.input + self.output + self.other
    }
}

/// A connection's way to the sink.
pub(super) struct Link {
    pub(super) shared: Arc<Shared>,
    /// Where this connection's delivery reports go (`publish::dispatch`).
    pub(super) reply: ReplyTo,
    /// Records handed to the sink with `reply` (each gets exactly one report).
    pub(super) routed: u64,
}

impl Link {
    /// Hands `record` (sequence number `seq`) to the sink under `ack`, the report routed to
    /// `reply` only when the answer waits for it (counted in `routed` then).
    pub(super) fn send(
        &mut self,
        record: &Record<'_>,
        ack: AckMode,
        seq: u64,
        now: Instant,
    ) -> Fate {
        let ticket = Ticket {
            reply: ack::waits_for_report(ack).then_some(self.reply),
            seq,
            start: now,
        };
        let fate = ack::fate(ack, self.shared.sink.send(record, ticket));
        if fate == Fate::Awaiting {
            self.routed += 1;
        }
        fate
    }

    /// After a request's or a message's records were sent: the `blocking-produce`
    /// reproduction (waiting for Kafka on the I/O thread), off by default.
    pub(super) fn after_send(&self) {
        if self.shared.config.has_fault(Fault::BlockingProduce) {
            let _ = self.shared.sink.flush(std::time::Duration::from_secs(30));
        }
    }
}
