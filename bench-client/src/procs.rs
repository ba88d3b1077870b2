//! The processes `compare` drives: `kafka-mock` and the gateways, found next to the
//! `bench-client` executable, pinned with `taskset`, probed over plain HTTP (`/readyz`,
//! `/metrics`) and stopped with SIGTERM; plus what /proc says about them (RSS, CPU time).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};

/// Directory holding the workspace binaries: the one `bench-client` itself runs from
/// (`target/release` after `cargo build --release --workspace --bins`).
pub fn default_bin_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the bench-client executable")?;
    Ok(exe
        .parent()
        .context("the bench-client executable has no parent directory")?
        .to_path_buf())
}

/// `dir/name`, or an error that says how to build it.
pub fn find_bin(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let p = dir.join(name);
    if !p.is_file() {
        bail!(
            "{name} not found in {} (compare runs the binaries next to bench-client): \
             build them first with `cargo build --release --workspace --bins`, or pass --bin-dir",
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
    for &c in cpus {
        // SAFETY: `set` is initialised; CPU_SET ignores nothing, so keep c in range.
        if c < libc::CPU_SETSIZE as usize {
            unsafe { libc::CPU_SET(c, &mut set) };
        }
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

/// `bin args…`, behind `taskset -c CPUS` when pinned; the child gets SIGTERM if
/// bench-client dies, so an interrupted compare leaves no gateway behind.
fn command(bin: &Path, args: &[String], cpus: &[usize]) -> (Command, Vec<String>) {
    let mut shown = Vec::new();
    let mut cmd = if cpus.is_empty() {
        Command::new(bin)
    } else {
        let mut c = Command::new("taskset");
        c.args(["-c", &cpu_list(cpus)]).arg(bin);
        shown.extend(["taskset".to_string(), "-c".into(), cpu_list(cpus)]);
        c
    };
    shown.push(bin.display().to_string());
    shown.extend(args.iter().cloned());
    cmd.args(args);
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    (cmd, shown)
}

fn sigterm_and_wait(child: &mut Child, timeout: Duration) -> anyhow::Result<ExitStatus> {
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(st) = child.try_wait()? {
            return Ok(st);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("did not exit within {timeout:?} of SIGTERM (killed)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The embedded Kafka, as its own process.
pub struct KafkaMock {
    child: Child,
    pub bootstrap: String,
    pub command: Vec<String>,
}

impl KafkaMock {
    pub fn start(bin: &Path, cpus: &[usize], topic: &str) -> anyhow::Result<Self> {
        let args = vec!["--topic".to_string(), topic.to_string()];
        let (mut cmd, shown) = command(bin, &args, cpus);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", shown.join(" ")))?;
        let stdout = child.stdout.take().context("kafka-mock stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next();
            let _ = tx.send(first);
            // Keep draining so kafka-mock never blocks on a full pipe.
            for _ in lines {}
        });
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Some(Ok(l))) if !l.trim().is_empty() => l.trim().to_string(),
            other => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("kafka-mock printed no bootstrap list within 30 s ({other:?})");
            }
        };
        Ok(KafkaMock {
            child,
            bootstrap: line,
            command: shown,
        })
    }
}

impl Drop for KafkaMock {
    fn drop(&mut self) {
        let _ = sigterm_and_wait(&mut self.child, Duration::from_secs(10));
    }
}

/// How to start one gateway.
#[derive(Debug, Clone)]
pub struct GatewayCmd {
    pub bin: PathBuf,
    pub args: Vec<String>,
    pub cpus: Vec<usize>,
    /// Produce a few records to this topic once ready (see [`prime`]).
    pub prime_topic: Option<String>,
}

/// A running gateway.
pub struct GatewayProc {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub pid: u32,
    pub command: Vec<String>,
    /// The `producer configuration conf=[…]` log line, if it logged one.
    pub producer_config: Option<String>,
    /// The last lines of its stderr, for error messages.
    tail: Arc<Mutex<VecDeque<String>>>,
}

const TAIL_LINES: usize = 20;

impl GatewayProc {
    /// Start it on 127.0.0.1:0 and wait for `listening on` and `/readyz` 200.
    pub fn start(c: &GatewayCmd, ready_timeout: Duration) -> anyhow::Result<Self> {
        let mut args = vec!["--listen".to_string(), "127.0.0.1:0".to_string()];
        args.extend(c.args.iter().cloned());
        let (mut cmd, shown) = command(&c.bin, &args, &c.cpus);
        let mut child = cmd
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", shown.join(" ")))?;
        let pid = child.id();
        let stderr = child.stderr.take().context("gateway stderr")?;
        let tail: Arc<Mutex<VecDeque<String>>> = Arc::default();
        let (tx, rx) = mpsc::channel::<String>();
        let t = tail.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let line = strip_ansi(&line);
                if let Ok(mut t) = t.lock() {
                    if t.len() == TAIL_LINES {
                        t.pop_front();
                    }
                    t.push_back(line.clone());
                }
                let _ = tx.send(line);
            }
        });
        let mut g = GatewayProc {
            child: Some(child),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            pid,
            command: shown,
            producer_config: None,
            tail,
        };
        let deadline = Instant::now() + ready_timeout;
        let mut addr = None;
        while addr.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(i) = line.find("producer configuration") {
                        g.producer_config = Some(line[i..].to_string());
                    }
                    if let Some(i) = line.find("listening on ") {
                        let rest = &line[i + "listening on ".len()..];
                        let a = rest.split_whitespace().next().unwrap_or_default();
                        addr =
                            Some(a.trim_matches('"').parse::<SocketAddr>().with_context(|| {
                                format!("gateway logged an unparseable address: {line}")
                            })?);
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // stderr closed: it exited (or is about to).
                    let st = g.child.as_mut().map(|c| c.wait());
                    let last = g.tail.lock().ok().and_then(|t| t.back().cloned());
                    bail!(
                        "gateway exited ({}) before `listening on`: {}\nlast output:\n{}",
                        match st {
                            Some(Ok(s)) => s.to_string(),
                            _ => "status unknown".to_string(),
                        },
                        last.unwrap_or_default(),
                        g.tail_text()
                    );
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    bail!(
                        "gateway did not log `listening on` within {ready_timeout:?}; last output:\n{}",
                        g.tail_text()
                    );
                }
            }
        }
        g.addr = addr.unwrap_or(g.addr);
        // The producer line comes before `listening on`; drain what is queued anyway.
        while let Ok(line) = rx.try_recv() {
            if let Some(i) = line.find("producer configuration") {
                g.producer_config = Some(line[i..].to_string());
            }
        }
        loop {
            if let Ok((200, _)) = http_get(g.addr, "/readyz") {
                break;
            }
            if let Some(st) = g.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                bail!(
                    "gateway exited ({st}) before /readyz; last output:\n{}",
                    g.tail_text()
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "gateway /readyz not 200 within {ready_timeout:?} (is Kafka reachable?); last output:\n{}",
                    g.tail_text()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        if let Some(topic) = &c.prime_topic {
            prime(g.addr, topic, 16)
                .with_context(|| format!("priming the gateway; last output:\n{}", g.tail_text()))?;
        }
        Ok(g)
    }

    pub fn tail_text(&self) -> String {
        self.tail
            .lock()
            .map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }

    /// The `gateway_info{…}` line of `/metrics`.
    pub fn info_line(&self) -> anyhow::Result<String> {
        let (status, body) = http_get(self.addr, "/metrics")?;
        if status != 200 {
            bail!("/metrics answered {status}");
        }
        body.lines()
            .find(|l| l.starts_with("gateway_info{"))
            .map(str::to_string)
            .context("/metrics has no gateway_info line")
    }

    /// SIGTERM, wait for the drain; Ok only for exit status 0.
    pub fn stop(mut self, timeout: Duration) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let st = sigterm_and_wait(&mut child, timeout).with_context(|| {
            format!("gateway after SIGTERM; last output:\n{}", self.tail_text())
        })?;
        if !st.success() {
            bail!(
                "gateway exited with {st} after SIGTERM; last output:\n{}",
                self.tail_text()
            );
        }
        Ok(())
    }
}

impl Drop for GatewayProc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = sigterm_and_wait(&mut c, Duration::from_secs(10));
        }
    }
}

/// A one-shot `GET path` (Connection: close): status and body.
pub fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(&buf)? {
        httparse::Status::Complete(head) => Ok((
            resp.code.unwrap_or(0),
            String::from_utf8_lossy(&buf[head..]).into_owned(),
        )),
        httparse::Status::Partial => bail!("incomplete response to GET {path}"),
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

/// A `kB` field of /proc/PID/status (`VmRSS`, `VmHWM`), in KiB.
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
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

fn strip_ansi(s: &str) -> String {
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
    fn reads_own_proc() {
        let pid = std::process::id();
        assert!(proc_status_kib(pid, "VmRSS").unwrap() > 0);
        assert!(proc_cpu_s(pid).is_some());
        assert_eq!(strip_ansi("\u{1b}[32mINFO\u{1b}[0m x"), "INFO x");
    }
}
