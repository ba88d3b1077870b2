//! The gateway variants ([`GatewayKind`], the rows of `gateways.tsv`, `--gateway` lists), the workspace binaries found
//! next to `bench-client`, and the lifecycle of the two kinds of child process every lab
//! command runs: a gateway ([`Gateway`]: started on port 0 from a [`GatewaySpec`], waited
//! for until `listening on` and `/readyz` 200, primed, stopped with SIGTERM) and
//! `kafka-mock` ([`KafkaMock`], with its fault-injection stdin).
//!
//! Built on [`super::process`] and [`super::probe`]; depends on nothing outside the lab.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ChildStdin;
use std::str::FromStr;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};

use super::probe::{http_get_over, parse_metrics, prime_over};
use super::process::{command_line, spawn, Proc};
use super::tls_probe::ProbeTls;

/// The gateway variant table, `gateways.tsv` at the workspace root: one source for
/// bench-client, conformance and the scripts (`bench-client variants` prints it).
pub const TABLE: &str = include_str!("../../../gateways.tsv");

/// One row of [`TABLE`]: a variant's name, binary, arguments and runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariantRow {
    pub name: &'static str,
    /// The binary, looked up next to `bench-client`.
    pub bin: &'static str,
    /// The runtime-specific arguments (the only ones allowed to differ).
    pub args: Vec<&'static str>,
    /// The runtime the binary reports (`--version`, gateway_info's `runtime` label).
    pub runtime: &'static str,
}

/// The rows of a variant table: tab-separated `name bin args runtime` (args split on
/// spaces, may be empty); blank lines and `#` comments skipped.
pub fn parse_table(text: &'static str) -> Result<Vec<VariantRow>, String> {
    let rows = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| match l.split('\t').collect::<Vec<_>>()[..] {
            [name, bin, args, runtime] if !name.is_empty() && !bin.is_empty() => Ok(VariantRow {
                name,
                bin,
                args: args.split_whitespace().collect(),
                runtime,
            }),
            _ => Err(format!(
                "bad gateway variant line {l:?} (name, bin, args, runtime)"
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// [`TABLE`], parsed once.
pub fn variants() -> &'static [VariantRow] {
    static ROWS: LazyLock<Vec<VariantRow>> =
        LazyLock::new(|| parse_table(TABLE).expect("gateways.tsv"));
    &ROWS
}

/// The table as `bench-client variants` prints it for scripts: one line per variant,
/// `name<TAB>bin<TAB>args<TAB>runtime`, in table order, no header.
pub fn variants_tsv() -> String {
    variants()
        .iter()
        .map(|v| {
            format!(
                "{}\t{}\t{}\t{}\n",
                v.name,
                v.bin,
                v.args.join(" "),
                v.runtime
            )
        })
        .collect()
}

/// One gateway build and flavour: a row of [`TABLE`] (same order; names as serialized).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GatewayKind {
    TokioMulti,
    TokioPerCore,
    Uring,
    Compio,
}

impl GatewayKind {
    pub const ALL: [GatewayKind; 4] = [
        GatewayKind::TokioMulti,
        GatewayKind::TokioPerCore,
        GatewayKind::Uring,
        GatewayKind::Compio,
    ];

    fn row(self) -> &'static VariantRow {
        &variants()[self as usize]
    }

    pub fn name(self) -> &'static str {
        self.row().name
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        GatewayKind::ALL
            .into_iter()
            .find(|g| g.name() == s.trim())
            .ok_or_else(|| {
                format!(
                    "unknown gateway {s:?} (known: {})",
                    GatewayKind::ALL.map(GatewayKind::name).join(", ")
                )
            })
    }

    /// The binary, looked up next to `bench-client`.
    pub fn bin(self) -> &'static str {
        self.row().bin
    }

    /// The runtime-specific arguments (the only ones allowed to differ).
    pub fn args(self) -> &'static [&'static str] {
        &self.row().args
    }
}

