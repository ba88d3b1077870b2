//! The one command line every gateway shares (`GatewayArgs`, flattened into each binary),
//! validated once into the plain `Config` the rest of the core reads.
//!
//! Runtime-specific knobs (`--flavor`, `--ring-entries`) live in the gateway crates; everything
//! here must mean exactly the same thing on every runtime.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use crate::observe::telemetry::LogFormat;
use crate::policy::ack::AckMode;
use crate::policy::config::{Config, Fault, Limits, SinkKind};
use crate::publish::token::SEQ_MASK;
use crate::tls::Setup as TlsSetup;

/// Refuses a fault that `runtime` cannot reproduce: starting anyway would run the default
/// configuration under a reproduction's name.
pub fn check_faults(faults: &[Fault], runtime: &str) -> anyhow::Result<()> {
    for &f in faults {
        if let Some(only) = f.only_runtime() {
            anyhow::ensure!(
                only == runtime,
                "--fault {} reproduces a {only} (io_uring) stall; this gateway runs on {runtime} \
                 and cannot reproduce it (use gateway-uring)",
                f.name()
            );
        }
    }
    Ok(())
}

/// Command line shared by `gateway-tokio`, `gateway-uring` and `gateway-compio`.
#[derive(Args, Clone, Debug)]
pub struct GatewayArgs {
    /// Address to listen on.
    #[arg(long, env = "GATEWAY_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// Kafka bootstrap servers (host:port,...). Default: `bootstrap.servers` of
    /// --producer-config, else an in-process embedded mock cluster.
    #[arg(long, env = "GATEWAY_BROKERS")]
    pub brokers: Option<String>,

    /// librdkafka producer properties file (kcat's -F): one `key=value` per line, `#`
    /// comments. Keeps secrets such as sasl.password out of the process list. Precedence:
    /// defaults < FILE < GATEWAY_X_* environment < -X.
    #[arg(long, env = "GATEWAY_PRODUCER_CONFIG", value_name = "FILE")]
    pub producer_config: Option<std::path::PathBuf>,

    /// I/O threads (default: number of cores).
    #[arg(long, env = "GATEWAY_THREADS")]
    pub threads: Option<usize>,

    /// Default ack mode for requests that do not say `?ack=`.
    #[arg(long, env = "GATEWAY_ACK", value_enum, default_value = "kafka")]
    pub ack: AckMode,

    /// Record sink: kafka, or null (acknowledge at once, to measure the gateway alone).
    #[arg(long, env = "GATEWAY_SINK", value_enum, default_value = "kafka")]
    pub sink: SinkKind,

    /// Largest accepted record value / WebSocket message / batch body, in bytes.
    #[arg(long, env = "GATEWAY_MAX_BODY", default_value_t = 1024 * 1024)]
    pub max_body: usize,

    /// Largest request head (request line + headers), in bytes; larger gets 431.
    #[arg(long, env = "GATEWAY_MAX_HEAD", default_value_t = 16 * 1024)]
    pub max_head: usize,

    /// Listen backlog, identical on every runtime.
    #[arg(long, env = "GATEWAY_BACKLOG", default_value_t = 4096)]
    pub backlog: u32,

    /// Open connections at most; past it new connections are closed at once.
    #[arg(long, env = "GATEWAY_MAX_CONNECTIONS", default_value_t = 100_000)]
    pub max_connections: usize,

    /// Unresolved WebSocket messages per connection before the gateway stops reading it.
    #[arg(long, env = "GATEWAY_WS_MAX_INFLIGHT", default_value_t = 1024)]
    pub ws_max_inflight: usize,

    /// Pipelined HTTP requests awaiting their answer per connection before the gateway stops
    /// reading it.
    #[arg(long, env = "GATEWAY_MAX_PIPELINE", default_value_t = 256)]
    pub max_pipeline: usize,

    /// Records at most in one Kafka REST Proxy v2 produce request (more: 422).
    #[arg(long, env = "GATEWAY_MAX_RECORDS", default_value_t = 1000)]
    pub max_records: usize,

