//! The lab bench for the long-running scenarios (`soak`, `chaos`): find the workspace
//! binaries, start `kafka-mock` and a gateway on port 0 as child processes, wait until the
//! gateway is ready, drive kafka-mock's fault-injection stdin, and sample a process's
//! RSS, open fds, threads and CPU from /proc once a second.
//!
//! Everything here is blocking std code (threads, `std::net`), so it can run beside the
//! load generator's tokio runtime without sharing it. Linux only (/proc).

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead as _, BufReader, Read, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};

/// One gateway variant: a binary plus the arguments that select it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

    pub fn bin(self) -> &'static str {
        match self {
            GatewayKind::TokioMulti | GatewayKind::TokioPerCore => "gateway-tokio",
            GatewayKind::Uring => "gateway-uring",
            GatewayKind::Compio => "gateway-compio",
        }
    }

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
            let k = GatewayKind::ALL
                .into_iter()
                .find(|k| k.name() == w)
                .ok_or_else(|| {
                    format!(
                        "unknown gateway {w:?} (tokio-multi, tokio-per-core, uring, compio, all)"
                    )
                })?;
            out.push(k);
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
        .context("the executable has no directory")?
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
            "{} not found (binaries are looked up next to bench-client; build them with \
             `cargo build --release --workspace --bins`, or point --bin-dir at them)",
            p.display()
        );
    }
    Ok(p)
}

/// The last lines a child wrote (bounded: a chatty child must not grow our memory).
#[derive(Default)]
struct Log {
    lines: VecDeque<String>,
    closed: usize,
}

const LOG_LINES: usize = 400;

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
            l.lines.push_back(line);
            cv.notify_all();
        }
        let (m, cv) = &*log;
        lock(m).closed += 1;
        cv.notify_all();
    });
}

/// A child process; killed when dropped.
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
        l.lines.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// Waits for a line containing `needle`, failing early if the process exits.
    fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
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
                    "{} exited ({st}) before logging {needle:?}; its output:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} did not log {needle:?} within {timeout:?}; its output:\n{}",
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
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

/// A gateway process listening on 127.0.0.1:<ephemeral>.
pub struct Gateway {
    pub kind: GatewayKind,
    pub proc: Proc,
    pub addr: SocketAddr,
    pub bin: PathBuf,
}

