//! Process-wide counters, gauges and histograms, as plain atomics, rendered in the
//! Prometheus text exposition format for `GET /metrics`.
//!
//! Atomics rather than a registry: the hot path is one `fetch_add` per event and the set of
//! series is fixed by the wire contract. Every labelled series the contract lists exists
//! from the first scrape, at zero (a dashboard or alert on an idle gateway still has its
//! series); only the optional sources are absent until they report: librdkafka's statistics
//! (`kafka_stats`, with `statistics.interval.ms`) and the io_uring rings (`uring`, in the
//! io_uring gateways).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use super::expo::{counter, escape, gauge};
use super::histogram::Histogram;
use super::kafka_stats::KafkaStats;
use super::tls_metrics::TlsMetrics;
use super::uring::RingWatch;

/// HTTP statuses counted individually; anything else lands in `other`. (101 upgrades are
/// not requests answered: they are `gateway_ws_upgrades_total`.)
const STATUSES: [u16; 13] = [
    200, 202, 400, 404, 405, 408, 411, 413, 415, 422, 431, 503, 0,
];

/// The `route` label of request metrics (see `http::route_label`).
pub const ROUTES: [&str; 7] = [
    "publish",
    "publish_batch",
    "ws",
    "healthz",
    "readyz",
    "metrics",
    "other",
];

/// The `class` label of the request-duration histogram: the status class (3xx is never
/// answered; it would count as 2xx).
const CLASSES: [&str; 4] = ["1xx", "2xx", "4xx", "5xx"];

/// Why a record's delivery failed: the `reason` label of `gateway_records_failed_total`.
/// A fixed set, so the label's cardinality is bounded: the producer maps librdkafka's error
/// codes onto it (`publish::producer`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailReason {
    /// `message.timeout.ms` elapsed (or a request timed out).
    Timeout,
    /// The producer's queue was full.
    QueueFull,
    /// No leader, broker down or unreachable, transport error.
    BrokerUnavailable,
    /// The record (or its batch) is over the broker's or the producer's size limit.
    TooLarge,
    /// Fewer in-sync replicas than `min.insync.replicas` (acks=all).
    NotEnoughReplicas,
    /// The topic or partition does not exist.
    UnknownPartition,
    Other,
}

impl FailReason {
    pub const ALL: [FailReason; 7] = [
        FailReason::Timeout,
        FailReason::QueueFull,
        FailReason::BrokerUnavailable,
        FailReason::TooLarge,
        FailReason::NotEnoughReplicas,
        FailReason::UnknownPartition,
        FailReason::Other,
    ];

    pub fn label(self) -> &'static str {
        match self {
            FailReason::Timeout => "timeout",
            FailReason::QueueFull => "queue_full",
            FailReason::BrokerUnavailable => "broker_unavailable",
            FailReason::TooLarge => "too_large",
            FailReason::NotEnoughReplicas => "not_enough_replicas",
            FailReason::UnknownPartition => "unknown_partition",
            FailReason::Other => "other",
        }
    }
}

/// WebSocket close codes counted individually; anything else lands in `other`. 1006 is
/// the connection ending without a close frame (peer vanished), 1005 a close frame
/// without a code.
const CLOSE_CODES: [u16; 11] = [
    1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1011, 0,
];

/// Accept errors counted by errno name.
const ACCEPT_ERRNOS: [(i32, &str); 6] = [
    (libc::EMFILE, "EMFILE"),
    (libc::ENFILE, "ENFILE"),
    (libc::ECONNABORTED, "ECONNABORTED"),
    (libc::ENOBUFS, "ENOBUFS"),
    (libc::ENOMEM, "ENOMEM"),
    (0, "other"),
];