    /// Close connections idle this long (WebSocket: pinged at half of it). Durations, here
    /// and below: `250ms`, `2s`, `1h30m`; a bare number is seconds.
    #[arg(long, env = "GATEWAY_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// A request's head and body must arrive within this time, else 408, e.g. `10s`, `1500ms`.
    #[arg(long, env = "GATEWAY_REQUEST_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// On SIGTERM/SIGINT: time allowed to finish in-flight work and flush the producer
    /// (a second signal exits at once), e.g. `30s`, `1m30s`.
    #[arg(long, env = "GATEWAY_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// Raise RLIMIT_NOFILE to this (default: the hard limit). Lower it to reproduce EMFILE.
    #[arg(long, env = "GATEWAY_FD_LIMIT")]
    pub fd_limit: Option<u64>,

    /// Log lines on stderr: `text`, or `json` (one JSON object per line, the text in
    /// `message`) for log shippers.
    #[arg(long, env = "GATEWAY_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// librdkafka producer property, repeatable (as kcat's -X), e.g. `-X linger.ms=5`.
    /// Environment form: one variable per property, GATEWAY_X_<PROPERTY>
    /// (`GATEWAY_X_LINGER_MS=5`), or GATEWAY_X_<PROPERTY>_FILE naming a file that holds the
    /// value (`GATEWAY_X_SASL_PASSWORD_FILE=/run/secrets/pw`). Secrets belong in
    /// --producer-config FILE or in those variables, not here (the process list shows -X).
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = parse_kv)]
    pub producer_props: Vec<(String, String)>,

    /// Reproduce a faulty behaviour on purpose (see the stall lab). Repeatable, or
    /// comma-separated.
    #[arg(long, env = "GATEWAY_FAULT", value_enum, value_delimiter = ',')]
    pub fault: Vec<Fault>,

    /// Serve HTTPS and WSS: the certificate chain, PEM (leaf first). Needs --tls-key.
    /// Without both, the gateway speaks plaintext.
    #[arg(long, env = "GATEWAY_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert, PEM (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "GATEWAY_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,

    /// A TLS handshake must complete within this time of the connection's acceptance, else
    /// the connection is closed (`reason="timeout"`).
    #[arg(long, env = "GATEWAY_TLS_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub tls_handshake_timeout: Duration,
}

impl GatewayArgs {
    /// The TLS configuration from --tls-cert and --tls-key (both or neither), read and
    /// checked now: `None` for plaintext.
    pub fn tls_setup(&self) -> anyhow::Result<Option<TlsSetup>> {
        match (&self.tls_cert, &self.tls_key) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => {
                anyhow::ensure!(
                    !self.tls_handshake_timeout.is_zero(),
                    "--tls-handshake-timeout must be positive"
                );
                TlsSetup::from_pem_files(cert, key, self.tls_handshake_timeout).map(Some)
            }
            (Some(_), None) => anyhow::bail!(
                "--tls-cert needs --tls-key (GATEWAY_TLS_KEY): give both for TLS, or neither"
            ),
            (None, Some(_)) => anyhow::bail!(
                "--tls-key needs --tls-cert (GATEWAY_TLS_CERT): give both for TLS, or neither"
            ),
        }
    }
}

/// The one duration grammar of every flag in the workspace (see the `duration-grammar`
/// crate, which bench-client uses too).
pub use duration_grammar::parse_duration;

/// Reads a kcat `-F` style properties file: `key=value` per line, surrounding whitespace
/// trimmed, blank lines and lines starting with `#` ignored.
pub fn read_properties_file(path: &std::path::Path) -> anyhow::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading --producer-config {}: {e}", path.display()))?;
    parse_properties(&text)
        .map_err(|e| anyhow::anyhow!("--producer-config {}: {e}", path.display()))
}

/// Parses the text of a properties file (see `read_properties_file`).
pub fn parse_properties(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut props = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                props.push((k.trim().to_string(), v.trim().to_string()))
            }
            _ => return Err(format!("line {}: expected key=value", i + 1)),
        }
    }
    Ok(props)
}

/// librdkafka properties as (key, value) pairs, in precedence order.
pub type Properties = Vec<(String, String)>;

