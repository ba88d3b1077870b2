//! Publishing records: the `Sink` trait, the Kafka sink (one rdkafka `BaseProducer` per
//! process, one dedicated poll thread) and the null sink.
//!
//! I/O threads only call `Sink::send`, which never blocks: a full producer queue is an
//! immediate `DeliveryError::QueueFull` (503/nack). The outcome of every record travels
//! back to its connection as a `Delivery` on that connection's own unbounded channel,
//! carried in the record's delivery opaque (`Ticket`), so the poll thread never takes a
//! lock and never waits on a connection. The channel is bounded in practice by the
//! connection's in-flight limits (`--max-pipeline`, `--ws-max-inflight`).

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

use crate::metrics::Metrics;

pub type DeliveryTx = tokio::sync::mpsc::UnboundedSender<Delivery>;
pub type DeliveryRx = tokio::sync::mpsc::UnboundedReceiver<Delivery>;

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

    fn from_kafka(err: &KafkaError) -> DeliveryError {
        match err.rdkafka_error_code() {
            Some(RDKafkaErrorCode::QueueFull) => DeliveryError::QueueFull,
            Some(RDKafkaErrorCode::MessageSizeTooLarge)
            | Some(RDKafkaErrorCode::InvalidMessageSize) => DeliveryError::TooLarge,
            Some(RDKafkaErrorCode::UnknownPartition) => DeliveryError::UnknownPartition,
            Some(RDKafkaErrorCode::MessageTimedOut) => DeliveryError::Timeout,
            Some(code) => DeliveryError::Failed(format!("{code:?}")),
            None => DeliveryError::Failed(err.to_string()),
        }
    }
}

/// Rides along with a record through the producer and comes back in its delivery report.
#[derive(Debug)]
pub struct Ticket {
    /// Where to report; `None` for fire-and-forget records (only metrics see the outcome).
    pub tx: Option<DeliveryTx>,
    pub seq: u64,
    pub start: Instant,
}

