//! The one command line every gateway shares (`GatewayArgs`, flattened into each binary)
//! and the plain, validated `Config` the rest of the core reads.
//!
//! Runtime-specific knobs (`--flavor`, `--ring-entries`) live in the gateway crates; everything
//! here must mean exactly the same thing on every runtime.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, ValueEnum};

/// When a request counts as "done" for the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AckMode {
    /// Answer once parsed, before the producer saw the record (fire-and-forget).
    None,
    /// Answer once the producer accepted the record into its queue.
    Enqueue,
    /// Answer only after the broker acknowledged it (acks=all, idempotent producer).
    Kafka,
}

impl AckMode {
    pub fn parse(s: &[u8]) -> Option<AckMode> {
        match s {
            b"none" => Some(AckMode::None),
            b"enqueue" => Some(AckMode::Enqueue),
            b"kafka" => Some(AckMode::Kafka),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AckMode::None => "none",
            AckMode::Enqueue => "enqueue",
            AckMode::Kafka => "kafka",
        }
    }
}

/// Where records go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SinkKind {
    /// A real (or the embedded mock) Kafka cluster through rdkafka's BaseProducer.
    Kafka,
    /// Acknowledge every record at once: measures the gateway's own cost.
    Null,
}

/// Faulty behaviours that reproduce the accept stalls of the seed report on purpose.
/// Off by default; each one is a reproduction, never a tuning knob.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Fault {
    /// Reproduction: the accept loop exits on the first accept error (`?` on accept),
    /// e.g. EMFILE; the process lives on with a dead listener.
    AcceptExitOnError,
    /// Reproduction: the I/O thread blocks on every record until the producer delivered it
    /// (a producer flush inside the runtime), stalling every connection on that thread.
    BlockingProduce,
    /// Reproduction: answer one request per connection and close it (the original
    /// tokio-uring server), so the client's ports pile up in TIME_WAIT.
    OneRequestPerConnection,
}

/// Command line shared by `gateway-tokio`, `gateway-uring` and `gateway-compio`.
#[derive(Args, Clone, Debug)]
pub struct GatewayArgs {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// Kafka bootstrap servers (host:port,...). Default: an in-process embedded mock cluster.
    #[arg(long)]
    pub brokers: Option<String>,

    /// I/O threads (default: number of cores).
    #[arg(long)]
    pub threads: Option<usize>,

    /// Default ack mode for requests that do not say `?ack=`.
    #[arg(long, value_enum, default_value = "kafka")]
    pub ack: AckMode,

    /// Record sink: kafka, or null (acknowledge at once, to measure the gateway alone).
    #[arg(long, value_enum, default_value = "kafka")]
    pub sink: SinkKind,

    /// Largest accepted record value / WebSocket message / batch body, in bytes.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub max_body: usize,

    /// Largest request head (request line + headers), in bytes; larger gets 431.
    #[arg(long, default_value_t = 16 * 1024)]
    pub max_head: usize,

    /// Listen backlog, identical on every runtime.
    #[arg(long, default_value_t = 4096)]
    pub backlog: u32,

    /// Open connections at most; past it new connections are closed at once.
    #[arg(long, default_value_t = 100_000)]
    pub max_connections: usize,

    /// Unresolved WebSocket messages per connection before the gateway stops reading it.
    #[arg(long, default_value_t = 1024)]
    pub ws_max_inflight: usize,

    /// Pipelined HTTP requests awaiting their answer per connection before the gateway stops
    /// reading it.
    #[arg(long, default_value_t = 256)]
    pub max_pipeline: usize,

    /// Close connections idle this long (WebSocket: pinged at half of it), e.g. `60s`.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// A request's head and body must arrive within this time, else 408, e.g. `10s`.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// On SIGTERM/SIGINT: time allowed to finish in-flight work and flush the producer.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// Raise RLIMIT_NOFILE to this (default: the hard limit). Lower it to reproduce EMFILE.
    #[arg(long)]
    pub fd_limit: Option<u64>,

    /// librdkafka producer property, repeatable (as kcat's -X), e.g. `-X linger.ms=5`.
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = parse_kv)]
    pub producer_props: Vec<(String, String)>,

    /// Reproduce a faulty behaviour on purpose (see the stall lab). Repeatable.
    #[arg(long, value_enum)]
    pub fault: Vec<Fault>,
}

/// Parses `250ms`, `10s`, `2m` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let value: f64 = num.parse().map_err(|_| format!("invalid duration `{s}`"))?;
    let secs = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("invalid duration unit in `{s}` (use ms, s or m)")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("invalid duration `{s}`"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(format!("expected KEY=VALUE, got `{s}`")),
    }
}

/// Validated configuration, shared read-only by every connection.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub threads: usize,
    pub default_ack: AckMode,
    pub sink: SinkKind,
    pub limits: Limits,
    pub backlog: u32,
    pub max_connections: usize,
    pub idle_timeout: Duration,
    pub request_timeout: Duration,
    pub shutdown_timeout: Duration,
    pub faults: Vec<Fault>,
}

/// Per-connection limits: what bounds a connection's memory.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_head: usize,
    pub max_headers: usize,
    pub max_body: usize,
    pub max_pipeline: usize,
    pub ws_max_inflight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head: 16 * 1024,
            max_headers: 64,
            max_body: 1024 * 1024,
            max_pipeline: 256,
            ws_max_inflight: 1024,
        }
    }
}

impl Config {
    pub fn from_args(args: &GatewayArgs) -> anyhow::Result<Config> {
        let threads = args
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        anyhow::ensure!(threads >= 1, "--threads must be at least 1");
        anyhow::ensure!(args.max_body >= 1, "--max-body must be at least 1");
        anyhow::ensure!(args.max_head >= 256, "--max-head must be at least 256");
        anyhow::ensure!(args.max_pipeline >= 1, "--max-pipeline must be at least 1");
        anyhow::ensure!(
            args.ws_max_inflight >= 1,
            "--ws-max-inflight must be at least 1"
        );
        anyhow::ensure!(args.backlog >= 1, "--backlog must be at least 1");
        anyhow::ensure!(
            !args.idle_timeout.is_zero() && !args.request_timeout.is_zero(),
            "timeouts must be positive"
        );
        Ok(Config {
            listen: args.listen,
            threads,
            default_ack: args.ack,
            sink: args.sink,
            limits: Limits {
                max_head: args.max_head,
                max_headers: 64,
                max_body: args.max_body,
                max_pipeline: args.max_pipeline,
                ws_max_inflight: args.ws_max_inflight,
            },
            backlog: args.backlog,
            max_connections: args.max_connections,
            idle_timeout: args.idle_timeout,
            request_timeout: args.request_timeout,
            shutdown_timeout: args.shutdown_timeout,
            faults: args.fault.clone(),
        })
    }

    pub fn has_fault(&self, f: Fault) -> bool {
        self.faults.contains(&f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("5h").is_err());
    }

    #[test]
    fn kv() {
        assert_eq!(
            parse_kv("linger.ms=5").unwrap(),
            ("linger.ms".to_string(), "5".to_string())
        );
        assert!(parse_kv("nope").is_err());
    }
}
