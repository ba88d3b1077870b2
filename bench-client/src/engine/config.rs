//! `bench-client run` options: the clap [`RunArgs`], validated once into the plain,
//! serializable [`RunConfig`] that [`crate::engine::run`] takes and every result carries.
//!
//! Entry point: [`RunConfig::from_args`]. Part of the [engine](crate::engine): must not
//! depend on anything outside it.

use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::ValueEnum;
use serde::{Deserialize, Serialize};

/// Traffic shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// HTTP/1.1 keep-alive, `--pipeline` requests in flight per connection.
    Http,
    /// A new TCP connection per request; the client closes first.
    HttpClose,
    /// WebSocket, `--window` unresolved messages per connection.
    Ws,
}

/// When the gateway may answer success (see the wire contract).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ack {
    None,
    Enqueue,
    Kafka,
}

impl Ack {
    pub fn as_str(self) -> &'static str {
        match self {
            Ack::None => "none",
            Ack::Enqueue => "enqueue",
            Ack::Kafka => "kafka",
        }
    }
}

/// Record value size: fixed (`100`) or uniform in a range (`100..1000`, inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayloadSize {
    pub min: usize,
    pub max: usize,
}

impl FromStr for PayloadSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let num = |t: &str| {
            t.trim()
                .parse::<usize>()
                .map_err(|e| format!("bad payload size {t:?}: {e}"))
        };
        let (min, max) = match s.split_once("..") {
            Some((a, b)) => (num(a)?, num(b.trim_start_matches('='))?),
            None => (num(s)?, num(s)?),
        };
        if min > max {
            return Err(format!("payload range {min}..{max} is empty"));
        }
        Ok(PayloadSize { min, max })
    }
}

/// `IP:LOW-HIGH`: bind client sockets to source ports in this range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindRange {
    pub ip: IpAddr,
    pub low: u16,
    pub high: u16,
}

impl FromStr for BindRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (ip, ports) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("expected IP:LOW-HIGH, got {s:?}"))?;
        let ip: IpAddr = ip
            .trim_matches(|c| c == '[' || c == ']')
            .parse()
            .map_err(|e| format!("bad IP {ip:?}: {e}"))?;
        let (lo, hi) = ports
            .split_once('-')
            .ok_or_else(|| format!("expected LOW-HIGH ports, got {ports:?}"))?;
        let low: u16 = lo.parse().map_err(|e| format!("bad port {lo:?}: {e}"))?;
        let high: u16 = hi.parse().map_err(|e| format!("bad port {hi:?}: {e}"))?;
        if low == 0 || low > high {
            return Err(format!("bad port range {low}-{high}"));
        }
        Ok(BindRange { ip, low, high })
    }
}

