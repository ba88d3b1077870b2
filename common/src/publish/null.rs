//! The null sink: acknowledges every record at once, to measure the gateway alone.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::dispatch::router;
use super::sink::{DeliveryError, Record, Sink, Ticket};
use crate::observe::metrics::Metrics;

/// Acknowledges every record at once: measures the gateway without Kafka.
pub struct NullSink {
    metrics: Arc<Metrics>,
    offset: AtomicI64,
}

impl NullSink {
    pub fn new(metrics: Arc<Metrics>) -> NullSink {
        NullSink {
            metrics,
            offset: AtomicI64::new(0),
        }
    }
}

impl Sink for NullSink {
    fn send(&self, record: &Record<'_>, ticket: Ticket) -> Result<(), DeliveryError> {
        self.metrics.records_sent.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .records_inflight
            .fetch_add(1, Ordering::Relaxed);
        let offset = self.offset.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .records_inflight
            .fetch_sub(1, Ordering::Relaxed);
        self.metrics
            .records_delivered
            .fetch_add(1, Ordering::Relaxed);
        self.metrics.delivery_latency(ticket.start.elapsed());
        if ticket.reply.is_some() {
            router().deliver_now(ticket.token(), Ok((record.partition.unwrap_or(0), offset)));
        }
        Ok(())
    }
    fn queue_depth(&self) -> u64 {
        0
    }
    fn ready(&self) -> bool {
        true
    }
    fn flush(&self, _timeout: Duration) -> Result<(), String> {
        Ok(())
    }
}
