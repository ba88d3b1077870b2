//! The lab bench every multi-process command (`compare`, `soak`, `chaos`, `stall-lab`)
//! runs on: the gateway variants ([`GatewayKind`], `--gateway` lists), the workspace
//! binaries found next to `bench-client`, `kafka-mock` and the gateways started as child
//! processes on port 0 (optionally pinned with `taskset`), waited for (`listening on`, then
//! `/readyz` 200), probed over plain HTTP (`/metrics`), driven through kafka-mock's
//! fault-injection stdin and stopped with SIGTERM; plus what /proc says about a process
//! (RSS, fds, threads, CPU time), sampled once a period by [`Sampler`], and the dated
//! output directories.
//!
//! Everything here is blocking std code (threads, `std::net`), so it can run beside the
//! load generator's tokio runtime without sharing it. Linux only (/proc).

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead as _, BufReader, Read, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};

/// One gateway build and flavour: a binary plus the arguments that select it.
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

    pub fn name(self) -> &'static str {
        match self {
            GatewayKind::TokioMulti => "tokio-multi",
            GatewayKind::TokioPerCore => "tokio-per-core",
            GatewayKind::Uring => "uring",
            GatewayKind::Compio => "compio",
        }
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
        match self {
            GatewayKind::TokioMulti | GatewayKind::TokioPerCore => "gateway-tokio",
            GatewayKind::Uring => "gateway-uring",
            GatewayKind::Compio => "gateway-compio",
        }
    }

    /// The runtime-specific arguments (the only ones allowed to differ).
    pub fn args(self) -> &'static [&'static str] {
        match self {
            GatewayKind::TokioMulti => &["--flavor", "multi"],
            GatewayKind::TokioPerCore => &["--flavor", "per-core"],
            GatewayKind::Uring | GatewayKind::Compio => &[],
        }
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
                format!("unknown gateway {w:?} (tokio-multi, tokio-per-core, uring, compio, all)")
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

/// Which CPUs the gateway and the load side (client + kafka-mock) run on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pinning {
    /// Empty = not pinned.
    pub gateway: Vec<usize>,
    /// bench-client and kafka-mock. Empty = not pinned.
    pub client: Vec<usize>,
    pub description: String,
}

impl Pinning {
    /// `auto`: 1 CPU = no pinning; otherwise the gateway gets the upper half of the CPUs
    /// and client + kafka-mock the lower half (on 2 cores: gateway on CPU 1, the rest on
    /// CPU 0). `none`: no pinning. `G/C`: explicit CPU lists, e.g. `1/0` or `4-7/0-3`.
    pub fn parse(spec: &str, cpus: usize) -> Result<Self, String> {
        match spec.trim() {
            "none" => Ok(Pinning {
                gateway: vec![],
                client: vec![],
                description: "none: every process may run on every CPU".into(),
            }),
            "auto" if cpus < 2 => Ok(Pinning {
                gateway: vec![],
                client: vec![],
                description: "auto on 1 CPU: not pinned".into(),
            }),
            "auto" => {
                let half = cpus / 2;
                let p = Pinning {
                    client: (0..half).collect(),
                    gateway: (half..cpus).collect(),
                    description: String::new(),
                };
                Ok(Pinning {
                    description: format!(
                        "auto: gateway on CPU {}, bench-client and kafka-mock on CPU {}",
                        cpu_list(&p.gateway),
                        cpu_list(&p.client)
                    ),
                    ..p
                })
            }
            s => {
                let (g, c) = s.split_once('/').ok_or_else(|| {
                    format!(
                        "--pin {s:?}: expected auto, none or GATEWAY_CPUS/CLIENT_CPUS (e.g. 1/0)"
                    )
                })?;
                let gateway = parse_cpu_list(g)?;
                let client = parse_cpu_list(c)?;
                if let Some(bad) = gateway.iter().chain(&client).find(|&&c| c >= cpus) {
                    return Err(format!(
                        "--pin {s:?}: CPU {bad} does not exist ({cpus} CPUs)"
                    ));
                }
                Ok(Pinning {
                    description: format!(
                        "gateway on CPU {}, bench-client and kafka-mock on CPU {}",
                        cpu_list(&gateway),
                        cpu_list(&client)
                    ),
                    gateway,
                    client,
                })
            }
        }
    }

