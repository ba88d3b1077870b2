//! Publishing records: the `Sink` trait, the Kafka sink (one rdkafka `BaseProducer` per
//! process, one dedicated poll thread) and the null sink.
//!
//! I/O threads only call `Sink::send`, which never blocks: a full producer queue is an
//! immediate `DeliveryError::QueueFull` (503/nack). The outcome of every record travels
//! back to its connection through `dispatch`: the record's delivery opaque is a plain integer
//! (`Ticket::token`: I/O thread mailbox, connection slot, generation, sequence), and the
//! poll thread hands a whole poll batch of reports to each I/O thread at once (one wake per
//! I/O thread per batch), so it never takes a lock and never waits on a connection. What
//! is in flight is bounded by the connections' limits (`--max-pipeline`,
//! `--ws-max-inflight`).
//!
//! Files, bottom up: `token` (the reply address a record carries), `sink` (the `Sink`
//! trait and what passes through it), `dispatch` (reports back to their connections),
//! `null` and `producer` (the two sinks).

pub mod dispatch;
pub mod null;
pub mod producer;
pub mod sink;
pub mod token;

pub use null::NullSink;
pub use producer::{producer_config, KafkaSink, PRODUCER_DEFAULTS};
pub use sink::{Delivery, DeliveryError, Record, Sink, Ticket};
