//! A few of librdkafka's own statistics (`-X statistics.interval.ms=N`), kept as the last
//! snapshot and rendered on scrape. The producer converts librdkafka's JSON into these plain
//! figures (this layer knows nothing of Kafka clients); with statistics off nothing is ever
//! stored and none of these series exist.

use super::expo::{escape, header, sample};

/// One broker connection's figures from the last statistics report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BrokerStats {
    /// librdkafka's broker name, `host:port/id`: the `broker` label.
    pub name: String,
    /// Round-trip time of produce requests over the last window, seconds (None: no
    /// request in the window).
    pub rtt_avg_seconds: Option<f64>,
    pub rtt_p99_seconds: Option<f64>,
    /// Requests (and the messages in them) waiting to be sent.
    pub outbuf_requests: i64,
    pub outbuf_messages: i64,
    /// Requests (and messages) sent, awaiting the broker's response.
    pub waitresp_requests: i64,
    pub waitresp_messages: i64,
    /// Requests sent since the client started.
    pub tx_requests: u64,
    /// Requests that timed out since the client started.
    pub request_timeouts: u64,
}

/// The client-wide figures of one statistics report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KafkaStats {
    pub brokers: Vec<BrokerStats>,
    /// Messages sent to brokers since the client started (librdkafka's `txmsgs`).
    pub tx_messages: u64,
    /// Mean produce batch over the last window, across topics: bytes and messages (None:
    /// no batch in the window).
    pub batch_bytes_avg: Option<f64>,
    pub batch_messages_avg: Option<f64>,
}

/// One broker gauge or counter: name, type, help, value.
type BrokerSeries = (
    &'static str,
    &'static str,
    &'static str,
    fn(&BrokerStats) -> Option<f64>,
);

const BROKER_SERIES: [BrokerSeries; 8] = [
    (
        "gateway_kafka_broker_rtt_avg_seconds",
        "gauge",
        "Mean broker round-trip time over librdkafka's last statistics window.",
        |b| b.rtt_avg_seconds,
    ),
    (
        "gateway_kafka_broker_rtt_p99_seconds",
        "gauge",
        "99th percentile of the broker round-trip time over librdkafka's last statistics window.",
        |b| b.rtt_p99_seconds,
    ),
    (
        "gateway_kafka_broker_outbuf_requests",
        "gauge",
        "Requests waiting to be sent to the broker.",
        |b| Some(b.outbuf_requests as f64),
    ),
    (
        "gateway_kafka_broker_outbuf_messages",
        "gauge",
        "Messages waiting to be sent to the broker.",
        |b| Some(b.outbuf_messages as f64),
    ),
    (
        "gateway_kafka_broker_waitresp_requests",
        "gauge",
        "Requests sent to the broker, awaiting its response.",
        |b| Some(b.waitresp_requests as f64),
    ),
    (
        "gateway_kafka_broker_waitresp_messages",
        "gauge",
        "Messages sent to the broker, awaiting its response.",
        |b| Some(b.waitresp_messages as f64),
    ),
    (
        "gateway_kafka_broker_requests_total",
        "counter",
        "Requests sent to the broker.",
        |b| Some(b.tx_requests as f64),
    ),
    (
        "gateway_kafka_broker_request_timeouts_total",
        "counter",
        "Requests to the broker that timed out.",
        |b| Some(b.request_timeouts as f64),
    ),
];

/// The series of one statistics report (nothing before the first report).
pub fn render(s: &mut String, stats: &KafkaStats) {
    for (name, kind, help, value) in BROKER_SERIES {
        if stats.brokers.is_empty() {
            break;
        }
        header(s, name, kind, help);
        for b in &stats.brokers {
            // A window without requests has no RTT: 0 would read as an instant broker.
            let v = value(b).unwrap_or(f64::NAN);
            sample(s, name, &format!("broker=\"{}\"", escape(&b.name)), v);
        }
    }
    header(
        s,
        "gateway_kafka_tx_messages_total",
        "counter",
        "Messages sent to Kafka brokers (librdkafka txmsgs).",
    );
    sample(s, "gateway_kafka_tx_messages_total", "", stats.tx_messages);
    header(
        s,
        "gateway_kafka_batch_size_bytes_avg",
        "gauge",
        "Mean produce batch size in bytes over librdkafka's last statistics window.",
    );
    let nan = |v: Option<f64>| v.unwrap_or(f64::NAN);
    sample(
        s,
        "gateway_kafka_batch_size_bytes_avg",
        "",
        nan(stats.batch_bytes_avg),
    );
    header(
        s,
        "gateway_kafka_batch_messages_avg",
        "gauge",
        "Mean produce batch size in messages over librdkafka's last statistics window.",
    );
    sample(
        s,
        "gateway_kafka_batch_messages_avg",
        "",
        nan(stats.batch_messages_avg),
    );
}