/// Parse `500ms`, `2s`, `1.5s`, `3m`, `250us`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let v: f64 = num
        .parse()
        .map_err(|_| format!("bad duration {s:?} (examples: 500ms, 10s, 2m)"))?;
    let secs = match unit.trim() {
        "" | "s" => v,
        "ms" => v / 1e3,
        "us" => v / 1e6,
        "m" | "min" => v * 60.0,
        "h" => v * 3600.0,
        u => return Err(format!("bad duration unit {u:?} in {s:?}")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("bad duration {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn default_threads() -> usize {
    // Leave the rest of the machine to the system under test.
    std::thread::available_parallelism()
        .map(|n| n.get().div_ceil(2))
        .unwrap_or(1)
}

/// Drive one gateway with one scenario.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Gateway base URL: http://HOST:PORT (WebSocket mode derives ws://HOST:PORT/ws/TOPIC).
    #[arg(long)]
    pub target: String,
    /// Traffic shape.
    #[arg(long, value_enum, default_value_t = Mode::Http)]
    pub mode: Mode,
    /// HTTP keep-alive: requests in flight per connection (written back to back, answered in order).
    #[arg(long, default_value_t = 1)]
    pub pipeline: usize,
    /// WebSocket: unresolved messages per connection.
    #[arg(long, default_value_t = 32)]
    pub window: usize,
    /// Concurrent connections (http-close: concurrent requests).
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Limit new connections per second (all connects, reconnects included).
    #[arg(long, value_name = "PER_SEC")]
    pub connect_rate: Option<f64>,
    /// Connection churn (http mode): close each keep-alive connection after this many
    /// requests (once all are answered) and open a new one.
    #[arg(long, value_name = "REQUESTS")]
    pub reconnect_after: Option<u64>,
    /// Measured run time after warmup (default 10s unless --requests is given).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Stop after this many measured requests instead of after a duration.
    #[arg(long, conflicts_with = "duration")]
    pub requests: Option<u64>,
    /// Traffic before measurement starts; excluded from every figure.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub warmup: Duration,
    /// Record value size in bytes, or a range LOW..HIGH (uniform).
    #[arg(long, default_value = "100")]
    pub payload: PayloadSize,
    /// Kafka topic.
    #[arg(long, default_value = "bench")]
    pub topic: String,
    /// Ack mode requested from the gateway.
    #[arg(long, value_enum, default_value_t = Ack::Kafka)]
    pub ack: Ack,
    /// Open loop: this many requests per second in total, scheduled in advance; latency is
    /// measured from the intended send time. Without it the loop is closed.
    #[arg(long, value_name = "PER_SEC")]
    pub rate: Option<f64>,
    /// Tokio worker threads of the client (default: half the CPUs).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Per-request (and per-connect) timeout.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub timeout: Duration,
    /// A window this long without progress while waiting is a stall.
    #[arg(long, value_parser = parse_duration, default_value = "500ms")]
    pub stall_window: Duration,
    /// Exit non-zero when any stall was detected.
    #[arg(long)]
    pub fail_on_stall: bool,
    /// Do not sample the target's accept queue from /proc/net/tcp (done by default when
    /// the target listens on this host; it tells an accept stall from a service stall).
    #[arg(long)]
    pub no_server_probe: bool,
    /// Bind client sockets to source ports IP:LOW-HIGH (reproduces port exhaustion without root).
    #[arg(long)]
    pub bind_range: Option<BindRange>,
    /// Write the full result (with manifest) as JSON; schema in bench-client/SCHEMA.md.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write an HdrHistogram V2 interval log (one latency histogram per second).
    #[arg(long)]
    pub hdr_log: Option<PathBuf>,
    /// Write the ids acknowledged with ack=kafka, one per line (input of `verify`).
    #[arg(long)]
    pub acked_file: Option<PathBuf>,
    /// The gateway binary, only asked for `--version` for the manifest.
    #[arg(long)]
    pub target_bin: Option<PathBuf>,
    /// PID of the gateway, when it runs on this host: its CPU time per thread class, context
    /// switches and system calls over the measured phase land in the result (cost per
    /// request), and its CPU load decides whether the run was gateway-bound.
    #[arg(long, value_name = "PID")]
    pub target_pid: Option<u32>,
    /// PID of the broker (kafka-mock) on this host: its CPU over the measured phase.
    #[arg(long, value_name = "PID")]
    pub broker_pid: Option<u32>,
    /// Do not count the target's system calls (one perf tracepoint counter per thread).
    #[arg(long)]
    pub no_syscalls: bool,
    /// No progress line and no summary (the JSON file is still written).
    #[arg(long, short)]
    pub quiet: bool,
    /// HTTP request body: `raw` (the body is one record value), `rest-v2-binary` or
    /// `rest-v2-json` (a Kafka REST Proxy v2 envelope of `--batch` records).
    #[arg(long, value_enum, default_value_t = Format::Raw)]
    pub format: Format,
    /// Records per request (REST formats): verify and `ok_records` count records.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
}

/// A validated scenario. Times are in seconds so the JSON reads naturally.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    pub target: String,
    /// `HOST:PORT` from the target URL (also the `Host` header).
    pub authority: String,
    pub mode: Mode,
    pub pipeline: usize,
    pub window: usize,
    pub connections: usize,
    pub connect_rate: Option<f64>,
    /// Http mode: requests per keep-alive connection before the client closes it and
    /// reconnects (connection churn); `None`: connections live as long as they work.
    #[serde(default)]
    pub reconnect_after: Option<u64>,
    pub duration_s: Option<f64>,
    pub requests: Option<u64>,
    pub warmup_s: f64,
    pub payload: PayloadSize,
    pub topic: String,
    pub ack: Ack,
    pub rate: Option<f64>,
    pub threads: usize,
    pub timeout_s: f64,
    pub stall_window_s: f64,
    /// Sample the target's accept queue when it listens on this host.
    #[serde(default = "yes")]
    pub server_probe: bool,
    pub bind_range: Option<BindRange>,
    /// Keep the ids acknowledged with ack=kafka (for `--acked-file`).
    pub collect_acks: bool,
    /// Keep one histogram per second (for `--hdr-log`).
    pub interval_histograms: bool,
    /// Show the live progress line (only ever on a TTY).
    pub progress: bool,
    /// The gateway's PID on this host (cost and load of the measured phase).
    #[serde(default)]
    pub target_pid: Option<u32>,
    /// The broker's PID on this host.
    #[serde(default)]
    pub broker_pid: Option<u32>,
    /// Count the target's system calls.
    #[serde(default)]
    pub count_syscalls: bool,
    /// HTTP request body format (absent in older files: raw).
    #[serde(default)]
    pub format: Format,
    /// Records per request (absent in older files: 1).
    #[serde(default = "one")]
    pub batch: usize,
}