/// `--gateway`: one variant, a comma-separated list, or `all`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewaySet(pub Vec<GatewayKind>);

impl FromStr for GatewaySet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut out = Vec::new();
        for w in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            if w == "all" {
                out.extend(GatewayKind::ALL);
                continue;
            }
            out.push(GatewayKind::parse(w).map_err(|_| {
                let known = GatewayKind::ALL.map(GatewayKind::name).join(", ");
                format!("unknown gateway {w:?} ({known}, all)")
            })?);
        }
        out.dedup();
        if out.is_empty() {
            return Err("no gateway given".into());
        }
        Ok(GatewaySet(out))
    }
}

/// Where the workspace binaries are: next to this executable (`target/<profile>/`), or one
/// level up when running as a test (`target/<profile>/deps/`).
pub fn default_bin_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the bench-client executable")?;
    let mut dir = exe
        .parent()
        .context("the bench-client executable has no parent directory")?
        .to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    Ok(dir)
}

/// `dir/name`, or an error that says how to build it.
pub fn locate(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let p = dir.join(name);
    if !p.is_file() {
        bail!(
            "{name} not found in {} (binaries are looked up next to bench-client): build them \
             first with `cargo build --release --workspace --bins`, or pass --bin-dir",
            dir.display()
        );
    }
    Ok(p)
}

/// A `kafka-mock` process (librdkafka mock cluster, 3 brokers, 4 partitions a topic),
/// optionally with its fault-injection control stdin.
pub struct KafkaMock {
    pub proc: Proc,
    pub bootstrap: String,
    /// How it was started (`taskset …` included).
    pub command: Vec<String>,
    stdin: Option<ChildStdin>,
    replies: Receiver<String>,
}

impl KafkaMock {
    /// Starts kafka-mock from `bin_dir` with `topics` created up front, on `cpus` (empty:
    /// not pinned); `control` opens its stdin for [`KafkaMock::control`].
    pub fn start(
        bin_dir: &Path,
        topics: &[&str],
        control: bool,
        cpus: &[usize],
    ) -> anyhow::Result<KafkaMock> {
        let bin = locate(bin_dir, "kafka-mock")?;
        let mut args = Vec::new();
        if control {
            args.push("--control-stdin".to_string());
        }
        for t in topics {
            args.extend(["--topic".to_string(), t.to_string()]);
        }
        let shown = command_line(&bin, &args, cpus);
        let (proc, stdin, rx) = spawn("kafka-mock", &shown, true)?;
        let replies = rx.expect("control channel");
        let bootstrap = match replies.recv_timeout(Duration::from_secs(30)) {
            Ok(l) if !l.trim().is_empty() => l.trim().to_string(),
            _ => bail!(
                "kafka-mock printed no bootstrap list within 30 s; last output:\n{}",
                proc.log_tail(harness::TAIL_LINES)
            ),
        };
        Ok(KafkaMock {
            proc,
            bootstrap,
            command: shown,
            stdin: if control { stdin } else { None },
            replies,
        })
    }

    /// Sends one fault-injection command and waits for its `ok`.
    pub fn control(&mut self, command: &str) -> anyhow::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .context("kafka-mock stdin closed (started without control)")?;
        writeln!(stdin, "{command}")
            .and_then(|()| stdin.flush())
            .with_context(|| format!("sending {command:?} to kafka-mock"))?;
        match self.replies.recv_timeout(Duration::from_secs(10)) {
            Ok(r) if r.trim() == "ok" => Ok(()),
            Ok(r) => bail!("kafka-mock: {command}: {r}"),
            Err(RecvTimeoutError::Timeout) => bail!("kafka-mock: no reply to {command:?}"),
            Err(RecvTimeoutError::Disconnected) => {
                bail!(
                    "kafka-mock exited; last output:\n{}",
                    self.proc.log_tail(harness::TAIL_LINES)
                )
            }
        }
    }
}

