//! Process-wide counters, gauges and one histogram, as plain atomics, rendered in the
//! Prometheus text exposition format for `GET /metrics`.
//!
//! Atomics rather than a registry: the hot path is one `fetch_add` per event and the set of
//! series is fixed by the wire contract.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// HTTP statuses counted individually; anything else lands in `other`.
const STATUSES: [u16; 12] = [101, 200, 202, 400, 404, 405, 408, 411, 413, 431, 503, 0];

/// Accept errors counted by errno name.
const ACCEPT_ERRNOS: [(i32, &str); 6] = [
    (libc::EMFILE, "EMFILE"),
    (libc::ENFILE, "ENFILE"),
    (libc::ECONNABORTED, "ECONNABORTED"),
    (libc::ENOBUFS, "ENOBUFS"),
    (libc::ENOMEM, "ENOMEM"),
    (0, "other"),
];

/// Upper bounds (seconds) of the delivery-latency histogram buckets.
const LATENCY_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Default)]
pub struct Metrics {
    requests: [AtomicU64; STATUSES.len()],
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub connections_open: AtomicI64,
    pub connections_accepted: AtomicU64,
    pub connections_rejected: AtomicU64,
    accept_errors: [AtomicU64; ACCEPT_ERRNOS.len()],
    pub records_inflight: AtomicI64,
    pub records_sent: AtomicU64,
    pub records_delivered: AtomicU64,
    pub records_failed: AtomicU64,
    pub records_rejected: AtomicU64,
    pub ws_messages: AtomicU64,
    pub ws_closes: AtomicU64,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
}

impl Metrics {
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

    pub fn accept_error(&self, err: &std::io::Error) {
        let errno = err.raw_os_error().unwrap_or(0);
        let i = ACCEPT_ERRNOS
            .iter()
            .position(|&(e, _)| e == errno)
            .unwrap_or(ACCEPT_ERRNOS.len() - 1);
        self.accept_errors[i].fetch_add(1, Relaxed);
    }

    pub fn delivery_latency(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|&b| secs <= b) {
            self.latency_buckets[i].fetch_add(1, Relaxed);
        }
        self.latency_count.fetch_add(1, Relaxed);
        self.latency_sum_us
            .fetch_add(d.as_micros().min(u128::from(u64::MAX)) as u64, Relaxed);
    }

    /// Renders every series. `info` are the labels of `gateway_info` (runtime, flavour,
    /// ring size, driver, asymmetries); `queue_depth` is the producer's current queue.
    pub fn render(&self, info: &[(String, String)], queue_depth: u64, ready: bool) -> String {
        let mut s = String::with_capacity(4096);
        let labels: Vec<String> = info
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect();
        let _ = writeln!(s, "# HELP gateway_info Build and runtime of this gateway.");
        let _ = writeln!(s, "# TYPE gateway_info gauge");
        let _ = writeln!(s, "gateway_info{{{}}} 1", labels.join(","));

        let _ = writeln!(
            s,
            "# HELP gateway_ready 1 while Kafka metadata is reachable."
        );
        let _ = writeln!(s, "# TYPE gateway_ready gauge");
        let _ = writeln!(s, "gateway_ready {}", u8::from(ready));

        let _ = writeln!(
            s,
            "# HELP gateway_http_requests_total HTTP responses by status."
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
                "gateway_http_requests_total{{status=\"{label}\"}} {}",
                self.requests[i].load(Relaxed)
            );
        }
        counter(
            &mut s,
            "gateway_bytes_received_total",
            "Bytes read from clients.",
            &self.bytes_in,
        );
        counter(
            &mut s,
            "gateway_bytes_sent_total",
            "Bytes written to clients.",
            &self.bytes_out,
        );
        gauge(
            &mut s,
            "gateway_connections_open",
            "Open client connections.",
            self.connections_open.load(Relaxed),
        );
        counter(
            &mut s,
            "gateway_connections_accepted_total",
            "Accepted connections.",
            &self.connections_accepted,
        );
        counter(
            &mut s,
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
        gauge(
            &mut s,
            "gateway_records_inflight",
            "Records handed to the producer, not yet resolved.",
            self.records_inflight.load(Relaxed),
        );
        gauge(
            &mut s,
            "gateway_producer_queue_depth",
            "Messages in the producer's queue (rd_kafka_outq_len).",
            queue_depth as i64,
        );
        counter(
            &mut s,
            "gateway_records_sent_total",
            "Records handed to the producer.",
            &self.records_sent,
        );
        counter(
            &mut s,
            "gateway_records_delivered_total",
            "Records the broker acknowledged.",
            &self.records_delivered,
        );
        counter(
            &mut s,
            "gateway_records_failed_total",
            "Records whose delivery failed.",
            &self.records_failed,
        );
        counter(
            &mut s,
            "gateway_records_rejected_total",
            "Records the producer refused (queue full, invalid).",
            &self.records_rejected,
        );
        counter(
            &mut s,
            "gateway_ws_messages_total",
            "WebSocket data messages received.",
            &self.ws_messages,
        );

        let _ = writeln!(
            s,
            "# HELP gateway_delivery_latency_seconds From send to delivery report."
        );
        let _ = writeln!(s, "# TYPE gateway_delivery_latency_seconds histogram");
        let mut cumulative = 0;
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            cumulative += self.latency_buckets[i].load(Relaxed);
            let _ = writeln!(
                s,
                "gateway_delivery_latency_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.latency_count.load(Relaxed);
        let _ = writeln!(
            s,
            "gateway_delivery_latency_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            s,
            "gateway_delivery_latency_seconds_sum {}",
            self.latency_sum_us.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(s, "gateway_delivery_latency_seconds_count {count}");
        s
    }
}

fn counter(s: &mut String, name: &str, help: &str, v: &AtomicU64) {
    let _ = writeln!(
        s,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
        v.load(Relaxed)
    );
}

fn gauge(s: &mut String, name: &str, help: &str, v: i64) {
    let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts() {
        let m = Metrics::default();
        m.request(200);
        m.request(200);
        m.request(999);
        m.delivery_latency(Duration::from_millis(3));
        m.accept_error(&std::io::Error::from_raw_os_error(libc::EMFILE));
        let text = m.render(&[("runtime".into(), "tokio".into())], 7, true);
        assert!(text.contains("gateway_info{runtime=\"tokio\"} 1"));
        assert!(text.contains("gateway_http_requests_total{status=\"200\"} 2"));
        assert!(text.contains("gateway_http_requests_total{status=\"other\"} 1"));
        assert!(text.contains("gateway_accept_errors_total{errno=\"EMFILE\"} 1"));
        assert!(text.contains("gateway_delivery_latency_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("gateway_delivery_latency_seconds_bucket{le=\"0.0025\"} 0"));
        assert!(text.contains("gateway_producer_queue_depth 7"));
    }
}