#[derive(Default)]
pub struct Metrics {
    requests: [AtomicU64; STATUSES.len()],
    request_duration: [[Histogram; CLASSES.len()]; ROUTES.len()],
    pub ws_upgrades: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub connections_open: AtomicI64,
    pub connections_accepted: AtomicU64,
    pub connections_rejected: AtomicU64,
    accept_errors: [AtomicU64; ACCEPT_ERRNOS.len()],
    pub records_inflight: AtomicI64,
    pub records_sent: AtomicU64,
    pub records_delivered: AtomicU64,
    records_failed: [AtomicU64; FailReason::ALL.len()],
    pub records_rejected: AtomicU64,
    pub ws_messages: AtomicU64,
    pub ws_acked: AtomicU64,
    pub ws_nacked: AtomicU64,
    ws_closes: [AtomicU64; CLOSE_CODES.len()],
    delivery: Histogram,
    pub tls: TlsMetrics,
    /// librdkafka's last statistics report (None: statistics off, or none yet).
    kafka: Mutex<Option<KafkaStats>>,
    /// The io_uring rings read on scrape (unset: not an io_uring gateway).
    uring: OnceLock<RingWatch>,
}

impl Metrics {
    /// Counts one answered request by status (`gateway_http_requests_total{code}`).
    pub fn request(&self, status: u16) {
        let i = STATUSES
            .iter()
            .position(|&s| s == status)
            .unwrap_or(STATUSES.len() - 1);
        self.requests[i].fetch_add(1, Relaxed);
    }

    pub fn requests_with_status(&self, status: u16) -> u64 {
        STATUSES
            .iter()
            .position(|&s| s == status)
            .map_or(0, |i| self.requests[i].load(Relaxed))
    }

    /// Observes one request's time from its last byte received to its answer being queued
    /// for writing, by route (`ROUTES`) and status class.
    pub fn request_duration(&self, route: &str, status: u16, d: Duration) {
        let r = ROUTES
            .iter()
            .position(|&x| x == route)
            .unwrap_or(ROUTES.len() - 1);
        let c = match status {
            100..=199 => 0,
            200..=399 => 1,
            400..=499 => 2,
            _ => 3,
        };
        self.request_duration[r][c].observe(d);
    }

    /// Counts one ended WebSocket connection by its close code (sent or received).
    pub fn ws_close(&self, code: u16) {
        let i = CLOSE_CODES
            .iter()
            .position(|&c| c == code)
            .unwrap_or(CLOSE_CODES.len() - 1);
        self.ws_closes[i].fetch_add(1, Relaxed);
    }

    pub fn accept_error(&self, err: &std::io::Error) {
        let errno = err.raw_os_error().unwrap_or(0);
        let i = ACCEPT_ERRNOS
            .iter()
            .position(|&(e, _)| e == errno)
            .unwrap_or(ACCEPT_ERRNOS.len() - 1);
        self.accept_errors[i].fetch_add(1, Relaxed);
    }

    pub fn delivery_latency(&self, d: Duration) {
        self.delivery.observe(d);
    }

    /// Counts `n` records whose delivery failed, by reason.
    pub fn records_failed(&self, reason: FailReason, n: u64) {
        let i = FailReason::ALL
            .iter()
            .position(|&r| r == reason)
            .unwrap_or(FailReason::ALL.len() - 1);
        self.records_failed[i].fetch_add(n, Relaxed);
    }

    /// Failed records, all reasons.
    pub fn records_failed_total(&self) -> u64 {
        self.records_failed.iter().map(|c| c.load(Relaxed)).sum()
    }

    /// Keeps librdkafka's latest statistics for the next scrape.
    pub fn set_kafka_stats(&self, stats: KafkaStats) {
        *self.kafka.lock().unwrap_or_else(|p| p.into_inner()) = Some(stats);
    }

    /// Exports the process's io_uring rings on scrape (`gateway_uring_*`): called once by
    /// a gateway that builds `expected` rings (one per I/O thread).
    pub fn watch_uring_rings(&self, expected: usize) {
        let _ = self.uring.set(RingWatch::new(expected));
    }