fn yes() -> bool {
    true
}

impl RunConfig {
    /// A config with the CLI defaults, for programmatic use (tests, `compare`).
    pub fn new(target: &str) -> anyhow::Result<Self> {
        use clap::Parser;
        #[derive(Parser)]
        struct P {
            #[command(flatten)]
            a: RunArgs,
        }
        let p = P::try_parse_from(["run", "--target", target])?;
        RunConfig::from_args(&p.a)
    }

    pub fn from_args(a: &RunArgs) -> anyhow::Result<Self> {
        let authority = authority_of(&a.target)?;
        if a.connections == 0 {
            bail!("--connections must be at least 1");
        }
        if a.pipeline == 0 || a.window == 0 {
            bail!("--pipeline and --window must be at least 1");
        }
        if let Some(r) = a.rate {
            if !(r > 0.0 && r.is_finite()) {
                bail!("--rate must be positive");
            }
        }
        if let Some(r) = a.connect_rate {
            if !(r > 0.0 && r.is_finite()) {
                bail!("--connect-rate must be positive");
            }
        }
        if a.reconnect_after == Some(0) {
            bail!("--reconnect-after must be at least 1");
        }
        if a.batch == 0 || a.batch > 100_000 {
            bail!("--batch must be 1..=100000");
        }
        if a.batch > 1 && a.format == Format::Raw {
            bail!("--batch > 1 needs a REST format (--format rest-v2-binary or rest-v2-json)");
        }
        if a.format != Format::Raw && a.mode == Mode::Ws {
            bail!("--format {:?} is for the HTTP modes", a.format);
        }
        if a.stall_window < Duration::from_millis(20) {
            bail!("--stall-window must be at least 20ms");
        }
        if a.topic.is_empty() || a.topic.contains(['/', '?', '#', ' ']) {
            bail!("--topic {:?} is not a plain topic name", a.topic);
        }
        let duration_s = match (a.duration, a.requests) {
            (Some(d), _) => Some(d.as_secs_f64()),
            (None, Some(_)) => None,
            (None, None) => Some(10.0),
        };
        Ok(RunConfig {
            target: a.target.clone(),
            authority,
            mode: a.mode,
            pipeline: a.pipeline,
            window: a.window,
            connections: a.connections,
            connect_rate: a.connect_rate,
            reconnect_after: a.reconnect_after,
            duration_s,
            requests: a.requests,
            warmup_s: a.warmup.as_secs_f64(),
            payload: a.payload,
            topic: a.topic.clone(),
            ack: a.ack,
            rate: a.rate,
            threads: a.threads.unwrap_or_else(default_threads).max(1),
            timeout_s: a.timeout.as_secs_f64(),
            stall_window_s: a.stall_window.as_secs_f64(),
            server_probe: !a.no_server_probe,
            bind_range: a.bind_range,
            collect_acks: a.acked_file.is_some(),
            interval_histograms: a.hdr_log.is_some(),
            progress: !a.quiet,
            target_pid: a.target_pid,
            broker_pid: a.broker_pid,
            count_syscalls: !a.no_syscalls,
            format: a.format,
            batch: a.batch,
        })
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout_s)
    }
    pub fn warmup(&self) -> Duration {
        Duration::from_secs_f64(self.warmup_s)
    }
    pub fn stall_window(&self) -> Duration {
        Duration::from_secs_f64(self.stall_window_s)
    }
    /// Requests a closed loop keeps in flight (connections × depth); `None` in open loop.
    pub fn window(&self) -> Option<u64> {
        self.rate
            .is_none()
            .then(|| (self.connections * self.depth()) as u64)
    }

    /// In-flight requests per connection for the chosen mode.
    pub fn depth(&self) -> usize {
        match self.mode {
            Mode::Http => self.pipeline,
            Mode::HttpClose => 1,
            Mode::Ws => self.window,
        }
    }
}