/// Prefix of environment variables that set librdkafka properties.
pub const ENV_PROPERTY_PREFIX: &str = "GATEWAY_X_";

/// Suffix of an environment variable that names a file holding the value (Docker and
/// Kubernetes secrets): `GATEWAY_X_SASL_PASSWORD_FILE=/run/secrets/pw`.
pub const ENV_FILE_SUFFIX: &str = "_FILE";

/// Largest value file read through a `*_FILE` variable: a secret, not a data set.
pub const MAX_VALUE_FILE: u64 = 64 * 1024;

/// The property a `GATEWAY_X_` variable's rest of name means: lower-cased, `_` read as `.`
/// and `__` as `_` (the Confluent images' scheme).
fn property_name(name: &str) -> String {
    name.to_ascii_lowercase()
        .split("__")
        .map(|part| part.replace('_', "."))
        .collect::<Vec<_>>()
        .join("_")
}

/// librdkafka properties from environment variables named `GATEWAY_X_<PROPERTY>`, so
/// `GATEWAY_X_SASL_PASSWORD` sets `sasl.password` (see `property_name`), and from
/// `GATEWAY_X_<PROPERTY>_FILE`, whose value names a file holding the property's value (its
/// one trailing newline dropped), so `GATEWAY_X_SASL_PASSWORD_FILE=/run/secrets/pw` sets
/// `sasl.password` to the file's contents. One property set both ways, an unreadable file
/// or one over [`MAX_VALUE_FILE`] bytes is an error. Sorted by property name.
pub fn properties_from_env(
    vars: impl IntoIterator<Item = (String, String)>,
) -> anyhow::Result<Properties> {
    // property -> (variable, value)
    let mut props: std::collections::BTreeMap<String, (String, String)> = Default::default();
    for (var, v) in vars {
        let Some(name) = var.strip_prefix(ENV_PROPERTY_PREFIX) else {
            continue;
        };
        let (name, value) = match name.strip_suffix(ENV_FILE_SUFFIX) {
            Some(n) if !n.is_empty() => (n, read_value_file(&var, Path::new(&v))?),
            _ => (name, v),
        };
        if name.is_empty() {
            continue;
        }
        let key = property_name(name);
        if let Some((other, _)) = props.get(&key) {
            anyhow::bail!("{other} and {var} both set {key}: set one");
        }
        props.insert(key, (var, value));
    }
    Ok(props.into_iter().map(|(k, (_, v))| (k, v)).collect())
}

/// The value in the file a `*_FILE` variable names.
fn read_value_file(var: &str, path: &Path) -> anyhow::Result<String> {
    use std::io::Read as _;
    let fail = |e: &dyn std::fmt::Display| anyhow::anyhow!("{var}={}: {e}", path.display());
    let file = std::fs::File::open(path).map_err(|e| fail(&e))?;
    let mut bytes = Vec::new();
    file.take(MAX_VALUE_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(&e))?;
    if bytes.len() as u64 > MAX_VALUE_FILE {
        return Err(fail(&format_args!(
            "larger than {MAX_VALUE_FILE} bytes: not a value file"
        )));
    }
    let mut text = String::from_utf8(bytes).map_err(|_| fail(&"not UTF-8 text"))?;
    // `echo secret > file` and most secret stores end the file with one newline that is
    // not part of the value.
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}

/// Flags of a gateway's command line that have no `GATEWAY_*` environment variable, as
/// `--name`, for the test every gateway binary runs. Help and version are exempt, and so is
/// `-X`, whose environment form is one variable per property ([`properties_from_env`]).
pub fn flags_without_env(cmd: &clap::Command) -> Vec<String> {
    cmd.get_arguments()
        .filter(|a| !matches!(a.get_id().as_str(), "help" | "version"))
        .filter(|a| a.get_short() != Some('X'))
        .filter(|a| {
            !a.get_env()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e.starts_with("GATEWAY_"))
        })
        .map(|a| match a.get_long() {
            Some(l) => format!("--{l}"),
            None => a.get_id().to_string(),
        })
        .collect()
}