impl Drop for KafkaMock {
    fn drop(&mut self) {
        // Closing stdin ends its control thread; SIGTERM lets it shut down in order.
        self.stdin = None;
        self.proc.shut_down(Duration::from_secs(10));
    }
}

/// How a gateway ended after SIGTERM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// Exited with status 0 within the timeout.
    pub clean: bool,
    /// Exit code (`None`: killed by a signal, or still running at the timeout and killed).
    pub code: Option<i32>,
    /// Seconds from SIGTERM to exit.
    pub after_s: f64,
}

/// How to start one gateway: `[taskset -c CPUS] BIN --listen 127.0.0.1:0 [--brokers B]
/// [--threads N] ARGS… FLAVOUR-ARGS…`.
#[derive(Debug, Clone)]
pub struct GatewaySpec {
    pub kind: GatewayKind,
    pub bin: PathBuf,
    pub brokers: Option<String>,
    pub threads: Option<usize>,
    pub args: Vec<String>,
    /// Empty = not pinned.
    pub cpus: Vec<usize>,
    /// For `listening on` and `/readyz` 200 together.
    pub ready_timeout: Duration,
    /// Produce a few records to this topic once ready (see [`prime`]).
    pub prime_topic: Option<String>,
}

impl GatewaySpec {
    /// `kind` from `bin_dir`, unpinned, no extra arguments, 60 s to get ready.
    pub fn new(kind: GatewayKind, bin_dir: &Path) -> anyhow::Result<Self> {
        Ok(GatewaySpec {
            kind,
            bin: locate(bin_dir, kind.bin())?,
            brokers: None,
            threads: None,
            args: Vec::new(),
            cpus: Vec::new(),
            ready_timeout: Duration::from_secs(60),
            prime_topic: None,
        })
    }

    /// The whole command line.
    pub fn command_line(&self) -> Vec<String> {
        let mut args = vec!["--listen".to_string(), "127.0.0.1:0".to_string()];
        if let Some(b) = &self.brokers {
            args.extend(["--brokers".to_string(), b.clone()]);
        }
        if let Some(t) = self.threads {
            args.extend(["--threads".to_string(), t.to_string()]);
        }
        args.extend(self.args.iter().cloned());
        args.extend(self.kind.args().iter().map(|s| s.to_string()));
        command_line(&self.bin, &args, &self.cpus)
    }
}

/// A gateway process listening on 127.0.0.1:<ephemeral>; SIGTERM (then SIGKILL after
/// 10 s) when dropped.
pub struct Gateway {
    pub kind: GatewayKind,
    pub proc: Proc,
    pub addr: SocketAddr,
    pub bin: PathBuf,
    pub command: Vec<String>,
    /// The `producer configuration conf=[…]` log line, if it logged one.
    pub producer_config: Option<String>,
    /// It serves TLS: the probes' client (see [`Gateway::start_tls`]).
    pub tls: Option<ProbeTls>,
}

impl Gateway {
    /// Starts it, waits for `listening on` and a 200 from `/readyz`, primes it if asked.
    pub fn start(spec: &GatewaySpec) -> anyhow::Result<Gateway> {
        Self::start_tls(spec, None)
    }

