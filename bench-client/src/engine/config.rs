//! `bench-client run` options: the clap [`RunArgs`], validated once into the plain,
//! serializable [`RunConfig`] that [`crate::engine::run`] takes and every result carries.
//!
//! Entry point: [`RunConfig::from_args`]. Part of the [engine](crate::engine): must not
//! depend on anything outside it.

use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
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

impl Mode {
    /// The name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Http => "http",
            Mode::HttpClose => "http-close",
            Mode::Ws => "ws",
        }
    }

    /// The protocol as a reader expects it: `HTTP`, `HTTP (connection per request)`,
    /// `WebSocket`.
    pub fn label(self) -> &'static str {
        match self {
            Mode::Http => "HTTP",
            Mode::HttpClose => "HTTP (connection per request)",
            Mode::Ws => "WebSocket",
        }
    }
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

/// `FIRST-LAST` (IPv4, e.g. `127.0.0.2-127.0.0.9`): spread client connections over these
/// source addresses, round robin (the kernel picks each port at connect time), so
/// connection storms and many connections do not run out of ephemeral ports on one
/// address (TIME_WAIT after client closes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceIps {
    pub first: std::net::Ipv4Addr,
    pub count: u32,
}

impl SourceIps {
    /// The `i`-th address (wrapping round the range).
    pub fn nth(&self, i: u32) -> std::net::Ipv4Addr {
        std::net::Ipv4Addr::from(u32::from(self.first) + i % self.count.max(1))
    }
}

impl std::fmt::Display for SourceIps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.first, self.nth(self.count.max(1) - 1))
    }
}

impl FromStr for SourceIps {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let ip = |t: &str| {
            t.trim()
                .parse::<std::net::Ipv4Addr>()
                .map_err(|e| format!("bad IPv4 address {t:?}: {e}"))
        };
        let (a, b) = match s.split_once('-') {
            Some((a, b)) => (ip(a)?, ip(b)?),
            None => (ip(s)?, ip(s)?),
        };
        let (lo, hi) = (u32::from(a), u32::from(b));
        if lo > hi {
            return Err(format!("source address range {s:?} is empty"));
        }
        if hi - lo >= 65_536 {
            return Err(format!("source address range {s:?} is larger than 65536"));
        }
        Ok(SourceIps {
            first: a,
            count: hi - lo + 1,
        })
    }
}

/// The one duration grammar of the workspace (`1h30m`, `250ms`, `2s`, bare number =
/// seconds), shared with the gateways' flags: the `duration-grammar` crate.
pub use duration_grammar::parse_duration;

fn default_threads() -> usize {
    // Leave the rest of the machine to the system under test.
    std::thread::available_parallelism()
        .map(|n| n.get().div_ceil(2))
        .unwrap_or(1)
}

