//! What the connection and the sink say to each other: a `Record` and its `Ticket` go in,
//! one `Delivery` (or a `DeliveryError` at once) comes back. Every sink implements `Sink`.

use std::time::{Duration, Instant};

use super::token::{ReplyTo, NO_REPLY};

/// The outcome of one record, addressed to the connection that sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub seq: u64,
    /// (partition, offset) once the broker acknowledged it.
    pub result: Result<(i32, i64), DeliveryError>,
}

/// Why a record was not (or may not have been) stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    #[error("producer queue full")]
    QueueFull,
    #[error("record too large for the producer/broker")]
    TooLarge,
    #[error("unknown partition")]
    UnknownPartition,
    #[error("delivery timed out")]
    Timeout,
    #[error("delivery failed: {0}")]
    Failed(String),
}

impl DeliveryError {
    pub fn code(&self) -> &'static str {
        match self {
            DeliveryError::QueueFull => "queue_full",
            DeliveryError::TooLarge => "record_too_large",
            DeliveryError::UnknownPartition => "unknown_partition",
            DeliveryError::Timeout => "delivery_timeout",
            DeliveryError::Failed(_) => "delivery_failed",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            DeliveryError::TooLarge => 413,
            DeliveryError::UnknownPartition => 400,
            _ => 503,
        }
    }
}

/// What the connection knows about a record it hands over: where its outcome goes and
/// when it started. `Copy`: what travels through the producer is only `token()`.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    /// Where to report; `None` for fire-and-forget records (only metrics see the outcome).
    pub reply: Option<ReplyTo>,
    pub seq: u64,
    pub start: Instant,
}

impl Ticket {
    /// The record's delivery opaque.
    pub fn token(&self) -> u64 {
        self.reply.map_or(NO_REPLY, |r| r.token(self.seq))
    }
}

/// One record as the connection hands it over.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    pub topic: &'a str,
    pub key: Option<&'a [u8]>,
    pub value: &'a [u8],
    pub partition: Option<i32>,
    pub headers: &'a [(String, Vec<u8>)],
}

/// Where records go. Implementations never block in `send`.
pub trait Sink: Send + Sync + 'static {
    /// Hands one record over. `Ok` means exactly one `Delivery` will follow for the ticket.
    fn send(&self, record: &Record<'_>, ticket: Ticket) -> Result<(), DeliveryError>;
    /// Records queued in the producer, not yet delivered.
    fn queue_depth(&self) -> u64;
    /// True while the sink can reach its cluster (Kafka metadata reachable).
    fn ready(&self) -> bool;
    /// Blocks until everything queued is delivered or `timeout` passes. Never call this on an
    /// I/O thread (but the `blocking-produce` fault does, to reproduce that mistake).
    fn flush(&self, timeout: Duration) -> Result<(), String>;
    /// Stops background threads after a final flush.
    fn close(&self) {}
}
