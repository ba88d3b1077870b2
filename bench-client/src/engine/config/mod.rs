//! The scenario of a run: `bench-client run`'s flags ([`RunArgs`], in `args`), validated
//! once into the plain, serializable [`RunConfig`] that [`crate::engine::run`] takes and
//! every result carries. The value types are in `values`, URL and header checks in
//! `target`.
//!
//! Entry point: [`RunConfig::from_args`]. Part of the [engine](crate::engine): must not
//! depend on anything outside it.

mod args;
mod target;
mod values;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use args::default_threads;
pub use args::RunArgs;
use target::check_topic;
pub use target::{authority_of, host_of, parse_header, Target};
pub use values::{
    parse_start_at, Ack, BindRange, Format, Mode, OnOff, PayloadSize, Shard, SourceIps, TlsConfig,
};

/// The one duration grammar of the workspace (`1h30m`, `250ms`, `2s`, bare number =
/// seconds), shared with the gateways' flags: the `duration-grammar` crate.
pub use duration_grammar::parse_duration;

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
    /// `https://` and `wss://` targets: how the connections speak TLS (absent: plaintext).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
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
        let tls = tls_of(a, &t, url)?;
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
            tls,
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

fn one() -> usize {
    1
}

/// The TLS of a run: `https://` and `wss://` need `--ca` or `--insecure` (no system roots
/// are read), which mean nothing for a plaintext URL.
fn tls_of(a: &RunArgs, t: &Target, url: &str) -> anyhow::Result<Option<TlsConfig>> {
    match (t.tls, &a.ca, a.insecure) {
        (false, None, false) => Ok(None),
        (false, _, _) => bail!("--ca and --insecure are for https:// and wss:// URLs, not {url:?}"),
        (true, None, false) => bail!(
            "URL {url:?} speaks TLS: add --ca FILE (PEM of the CA that signed the server's certificate) or --insecure (accept any certificate); the system's roots are not used"
        ),
        (true, ca, insecure) => Ok(Some(TlsConfig {
            server_name: host_of(&t.authority).to_string(),
            ca: ca.clone(),
            insecure,
            resume: a.tls_resume == OnOff::On,
        })),
    }
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
        assert_eq!(authority_of("https://h:1").unwrap(), "h:1");
        assert_eq!(authority_of("https://h").unwrap(), "h:443");
        assert!(authority_of("ftp://h:1").is_err());
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
        assert_eq!(c.tls, None);
    }

    #[test]
    fn tls_urls_need_a_ca_or_insecure() {
        use clap::Parser;
        #[derive(Parser)]
        struct P {
            #[command(flatten)]
            a: RunArgs,
        }
        let cfg = |args: &[&str]| {
            let p = P::try_parse_from(std::iter::once("run").chain(args.iter().copied()))?;
            RunConfig::from_args(&p.a)
        };
        let err = cfg(&["https://gw.example:8443/topics/t"]).unwrap_err();
        assert!(err.to_string().contains("--ca FILE"), "{err}");
        assert!(err.to_string().contains("--insecure"), "{err}");
        let c = cfg(&["https://gw.example/topics/t", "--insecure"]).unwrap();
        assert_eq!(c.authority, "gw.example:443");
        let tls = c.tls.unwrap();
        assert_eq!(
            (tls.server_name.as_str(), tls.insecure, tls.resume),
            ("gw.example", true, true)
        );
        let c = cfg(&[
            "wss://[::1]:9/ws/t",
            "--ca",
            "ca.pem",
            "--tls-resume",
            "off",
        ])
        .unwrap();
        assert_eq!(c.mode, Mode::Ws);
        let tls = c.tls.unwrap();
        assert_eq!(tls.server_name, "::1");
        assert_eq!(tls.ca.as_deref(), Some(std::path::Path::new("ca.pem")));
        assert!(!tls.resume);
        // Nothing to do with plaintext; both at once is a contradiction.
        assert!(cfg(&["http://h:1", "--insecure"]).is_err());
        assert!(cfg(&["https://h:1", "--insecure", "--ca", "x.pem"]).is_err());
        assert!(cfg(&["wss://h:1/topics/t", "--insecure"]).is_err());
        assert_eq!(host_of("h:1"), "h");
        assert_eq!(host_of("[::1]:1"), "::1");
    }
}
