//! The Kafka sink: one rdkafka `BaseProducer` per process, one dedicated poll thread.
//!
//! I/O threads only call `Sink::send`, which never blocks: a full producer queue is an
//! immediate `DeliveryError::QueueFull` (503/nack). The outcome of every record travels
//! back to its connection through `dispatch`: the record's delivery opaque is a plain integer
//! (`Ticket::token`: I/O thread mailbox, connection slot, generation, sequence), and the
//! poll thread hands a whole poll batch of reports to each I/O thread at once (one wake per
//! I/O thread per batch), so it never takes a lock and never waits on a connection. What
//! is in flight is bounded by the connections' limits (`--max-pipeline`,
//! `--ws-max-inflight`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;
use rdkafka_sys as rdsys;

use super::dispatch::Batcher;
use super::sink::{DeliveryError, Record, Sink, Ticket};
use crate::observe::kafka_stats::{BrokerStats, KafkaStats};
use crate::observe::metrics::{FailReason, Metrics};

/// Defaults tuned for ingest; every one can be overridden with `-X key=value`.
pub const PRODUCER_DEFAULTS: &[(&str, &str)] = &[
    ("acks", "all"),
    ("enable.idempotence", "true"),
    // An ingest edge that answers after Kafka's ack adds linger to every acknowledged
    // request. 1 ms measured best overall (results/2026-12-03-linger: HTTP ok/s at 256
    // connections 1.22–1.42× that of 2 ms on every gateway, paired medians of 5 rounds;
    // WebSocket streams even; 0.5 ms better still for HTTP but worse for WebSocket). Raise
    // it for a remote cluster where bigger batches matter more than the ack latency.
    ("linger.ms", "1"),
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
    /// librdkafka's statistics (`statistics.interval.ms`), decoded by rdkafka: a few kept
    /// for /metrics.
    fn stats(&self, statistics: rdkafka::Statistics) {
        self.metrics.set_kafka_stats(kafka_stats(&statistics));
    }

    // librdkafka reports one failure both as a log line and as an error event, and repeats
    // it every reconnect: each distinct message is logged once per window (telemetry).
    fn error(&self, error: KafkaError, reason: &str) {
        if let Some(suppressed) = crate::observe::telemetry::admit_kafka_log(reason) {
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
        let Some(suppressed) = crate::observe::telemetry::admit_kafka_log(log_message) else {
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
    type DeliveryOpaque = usize;

    /// Only reached when another thread polls the producer's queue (`flush` at shutdown,
    /// the `blocking-produce` fault); the poll thread reads delivery reports itself, in
    /// batches (`KafkaSink::poll_loop`).
    fn delivery(&self, result: &DeliveryResult<'_>, token: usize) {
        let mut tally = Tally::default();
        let mut batcher = Batcher::default();
        let (outcome, msg, reason) = match result {
            Ok(msg) => (Ok((msg.partition(), msg.offset())), msg, None),
            Err((err, msg)) => (
                Err(delivery_error(err)),
                msg,
                Some(fail_reason(err.rdkafka_error_code())),
            ),
        };
        // SAFETY: the message is valid for the duration of the callback.
        let latency = unsafe { rdsys::rd_kafka_message_latency(msg.ptr()) };
        tally.add(&self.metrics, reason, latency);
        tally.commit(&self.metrics);
        batcher.push(token as u64, outcome);
        batcher.flush();
    }
}

/// Metrics of one poll batch, added to the shared counters once per batch.
#[derive(Default)]
struct Tally {
    records: usize,
    delivered: u64,
    /// Failed records by reason (`FailReason::ALL` order).
    failed: [u64; FailReason::ALL.len()],
}

impl Tally {
    /// One report: delivered (`failed` None) or failed for that reason.
    fn add(&mut self, metrics: &Metrics, failed: Option<FailReason>, latency_us: i64) {
        self.records += 1;
        match failed {
            None => {
                self.delivered += 1;
                metrics.delivery_latency(Duration::from_micros(latency_us.max(0) as u64));
            }
            Some(reason) => {
                let i = FailReason::ALL
                    .iter()
                    .position(|&r| r == reason)
                    .unwrap_or(0);
                self.failed[i] += 1;
            }
        }
    }

    fn commit(&mut self, metrics: &Metrics) {
        if self.records == 0 {
            return;
        }
        metrics
            .records_inflight
            .fetch_sub(self.records as i64, Ordering::Relaxed);
        metrics
            .records_delivered
            .fetch_add(self.delivered, Ordering::Relaxed);
        for (reason, &n) in FailReason::ALL.iter().zip(&self.failed) {
            if n > 0 {
                metrics.records_failed(*reason, n);
            }
        }
        *self = Tally::default();
    }
}

/// The poll thread's knobs (environment, for measurements): how long one poll waits for
/// the first event, and how many reports at most are collected before they are handed to
/// the I/O threads.
fn poll_settings() -> (i32, usize) {
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    (
        env("GATEWAY_POLL_WAIT_MS", 50) as i32,
        env("GATEWAY_POLL_BATCH", 4096).max(1),
    )
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
                .spawn(move || sink.poll_loop())?
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

    /// The poll thread: reads delivery reports off the producer's main queue an event
    /// (a produce response's worth of records) at a time, keeps reading while more are
    /// ready (up to the batch limit), then hands each I/O thread its share at once.
    fn poll_loop(&self) {
        let (wait_ms, max_batch) = poll_settings();
        tracing::debug!(wait_ms, max_batch, "kafka poll thread");
        let rk = self.producer.client().native_ptr();
        // SAFETY: a new reference to the main queue, where BaseProducer has librdkafka put
        // delivery reports and errors; released below, while the producer (owned by `self`)
        // is alive.
        let queue = unsafe { rdsys::rd_kafka_queue_get_main(rk) };
        let mut batcher = Batcher::default();
        let mut tally = Tally::default();
        while !self.stop.load(Ordering::Acquire) {
            let mut timeout = wait_ms;
            loop {
                // SAFETY: `queue` is valid until destroyed below.
                let ev = unsafe { rdsys::rd_kafka_queue_poll(queue, timeout) };
                if ev.is_null() {
                    break;
                }
                // SAFETY: `ev` is a live event, destroyed right after.
                unsafe {
                    self.handle_event(ev, &mut batcher, &mut tally);
                    rdsys::rd_kafka_event_destroy(ev);
                }
                if tally.records >= max_batch {
                    break;
                }
                timeout = 0;
            }
            tally.commit(&self.metrics);
            batcher.flush();
        }
        // SAFETY: the reference taken above, no longer used.
        unsafe { rdsys::rd_kafka_queue_destroy(queue) };
    }

    /// # Safety
    /// `ev` must be a live event from the producer's queue.
    unsafe fn handle_event(
        &self,
        ev: *mut rdsys::rd_kafka_event_t,
        batcher: &mut Batcher,
        tally: &mut Tally,
    ) {
        // SAFETY (whole function): `ev` is live, so are the messages it yields.
        match unsafe { rdsys::rd_kafka_event_type(ev) } {
            rdsys::RD_KAFKA_EVENT_DR => loop {
                let msg = unsafe { rdsys::rd_kafka_event_message_next(ev) };
                if msg.is_null() {
                    break;
                }
                let m = unsafe { &*msg };
                let (outcome, reason) =
                    if m.err == rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                        (Ok((m.partition, m.offset)), None)
                    } else {
                        let code: RDKafkaErrorCode = m.err.into();
                        (
                            Err(delivery_error(&KafkaError::MessageProduction(code))),
                            Some(fail_reason(Some(code))),
                        )
                    };
                let latency = unsafe { rdsys::rd_kafka_message_latency(msg) };
                tally.add(&self.metrics, reason, latency);
                // The opaque is the record's token (`Ticket::token`), put there by `send`.
                batcher.push(m._private as usize as u64, outcome);
            },
            rdsys::RD_KAFKA_EVENT_ERROR => {
                let code = unsafe { rdsys::rd_kafka_event_error(ev) };
                let reason = unsafe { rdsys::rd_kafka_event_error_string(ev) };
                let reason = if reason.is_null() {
                    String::new()
                } else {
                    unsafe { std::ffi::CStr::from_ptr(reason) }
                        .to_string_lossy()
                        .into_owned()
                };
                self.producer
                    .context()
                    .error(KafkaError::Global(code.into()), &reason);
            }
            rdsys::RD_KAFKA_EVENT_STATS => {
                let json = unsafe { rdsys::rd_kafka_event_stats(ev) };
                if !json.is_null() {
                    let json = unsafe { std::ffi::CStr::from_ptr(json) };
                    // rdkafka decodes it (logging a report it cannot) and calls `stats`.
                    self.producer.context().stats_raw(json.to_bytes());
                }
            }
            _ => {}
        }
    }
}

impl Sink for KafkaSink {
    fn send(&self, record: &Record<'_>, ticket: Ticket) -> Result<(), DeliveryError> {
        let mut rec: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(record.topic, ticket.token() as usize).payload(record.value);
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
                // No report will follow: the caller answers from the returned error.
                self.metrics
                    .records_inflight
                    .fetch_sub(1, Ordering::Relaxed);
                self.metrics
                    .records_rejected
                    .fetch_add(1, Ordering::Relaxed);
                Err(delivery_error(&err))
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

/// Why librdkafka did not store a record, as the sink reports it.
fn delivery_error(err: &KafkaError) -> DeliveryError {
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

/// The `reason` label of a failed record: librdkafka's error codes onto a small fixed set.
fn fail_reason(code: Option<RDKafkaErrorCode>) -> FailReason {
    use RDKafkaErrorCode as E;
    match code {
        Some(E::MessageTimedOut | E::RequestTimedOut | E::OperationTimedOut) => FailReason::Timeout,
        Some(E::QueueFull) => FailReason::QueueFull,
        Some(
            E::BrokerNotAvailable
            | E::LeaderNotAvailable
            | E::NotLeaderForPartition
            | E::BrokerTransportFailure
            | E::AllBrokersDown
            | E::NetworkException
            | E::BrokerDestroy,
        ) => FailReason::BrokerUnavailable,
        Some(E::MessageSizeTooLarge | E::InvalidMessageSize | E::MessageBatchTooLarge) => {
            FailReason::TooLarge
        }
        Some(E::NotEnoughReplicas | E::NotEnoughReplicasAfterAppend) => {
            FailReason::NotEnoughReplicas
        }
        Some(E::UnknownPartition | E::UnknownTopicOrPartition | E::UnknownTopic) => {
            FailReason::UnknownPartition
        }
        _ => FailReason::Other,
    }
}

/// The figures /metrics keeps from one librdkafka statistics report: per broker (real
/// ones: not the internal or logical handles), the client's sent messages, and the
/// produce batch mean over all topics (weighted by each topic's batch count).
fn kafka_stats(st: &rdkafka::Statistics) -> KafkaStats {
    let us = |v: i64| v as f64 / 1e6;
    let mut brokers: Vec<BrokerStats> = st
        .brokers
        .values()
        .filter(|b| b.source != "internal" && b.source != "logical")
        .map(|b| {
            let rtt = b.rtt.as_ref().filter(|w| w.cnt > 0);
            BrokerStats {
                name: b.name.clone(),
                rtt_avg_seconds: rtt.map(|w| us(w.avg)),
                rtt_p99_seconds: rtt.map(|w| us(w.p99)),
                outbuf_requests: b.outbuf_cnt,
                outbuf_messages: b.outbuf_msg_cnt,
                waitresp_requests: b.waitresp_cnt,
                waitresp_messages: b.waitresp_msg_cnt,
                tx_requests: b.tx,
                request_timeouts: b.req_timeouts,
            }
        })
        .collect();
    brokers.sort_by(|a, b| a.name.cmp(&b.name));
    let (mut bytes, mut msgs, mut batches) = (0i64, 0i64, 0i64);
    for t in st.topics.values() {
        bytes += t.batchsize.sum;
        msgs += t.batchcnt.sum;
        batches += t.batchsize.cnt;
    }
    let mean = |total: i64| (batches > 0).then(|| total as f64 / batches as f64);
    KafkaStats {
        brokers,
        tx_messages: st.txmsgs.max(0) as u64,
        batch_bytes_avg: mean(bytes),
        batch_messages_avg: mean(msgs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_reasons_are_a_fixed_set() {
        use RDKafkaErrorCode as E;
        let cases = [
            (Some(E::MessageTimedOut), FailReason::Timeout),
            (Some(E::QueueFull), FailReason::QueueFull),
            (Some(E::AllBrokersDown), FailReason::BrokerUnavailable),
            (
                Some(E::NotLeaderForPartition),
                FailReason::BrokerUnavailable,
            ),
            (Some(E::MessageSizeTooLarge), FailReason::TooLarge),
            (Some(E::NotEnoughReplicas), FailReason::NotEnoughReplicas),
            (
                Some(E::UnknownTopicOrPartition),
                FailReason::UnknownPartition,
            ),
            (Some(E::TopicAuthorizationFailed), FailReason::Other),
            (None, FailReason::Other),
        ];
        for (code, want) in cases {
            assert_eq!(fail_reason(code), want, "{code:?}");
        }
    }

    #[test]
    fn tally_counts_failures_by_reason() {
        let m = Metrics::default();
        let mut t = Tally::default();
        m.records_inflight.store(3, Ordering::Relaxed);
        t.add(&m, None, 1500);
        t.add(&m, Some(FailReason::Timeout), 0);
        t.add(&m, Some(FailReason::Timeout), 0);
        t.commit(&m);
        assert_eq!(m.records_failed_total(), 2);
        assert_eq!(m.records_delivered.load(Ordering::Relaxed), 1);
        assert_eq!(m.records_inflight.load(Ordering::Relaxed), 0);
        let text = m.render(&[], 0, true);
        assert!(text.contains("gateway_records_failed_total{reason=\"timeout\"} 2\n"));
        assert!(text.contains("gateway_records_failed_total{reason=\"other\"} 0\n"));
    }
}