    /// Pinning children goes through `taskset`: fail now if it is not there.
    pub fn check_taskset(&self, flag: &str) -> anyhow::Result<()> {
        if self.gateway.is_empty() && self.client.is_empty() {
            return Ok(());
        }
        let ok = Command::new("taskset")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            bail!("--pin {flag} needs `taskset` (util-linux); install it or pass --pin none");
        }
        Ok(())
    }
}

/// `0-3,6` style.
pub fn parse_cpu_list(s: &str) -> Result<Vec<usize>, String> {
    let mut v = Vec::new();
    for part in s.split(',').filter(|p| !p.trim().is_empty()) {
        let num = |t: &str| {
            t.trim()
                .parse::<usize>()
                .map_err(|_| format!("bad CPU {t:?} in {s:?}"))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(format!("bad CPU range {part:?}"));
                }
                v.extend(a..=b);
            }
            None => v.push(num(part)?),
        }
    }
    if v.is_empty() {
        return Err(format!("empty CPU list {s:?}"));
    }
    v.sort_unstable();
    v.dedup();
    Ok(v)
}

/// `taskset -c` syntax.
pub fn cpu_list(cpus: &[usize]) -> String {
    cpus.iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Pin the calling thread (and every thread it starts later) to `cpus`.
pub fn pin_self(cpus: &[usize]) -> anyhow::Result<()> {
    if cpus.is_empty() {
        return Ok(());
    }
    // SAFETY: cpu_set_t is plain old data, zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus.iter().filter(|&&c| c < libc::CPU_SETSIZE as usize) {
        // SAFETY: `set` is initialised and `c` in range.
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: pid 0 is this thread; the size matches the set passed.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        bail!(
            "pinning bench-client to CPU {}: {}",
            cpu_list(cpus),
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// `bin args…` as run: behind `taskset -c CPUS` when pinned.
pub fn command_line(bin: &Path, args: &[String], cpus: &[usize]) -> Vec<String> {
    let mut v = Vec::new();
    if !cpus.is_empty() {
        v.extend(["taskset".to_string(), "-c".into(), cpu_list(cpus)]);
    }
    v.push(bin.display().to_string());
    v.extend(args.iter().cloned());
    v
}

/// The [`command_line`] as a `Command`; the child gets SIGTERM if bench-client dies, so
/// an interrupted run leaves no process behind.
fn command(shown: &[String]) -> Command {
    let mut cmd = Command::new(&shown[0]);
    cmd.args(&shown[1..]);
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    cmd
}

/// `name --version`, whole text (the gateways list their runtime asymmetries there).
pub fn version_text(bin: &Path) -> anyhow::Result<String> {
    let out = Command::new(bin)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} --version", bin.display()))?;
    if !out.status.success() {
        bail!("{} --version exited with {}", bin.display(), out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
}

/// The last lines a child wrote (bounded: a chatty child must not grow our memory).
#[derive(Default)]
struct Log {
    lines: VecDeque<String>,
}

const LOG_LINES: usize = 400;
/// Lines of a child's output quoted in an error.
const TAIL_LINES: usize = 20;

type SharedLog = Arc<(Mutex<Log>, Condvar)>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn collect_lines(stream: impl Read + Send + 'static, log: SharedLog) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            let (m, cv) = &*log;
            let mut l = lock(m);
            if l.lines.len() == LOG_LINES {
                l.lines.pop_front();
            }
            l.lines.push_back(strip_ansi(&line));
            cv.notify_all();
        }
    });
}

/// A child process with its output collected; killed when dropped.
pub struct Proc {
    name: String,
    child: Child,
    log: SharedLog,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines of its stdout/stderr.
    pub fn log_tail(&self) -> String {
        let l = lock(&self.log.0);
        let skip = l.lines.len().saturating_sub(TAIL_LINES);
        l.lines
            .iter()
            .skip(skip)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The first line of its output containing `needle`.
    fn find_line(&self, needle: &str) -> Option<String> {
        let l = lock(&self.log.0);
        l.lines.iter().find(|l| l.contains(needle)).cloned()
    }

    /// Waits until `deadline` for a line containing `needle`, failing early if the
    /// process exits.
    fn wait_for_line(&mut self, needle: &str, deadline: Instant) -> anyhow::Result<String> {
        loop {
            {
                let (m, cv) = &*self.log;
                let l = lock(m);
                if let Some(line) = l.lines.iter().find(|l| l.contains(needle)) {
                    return Ok(line.clone());
                }
                let _ = cv.wait_timeout(l, Duration::from_millis(100));
            }
            if let Some(st) = self.child.try_wait()? {
                bail!(
                    "{} exited ({st}) before logging {needle:?}; last output:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} did not log {needle:?} in time; last output:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
        }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own, not yet reaped child.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Exit status if it exited within `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait()? {
                return Ok(Some(st));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// SIGTERM, up to `timeout` for the exit, then SIGKILL.
    fn shut_down(&mut self, timeout: Duration) {
        if !self.exited() {
            self.signal(libc::SIGTERM);
            let _ = self.wait_exit(timeout);
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `shown` with stderr (and stdout unless `control`) collected; with `control`,
/// stdin is piped and stdout's lines come through the returned channel.
fn spawn(
    name: &str,
    shown: &[String],
    control: bool,
) -> anyhow::Result<(Proc, Option<ChildStdin>, Option<Receiver<String>>)> {
    let mut cmd = command(shown);
    cmd.stdin(if control {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    // `listening on ADDR` and the producer configuration are logged at info.
    .env("RUST_LOG", "info")
    .env("NO_COLOR", "1");
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {name} ({})", shown.join(" ")))?;
    let log: SharedLog = Arc::default();
    collect_lines(child.stderr.take().expect("piped"), log.clone());
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().expect("piped");
    let rx = if control {
        // kafka-mock: stdout carries the bootstrap list, then one reply per command.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Some(rx)
    } else {
        collect_lines(stdout, log.clone());
        None
    };
    let proc = Proc {
        name: name.to_string(),
        child,
        log,
    };
    Ok((proc, stdin, rx))
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
                proc.log_tail()
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
                bail!("kafka-mock exited; last output:\n{}", self.proc.log_tail())
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
}

impl Gateway {
    /// Starts it, waits for `listening on` and a 200 from `/readyz`, primes it if asked.
    pub fn start(spec: &GatewaySpec) -> anyhow::Result<Gateway> {
        let command = spec.command_line();
        let deadline = Instant::now() + spec.ready_timeout;
        let mut proc = spawn(spec.kind.name(), &command, false)?.0;
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
        };
        gw.wait_ready(deadline)?;
        if let Some(topic) = &spec.prime_topic {
            prime(gw.addr, topic, 16).with_context(|| {
                format!("priming the gateway; last output:\n{}", gw.proc.log_tail())
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
            if let Ok((200, _)) = http_get(self.addr, "/readyz", Duration::from_secs(2)) {
                return Ok(());
            }
            if self.proc.exited() || Instant::now() >= deadline {
                bail!(
                    "{} never answered /readyz with 200 (is Kafka reachable?); last output:\n{}",
                    self.kind.name(),
                    self.proc.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn metrics_text(&self) -> anyhow::Result<String> {
        let (status, body) = http_get(self.addr, "/metrics", Duration::from_secs(5))?;
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
                self.proc.log_tail()
            ),
            None => bail!(
                "gateway did not exit within {timeout:?} of SIGTERM (killed); last output:\n{}",
                self.proc.log_tail()
            ),
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.proc.shut_down(Duration::from_secs(10));
    }
}

/// Prometheus text format: every sample line as `name{labels}` -> value.
pub fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.trim().rsplit_once(' ')?;
            Some((k.trim().to_string(), v.parse().ok()?))
        })
        .collect()
}

/// A blocking `GET` on a fresh connection (Connection: close): status and body.
pub fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> anyhow::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    loop {
        let n = s.read(&mut chunk)?;
        let eof = n == 0;
        buf.extend_from_slice(&chunk[..n]);
        let mut hs = [httparse::EMPTY_HEADER; 32];
        let mut r = httparse::Response::new(&mut hs);
        if let httparse::Status::Complete(head) = r.parse(&buf)? {
            let len = r
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| {
                    std::str::from_utf8(h.value)
                        .ok()?
                        .trim()
                        .parse::<usize>()
                        .ok()
                });
            let code = r.code.unwrap_or(0);
            match len {
                Some(len) if buf.len() >= head + len => {
                    return Ok((code, buf[head..head + len].to_vec()))
                }
                // No length: the body ends with the connection.
                None if eof => return Ok((code, buf[head..].to_vec())),
                _ => {}
            }
        }
        if eof {
            bail!("connection closed before the response to GET {path} was complete");
        }
    }
}

/// Produce `n` records (distinct keys, so every partition is touched) one after the
/// other and wait for each answer: the producer has then fetched metadata, got its
/// producer id and connected to every leader, which a fresh process otherwise does
/// during the first ~0.5 s of load.
pub fn prime(addr: SocketAddr, topic: &str, n: usize) -> anyhow::Result<()> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_nodelay(true)?;
    for i in 0..n {
        let body = "prime";
        write!(
            s,
            "POST /topics/{topic}?key=prime-{i} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
        crate::idle::read_http_status(&mut s)
            .map_err(|e| anyhow::anyhow!("priming request {i} failed: {e}"))?;
    }
    Ok(())
}

/// The number of a `Name:  value …` line of a /proc status text.
fn status_field(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// A field of /proc/PID/status: `kB` ones (`VmRSS`, `VmHWM`) in KiB, counts (`Threads`).
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_field(&s, field)
}

/// User + system CPU seconds of a process (/proc/PID/stat).
pub fn proc_cpu_s(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the `(comm)`, which may contain spaces.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat; `rest` starts at field 3.
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Some(ticks as f64 / if hz > 0 { hz as f64 } else { 100.0 })
}

/// Open file descriptors of a process (entries of /proc/PID/fd).
pub fn proc_fds(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// `(rss_kib, fds, threads, cpu_s)` of `pid`; `None` once it is gone.
pub fn read_proc(pid: u32) -> Option<(u64, u64, u64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status_field(&status, "VmRSS").unwrap_or(0);
    let threads = status_field(&status, "Threads").unwrap_or(0);
    Some((rss, proc_fds(pid)?, threads, proc_cpu_s(pid)?))
}

/// One sample of a process, taken from /proc (and the gateway's `/metrics` if given).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcSample {
    /// Seconds since sampling started.
    pub t_s: f64,
    /// Resident set size (VmRSS), KiB.
    pub rss_kib: u64,
    /// Open file descriptors (entries of /proc/PID/fd).
    pub fds: u64,
    pub threads: u64,
    /// User + system CPU time of the process so far, seconds.
    pub cpu_s: f64,
    /// `gateway_connections_open` (the scrape's own connection included).
    #[serde(default)]
    pub connections_open: Option<f64>,
    /// `gateway_records_inflight`.
    #[serde(default)]
    pub records_inflight: Option<f64>,
}

/// Samples a process on a fixed one-period grid (no drift) in its own thread.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Vec<ProcSample>>,
}

impl Sampler {
    /// Starts sampling `pid` every `period`, scraping `metrics` (a gateway) too if given.
    pub fn start(pid: u32, metrics: Option<SocketAddr>, period: Duration) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::Builder::new()
            .name("bench-sampler".into())
            .spawn(move || {
                let t0 = Instant::now();
                let mut out = Vec::new();
                let mut k = 0u32;
                while !s.load(Relaxed) {
                    let now = Instant::now();
                    let Some((rss_kib, fds, threads, cpu_s)) = read_proc(pid) else {
                        break; // gone
                    };
                    let m = metrics.and_then(|a| {
                        let (st, body) =
                            http_get(a, "/metrics", Duration::from_millis(500)).ok()?;
                        (st == 200).then(|| parse_metrics(&String::from_utf8_lossy(&body)))
                    });
                    let get = |k: &str| m.as_ref().and_then(|m| m.get(k).copied());
                    out.push(ProcSample {
                        t_s: (now - t0).as_secs_f64(),
                        rss_kib,
                        fds,
                        threads,
                        cpu_s,
                        connections_open: get("gateway_connections_open"),
                        records_inflight: get("gateway_records_inflight"),
                    });
                    k += 1;
                    let next = t0 + period * k;
                    while !s.load(Relaxed) {
                        let now = Instant::now();
                        if now >= next {
                            break;
                        }
                        std::thread::sleep((next - now).min(Duration::from_millis(50)));
                    }
                }
                out
            })
            .expect("spawning the sampler thread");
        Sampler { stop, handle }
    }

    pub fn stop(self) -> Vec<ProcSample> {
        self.stop.store(true, Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Milliseconds since the Unix epoch.
pub fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `YYYY-MM-DD` and `HH:MM:SS` (UTC) of a Unix time.
pub fn utc_date_time(unix_s: u64) -> (String, String) {
    let secs = unix_s % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = (unix_s / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        format!("{y:04}-{m:02}-{d:02}"),
        format!(
            "{:02}:{:02}:{:02}",
            secs / 3600,
            (secs / 60) % 60,
            secs % 60
        ),
    )
}

/// `YYYY-MM-DD` (UTC) of a unix time, for result directory names.
pub fn utc_date(unix_s: u64) -> String {
    utc_date_time(unix_s).0
}

/// `results/<today>-<what>`.
pub fn default_out_dir(what: &str) -> PathBuf {
    PathBuf::from("results").join(format!("{}-{what}", utc_date(now_unix())))
}

/// `PASS`, or `FAIL: ` and the failures.
pub fn verdict(failures: &[String]) -> String {
    if failures.is_empty() {
        "PASS".to_string()
    } else {
        format!("FAIL: {}", failures.join("; "))
    }
}

/// Writes each `(name, text)` into `dir` (created if missing); the paths written.
pub fn write_files(dir: &Path, files: &[(&str, String)]) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut out = Vec::new();
    for (name, text) in files {
        let p = dir.join(name);
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
        out.push(p);
    }
    Ok(out)
}

/// The end of a `soak` / `chaos` command on stdout: a line per gateway, one per gateway
/// that did not run (`GW: <not_run>: ERROR`), the verdict and the files; the exit code
/// (0 when `passed`).
pub fn print_outcome(
    what: &str,
    lines: impl IntoIterator<Item = String>,
    not_run_label: &str,
    not_run: &[(String, String)],
    passed: bool,
    files: &[PathBuf],
) -> u8 {
    for l in lines {
        println!("{l}");
    }
    for (gw, e) in not_run {
        println!("{gw}: {not_run_label}: {e}");
    }
    println!(
        "{what} {}: wrote {}",
        if passed { "PASS" } else { "FAIL" },
        files
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    u8::from(!passed)
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

/// Without the escape sequences (colours) a terminal would interpret.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
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
    fn dates_and_metrics() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(951_782_400), "2000-02-29");
        assert_eq!(utc_date(1_767_225_599), "2025-12-31");
        assert_eq!(utc_date_time(0), ("1970-01-01".into(), "00:00:00".into()));
        let m = parse_metrics(
            "# HELP x\ngateway_connections_open 3\ngateway_http_requests_total{code=\"200\"} 17\n",
        );
        assert_eq!(m["gateway_connections_open"], 3.0);
        assert_eq!(m["gateway_http_requests_total{code=\"200\"}"], 17.0);
    }

    #[test]
    fn pinning_defaults() {
        let p = Pinning::parse("auto", 2).unwrap();
        assert_eq!((p.gateway.clone(), p.client.clone()), (vec![1], vec![0]));
        let p = Pinning::parse("auto", 8).unwrap();
        assert_eq!(p.gateway, vec![4, 5, 6, 7]);
        assert_eq!(p.client, vec![0, 1, 2, 3]);
        assert!(Pinning::parse("auto", 1).unwrap().gateway.is_empty());
        let p = Pinning::parse("2-3/0,1", 4).unwrap();
        assert_eq!((p.gateway, p.client), (vec![2, 3], vec![0, 1]));
        assert!(Pinning::parse("5/0", 4).is_err());
        assert!(Pinning::parse("1", 4).is_err());
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

    #[test]
    fn reads_own_proc() {
        let pid = std::process::id();
        let (rss, fds, threads, _) = read_proc(pid).unwrap();
        assert!(rss > 0 && fds > 0 && threads > 0);
        assert!(proc_status_kib(pid, "VmRSS").unwrap() > 0);
        assert!(proc_cpu_s(pid).is_some());
        assert_eq!(strip_ansi("\u{1b}[32mINFO\u{1b}[0m x"), "INFO x");
    }
}