/// Drive one gateway with one scenario.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// What to load: `http://HOST:PORT/topics/TOPIC` (HTTP to TOPIC) or
    /// `http://HOST:PORT/ws/TOPIC` (WebSocket to TOPIC; `ws://` works too). Without a path,
    /// `--mode` and `--topic` decide.
    #[arg(value_name = "URL", conflicts_with = "target")]
    pub url: Option<String>,
    /// The same as URL, as a flag (`http://HOST:PORT`, a path as for URL).
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// Traffic shape (default: from the URL's path, else http). A mode that contradicts
    /// the URL's path is an error.
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    /// HTTP keep-alive: requests in flight per connection (written back to back, answered in order).
    #[arg(long, default_value_t = 1)]
    pub pipeline: usize,
    /// WebSocket: unresolved messages per connection.
    #[arg(long, default_value_t = 32)]
    pub window: usize,
    /// Concurrent connections (http-close: concurrent requests).
    #[arg(short = 'c', long, default_value_t = 16)]
    pub connections: usize,
    /// Limit new connections per second (all connects, reconnects included).
    #[arg(long, value_name = "PER_SEC")]
    pub connect_rate: Option<f64>,
    /// Connection churn (http mode): close each keep-alive connection after this many
    /// requests (once all are answered) and open a new one. A connection's first budget
    /// is drawn from 1..=N, so the connections reconnect continuously, not all at once.
    #[arg(long, value_name = "REQUESTS")]
    pub reconnect_after: Option<u64>,
    /// Measured run time after warmup (default 10s unless --requests is given); `1h30m`,
    /// `2s`, `250ms`, a bare number is seconds.
    #[arg(short = 'd', long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Stop after this many measured requests instead of after a duration.
    #[arg(short = 'n', long, conflicts_with = "duration")]
    pub requests: Option<u64>,
    /// Traffic before measurement starts; excluded from every figure.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub warmup: Duration,
    /// Record value size in bytes, or a range LOW..HIGH (uniform).
    #[arg(long, default_value = "100", conflicts_with = "body_file")]
    pub payload: PayloadSize,
    /// Send this file's bytes as every record value (instead of generated `<id>....`
    /// values; ids then cannot be verified, so not with --acked-file).
    #[arg(long, value_name = "FILE", conflicts_with = "acked_file")]
    pub body_file: Option<PathBuf>,
    /// Kafka topic (default: from the URL's path, else `bench`). A topic that contradicts
    /// the URL's path is an error.
    #[arg(long)]
    pub topic: Option<String>,
    /// Record key of every request (`?key=`, percent-encoded on the wire).
    #[arg(short = 'k', long)]
    pub key: Option<String>,
    /// Extra request header, repeatable, sent verbatim on every HTTP request (on the
    /// upgrade request in ws mode), as curl/oha. Record headers are
    /// `-H 'kafka-header-NAME: VALUE'` (wire contract).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub header: Vec<String>,
    /// Ack mode requested from the gateway.
    #[arg(long, value_enum, default_value_t = Ack::Kafka)]
    pub ack: Ack,
    /// Open loop: this many requests per second in total, scheduled in advance; latency is
    /// measured from the intended send time. Without it the loop is closed.
    #[arg(short = 'R', long, value_name = "PER_SEC")]
    pub rate: Option<f64>,
    /// Tokio worker threads of the client (default: half the CPUs).
    #[arg(short = 't', long = "client-threads", alias = "threads")]
    pub threads: Option<usize>,
    /// Per-request (and per-connect) timeout.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub timeout: Duration,
    /// A window this long without progress while waiting is a stall.
    #[arg(long, value_parser = parse_duration, default_value = "500ms")]
    pub stall_window: Duration,
    /// Exit 3 when any stall was detected.
    #[arg(long)]
    pub fail_on_stall: bool,
    /// Exit 4 when failed requests and connects exceed this fraction of all outcomes
    /// (ok + backpressure + errors; 503/nack backpressure is not an error), e.g. 0.01.
    #[arg(long, value_name = "FRACTION")]
    pub max_error_rate: Option<f64>,
    /// Do not sample the target's accept queue from /proc/net/tcp (done by default when
    /// the target listens on this host; it tells an accept stall from a service stall).
    #[arg(long)]
    pub no_server_probe: bool,
    /// Bind client sockets to source ports IP:LOW-HIGH (reproduces port exhaustion without root).
    #[arg(long)]
    pub bind_range: Option<BindRange>,
    /// Spread client connections over the source addresses FIRST-LAST (IPv4, round
    /// robin; e.g. 127.0.0.2-127.0.0.9 on loopback), the port chosen by the kernel at
    /// connect time: many connections or a connection storm without running short of
    /// ephemeral ports on one address.
    #[arg(long, value_name = "FIRST-LAST", conflicts_with = "bind_range")]
    pub source_ips: Option<SourceIps>,
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
    /// No progress display and no summary (the JSON file is still written).
    #[arg(long, short)]
    pub quiet: bool,
    /// HTTP request body: `raw` (the body is one record value), `rest-v2-binary` or
    /// `rest-v2-json` (a Kafka REST Proxy v2 envelope of `--batch` records).
    #[arg(long, value_enum, default_value_t = Format::Raw)]
    pub format: Format,
    /// Records per request (REST formats): verify and `ok_records` count records.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    // --- sharded runs (issue 15) ---
    /// Start the measured phase at this wall-clock instant (unix milliseconds or RFC 3339,
    /// e.g. 2026-12-02T18:00:00Z), the warmup just before it, so shards on several hosts
    /// measure the same window. A start closer than the warmup shortens the warmup; a start
    /// already past is an error.
    #[arg(long, value_name = "UNIX_MS|RFC3339", value_parser = parse_start_at)]
    pub start_at: Option<u64>,
    /// This process is shard I of N (0-based): labels the result and interleaves the record
    /// ids (`<run_id>-<seq x N + I>`, run id derived from --start-at) so shards never collide.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<Shard>,
}

