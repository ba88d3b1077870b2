//! The fate module: the ack-mode rule, once for every protocol (raw HTTP, REST Proxy v2,
//! WebSocket). What becomes of a record handed to the sink ([`fate`]), and what a request or
//! message made of such records gets, and when ([`answer`]). The sessions only turn these
//! into their own wire format; nothing else in the crate looks at an [`AckMode`].
//!
//! | ack | sink queued it | sink refused it |
//! |---|---|---|
//! | `kafka` | `Awaiting` its delivery report | `Refused`: the client is told |
//! | `enqueue` | `Settled` | `Refused`: the client is told |
//! | `none` | `Settled` | `Settled`: fire and forget, the refusal is only counted |
//!
//! A request or message is answered when none of its records awaits a report: at once
//! ([`SETTLED`], or its first refusal) or after the reports ([`STORED`], or the first
//! failure). Kafka being unreachable is not a refusal of one record: every session answers it
//! before sending (503 / nack [`KAFKA_UNAVAILABLE`]), whatever the ack mode.

use clap::ValueEnum;

use crate::publish::DeliveryError;

/// When a request counts as "done" for the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AckMode {
    /// Answer once parsed, before the producer saw the record (fire-and-forget).
    None,
    /// Answer once the producer accepted the record into its queue.
    Enqueue,
    /// Answer only after the broker acknowledged it (acks=all, idempotent producer).
    Kafka,
}

impl AckMode {
    pub fn parse(s: &[u8]) -> Option<AckMode> {
        match s {
            b"none" => Some(AckMode::None),
            b"enqueue" => Some(AckMode::Enqueue),
            b"kafka" => Some(AckMode::Kafka),
            _ => None,
        }
    }
}

/// The error code of a publish refused because Kafka metadata is unreachable (`/readyz`
/// is 503): an HTTP 503 with Retry-After, or a WebSocket nack.
pub const KAFKA_UNAVAILABLE: &str = "kafka_unavailable";

/// The status of an answer given at once, without waiting for Kafka (ack=none|enqueue).
pub const SETTLED: u16 = 202;
/// The status of an answer given once Kafka acknowledged every record (ack=kafka).
pub const STORED: u16 = 200;

/// What became of one record handed to the sink.
#[derive(Debug, Clone, PartialEq)]
pub enum Fate {
    /// Queued under ack=kafka: its answer waits for the delivery report.
    Awaiting,
    /// Answered now: queued (ack=enqueue|none), or refused under ack=none.
    Settled,
    /// Refused, and the client is told (ack=enqueue|kafka).
    Refused(DeliveryError),
}

/// The rule itself: `sent` is the sink's answer to the send of a record under `ack`.
pub fn fate(ack: AckMode, sent: Result<(), DeliveryError>) -> Fate {
    match (ack, sent) {
        (AckMode::Kafka, Ok(())) => Fate::Awaiting,
        (_, Ok(())) | (AckMode::None, Err(_)) => Fate::Settled,
        (_, Err(e)) => Fate::Refused(e),
    }
}

/// Whether a record sent under `ack` must carry a reply address: only if its answer would
/// wait for its delivery report.
pub fn waits_for_report(ack: AckMode) -> bool {
    fate(ack, Ok(())) == Fate::Awaiting
}

/// What a request or message gets, and when, from the fates of its records.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Now, with [`SETTLED`]: every record settled; the word says how far they got
    /// (`accepted` under ack=none, `enqueued` under ack=enqueue).
    Settled(&'static str),
    /// Now: a record was refused and none awaits a report; the first refusal.
    Refused(DeliveryError),
    /// Once the awaited delivery reports are in: [`STORED`], or the first failure.
    Wait,
}

/// The second half of the rule: the answer to records sent under `ack` whose fates are
/// `fates` (in the order they were sent).
pub fn answer<'a>(ack: AckMode, fates: impl IntoIterator<Item = &'a Fate>) -> Answer {
    let mut refused = None;
    for f in fates {
        match f {
            Fate::Awaiting => return Answer::Wait,
            Fate::Refused(e) if refused.is_none() => refused = Some(e.clone()),
            Fate::Refused(_) | Fate::Settled => {}
        }
    }
    match refused {
        Some(e) => Answer::Refused(e),
        None => Answer::Settled(match ack {
            AckMode::None => "accepted",
            AckMode::Enqueue => "enqueued",
            // Never: ack=kafka records await their reports or are refused.
            AckMode::Kafka => "stored",
        }),
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

    #[test]
    fn answers_from_fates() {
        let full = || Fate::Refused(DeliveryError::QueueFull);
        assert_eq!(
            answer(AckMode::Kafka, &[Fate::Awaiting, full()]),
            Answer::Wait
        );
        assert_eq!(
            answer(AckMode::Kafka, &[full()]),
            Answer::Refused(DeliveryError::QueueFull)
        );
        assert_eq!(
            answer(AckMode::Enqueue, &[Fate::Settled, full()]),
            Answer::Refused(DeliveryError::QueueFull)
        );
        assert_eq!(
            answer(AckMode::Enqueue, &[Fate::Settled]),
            Answer::Settled("enqueued")
        );
        assert_eq!(
            answer(AckMode::None, &[Fate::Settled]),
            Answer::Settled("accepted")
        );
        assert!(waits_for_report(AckMode::Kafka));
        assert!(!waits_for_report(AckMode::Enqueue) && !waits_for_report(AckMode::None));
    }
}
