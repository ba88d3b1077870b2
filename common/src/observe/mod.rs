//! What the process tells about itself: the metrics registry every layer counts into and
//! its Prometheus rendering (`metrics`, written with `expo`, latency histograms in
//! `histogram`), the optional sources it renders on scrape (librdkafka's statistics as plain
//! figures in `kafka_stats`, the io_uring rings' state in `uring`), the process's own
//! figures (`proc_stats`), TLS handshake counters (`tls_metrics`), logging and the rate limit on librdkafka's repeated log lines
//! (`telemetry`). The bottom layer: it knows nothing of connections or Kafka clients.

pub mod expo;
pub mod histogram;
pub mod kafka_stats;
pub mod metrics;
pub mod proc_stats;
pub mod telemetry;
pub mod tls_metrics;
pub mod uring;