    /// Renders every series. `info` are the labels of `gateway_info` (runtime, flavour,
    /// ring size, driver, asymmetries); `queue_depth` is the producer's current queue.
    /// The `process_*` series are read from /proc at each call.
    pub fn render(&self, info: &[(String, String)], queue_depth: u64, ready: bool) -> String {
        let mut s = String::with_capacity(8192);
        let labels: Vec<String> = info
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect();
        let _ = writeln!(s, "# HELP gateway_info Build and runtime of this gateway.");
        let _ = writeln!(s, "# TYPE gateway_info gauge");
        let _ = writeln!(s, "gateway_info{{{}}} 1", labels.join(","));

        gauge(
            &mut s,
            "gateway_ready",
            "1 while Kafka metadata is reachable (else publishing answers 503 kafka_unavailable).",
            i64::from(ready),
        );

        self.render_http(&mut s);
        self.render_connections(&mut s);
        self.render_records(&mut s, queue_depth);
        self.render_ws(&mut s);
        self.tls.render(&mut s);
        let _ = writeln!(
            s,
            "# HELP gateway_delivery_latency_seconds From send to delivery report."
        );
        let _ = writeln!(s, "# TYPE gateway_delivery_latency_seconds histogram");
        self.delivery
            .render(&mut s, "gateway_delivery_latency_seconds", "");
        if let Some(stats) = &*self.kafka.lock().unwrap_or_else(|p| p.into_inner()) {
            super::kafka_stats::render(&mut s, stats);
        }
        if let Some(watch) = self.uring.get() {
            super::uring::render(&mut s, &watch.rings());
        }

        if let Some(p) = super::proc_stats::process_stats() {
            render_process(&mut s, &p);
        }
        s
    }

