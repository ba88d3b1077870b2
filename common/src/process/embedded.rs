//! The embedded Kafka: librdkafka's mock cluster, which speaks the real Kafka wire protocol
//! on loopback TCP (several brokers, partitions, fault injection). Used by `kafka-mock` and
//! by every gateway started without `--brokers`.
//!
//! It keeps only recent records (about 100k / 5 MB per partition), so a verification run
//! must consume while it produces, or stay within that.

use std::time::Duration;

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

pub struct EmbeddedKafka {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl EmbeddedKafka {
    /// Starts `brokers` mock brokers. Topics are auto-created on first use; `topics` are
    /// created up front with `partitions` partitions.
    pub fn start(brokers: i32, partitions: i32, topics: &[String]) -> anyhow::Result<Self> {
        let cluster = MockCluster::new(brokers)
            .map_err(|e| anyhow::anyhow!("starting the mock Kafka cluster: {e}"))?;
        let replication = brokers.min(3);
        for t in topics {
            cluster
                .create_topic(t, partitions, replication)
                .map_err(|e| anyhow::anyhow!("creating topic {t}: {e}"))?;
        }
        Ok(EmbeddedKafka { cluster })
    }

    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    /// Fault injection: take a broker down or bring it back.
    pub fn set_broker_up(&self, broker: i32, up: bool) -> anyhow::Result<()> {
        let r = if up {
            self.cluster.broker_up(broker)
        } else {
            self.cluster.broker_down(broker)
        };
        r.map_err(|e| anyhow::anyhow!("broker {broker}: {e}"))
    }

    /// Fault injection: add round-trip time to a broker.
    pub fn set_broker_rtt(&self, broker: i32, rtt: Duration) -> anyhow::Result<()> {
        self.cluster
            .broker_round_trip_time(broker, rtt)
            .map_err(|e| anyhow::anyhow!("broker {broker}: {e}"))
    }
}

impl EmbeddedKafka {
    /// Runs one fault-injection command, as typed on `kafka-mock --control-stdin`:
    /// `broker-down ID`, `broker-up ID`, `rtt ID MILLIS`, `leader TOPIC PARTITION ID`,
    /// `produce-errors COUNT [transport|not-enough-replicas|timeout]`, `clear-errors`.
    pub fn control(&self, line: &str) -> anyhow::Result<()> {
        use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
        let words: Vec<&str> = line.split_whitespace().collect();
        let num = |i: usize| -> anyhow::Result<i64> {
            words
                .get(i)
                .ok_or_else(|| anyhow::anyhow!("missing argument {i} in `{line}`"))?
                .parse::<i64>()
                .map_err(|e| anyhow::anyhow!("bad number in `{line}`: {e}"))
        };
        match words.first().copied() {
            Some("broker-down") => self.set_broker_up(num(1)? as i32, false),
            Some("broker-up") => self.set_broker_up(num(1)? as i32, true),
            Some("rtt") => {
                self.set_broker_rtt(num(1)? as i32, Duration::from_millis(num(2)? as u64))
            }
            Some("leader") => {
                let topic = words
                    .get(1)
                    .ok_or_else(|| anyhow::anyhow!("missing topic"))?;
                self.cluster
                    .partition_leader(topic, num(2)? as i32, Some(num(3)? as i32))
                    .map_err(|e| anyhow::anyhow!("leader: {e}"))
            }
            Some("produce-errors") => {
                let count = num(1)?.clamp(0, 1_000_000) as usize;
                let code = match words.get(2).copied().unwrap_or("not-enough-replicas") {
                    "transport" => RDKafkaRespErr::RD_KAFKA_RESP_ERR__TRANSPORT,
                    "timeout" => RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                    "not-enough-replicas" => RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                    other => anyhow::bail!("unknown error kind `{other}`"),
                };
                self.cluster
                    .request_errors(RDKafkaApiKey::Produce, &vec![code; count]);
                Ok(())
            }
            Some("clear-errors") => {
                self.cluster.clear_request_errors(RDKafkaApiKey::Produce);
                Ok(())
            }
            _ => anyhow::bail!("unknown command `{line}`"),
        }
    }
}
