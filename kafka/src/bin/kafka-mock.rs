//! `kafka-mock`: the embedded Kafka as its own process. Starts librdkafka's mock cluster
//! (real Kafka wire protocol on loopback TCP), prints the bootstrap list as the first line
//! of stdout (and to `--bootstrap-file`), and runs until SIGTERM/SIGINT.
//!
//! Mock-cluster retention is small (about 100k records / 5 MB per partition): consume while
//! producing when you verify a long run.

use std::io::Write;

use clap::Parser;

/// Embedded Kafka (librdkafka mock cluster) for tests and benchmarks.
#[derive(Parser, Debug)]
#[command(name = "kafka-mock", version)]
struct Args {
    /// Number of brokers in the mock cluster. (Every other `--brokers` in the workspace is a
    /// bootstrap host list, so the count has its own name; `--brokers N` still works.)
    #[arg(long = "broker-count", alias = "brokers", default_value_t = 3)]
    broker_count: i32,
    /// Partitions of the topics created up front (auto-created topics get librdkafka's
    /// mock default).
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// Topic to create up front; repeatable. Others are created on first use.
    #[arg(long)]
    topic: Vec<String>,
    /// Also write the bootstrap list to this file (written atomically).
    #[arg(long)]
    bootstrap_file: Option<std::path::PathBuf>,
    /// Read fault-injection commands from stdin, one per line, answering `ok` or `error: ..`
    /// on stdout: `broker-down ID`, `broker-up ID`, `rtt ID MILLIS`,
    /// `leader TOPIC PARTITION ID`, `produce-errors COUNT [transport|not-enough-replicas|timeout]`,
    /// `clear-errors`.
    #[arg(long)]
    control_stdin: bool,
}

fn main() -> anyhow::Result<()> {
    common::observe::telemetry::init();
    let args = Args::parse();
    anyhow::ensure!(args.broker_count >= 1, "--broker-count must be at least 1");
    anyhow::ensure!(args.partitions >= 1, "--partitions must be at least 1");
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])?;
    let kafka = common::process::embedded::EmbeddedKafka::start(
        args.broker_count,
        args.partitions,
        &args.topic,
    )?;
    let bootstrap = kafka.bootstrap_servers();
    if let Some(path) = &args.bootstrap_file {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, format!("{bootstrap}\n"))?;
        std::fs::rename(&tmp, path)?;
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{bootstrap}")?;
    out.flush()?;
    drop(out);
    tracing::info!(brokers = args.broker_count, topics = ?args.topic, "kafka-mock ready at {bootstrap}");
    // The mock cluster handle is not Send: commands and the stop signal come to this thread.
    enum Event {
        Command(String),
        Stop(i32),
    }
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            if let Some(sig) = signals.forever().next() {
                let _ = tx.send(Event::Stop(sig));
            }
        });
    }
    if args.control_stdin {
        std::thread::spawn(move || {
            for line in std::io::stdin().lines() {
                let Ok(line) = line else { break };
                if !line.trim().is_empty() && tx.send(Event::Command(line)).is_err() {
                    break;
                }
            }
        });
    }
    for event in rx {
        match event {
            Event::Command(line) => {
                let reply = match kafka.control(&line) {
                    Ok(()) => "ok".to_string(),
                    Err(e) => format!("error: {e:#}"),
                };
                tracing::info!(command = line.trim(), %reply, "control");
                let mut out = std::io::stdout().lock();
                writeln!(out, "{reply}")?;
                out.flush()?;
            }
            Event::Stop(sig) => {
                tracing::info!(signal = sig, "kafka-mock stopping");
                break;
            }
        }
    }
    drop(kafka);
    Ok(())
}
