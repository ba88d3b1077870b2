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
