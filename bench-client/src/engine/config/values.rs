//! The value types of a scenario: traffic shape ([`Mode`]), ack mode ([`Ack`]), body
//! [`Format`], [`PayloadSize`], source addresses and ports ([`SourceIps`], [`BindRange`]),
//! [`Shard`], TLS ([`TlsConfig`], [`OnOff`]) and the `--start-at` grammar. Each parses
//! from its flag's text.

use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

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

/// A switch flag's value: `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

/// TLS of an `https://` or `wss://` target (`--ca`, `--insecure`, `--tls-resume`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsConfig {
    /// Sent as SNI and checked against the certificate: the URL's host.
    pub server_name: String,
    /// `--ca`: the PEM file of the CA certificate(s) trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// `--insecure`: any certificate is accepted (not verified).
    #[serde(default)]
    pub insecure: bool,
    /// `--tls-resume on`: one session store shared by the run's connections, so a
    /// reconnect resumes its session (an abbreviated handshake).
    pub resume: bool,
}