/// `HOST:PORT` of an `http://HOST:PORT[/...]` URL (port 80 if absent).
pub fn authority_of(target: &str) -> anyhow::Result<String> {
    let rest = target
        .strip_prefix("http://")
        .with_context(|| format!("--target must be http://HOST:PORT, got {target:?}"))?;
    let auth = rest.split('/').next().unwrap_or_default();
    if auth.is_empty() {
        bail!("--target {target:?} has no host");
    }
    let has_port = match auth.rfind(']') {
        Some(i) => auth[i..].contains(':'),
        None => auth.contains(':'),
    };
    Ok(if has_port {
        auth.to_string()
    } else {
        format!("{auth}:80")
    })
}

/// What a request body is (HTTP modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// The raw contract: the body is one record value.
    #[default]
    Raw,
    /// Kafka REST Proxy v2, binary embedded format: base64 values.
    RestV2Binary,
    /// Kafka REST Proxy v2, JSON embedded format: each value a JSON string.
    RestV2Json,
}

impl Format {
    /// The request's `Content-Type`, if the format has one.
    pub fn content_type(self) -> Option<&'static str> {
        match self {
            Format::Raw => None,
            Format::RestV2Binary => Some("application/vnd.kafka.binary.v2+json"),
            Format::RestV2Json => Some("application/vnd.kafka.json.v2+json"),
        }
    }
}

fn one() -> usize {
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_shapes() {
        assert_eq!(
            "100..1000".parse::<PayloadSize>().unwrap(),
            PayloadSize {
                min: 100,
                max: 1000
            }
        );
        assert_eq!(
            "64".parse::<PayloadSize>().unwrap(),
            PayloadSize { min: 64, max: 64 }
        );
        assert!("10..5".parse::<PayloadSize>().is_err());
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("5 parsecs").is_err());
        let b: BindRange = "127.0.0.2:40000-40010".parse().unwrap();
        assert_eq!((b.low, b.high), (40000, 40010));
        assert_eq!(authority_of("http://h:81/x").unwrap(), "h:81");
        assert_eq!(authority_of("http://h").unwrap(), "h:80");
        assert!(authority_of("ws://h:1").is_err());
    }

    #[test]
    fn defaults() {
        let c = RunConfig::new("http://127.0.0.1:8080").unwrap();
        assert_eq!(c.duration_s, Some(10.0));
        assert_eq!(c.stall_window_s, 0.5);
        assert_eq!(c.ack, Ack::Kafka);
        assert_eq!(c.mode, Mode::Http);
    }
}
