//! The ack-mode rules, once for every protocol (raw HTTP, REST Proxy v2, WebSocket): whether
//! a record's delivery report comes back to the connection, and what the sink's answer to a
//! send means for the record's answer. The sessions only turn a [`Fate`] into their own
//! wire format.
//!
//! | ack | sink queued it | sink refused it |
//! |---|---|---|
//! | `kafka` | `Awaiting` its delivery report | `Refused`: the client is told |
//! | `enqueue` | `Settled` | `Refused`: the client is told |
//! | `none` | `Settled` | `Settled`: fire and forget, the refusal is only counted |
//!
//! Kafka being unreachable is not a refusal of one record: every session answers it before
//! sending (503 / nack `kafka_unavailable`), whatever the ack mode.

use super::*;

/// What became of one record handed to the sink.
#[derive(Debug, PartialEq)]
pub(super) enum Fate {
    /// Queued under ack=kafka: its answer waits for the delivery report.
    Awaiting,
    /// Answered now: queued (ack=enqueue|none), or refused under ack=none.
    Settled,
    /// Refused, and the client is told (ack=enqueue|kafka).
    Refused(DeliveryError),
}

/// The rule itself: `sent` is the sink's answer to the send of a record under `ack`.
pub(super) fn fate(ack: AckMode, sent: Result<(), DeliveryError>) -> Fate {
    match (ack, sent) {
        (AckMode::Kafka, Ok(())) => Fate::Awaiting,
        (_, Ok(())) | (AckMode::None, Err(_)) => Fate::Settled,
        (_, Err(e)) => Fate::Refused(e),
    }
}

/// Hands `record` (sequence number `seq`) to the sink under `ack`, the report routed to
/// `reply` only when the answer waits for it; counts it in `routed` then.
pub(super) fn send(
    shared: &Shared,
    record: &Record<'_>,
    ack: AckMode,
    reply: ReplyTo,
    seq: u64,
    now: Instant,
    routed: &mut u64,
) -> Fate {
    let ticket = Ticket {
        reply: (ack == AckMode::Kafka).then_some(reply),
        seq,
        start: now,
    };
    let fate = fate(ack, shared.sink.send(record, ticket));
    if fate == Fate::Awaiting {
        *routed += 1;
    }
    fate
}

/// After a request's or a message's records were sent: the `blocking-produce` reproduction
/// (waiting for Kafka on the I/O thread), off by default.
pub(super) fn after_send(shared: &Shared) {
    if shared.config.has_fault(Fault::BlockingProduce) {
        let _ = shared.sink.flush(std::time::Duration::from_secs(30));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_of_the_module_doc() {
        let refused = || Err(DeliveryError::QueueFull);
        assert_eq!(fate(AckMode::Kafka, Ok(())), Fate::Awaiting);
        assert_eq!(
            fate(AckMode::Kafka, refused()),
            Fate::Refused(DeliveryError::QueueFull)
        );
        assert_eq!(fate(AckMode::Enqueue, Ok(())), Fate::Settled);
        assert_eq!(
            fate(AckMode::Enqueue, refused()),
            Fate::Refused(DeliveryError::QueueFull)
        );
        assert_eq!(fate(AckMode::None, Ok(())), Fate::Settled);
        assert_eq!(fate(AckMode::None, refused()), Fate::Settled);
    }
}