    /// HTTP requests by status (`code`), and their durations by route and status class
    /// (`class`): every route and class from the first scrape.
    fn render_http(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "# HELP gateway_http_requests_total HTTP requests answered, by status code (upgrades are gateway_ws_upgrades_total)."
        );
        let _ = writeln!(s, "# TYPE gateway_http_requests_total counter");
        for (i, status) in STATUSES.iter().enumerate() {
            let label = if *status == 0 {
                "other".to_string()
            } else {
                status.to_string()
            };
            let _ = writeln!(
                s,
                "gateway_http_requests_total{{code=\"{label}\"}} {}",
                self.requests[i].load(Relaxed)
            );
        }
        let _ = writeln!(
            s,
            "# HELP gateway_http_request_duration_seconds From a request's last byte received to its answer queued for writing, by route and status class."
        );
        let _ = writeln!(s, "# TYPE gateway_http_request_duration_seconds histogram");
        for (r, route) in ROUTES.iter().enumerate() {
            for (c, class) in CLASSES.iter().enumerate() {
                self.request_duration[r][c].render(
                    s,
                    "gateway_http_request_duration_seconds",
                    &format!("route=\"{route}\",class=\"{class}\""),
                );
            }
        }
    }

    /// Upgrades, bytes, connections and accept errors.
    fn render_connections(&self, s: &mut String) {
        counter(
            s,
            "gateway_ws_upgrades_total",
            "WebSocket upgrades accepted (101 Switching Protocols).",
            &self.ws_upgrades,
        );
        counter(
            s,
            "gateway_received_bytes_total",
            "Bytes read from clients.",
            &self.bytes_in,
        );
        counter(
            s,
            "gateway_sent_bytes_total",
            "Bytes written to clients.",
            &self.bytes_out,
        );
        gauge(
            s,
            "gateway_connections_open",
            "Open client connections.",
            self.connections_open.load(Relaxed),
        );
        counter(
            s,
            "gateway_connections_accepted_total",
            "Accepted connections.",
            &self.connections_accepted,
        );
        counter(
            s,
            "gateway_connections_rejected_total",
            "Connections closed at once: over --max-connections.",
            &self.connections_rejected,
        );
        let _ = writeln!(
            s,
            "# HELP gateway_accept_errors_total Accept errors by errno."
        );
        let _ = writeln!(s, "# TYPE gateway_accept_errors_total counter");
        for (i, (_, name)) in ACCEPT_ERRNOS.iter().enumerate() {
            let _ = writeln!(
                s,
                "gateway_accept_errors_total{{errno=\"{name}\"}} {}",
                self.accept_errors[i].load(Relaxed)
            );
        }
    }

    /// Records through the producer.
    fn render_records(&self, s: &mut String, queue_depth: u64) {
        gauge(
            s,
            "gateway_records_inflight",
            "Records handed to the producer, not yet resolved.",
            self.records_inflight.load(Relaxed),
        );
        gauge(
            s,
            "gateway_producer_queue_depth",
            "Messages in the producer's queue (rd_kafka_outq_len).",
            queue_depth as i64,
        );
        counter(
            s,
            "gateway_records_sent_total",
            "Records handed to the producer.",
            &self.records_sent,
        );
        counter(
            s,
            "gateway_records_delivered_total",
            "Records the broker acknowledged.",
            &self.records_delivered,
        );
        let _ = writeln!(
            s,
            "# HELP gateway_records_failed_total Records whose delivery failed, by reason.\n# TYPE gateway_records_failed_total counter"
        );
        for (i, reason) in FailReason::ALL.iter().enumerate() {
            let _ = writeln!(
                s,
                "gateway_records_failed_total{{reason=\"{}\"}} {}",
                reason.label(),
                self.records_failed[i].load(Relaxed)
            );
        }
        counter(
            s,
            "gateway_records_rejected_total",
            "Records the producer refused (queue full, invalid).",
            &self.records_rejected,
        );
    }

    /// WebSocket messages, acks, nacks and closes.
    fn render_ws(&self, s: &mut String) {
        counter(
            s,
            "gateway_ws_messages_total",
            "WebSocket data messages received.",
            &self.ws_messages,
        );
        counter(
            s,
            "gateway_ws_messages_acked_total",
            "WebSocket messages resolved successfully (covered by an ack, never nacked).",
            &self.ws_acked,
        );
        counter(
            s,
            "gateway_ws_messages_nacked_total",
            "WebSocket messages answered with a nack.",
            &self.ws_nacked,
        );
        let _ = writeln!(
            s,
            "# HELP gateway_ws_closes_total Ended WebSocket connections by close code (1006: no close frame)."
        );
        let _ = writeln!(s, "# TYPE gateway_ws_closes_total counter");
        for (i, code) in CLOSE_CODES.iter().enumerate() {
            let label = if *code == 0 {
                "other".to_string()
            } else {
                code.to_string()
            };
            let _ = writeln!(
                s,
                "gateway_ws_closes_total{{close_code=\"{label}\"}} {}",
                self.ws_closes[i].load(Relaxed)
            );
        }
    }
}