/// Merges property lists, later lists overriding earlier ones key by key.
pub fn merge_properties(layers: &[&[(String, String)]]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for layer in layers {
        for (k, v) in layer.iter() {
            match out.iter_mut().find(|(ok, _)| ok == k) {
                Some(e) => e.1.clone_from(v),
                None => out.push((k.clone(), v.clone())),
            }
        }
    }
    out
}

/// Properties whose values must never be logged or written to a manifest.
pub fn is_secret_property(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["password", "secret", "jaas", "key.pem", "private", "token"]
        .iter()
        .any(|w| k.contains(w))
}

/// The configuration with secret values replaced, for logs and manifests.
pub fn redact(props: &[(String, String)]) -> Vec<(String, String)> {
    props
        .iter()
        .map(|(k, v)| {
            let v = if is_secret_property(k) {
                "[redacted]".to_string()
            } else {
                v.clone()
            };
            (k.clone(), v)
        })
        .collect()
}

impl GatewayArgs {
    /// The bootstrap list and the producer property overrides, from (lowest precedence
    /// first) --producer-config, `GATEWAY_X_*` variables and -X. `None` brokers: start the
    /// embedded mock cluster. `--brokers` (or `GATEWAY_BROKERS`) beats a `bootstrap.servers`
    /// in the file or the environment.
    pub fn producer_settings(&self) -> anyhow::Result<(Option<String>, Properties)> {
        let file = match &self.producer_config {
            Some(p) => read_properties_file(p)?,
            None => Vec::new(),
        };
        // `std::env::vars` panics on a variable that is not Unicode: one that is not ours is
        // skipped, one of ours is an error.
        let mut vars = Vec::new();
        for (k, v) in std::env::vars_os() {
            let Some(k) = k
                .into_string()
                .ok()
                .filter(|k| k.starts_with(ENV_PROPERTY_PREFIX))
            else {
                continue;
            };
            let v = v
                .into_string()
                .map_err(|_| anyhow::anyhow!("{k}: the value is not UTF-8 text"))?;
            vars.push((k, v));
        }
        let env = properties_from_env(vars)?;
        let mut props = merge_properties(&[&file, &env, &self.producer_props]);
        let mut from_props = None;
        props.retain(|(k, v)| {
            if k == "bootstrap.servers" || k == "metadata.broker.list" {
                from_props = Some(v.clone());
                false
            } else {
                true
            }
        });
        Ok((self.brokers.clone().or(from_props), props))
    }
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(format!("expected KEY=VALUE, got `{s}`")),
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
        // Every record of a REST request awaiting its answer has its own sequence number;
        // delivery reports carry 24 bits of it (`route::SEQ_MASK`).
        anyhow::ensure!(
            args.max_records >= 1
                && args.max_pipeline.saturating_mul(args.max_records) < SEQ_MASK as usize / 2,
            "--max-records must be at least 1, and --max-pipeline × --max-records below {}",
            SEQ_MASK / 2
        );
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
                max_records: args.max_records,
            },
            backlog: args.backlog,
            max_connections: args.max_connections,
            idle_timeout: args.idle_timeout,
            request_timeout: args.request_timeout,
            shutdown_timeout: args.shutdown_timeout,
            faults: args.fault.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_on_the_command_line() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            g: GatewayArgs,
        }
        let cli = Cli::try_parse_from([
            "gw",
            "--idle-timeout",
            "1h30m",
            "--request-timeout",
            "1500ms",
            "--shutdown-timeout",
            "2",
        ])
        .unwrap();
        assert_eq!(cli.g.idle_timeout, Duration::from_secs(5400));
        assert_eq!(cli.g.request_timeout, Duration::from_millis(1500));
        assert_eq!(cli.g.shutdown_timeout, Duration::from_secs(2));
        assert!(Cli::try_parse_from(["gw", "--idle-timeout", "5d"]).is_err());
    }

    #[test]
    fn properties_file() {
        let text = "# kcat -F style\n\nbootstrap.servers = b1:9093,b2:9093\nsasl.password=p=a#ss\n  # indented comment\nlinger.ms=5\n";
        assert_eq!(
            parse_properties(text).unwrap(),
            vec![
                (
                    "bootstrap.servers".to_string(),
                    "b1:9093,b2:9093".to_string()
                ),
                ("sasl.password".to_string(), "p=a#ss".to_string()),
                ("linger.ms".to_string(), "5".to_string()),
            ]
        );
        assert_eq!(
            parse_properties("a=1\nnope\n").unwrap_err(),
            "line 2: expected key=value"
        );
        assert!(parse_properties("=x").is_err());
    }

    #[test]
    fn properties_from_environment() {
        let vars = [
            ("GATEWAY_X_SASL_PASSWORD", "s3cret"),
            ("GATEWAY_X_LINGER_MS", "5"),
            ("GATEWAY_X_SOME__ODD_NAME", "1"),
            ("GATEWAY_X_", "ignored"),
            ("GATEWAY_BROKERS", "not a property"),
            ("PATH", "/bin"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        assert_eq!(
            properties_from_env(vars).unwrap(),
            vec![
                ("linger.ms".to_string(), "5".to_string()),
                ("sasl.password".to_string(), "s3cret".to_string()),
                ("some_odd.name".to_string(), "1".to_string()),
            ]
        );
    }

    #[test]
    fn property_values_from_files() {
        let dir = std::env::temp_dir().join(format!("gw-envfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = |name: &str, bytes: &[u8]| {
            let p = dir.join(name);
            std::fs::write(&p, bytes).unwrap();
            p.to_str().unwrap().to_string()
        };
        let pw = file("pw", b"s3cret\n");
        let crlf = file("crlf", b"u\r\n");
        let two = file("two", b"a\n\n");
        let vars = vec![
            ("GATEWAY_X_SASL_PASSWORD_FILE".to_string(), pw.clone()),
            ("GATEWAY_X_SASL_USERNAME_FILE".to_string(), crlf),
            ("GATEWAY_X_CLIENT_ID_FILE".to_string(), two),
            ("GATEWAY_X_LINGER_MS".to_string(), "5".to_string()),
        ];
        let kv = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(
            properties_from_env(vars).unwrap(),
            vec![
                kv("client.id", "a\n"),
                kv("linger.ms", "5"),
                kv("sasl.password", "s3cret"),
                kv("sasl.username", "u"),
            ]
        );
        // One property both ways: refused, naming both variables.
        let e = properties_from_env([
            ("GATEWAY_X_SASL_PASSWORD".to_string(), "x".to_string()),
            ("GATEWAY_X_SASL_PASSWORD_FILE".to_string(), pw),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("GATEWAY_X_SASL_PASSWORD and GATEWAY_X_SASL_PASSWORD_FILE")
                && e.contains("sasl.password"),
            "{e}"
        );
        // A missing file, a file too large to be a value, bytes that are not text.
        let missing = dir.join("nope").to_str().unwrap().to_string();
        let big = file("big", &vec![b'a'; MAX_VALUE_FILE as usize + 1]);
        let binary = file("bin", &[0xff, 0xfe]);
        for (path, says) in [
            (missing, "No such file"),
            (big, "larger than"),
            (binary, "not UTF-8"),
        ] {
            let e = properties_from_env([("GATEWAY_X_SSL_KEY_PASSWORD_FILE".to_string(), path)])
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("GATEWAY_X_SSL_KEY_PASSWORD_FILE=") && e.contains(says),
                "{e}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn flags_without_an_environment_variable_are_listed() {
        use clap::{CommandFactory, Parser};
        #[derive(Parser)]
        #[command(version)]
        struct Cli {
            #[command(flatten)]
            g: GatewayArgs,
            #[arg(long, env = "GATEWAY_RING")]
            ring: Option<u32>,
            #[arg(long)]
            bare: bool,
            #[arg(long, env = "OTHER_PREFIX")]
            other: Option<u32>,
        }
        assert_eq!(
            flags_without_env(&Cli::command()),
            ["--bare", "--other"].map(String::from)
        );
        // The shared flags alone: none missing (-X is exempt, its form is GATEWAY_X_*).
        #[derive(Parser)]
        struct Shared {
            #[command(flatten)]
            g: GatewayArgs,
        }
        assert!(flags_without_env(&Shared::command()).is_empty());
    }

    #[test]
    fn log_format_and_faults_from_the_command_line() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            g: GatewayArgs,
        }
        let cli = Cli::try_parse_from(["gw"]).unwrap();
        assert_eq!(cli.g.log_format, LogFormat::Text);
        let cli = Cli::try_parse_from([
            "gw",
            "--log-format",
            "json",
            "--fault",
            "blocking-produce,accept-exit-on-error",
        ])
        .unwrap();
        assert_eq!(cli.g.log_format, LogFormat::Json);
        assert_eq!(
            cli.g.fault,
            [Fault::BlockingProduce, Fault::AcceptExitOnError]
        );
        assert!(Cli::try_parse_from(["gw", "--log-format", "xml"]).is_err());
    }

    #[test]
    fn precedence_and_redaction() {
        let kv = |k: &str, v: &str| (k.to_string(), v.to_string());
        let file = vec![
            kv("linger.ms", "1"),
            kv("acks", "1"),
            kv("sasl.password", "f"),
        ];
        let env = vec![kv("linger.ms", "2"), kv("sasl.password", "e")];
        let cli = vec![kv("linger.ms", "3")];
        let merged = merge_properties(&[&file, &env, &cli]);
        assert_eq!(
            merged,
            vec![
                kv("linger.ms", "3"),
                kv("acks", "1"),
                kv("sasl.password", "e")
            ]
        );
        let shown = redact(&merged);
        assert_eq!(shown[2], kv("sasl.password", "[redacted]"));
        assert_eq!(shown[0], kv("linger.ms", "3"));
        assert!(is_secret_property("sasl.oauthbearer.client.secret"));
        assert!(is_secret_property("ssl.key.password"));
        assert!(!is_secret_property("bootstrap.servers"));
    }

    #[test]
    fn producer_config_file_brokers() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            g: GatewayArgs,
        }
        let dir = std::env::temp_dir().join(format!("gw-props-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("producer.properties");
        std::fs::write(&file, "bootstrap.servers=f:1\nlinger.ms=9\n").unwrap();
        let path = file.to_str().unwrap();
        let cli =
            Cli::try_parse_from(["gw", "--producer-config", path, "-X", "linger.ms=4"]).unwrap();
        let (brokers, props) = cli.g.producer_settings().unwrap();
        assert_eq!(brokers.as_deref(), Some("f:1"));
        assert!(props.contains(&("linger.ms".to_string(), "4".to_string())));
        assert!(!props.iter().any(|(k, _)| k == "bootstrap.servers"));
        let cli =
            Cli::try_parse_from(["gw", "--producer-config", path, "--brokers", "c:2"]).unwrap();
        assert_eq!(cli.g.producer_settings().unwrap().0.as_deref(), Some("c:2"));
        let cli = Cli::try_parse_from(["gw", "--producer-config", "/nonexistent/x"]).unwrap();
        assert!(cli.g.producer_settings().is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn uring_only_faults_are_refused_on_other_runtimes() {
        for &f in Fault::all() {
            assert_eq!(
                f.name().starts_with("uring-"),
                f.only_runtime().is_some(),
                "{f:?}"
            );
            assert!(check_faults(&[f], "tokio-uring").is_ok(), "{f:?}");
        }
        assert_eq!(Fault::UringCancelAccept.name(), "uring-cancel-accept");
        for runtime in ["tokio", "compio"] {
            assert!(check_faults(&[Fault::AcceptExitOnError], runtime).is_ok());
            for f in [
                Fault::UringCancelAccept,
                Fault::UringTinyRing,
                Fault::UringSqFull,
            ] {
                let e = check_faults(&[Fault::BlockingProduce, f], runtime)
                    .unwrap_err()
                    .to_string();
                assert!(e.contains(&f.name()) && e.contains(runtime), "{e}");
            }
        }
        assert!(check_faults(&[], "tokio").is_ok());
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
