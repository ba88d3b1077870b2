//! `bench-client run`'s flags ([`RunArgs`], clap), validated into a
//! [`RunConfig`](crate::engine::config::RunConfig) by `RunConfig::from_args`.

use std::path::PathBuf;
use std::time::Duration;

use duration_grammar::parse_duration;

use crate::engine::config::values::{
    parse_start_at, Ack, BindRange, Format, Mode, OnOff, PayloadSize, Shard, SourceIps,
};

pub(crate) fn default_threads() -> usize {
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
    /// `--mode` and `--topic` decide. `https://` and `wss://` speak TLS (give `--ca` or
    /// `--insecure`).
    #[arg(value_name = "URL", conflicts_with = "target")]
    pub url: Option<String>,
    /// The same as URL, as a flag (`http://HOST:PORT`, a path as for URL).
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// https:// and wss://: trust the CA certificate(s) in this PEM file (e.g. the test CA
    /// that signed the gateway's certificate). The system's roots are not used.
    #[arg(long, value_name = "FILE", conflicts_with = "insecure")]
    pub ca: Option<PathBuf>,
    /// https:// and wss://: accept any server certificate without verifying it.
    #[arg(long)]
    pub insecure: bool,
    /// https:// and wss://: resume TLS sessions (one session store shared by the run's
    /// connections); `off`: every handshake is a full one.
    #[arg(long, value_enum, value_name = "on|off", default_value = "on")]
    pub tls_resume: OnOff,
    /// Traffic shape (default: from the URL's path, else http). A mode that contradicts
    /// the URL's path is an error.
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    /// HTTP keep-alive: requests in flight per connection (written back to back, answered in
    /// order). 1, as wrk and oha: each latency is one request's own, not its wait behind a
    /// pipeline (soak has 8 and chaos 32 for their own loads: see their --help).
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
    /// Per-request (and per-connect) timeout: a slower answer is an error, not a latency
    /// (chaos has 15s, to outlast its faults).
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