/// The standard `process_*` series (as Prometheus client libraries export them).
fn render_process(s: &mut String, p: &super::proc_stats::ProcessStats) {
    let mut one = |name: &str, kind: &str, help: &str, v: String| {
        let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
    };
    one(
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        format!("{}", p.cpu_seconds),
    );
    one(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        p.resident_bytes.to_string(),
    );
    one(
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
        p.virtual_bytes.to_string(),
    );
    one(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        format!("{}", p.start_time_seconds),
    );
    one(
        "process_open_fds",
        "gauge",
        "Number of open file descriptors.",
        p.open_fds.to_string(),
    );
    one(
        "process_max_fds",
        "gauge",
        "Maximum number of open file descriptors.",
        p.max_fds.to_string(),
    );
    one(
        "process_threads",
        "gauge",
        "Number of OS threads in the process.",
        p.threads.to_string(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    use prometheus_parse::{LineInfo, Scrape, Value};

    fn sample() -> String {
        let m = Metrics::default();
        m.request(200);
        m.request(200);
        m.request(999);
        m.request_duration("publish", 200, Duration::from_millis(3));
        m.request_duration("publish", 503, Duration::from_millis(30));
        m.request_duration("nonsense", 404, Duration::from_micros(100));
        m.ws_upgrades.fetch_add(1, Relaxed);
        m.ws_close(1000);
        m.ws_close(4000);
        m.delivery_latency(Duration::from_millis(3));
        m.accept_error(&std::io::Error::from_raw_os_error(libc::EMFILE));
        m.render(
            &[
                ("runtime".into(), "tokio".into()),
                ("note".into(), "a \"quoted\" \\ value".into()),
            ],
            7,
            true,
        )
    }

    #[test]
    fn renders_counts() {
        let text = sample();
        assert!(
            text.contains("gateway_info{runtime=\"tokio\",note=\"a \\\"quoted\\\" \\\\ value\"} 1")
        );
        assert!(text.contains("gateway_http_requests_total{code=\"200\"} 2"));
        assert!(text.contains("gateway_http_requests_total{code=\"other\"} 1"));
        assert!(!text.contains("code=\"101\""), "upgrades are not requests");
        assert!(text.contains("gateway_ws_upgrades_total 1"));
        assert!(text.contains("gateway_accept_errors_total{errno=\"EMFILE\"} 1"));
        assert!(text.contains("gateway_delivery_latency_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("gateway_delivery_latency_seconds_bucket{le=\"0.0025\"} 0"));
        assert!(text.contains("gateway_producer_queue_depth 7"));
        assert!(text.contains(
            "gateway_http_request_duration_seconds_bucket{route=\"publish\",class=\"2xx\",le=\"0.005\"} 1"
        ));
        assert!(text.contains(
            "gateway_http_request_duration_seconds_count{route=\"publish\",class=\"5xx\"} 1"
        ));
        assert!(text.contains(
            "gateway_http_request_duration_seconds_count{route=\"other\",class=\"4xx\"} 1"
        ));
        assert!(
            text.contains(
                "gateway_http_request_duration_seconds_count{route=\"healthz\",class=\"2xx\"} 0"
            ),
            "unobserved label sets are pre-set to zero"
        );
        assert!(text.contains("gateway_records_failed_total{reason=\"timeout\"} 0"));
        assert!(text.contains("gateway_ws_closes_total{close_code=\"1000\"} 1"));
        assert!(text.contains("gateway_ws_closes_total{close_code=\"other\"} 1"));
        assert!(text.contains("gateway_received_bytes_total 0"));
        assert!(!text.contains("bytes_received"));
        assert!(text.contains("\nprocess_resident_memory_bytes "));
    }

    /// The whole exposition through a Prometheus text parser: every line is a HELP, a TYPE
    /// or a sample; every sample's family has a TYPE; histograms are cumulative and end in
    /// +Inf = _count; the process series carry plausible values.
    #[test]
    fn exposition_parses() {
        let text = sample();
        check_exposition(&text);
        let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
        let get = |name: &str| {
            scrape
                .samples
                .iter()
                .find(|s| s.metric == name)
                .unwrap_or_else(|| panic!("no {name}"))
        };
        let Value::Gauge(rss) = get("process_resident_memory_bytes").value else {
            panic!("rss is not a gauge")
        };
        assert!(rss > 1e6, "rss {rss}");
        let Value::Gauge(fds) = get("process_open_fds").value else {
            panic!()
        };
        assert!(fds >= 3.0);
        let Value::Gauge(start) = get("process_start_time_seconds").value else {
            panic!()
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            start <= now + 1.0 && start > now - 86_400.0 * 365.0,
            "{start}"
        );
        assert!(matches!(
            get("process_cpu_seconds_total").value,
            Value::Counter(_)
        ));
        let hist = scrape
            .samples
            .iter()
            .find(|s| {
                s.metric == "gateway_http_request_duration_seconds"
                    && s.labels.get("route") == Some("publish")
                    && s.labels.get("class") == Some("2xx")
            })
            .expect("request duration histogram");
        let Value::Histogram(buckets) = &hist.value else {
            panic!("not a histogram: {hist:?}")
        };
        assert_eq!(
            buckets.len(),
            super::super::histogram::LATENCY_BUCKETS.len() + 1
        );
        assert!(buckets
            .iter()
            .all(|b| b.count == 1.0 || b.less_than < 0.003));
    }

    /// Structural checks a lenient parser does not make: it skips what it cannot read.
    pub(crate) fn check_exposition(text: &str) {
        use std::collections::HashMap;
        assert!(text.ends_with('\n'));
        let mut types: HashMap<String, String> = HashMap::new();
        let mut seen_samples: HashMap<String, usize> = HashMap::new();
        let mut last_bucket: Option<(String, f64, f64)> = None;
        for line in text.lines() {
            match LineInfo::parse(line) {
                LineInfo::Doc { .. } => {}
                LineInfo::Type {
                    metric_alias,
                    metric_name,
                    ..
                } => {
                    let family = metric_alias.unwrap_or(metric_name);
                    let kind = line.split_whitespace().nth(3).unwrap().to_string();
                    assert!(
                        types.insert(family.clone(), kind).is_none(),
                        "TYPE twice for {family}"
                    );
                }
                LineInfo::Sample {
                    metric_name,
                    labels,
                    value,
                    timestamp,
                } => {
                    assert!(timestamp.is_none(), "{line}");
                    let v: f64 = value.parse().unwrap_or_else(|_| panic!("value in {line}"));
                    let family = ["_bucket", "_sum", "_count", ""]
                        .iter()
                        .find_map(|suf| {
                            let base = metric_name.strip_suffix(suf)?;
                            (types.get(base).is_some_and(|t| t == "histogram") || suf.is_empty())
                                .then(|| base.to_string())
                        })
                        .unwrap();
                    let kind = types
                        .get(&family)
                        .unwrap_or_else(|| panic!("sample before its TYPE: {line}"));
                    if kind == "counter" {
                        assert!(family.ends_with("_total"), "counter {family}");
                    }
                    *seen_samples.entry(family.clone()).or_default() += 1;
                    if let Some(l) = labels {
                        // Every label is name="value" with escapes only for \ " and \n.
                        let mut rest = l;
                        while !rest.is_empty() {
                            let (name, after) = rest.split_once("=\"").expect(line);
                            assert!(
                                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                                "{line}"
                            );
                            let mut end = None;
                            let mut esc = false;
                            for (i, c) in after.char_indices() {
                                match (esc, c) {
                                    (true, '\\' | '"' | 'n') => esc = false,
                                    (true, _) => panic!("bad escape in {line}"),
                                    (false, '\\') => esc = true,
                                    (false, '"') => {
                                        end = Some(i);
                                        break;
                                    }
                                    _ => {}
                                }
                            }
                            let end = end.expect(line);
                            rest = after[end + 1..]
                                .strip_prefix(',')
                                .unwrap_or(&after[end + 1..]);
                        }
                    }
                    if metric_name.ends_with("_bucket") && kind == "histogram" {
                        let series = labels.unwrap().split(",le=").next().unwrap().to_string();
                        let le = labels.unwrap().rsplit("le=\"").next().unwrap();
                        let le: f64 = le.trim_end_matches('"').parse().expect(line);
                        if let Some((prev, ple, pv)) = &last_bucket {
                            if *prev == series {
                                assert!(le > *ple && v >= *pv, "not cumulative: {line}");
                            }
                        }
                        last_bucket = Some((series, le, v));
                    } else if metric_name.ends_with("_count") && kind == "histogram" {
                        let (_, _, inf) = last_bucket.as_ref().expect(line);
                        assert_eq!(*inf, v, "+Inf bucket != _count: {line}");
                    }
                }
                LineInfo::Empty => panic!("empty line"),
                LineInfo::Ignored => panic!("not Prometheus text: {line:?}"),
            }
        }
        for (family, kind) in &types {
            assert!(
                seen_samples.contains_key(family) || kind == "histogram",
                "{family} has a TYPE but no sample"
            );
        }
    }
}
