//! `producer-bench`: the bare producer's cost per record, the baseline of the Kafka path.
//!
//! Sends records of `--payload` bytes as fast as it can from one thread with exactly the
//! gateways' producer configuration (`common::publish::producer_config`: defaults, `-X`
//! overrides, bootstrap list), polling delivery reports on the same thread, for
//! `--duration`; then flushes. Prints one JSON object: records (delivered), seconds,
//! records_per_sec, cpu_s (the whole process: the sending thread and librdkafka's own
//! threads), cpu_us_per_record. Pin it (`taskset -c 1`) like a gateway under test.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

/// The bare Kafka producer's throughput and CPU per record, with the gateways' settings.
#[derive(Parser, Debug)]
#[command(name = "producer-bench", version)]
struct Args {
    /// Bootstrap servers (e.g. the first line kafka-mock prints).
    #[arg(long)]
    brokers: String,
    /// Topic to produce to.
    #[arg(long, default_value = "bench")]
    topic: String,
    /// How long to send, e.g. `4s`, `500ms`, `1h30m`, `2` (seconds): the workspace's one
    /// duration grammar.
    #[arg(long, default_value = "4s", value_parser = duration_grammar::parse_duration)]
    duration: Duration,
    /// Record value size in bytes.
    #[arg(long, default_value_t = 100)]
    payload: usize,
    /// Send at most this many records per second (paced every millisecond) instead of
    /// as fast as possible: the producer's cost per record depends on how full its
    /// batches get, so compare it with a gateway at the gateway's own rate.
    #[arg(long)]
    rate: Option<u64>,
    /// librdkafka property override `key=value` (as the gateways' `-X`); repeatable.
    #[arg(short = 'X', value_parser = parse_kv)]
    producer_props: Vec<(String, String)>,
    /// Also write the JSON result to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s}: expected key=value"))
}

#[derive(Default)]
struct Ctx {
    delivered: AtomicU64,
    failed: AtomicU64,
}

impl ClientContext for Ctx {}

impl ProducerContext for Ctx {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.delivered.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn main() -> anyhow::Result<()> {
    common::observe::telemetry::init();
    let args = Args::parse();
    let conf = common::publish::producer_config(&args.brokers, &args.producer_props);
    let mut cc = ClientConfig::new();
    for (k, v) in &conf {
        cc.set(k, v);
    }
    let producer: BaseProducer<Ctx> = cc.create_with_context(Ctx::default())?;
    // Warm up: metadata and connections, outside the measurement.
    let value = vec![b'x'; args.payload];
    producer
        .send(BaseRecord::<[u8], [u8]>::to(&args.topic).payload(&value[..]))
        .map_err(|(e, _)| anyhow::anyhow!("first send: {e}"))?;
    producer.flush(Duration::from_secs(10))?;
    let ctx = producer.context().clone();
    let base_delivered = ctx.delivered.load(Ordering::Relaxed);

    let cpu0 = cpu_seconds();
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < args.duration {
        let burst = match args.rate {
            None => 256,
            Some(rate) => {
                // Catch up with the schedule, one millisecond at a time.
                let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
                if due <= sent {
                    // (BaseProducer::poll spins out the last partial millisecond of a
                    // timeout; sleep instead.)
                    std::thread::sleep(Duration::from_millis(1));
                    producer.poll(Duration::ZERO);
                    continue;
                }
                due - sent
            }
        };
        for _ in 0..burst {
            match producer.send(BaseRecord::<[u8], [u8]>::to(&args.topic).payload(&value[..])) {
                Ok(()) => sent += 1,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    producer.poll(Duration::from_millis(1));
                }
                Err((e, _)) => anyhow::bail!("send: {e}"),
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30))?;
    let seconds = start.elapsed().as_secs_f64();
    let cpu_s = cpu_seconds() - cpu0;
    let records = ctx.delivered.load(Ordering::Relaxed) - base_delivered;
    let failed = ctx.failed.load(Ordering::Relaxed);
    anyhow::ensure!(failed == 0, "{failed} records failed");
    anyhow::ensure!(records == sent, "sent {sent}, delivered {records}");
    let out = serde_json::json!({
        "records": records,
        "seconds": seconds,
        "records_per_sec": records as f64 / seconds,
        "cpu_s": cpu_s,
        "cpu_us_per_record": cpu_s * 1e6 / records.max(1) as f64,
        "payload": args.payload,
        "rate": args.rate,
        "producer_config": conf.iter().filter(|(k, _)| k != "bootstrap.servers")
            .map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
    });
    let text = serde_json::to_string(&out)?;
    println!("{text}");
    if let Some(path) = &args.json {
        std::fs::write(path, format!("{text}\n"))?;
    }
    Ok(())
}
