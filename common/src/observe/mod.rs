//! What the process tells about itself: the metrics registry every layer counts into and
//! its Prometheus rendering (`metrics`), the process's own figures (`proc_stats`), logging
//! and the rate limit on librdkafka's repeated log lines (`telemetry`). The bottom layer:
//! it knows nothing of connections or Kafka.

pub mod metrics;
pub mod proc_stats;
pub mod telemetry;