    /// [`Gateway::start`] for a gateway that serves TLS (its `spec.args` carry
    /// `--tls-cert`/`--tls-key`): readiness, metrics and priming go through `tls`.
    pub fn start_tls(spec: &GatewaySpec, tls: Option<ProbeTls>) -> anyhow::Result<Gateway> {
        let command = spec.command_line();
        let deadline = Instant::now() + spec.ready_timeout;
        let proc = spawn(spec.kind.name(), &command, false)?.0;
        let line = proc.wait_for_line("listening on ", deadline)?;
        let addr: SocketAddr = line
            .split("listening on ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.trim_matches('"').parse().ok())
            .with_context(|| format!("gateway logged an unparseable address: {line}"))?;
        // The producer line comes before `listening on`.
        let producer_config = proc.find_line("producer configuration").map(|l| {
            let i = l.find("producer configuration").unwrap_or(0);
            l[i..].to_string()
        });
        let mut gw = Gateway {
            kind: spec.kind,
            proc,
            addr,
            bin: spec.bin.clone(),
            command,
            producer_config,
            tls,
        };
        gw.wait_ready(deadline)?;
        if let Some(topic) = &spec.prime_topic {
            prime_over(gw.addr, gw.tls.as_ref(), topic, 16).with_context(|| {
                format!(
                    "priming the gateway; last output:\n{}",
                    gw.proc.log_tail(harness::TAIL_LINES)
                )
            })?;
        }
        Ok(gw)
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    pub fn target(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn wait_ready(&mut self, deadline: Instant) -> anyhow::Result<()> {
        loop {
            if let Ok((200, _)) = http_get_over(
                self.addr,
                self.tls.as_ref(),
                "/readyz",
                Duration::from_secs(2),
            ) {
                return Ok(());
            }
            if self.proc.exited() || Instant::now() >= deadline {
                bail!(
                    "{} never answered /readyz with 200 (is Kafka reachable?); last output:\n{}",
                    self.kind.name(),
                    self.proc.log_tail(harness::TAIL_LINES)
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn metrics_text(&self) -> anyhow::Result<String> {
        let (status, body) = http_get_over(
            self.addr,
            self.tls.as_ref(),
            "/metrics",
            Duration::from_secs(5),
        )?;
        if status != 200 {
            bail!("/metrics answered {status}");
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// `/metrics`, every sample line as `series{labels}` -> value.
    pub fn metrics(&self) -> anyhow::Result<BTreeMap<String, f64>> {
        Ok(parse_metrics(&self.metrics_text()?))
    }

    /// The `gateway_info{…}` line of `/metrics`.
    pub fn info_line(&self) -> anyhow::Result<String> {
        self.metrics_text()?
            .lines()
            .find(|l| l.starts_with("gateway_info{"))
            .map(str::to_string)
            .context("/metrics has no gateway_info line")
    }

    /// SIGTERM, then wait up to `timeout` for the exit (killed after that).
    pub fn terminate(&mut self, timeout: Duration) -> anyhow::Result<ExitInfo> {
        let t = Instant::now();
        self.proc.signal(libc::SIGTERM);
        let st = self.proc.wait_exit(timeout)?;
        Ok(ExitInfo {
            clean: st.is_some_and(|s| s.success()),
            code: st.and_then(|s| s.code()),
            after_s: t.elapsed().as_secs_f64(),
        })
    }

    /// SIGTERM, wait for the drain; Ok only for exit status 0 within `timeout`.
    pub fn stop(mut self, timeout: Duration) -> anyhow::Result<()> {
        self.proc.signal(libc::SIGTERM);
        match self.proc.wait_exit(timeout)? {
            Some(st) if st.success() => Ok(()),
            Some(st) => bail!(
                "gateway exited with {st} after SIGTERM; last output:\n{}",
                self.proc.log_tail(harness::TAIL_LINES)
            ),
            None => bail!(
                "gateway did not exit within {timeout:?} of SIGTERM (killed); last output:\n{}",
                self.proc.log_tail(harness::TAIL_LINES)
            ),
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.proc.shut_down(Duration::from_secs(10));
    }
}

/// The gateway's `/metrics` at the end of a run without the histogram buckets; a
/// failure (`what`: "soak", "run") when it no longer answers.
pub fn final_metrics(
    gw: &Gateway,
    what: &str,
    failures: &mut Vec<String>,
) -> BTreeMap<String, f64> {
    match gw.metrics() {
        Ok(m) => m
            .into_iter()
            .filter(|(k, _)| !k.contains("_bucket"))
            .collect(),
        Err(e) => {
            failures.push(format!("gateway gone at the end of the {what}: {e:#}"));
            BTreeMap::new()
        }
    }
}

/// `f` on every gateway of `kinds` in turn: the results, and `(gateway, error)` for those
/// that failed; `say` hears a line for each (`one_line` of a result, or
/// `GW: <not_run_label>: ERROR`).
pub fn each_gateway<T>(
    kinds: &[GatewayKind],
    not_run_label: &str,
    mut f: impl FnMut(GatewayKind) -> anyhow::Result<T>,
    one_line: impl Fn(&T) -> String,
    say: impl Fn(String),
) -> (Vec<T>, Vec<(String, String)>) {
    let (mut done, mut not_run) = (Vec::new(), Vec::new());
    for &k in kinds {
        match f(k) {
            Ok(g) => {
                say(one_line(&g));
                done.push(g);
            }
            Err(e) => {
                say(format!("{}: {not_run_label}: {e:#}", k.name()));
                not_run.push((k.name().to_string(), format!("{e:#}")));
            }
        }
    }
    (done, not_run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_sets() {
        let all: GatewaySet = "all".parse().unwrap();
        assert_eq!(all.0, GatewayKind::ALL.to_vec());
        let two: GatewaySet = "uring, tokio-multi".parse().unwrap();
        assert_eq!(two.0, vec![GatewayKind::Uring, GatewayKind::TokioMulti]);
        assert!("tokio".parse::<GatewaySet>().is_err());
        assert_eq!(GatewayKind::parse(" compio"), Ok(GatewayKind::Compio));
        assert!(GatewayKind::parse("all").is_err());
    }

    #[test]
    fn the_table_has_the_four_variants_in_gateway_kind_order() {
        let names: Vec<_> = variants().iter().map(|v| v.name).collect();
        assert_eq!(names, ["tokio-multi", "tokio-per-core", "uring", "compio"]);
        for (i, k) in GatewayKind::ALL.into_iter().enumerate() {
            assert_eq!(k as usize, i);
            // the serialized name (summary.json) is the table's
            assert_eq!(
                serde_json::to_string(&k).unwrap(),
                format!("{:?}", k.name())
            );
        }
        assert_eq!(GatewayKind::TokioMulti.bin(), "gateway-tokio");
        assert_eq!(GatewayKind::TokioMulti.args(), ["--flavor", "multi"]);
        assert_eq!(GatewayKind::TokioPerCore.args(), ["--flavor", "per-core"]);
        assert_eq!(GatewayKind::Uring.bin(), "gateway-uring");
        assert_eq!(GatewayKind::Compio.bin(), "gateway-compio");
        assert!(GatewayKind::Compio.args().is_empty());
        let runtimes: Vec<_> = variants().iter().map(|v| v.runtime).collect();
        assert_eq!(runtimes, ["tokio", "tokio", "tokio-uring", "compio"]);
    }

    #[test]
    fn variants_tsv_and_bad_tables() {
        assert_eq!(
            variants_tsv(),
            "tokio-multi\tgateway-tokio\t--flavor multi\ttokio\n\
             tokio-per-core\tgateway-tokio\t--flavor per-core\ttokio\n\
             uring\tgateway-uring\t\ttokio-uring\n\
             compio\tgateway-compio\t\tcompio\n"
        );
        assert!(parse_table("a\tb\tc\n").is_err());
        assert!(parse_table("\tb\t\tr\n").is_err());
        assert_eq!(parse_table("# x\n\na\tb\t\tr\n").unwrap().len(), 1);
    }

    #[test]
    fn command_lines() {
        let spec = GatewaySpec {
            kind: GatewayKind::TokioPerCore,
            bin: PathBuf::from("/b/gateway-tokio"),
            brokers: Some("k:9092".into()),
            threads: Some(2),
            args: vec!["--sink".into(), "null".into()],
            cpus: vec![1],
            ready_timeout: Duration::from_secs(1),
            prime_topic: None,
        };
        assert_eq!(
            spec.command_line().join(" "),
            "taskset -c 1 /b/gateway-tokio --listen 127.0.0.1:0 --brokers k:9092 --threads 2 \
             --sink null --flavor per-core"
        );
    }
}