/// `--shard I/N`: this process is shard `index` (0-based) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("expected I/N (e.g. 0/3), got {s:?}"))?;
        let index: u32 = i
            .trim()
            .parse()
            .map_err(|e| format!("bad shard index {i:?}: {e}"))?;
        let count: u32 = n
            .trim()
            .parse()
            .map_err(|e| format!("bad shard count {n:?}: {e}"))?;
        if count == 0 || index >= count {
            return Err(format!(
                "shard {index}/{count}: the index is 0-based and must be below the count"
            ));
        }
        Ok(Shard { index, count })
    }
}

/// `--start-at`: unix milliseconds, or an RFC 3339 date-time.
pub fn parse_start_at(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<u64>() {
        if ms < 1_000_000_000_000 {
            return Err(format!(
                "--start-at {s}: expected unix milliseconds (13 digits), this looks like seconds"
            ));
        }
        return Ok(ms);
    }
    let t = chrono::DateTime::parse_from_rfc3339(s).map_err(|e| {
        format!("--start-at {s:?}: neither unix milliseconds nor RFC 3339 ({e}); e.g. 2026-12-02T18:00:00Z")
    })?;
    u64::try_from(t.timestamp_millis()).map_err(|_| format!("--start-at {s:?} is before 1970"))
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
    /// Source addresses the connections are spread over (`--source-ips`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ips: Option<SourceIps>,
    /// Keep the ids acknowledged with ack=kafka (for `--acked-file`).
    pub collect_acks: bool,
    /// Keep one histogram per second (for `--hdr-log`).
    pub interval_histograms: bool,
    /// Show the live progress: a bar with ETA on a terminal, else a line a second on stderr.
    pub progress: bool,
    /// The gateway's PID on this host (cost and load of the measured phase).
    #[serde(default)]
    pub target_pid: Option<u32>,
    /// The broker's PID on this host.
    #[serde(default)]
    pub broker_pid: Option<u32>,
    /// Record key of every request (`-k`).
    #[serde(default)]
    pub key: Option<String>,
    /// Extra request headers (`-H`), `[name, value]` pairs, sent verbatim.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// Every record value is this file's content (`--body-file`); `payload` is its size.
    #[serde(default)]
    pub body_file: Option<PathBuf>,
    /// The content of `body_file`, read once.
    #[serde(skip)]
    pub body: Option<Arc<Vec<u8>>>,
    /// Count the target's system calls.
    #[serde(default)]
    pub count_syscalls: bool,
    // --- sharded runs (issue 15) ---
    /// `--start-at`: wall-clock start of the measured phase, unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at_unix_ms: Option<u64>,
    /// `--shard I/N`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
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
        let url = match (&a.url, &a.target) {
            (Some(u), None) | (None, Some(u)) => u.as_str(),
            (Some(_), Some(_)) => {
                bail!("give the URL either as an argument or as --target, not both")
            }
            (None, None) => bail!(
                "no URL: give one, e.g. `bench-client run http://127.0.0.1:8080/topics/bench`"
            ),
        };
        let t = Target::parse(url, a.mode, a.topic.as_deref())?;
        let authority = t.authority.clone();
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
        if let Some(r) = a.max_error_rate {
            if !(0.0..=1.0).contains(&r) {
                bail!("--max-error-rate is a fraction between 0 and 1, got {r}");
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
        if a.format != Format::Raw && t.mode == Mode::Ws {
            bail!("--format {:?} is for the HTTP modes", a.format);
        }
        if a.stall_window < Duration::from_millis(20) {
            bail!("--stall-window must be at least 20ms");
        }
        check_topic(&t.topic)?;
        let headers = a
            .header
            .iter()
            .map(|h| parse_header(h))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if let Some(k) = &a.key {
            if k.is_empty() {
                bail!("--key must not be empty");
            }
        }
        let (body, payload) = match &a.body_file {
            Some(p) => {
                let b = std::fs::read(p)
                    .with_context(|| format!("reading --body-file {}", p.display()))?;
                let n = b.len();
                (Some(Arc::new(b)), PayloadSize { min: n, max: n })
            }
            None => (None, a.payload),
        };
        let duration_s = match (a.duration, a.requests) {
            (Some(d), _) => Some(d.as_secs_f64()),
            (None, Some(_)) => None,
            (None, None) => Some(10.0),
        };
        if duration_s == Some(0.0) || a.requests == Some(0) {
            bail!("--duration and --requests must be more than zero");
        }
        Ok(RunConfig {
            target: url.to_string(),
            authority,
            mode: t.mode,
            pipeline: a.pipeline,
            window: a.window,
            connections: a.connections,
            connect_rate: a.connect_rate,
            reconnect_after: a.reconnect_after,
            duration_s,
            requests: a.requests,
            warmup_s: a.warmup.as_secs_f64(),
            payload,
            topic: t.topic,
            ack: a.ack,
            rate: a.rate,
            threads: a.threads.unwrap_or_else(default_threads).max(1),
            timeout_s: a.timeout.as_secs_f64(),
            stall_window_s: a.stall_window.as_secs_f64(),
            server_probe: !a.no_server_probe,
            bind_range: a.bind_range,
            source_ips: a.source_ips,
            collect_acks: a.acked_file.is_some(),
            interval_histograms: a.hdr_log.is_some(),
            progress: !a.quiet,
            target_pid: a.target_pid,
            broker_pid: a.broker_pid,
            count_syscalls: !a.no_syscalls,
            start_at_unix_ms: a.start_at,
            shard: a.shard,
            key: a.key.clone(),
            headers,
            body_file: a.body_file.clone(),
            body,
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

/// What a URL (`run URL` or `--target`) and `--mode` / `--topic` select together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `HOST:PORT` (port 80 if absent).
    pub authority: String,
    pub mode: Mode,
    pub topic: String,
}

impl Target {
    /// `http://HOST:PORT[/topics/T | /ws/T]` (or `ws://` with `/ws/T`): the path picks the
    /// mode and topic; `mode` and `topic` from flags must agree with it, and decide (default
    /// http, `bench`) when there is no path.
    pub fn parse(url: &str, mode: Option<Mode>, topic: Option<&str>) -> anyhow::Result<Target> {
        let (scheme, rest) = url.split_once("://").with_context(|| {
            format!("URL {url:?} has no scheme: expected http://HOST:PORT/topics/TOPIC or http://HOST:PORT/ws/TOPIC")
        })?;
        if scheme != "http" && scheme != "ws" {
            bail!("URL {url:?}: only http:// (and ws:// for /ws/TOPIC) is supported");
        }
        let (auth, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if auth.is_empty() {
            bail!("URL {url:?} has no host");
        }
        if !auth
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:[]".contains(&b))
        {
            bail!("URL {url:?}: {auth:?} is not HOST:PORT");
        }
        if path.contains(['?', '#']) {
            bail!(
                "URL {url:?}: a query or fragment is not supported; use --ack, --key (-k) and -H"
            );
        }
        let has_port = match auth.rfind(']') {
            Some(i) => auth[i..].contains(':'),
            None => auth.contains(':'),
        };
        let authority = if has_port {
            auth.to_string()
        } else {
            format!("{auth}:80")
        };
        let from_path = match path.trim_end_matches('/') {
            "" => None,
            p => {
                let (m, t) = if let Some(t) = p.strip_prefix("/topics/") {
                    (Mode::Http, t)
                } else if let Some(t) = p.strip_prefix("/ws/") {
                    (Mode::Ws, t)
                } else {
                    bail!(
                        "URL {url:?}: the path must be /topics/TOPIC (HTTP) or /ws/TOPIC (WebSocket), got {p:?}"
                    );
                };
                if t.is_empty() || t.contains('/') {
                    bail!("URL {url:?}: expected /topics/TOPIC or /ws/TOPIC with one plain topic name, got {p:?}");
                }
                Some((m, t))
            }
        };
        let scheme_mode = (scheme == "ws").then_some(Mode::Ws);
        let (mode, topic) = match from_path {
            None => (
                mode.or(scheme_mode).unwrap_or(Mode::Http),
                topic.unwrap_or("bench").to_string(),
            ),
            Some((path_mode, path_topic)) => {
                let m = match (path_mode, mode) {
                    (_, None) => path_mode,
                    (Mode::Http, Some(m @ (Mode::Http | Mode::HttpClose))) => m,
                    (Mode::Ws, Some(Mode::Ws)) => Mode::Ws,
                    (_, Some(m)) => bail!(
                        "--mode {} contradicts the URL's path {path:?} (/topics/ is http or http-close, /ws/ is ws)",
                        m.as_str()
                    ),
                };
                if let Some(t) = topic {
                    if t != path_topic {
                        bail!("--topic {t:?} contradicts the URL's path {path:?}");
                    }
                }
                (m, path_topic.to_string())
            }
        };
        if scheme == "ws" && mode != Mode::Ws {
            bail!("URL {url:?}: ws:// is for WebSocket mode (/ws/TOPIC)");
        }
        Ok(Target {
            authority,
            mode,
            topic,
        })
    }
}

/// `HOST:PORT` of an `http://HOST:PORT[/...]` URL (port 80 if absent).
pub fn authority_of(target: &str) -> anyhow::Result<String> {
    Ok(Target::parse(target, None, None)?.authority)
}

/// A topic as the gateways accept it: 1–249 of `[A-Za-z0-9._-]`, not `.` or `..`.
fn check_topic(t: &str) -> anyhow::Result<()> {
    let ok = !t.is_empty()
        && t.len() <= 249
        && t != "."
        && t != ".."
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if !ok {
        bail!("topic {t:?} is not a plain topic name (1-249 of A-Z a-z 0-9 . _ -)");
    }
    Ok(())
}

/// `-H 'NAME: VALUE'` as curl and oha take it: a header name (an HTTP token), a colon,
/// the value (surrounding spaces dropped; no CR or LF).
pub fn parse_header(h: &str) -> anyhow::Result<(String, String)> {
    let (name, value) = h
        .split_once(':')
        .with_context(|| format!("-H {h:?}: expected 'NAME: VALUE'"))?;
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        bail!("-H {h:?}: {name:?} is not a header name");
    }
    let value = value.trim_matches([' ', '\t']);
    if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        bail!("-H {h:?}: the value holds a control character (line break?)");
    }
    let reserved = [
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "upgrade",
    ];
    if reserved.iter().any(|r| name.eq_ignore_ascii_case(r)) {
        bail!("-H {h:?}: {name} is set by bench-client itself");
    }
    Ok((name.to_string(), value.to_string()))
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
    fn parses_source_address_ranges() {
        let r: SourceIps = "127.0.0.2-127.0.0.9".parse().unwrap();
        assert_eq!(r.count, 8);
        assert_eq!(r.nth(0), std::net::Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(r.nth(7), std::net::Ipv4Addr::new(127, 0, 0, 9));
        assert_eq!(r.nth(8), std::net::Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(r.to_string(), "127.0.0.2-127.0.0.9");
        // Across an octet boundary, and a single address.
        let r: SourceIps = "127.0.0.255-127.0.1.1".parse().unwrap();
        assert_eq!(r.count, 3);
        assert_eq!(r.nth(2), std::net::Ipv4Addr::new(127, 0, 1, 1));
        assert_eq!("127.0.0.5".parse::<SourceIps>().unwrap().count, 1);
        assert!("127.0.0.9-127.0.0.2".parse::<SourceIps>().is_err());
        assert!("127.0.0.1-::1".parse::<SourceIps>().is_err());
        assert!("10.0.0.0-10.2.0.0".parse::<SourceIps>().is_err());
        // Through the command line, and not together with --bind-range.
        use clap::Parser;
        #[derive(Parser)]
        struct P {
            #[command(flatten)]
            a: RunArgs,
        }
        let p = P::try_parse_from([
            "run",
            "--target",
            "http://127.0.0.1:1",
            "--source-ips",
            "127.0.0.2-127.0.0.3",
        ])
        .unwrap();
        assert_eq!(
            RunConfig::from_args(&p.a)
                .unwrap()
                .source_ips
                .unwrap()
                .count,
            2
        );
        assert!(P::try_parse_from([
            "run",
            "--target",
            "http://127.0.0.1:1",
            "--source-ips",
            "127.0.0.2",
            "--bind-range",
            "127.0.0.1:40000-40010"
        ])
        .is_err());
    }

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
        assert_eq!(authority_of("http://h:81").unwrap(), "h:81");
        assert_eq!(authority_of("http://h").unwrap(), "h:80");
        assert!(authority_of("https://h:1").is_err());
        assert!(authority_of("h:1").is_err());
    }

    #[test]
    fn url_path_picks_mode_and_topic() {
        let t = |u: &str, m: Option<Mode>, topic: Option<&str>| Target::parse(u, m, topic);
        let ok = |u: &str, m, topic| {
            let x = t(u, m, topic).unwrap();
            (x.authority, x.mode, x.topic)
        };
        let s = String::from;
        assert_eq!(
            ok("http://h:1/topics/x", None, None),
            (s("h:1"), Mode::Http, s("x"))
        );
        assert_eq!(
            ok("http://h:1/ws/y/", None, None),
            (s("h:1"), Mode::Ws, s("y"))
        );
        assert_eq!(
            ok("ws://h:1/ws/y", None, None),
            (s("h:1"), Mode::Ws, s("y"))
        );
        assert_eq!(
            ok("http://h:1", None, None),
            (s("h:1"), Mode::Http, s("bench"))
        );
        assert_eq!(
            ok("http://h:1/", Some(Mode::Ws), Some("t")),
            (s("h:1"), Mode::Ws, s("t"))
        );
        assert_eq!(
            ok("http://h:1/topics/x", Some(Mode::HttpClose), Some("x")).1,
            Mode::HttpClose
        );
        for (u, m, topic) in [
            ("http://h:1/topics/x", Some(Mode::Ws), None),
            ("http://h:1/ws/x", Some(Mode::Http), None),
            ("http://h:1/topics/x", None, Some("y")),
            ("http://h:1/topics/", None, None),
            ("http://h:1/topics/x/batch", None, None),
            ("http://h:1/other", None, None),
            ("http://h:1/topics/x?key=1", None, None),
            ("ws://h:1/topics/x", None, None),
            ("http:///topics/x", None, None),
            ("http://h h:1/topics/x", None, None),
        ] {
            assert!(t(u, m, topic).is_err(), "{u} {m:?} {topic:?} accepted");
        }
    }

    #[test]
    fn headers_as_curl_takes_them() {
        assert_eq!(
            parse_header("kafka-header-foo:  bar baz ").unwrap(),
            ("kafka-header-foo".into(), "bar baz".into())
        );
        assert_eq!(parse_header("X-A:").unwrap(), ("X-A".into(), String::new()));
        for bad in [
            "nocolon",
            ": v",
            "a b: v",
            "x: a\r\nInjected: 1",
            "Host: h",
            "content-length: 3",
        ] {
            assert!(parse_header(bad).is_err(), "{bad:?} accepted");
        }
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