impl Ticket {
    fn resolve(self, metrics: &Metrics, result: Result<(i32, i64), DeliveryError>) {
        metrics.records_inflight.fetch_sub(1, Ordering::Relaxed);
        if result.is_ok() {
            metrics.records_delivered.fetch_add(1, Ordering::Relaxed);
            metrics.delivery_latency(self.start.elapsed());
        } else {
            metrics.records_failed.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(tx) = self.tx {
            // The connection may be gone (client hung up): nobody to tell, nothing acked.
            let _ = tx.send(Delivery {
                seq: self.seq,
                result,
            });
        }
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
        ticket.resolve(&self.metrics, Ok((record.partition.unwrap_or(0), offset)));
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

/// Defaults tuned for ingest; every one can be overridden with `-X key=value`.
pub const PRODUCER_DEFAULTS: &[(&str, &str)] = &[
    ("acks", "all"),
    ("enable.idempotence", "true"),
    ("linger.ms", "2"),
    ("batch.num.messages", "10000"),
    ("batch.size", "1000000"),
    ("queue.buffering.max.messages", "200000"),
    ("queue.buffering.max.kbytes", "1048576"),
    ("compression.type", "lz4"),
    ("message.timeout.ms", "30000"),
    ("socket.nagle.disable", "true"),
    // librdkafka backs reconnects off up to 10 s by default: an ingest edge should notice a
    // recovered broker within a second.
    ("reconnect.backoff.max.ms", "1000"),
];

/// The producer configuration actually used: defaults, then `-X` overrides, then the
/// bootstrap list. Returned as pairs so it can be logged and written into manifests.
pub fn producer_config(brokers: &str, overrides: &[(String, String)]) -> Vec<(String, String)> {
    let mut conf: Vec<(String, String)> = PRODUCER_DEFAULTS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    conf.push(("bootstrap.servers".into(), brokers.into()));
    for (k, v) in overrides {
        match conf.iter_mut().find(|(ck, _)| ck == k) {
            Some(entry) => entry.1 = v.clone(),
            None => conf.push((k.clone(), v.clone())),
        }
    }
    conf
}

struct ProducerCtx {
    metrics: Arc<Metrics>,
}

impl ClientContext for ProducerCtx {
    // librdkafka reports one failure both as a log line and as an error event, and repeats
    // it every reconnect: each distinct message is logged once per window (telemetry).
    fn error(&self, error: KafkaError, reason: &str) {
        if let Some(suppressed) = crate::telemetry::admit_kafka_log(reason) {
            tracing::warn!(%error, suppressed, "kafka client error: {reason}");
        }
    }

    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        use rdkafka::config::RDKafkaLogLevel as L;
        let important = matches!(
            level,
            L::Emerg | L::Alert | L::Critical | L::Error | L::Warning
        );
        if !important {
            tracing::debug!(fac, "librdkafka: {log_message}");
            return;
        }
        let Some(suppressed) = crate::telemetry::admit_kafka_log(log_message) else {
            return;
        };
        if matches!(level, L::Warning) {
            tracing::warn!(fac, suppressed, "librdkafka: {log_message}");
        } else {
            tracing::error!(fac, suppressed, "librdkafka: {log_message}");
        }
    }
}

impl ProducerContext for ProducerCtx {
    type DeliveryOpaque = Box<Ticket>;

    fn delivery(&self, result: &DeliveryResult<'_>, ticket: Box<Ticket>) {
        let outcome = match result {
            Ok(msg) => Ok((msg.partition(), msg.offset())),
            Err((err, _)) => Err(DeliveryError::from_kafka(err)),
        };
        ticket.resolve(&self.metrics, outcome);
    }
}

/// The Kafka sink: one BaseProducer, one poll thread, one readiness probe thread.
pub struct KafkaSink {
    producer: BaseProducer<ProducerCtx>,
    metrics: Arc<Metrics>,
    ready: AtomicBool,
    stop: AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl KafkaSink {
    pub fn start(
        config: &[(String, String)],
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Arc<KafkaSink>> {
        let mut cc = ClientConfig::new();
        for (k, v) in config {
            cc.set(k, v);
        }
        let producer: BaseProducer<ProducerCtx> = cc
            .create_with_context(ProducerCtx {
                metrics: metrics.clone(),
            })
            .map_err(|e| anyhow::anyhow!("creating the Kafka producer: {e}"))?;
        let sink = Arc::new(KafkaSink {
            producer,
            metrics,
            ready: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            threads: Mutex::new(Vec::new()),
        });
        let poll = {
            let sink = sink.clone();
            std::thread::Builder::new()
                .name("kafka-poll".into())
                .spawn(move || {
                    while !sink.stop.load(Ordering::Acquire) {
                        sink.producer.poll(Duration::from_millis(50));
                    }
                })?
        };
        let probe = {
            let sink = sink.clone();
            std::thread::Builder::new()
                .name("kafka-ready".into())
                .spawn(move || {
                    let mut last = None;
                    while !sink.stop.load(Ordering::Acquire) {
                        let ok = sink
                            .producer
                            .client()
                            .fetch_metadata(None, Duration::from_secs(2))
                            .is_ok_and(|m| !m.brokers().is_empty());
                        sink.ready.store(ok, Ordering::Release);
                        if last != Some(ok) {
                            tracing::info!(ready = ok, "kafka metadata reachable: {ok}");
                            last = Some(ok);
                        }
                        // Sleep in small steps so shutdown is not held up.
                        for _ in 0..10 {
                            if sink.stop.load(Ordering::Acquire) {
                                break;
                            }
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                })?
        };
        sink.threads.lock().unwrap().extend([poll, probe]);
        Ok(sink)
    }
}

impl Sink for KafkaSink {
    fn send(&self, record: &Record<'_>, ticket: Ticket) -> Result<(), DeliveryError> {
        let mut rec: BaseRecord<'_, [u8], [u8], Box<Ticket>> =
            BaseRecord::with_opaque_to(record.topic, Box::new(ticket)).payload(record.value);
        if let Some(key) = record.key {
            rec = rec.key(key);
        }
        if let Some(p) = record.partition {
            rec = rec.partition(p);
        }
        if !record.headers.is_empty() {
            let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
            for (k, v) in record.headers {
                headers = headers.insert(Header {
                    key: k,
                    value: Some(v.as_slice()),
                });
            }
            rec = rec.headers(headers);
        }
        self.metrics
            .records_inflight
            .fetch_add(1, Ordering::Relaxed);
        match self.producer.send(rec) {
            Ok(()) => {
                self.metrics.records_sent.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err((err, _rec)) => {
                // The ticket comes back with the record and is dropped unreported: the
                // caller answers from the returned error.
                self.metrics
                    .records_inflight
                    .fetch_sub(1, Ordering::Relaxed);
                self.metrics
                    .records_rejected
                    .fetch_add(1, Ordering::Relaxed);
                Err(DeliveryError::from_kafka(&err))
            }
        }
    }

    fn queue_depth(&self) -> u64 {
        self.producer.in_flight_count().max(0) as u64
    }

    fn ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    fn flush(&self, timeout: Duration) -> Result<(), String> {
        self.producer.flush(timeout).map_err(|e| {
            format!(
                "{e} ({} records still queued)",
                self.producer.in_flight_count()
            )
        })
    }

    fn close(&self) {
        self.stop.store(true, Ordering::Release);
        let threads = std::mem::take(&mut *self.threads.lock().unwrap());
        for t in threads {
            let _ = t.join();
        }
    }
}