impl Gateway {
    /// Starts `kind` from `bin_dir` producing to `brokers`, waits for `listening on` and a
    /// 200 from `/readyz`.
    pub fn start(
        kind: GatewayKind,
        bin_dir: &Path,
        brokers: &str,
        threads: Option<usize>,
        extra: &[String],
    ) -> anyhow::Result<Gateway> {
        let bin = locate(bin_dir, kind.bin())?;
        let mut cmd = Command::new(&bin);
        cmd.args(kind.args())
            .args(["--listen", "127.0.0.1:0", "--brokers", brokers]);
        if let Some(t) = threads {
            cmd.args(["--threads", &t.to_string()]);
        }
        cmd.args(extra);
        let mut proc = spawn(kind.name(), cmd, false)?.0;
        let line = proc.wait_for_line("listening on ", Duration::from_secs(30))?;
        let addr: SocketAddr = line
            .split("listening on ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("cannot parse the address in {line:?}"))?;
        let mut gw = Gateway {
            kind,
            proc,
            addr,
            bin,
        };
        gw.wait_ready(Duration::from_secs(30))?;
        Ok(gw)
    }

    pub fn target(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok((200, _)) = http_get(self.addr, "/readyz", Duration::from_secs(2)) {
                return Ok(());
            }
            if self.proc.exited() || Instant::now() >= deadline {
                bail!(
                    "{} never answered /readyz with 200; its output:\n{}",
                    self.kind.name(),
                    self.proc.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `/metrics`, every sample line as `series{labels}` -> value.
    pub fn metrics(&self) -> anyhow::Result<BTreeMap<String, f64>> {
        let (status, body) = http_get(self.addr, "/metrics", Duration::from_secs(5))?;
        if status != 200 {
            bail!("/metrics answered {status}");
        }
        Ok(parse_metrics(&String::from_utf8_lossy(&body)))
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

/// A blocking `GET` on a fresh connection: status and body.
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
                })
                .context("response without Content-Length")?;
            if buf.len() >= head + len {
                return Ok((r.code.unwrap_or(0), buf[head..head + len].to_vec()));
            }
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            bail!("connection closed before the response was complete");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn spawn(
    name: &str,
    mut cmd: Command,
    control: bool,
) -> anyhow::Result<(Proc, Option<ChildStdin>, Option<Receiver<String>>)> {
    cmd.stdin(if control {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    if std::env::var_os("RUST_LOG").is_none() {
        // `listening on ADDR` is logged at info.
        cmd.env("RUST_LOG", "info");
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {name} ({:?})", cmd.get_program()))?;
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
    Ok((
        Proc {
            name: name.to_string(),
            child,
            log,
        },
        stdin,
        rx,
    ))
}

/// A `kafka-mock` process (librdkafka mock cluster, 3 brokers) with its control stdin.
pub struct KafkaMock {
    pub proc: Proc,
    pub bootstrap: String,
    stdin: Option<ChildStdin>,
    replies: Receiver<String>,
}

impl KafkaMock {
    /// Starts kafka-mock from `bin_dir` with `topics` created up front (`partitions` each).
    pub fn start(bin_dir: &Path, topics: &[&str], partitions: u32) -> anyhow::Result<KafkaMock> {
        let bin = locate(bin_dir, "kafka-mock")?;
        let mut cmd = Command::new(bin);
        cmd.args(["--control-stdin", "--partitions", &partitions.to_string()]);
        for t in topics {
            cmd.args(["--topic", t]);
        }
        let (proc, stdin, rx) = spawn("kafka-mock", cmd, true)?;
        let replies = rx.expect("control channel");
        let bootstrap = match replies.recv_timeout(Duration::from_secs(30)) {
            Ok(l) if !l.trim().is_empty() => l.trim().to_string(),
            _ => bail!(
                "kafka-mock printed no bootstrap list; its output:\n{}",
                proc.log_tail()
            ),
        };
        Ok(KafkaMock {
            proc,
            bootstrap,
            stdin,
            replies,
        })
    }

    /// Sends one fault-injection command and waits for its `ok`.
    pub fn control(&mut self, command: &str) -> anyhow::Result<()> {
        let stdin = self.stdin.as_mut().context("kafka-mock stdin closed")?;
        writeln!(stdin, "{command}")
            .and_then(|()| stdin.flush())
            .with_context(|| format!("sending {command:?} to kafka-mock"))?;
        match self.replies.recv_timeout(Duration::from_secs(10)) {
            Ok(r) if r.trim() == "ok" => Ok(()),
            Ok(r) => bail!("kafka-mock: {command}: {r}"),
            Err(RecvTimeoutError::Timeout) => bail!("kafka-mock: no reply to {command:?}"),
            Err(RecvTimeoutError::Disconnected) => {
                bail!("kafka-mock exited; its output:\n{}", self.proc.log_tail())
            }
        }
    }
}

impl Drop for KafkaMock {
    fn drop(&mut self) {
        // Closing stdin ends its control thread; SIGTERM lets it shut down in order.
        self.stdin = None;
        self.proc.signal(libc::SIGTERM);
        let _ = self.proc.wait_exit(Duration::from_secs(3));
    }
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

/// `(rss_kib, fds, threads, cpu_s)` of `pid`.
pub fn read_proc(pid: u32) -> std::io::Result<(u64, u64, u64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let (rss, threads) = (field("VmRSS:"), field("Threads:"));
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count() as u64;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let cpu_s = (ticks(11) + ticks(12)) as f64 / hz;
    Ok((rss, fds, threads, cpu_s))
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
                    let Ok((rss_kib, fds, threads, cpu_s)) = read_proc(pid) else {
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

/// `YYYY-MM-DD` (UTC) of a unix time, for result directory names.
pub fn utc_date(unix_s: u64) -> String {
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
    format!("{y:04}-{m:02}-{d:02}")
}

/// `results/<today>-<what>`.
pub fn default_out_dir(what: &str) -> PathBuf {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    PathBuf::from("results").join(format!("{}-{what}", utc_date(now)))
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
    }

    #[test]
    fn dates_and_metrics() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(951_782_400), "2000-02-29");
        assert_eq!(utc_date(1_767_225_599), "2025-12-31");
        let m = parse_metrics(
            "# HELP x\ngateway_connections_open 3\ngateway_http_requests_total{status=\"200\"} 17\n",
        );
        assert_eq!(m["gateway_connections_open"], 3.0);
        assert_eq!(m["gateway_http_requests_total{status=\"200\"}"], 17.0);
    }

    #[test]
    fn samples_self() {
        let (rss, fds, threads, _) = read_proc(std::process::id()).unwrap();
        assert!(rss > 0 && fds > 0 && threads > 0);
    }
}
