//! Child processes with their output collected, shared by bench-client's experiment lab
//! and the conformance suite.
//!
//! [`Proc`] starts a [`Command`] with stdout and stderr read line by line on two threads
//! into one log (ANSI colours stripped), bounded to the last [`Options::keep_lines`]
//! lines or unbounded; it waits for a line (failing early once the child's output has
//! ended), writes lines to the child's stdin, hands stdout to the caller as a channel
//! when stdout is a control channel, signals the child, waits for its exit, and kills it
//! when dropped. With [`Options::die_with_parent`] the child also gets SIGTERM when the
//! parent dies, so an interrupted run leaves no process behind.
//!
//! Nothing here panics: errors carry the last lines of the child's output.

use std::collections::VecDeque;
use std::fmt;
use std::io::{BufRead as _, BufReader, Read, Write as _};
use std::os::unix::process::CommandExt as _;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How a child is started and how much of its output is kept.
#[derive(Debug, Clone)]
pub struct Options {
    /// Name used in errors.
    pub name: String,
    /// Keep only this many of the latest lines (a chatty child must not grow the parent's
    /// memory); `None` keeps every line.
    pub keep_lines: Option<usize>,
    /// Pipe the child's stdin (see [`Proc::send_line`] and [`Proc::take_stdin`]).
    pub stdin: bool,
    /// Stdout is a control channel: its lines go to [`Proc::take_control`] instead of
    /// the log.
    pub control_stdout: bool,
    /// The child gets SIGTERM when the parent dies (`PR_SET_PDEATHSIG`).
    pub die_with_parent: bool,
}

impl Options {
    pub fn new(name: impl Into<String>) -> Options {
        Options {
            name: name.into(),
            keep_lines: None,
            stdin: false,
            control_stdout: false,
            die_with_parent: true,
        }
    }
}

/// What went wrong with a child; the message quotes its last output lines.
#[derive(Debug)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// Lines of a child's output quoted in an error.
pub const TAIL_LINES: usize = 20;

#[derive(Default)]
struct Log {
    lines: VecDeque<String>,
    /// Lines ever collected (`lines` holds the last of them).
    total: usize,
    /// Streams still open.
    open: usize,
    keep: Option<usize>,
}

impl Log {
    /// The kept lines with their absolute index.
    fn indexed(&self) -> impl Iterator<Item = (usize, &String)> {
        let first = self.total - self.lines.len();
        self.lines
            .iter()
            .enumerate()
            .map(move |(i, l)| (first + i, l))
    }
}

type SharedLog = Arc<(Mutex<Log>, Condvar)>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn collect_lines(stream: impl Read + Send + 'static, log: SharedLog) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            let (m, cv) = &*log;
            let mut l = lock(m);
            if l.keep.is_some_and(|k| l.lines.len() >= k) {
                l.lines.pop_front();
            }
            l.lines.push_back(strip_ansi(&line));
            l.total += 1;
            cv.notify_all();
        }
        let (m, cv) = &*log;
        lock(m).open -= 1;
        cv.notify_all();
    });
}

/// A child process with its output collected; killed (and reaped) when dropped.
pub struct Proc {
    name: String,
    child: Child,
    log: SharedLog,
    stdin: Option<ChildStdin>,
    control: Option<Receiver<String>>,
}

impl Proc {
    /// Starts `cmd` (its stdin, stdout and stderr are set here; everything else, such as
    /// environment variables, is the caller's).
    pub fn spawn(mut cmd: Command, opts: Options) -> Result<Proc, Error> {
        cmd.stdin(if opts.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        if opts.die_with_parent {
            // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                    Ok(())
                });
            }
        }
        let shown = shown(&cmd);
        let mut child = cmd
            .spawn()
            .map_err(|e| Error(format!("starting {} ({shown}): {e}", opts.name)))?;
        let log: SharedLog = Arc::new((
            Mutex::new(Log {
                keep: opts.keep_lines,
                open: if opts.control_stdout { 1 } else { 2 },
                ..Log::default()
            }),
            Condvar::new(),
        ));
        let stderr = child.stderr.take().expect("stderr is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        collect_lines(stderr, log.clone());
        let control = if opts.control_stdout {
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
        Ok(Proc {
            name: opts.name,
            stdin: child.stdin.take(),
            child,
            log,
            control,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child's stdin, for a caller that writes to it itself.
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.stdin.take()
    }

    /// Stdout's lines, when stdout is a control channel.
    pub fn take_control(&mut self) -> Option<Receiver<String>> {
        self.control.take()
    }

    /// Writes one line to the child's stdin.
    pub fn send_line(&mut self, line: &str) -> Result<(), Error> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| Error(format!("{}: stdin is not piped", self.name)))?;
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .map_err(|e| Error(format!("writing to {}'s stdin: {e}", self.name)))
    }

    /// Lines collected so far (to wait for lines that come after a point).
    pub fn line_count(&self) -> usize {
        lock(&self.log.0).total
    }

    /// The last `n` lines of its output.
    pub fn log_tail(&self, n: usize) -> String {
        let l = lock(&self.log.0);
        let skip = l.lines.len().saturating_sub(n);
        let v: Vec<&str> = l.lines.iter().skip(skip).map(String::as_str).collect();
        v.join("\n")
    }

    /// Every kept line of its output.
    pub fn log_text(&self) -> String {
        self.log_tail(usize::MAX)
    }

    /// The first kept line containing `needle`.
    pub fn find_line(&self, needle: &str) -> Option<String> {
        lock(&self.log.0)
            .lines
            .iter()
            .find(|l| l.contains(needle))
            .cloned()
    }

    /// Waits until `deadline` for a line containing `needle`.
    pub fn wait_for_line(&self, needle: &str, deadline: Instant) -> Result<String, Error> {
        self.wait_for_line_after(0, needle, deadline)
    }

    /// Waits until `deadline` for a line containing `needle` among the lines after the
    /// first `skip` ([`Proc::line_count`]); fails as soon as the child's output ended
    /// without one.
    pub fn wait_for_line_after(
        &self,
        skip: usize,
        needle: &str,
        deadline: Instant,
    ) -> Result<String, Error> {
        let (m, cv) = &*self.log;
        let mut l = lock(m);
        loop {
            if let Some((_, line)) = l.indexed().find(|(i, s)| *i >= skip && s.contains(needle)) {
                return Ok(line.clone());
            }
            let why = if l.open == 0 {
                "ended its output without"
            } else if Instant::now() >= deadline {
                "did not log"
            } else {
                let wait = deadline.saturating_duration_since(Instant::now());
                l = cv
                    .wait_timeout(l, wait.min(Duration::from_millis(200)))
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
                continue;
            };
            drop(l);
            return Err(Error(format!(
                "{} {why} a line containing {needle:?} in time; last output:\n{}",
                self.name,
                self.log_tail(TAIL_LINES)
            )));
        }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child, not reaped before Drop.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Exit status if it exited within `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<Option<ExitStatus>, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(st)) => return Ok(Some(st)),
                Ok(None) if Instant::now() >= deadline => return Ok(None),
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => return Err(Error(format!("waiting for {}: {e}", self.name))),
            }
        }
    }

    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// SIGTERM, up to `timeout` for the exit, then SIGKILL (in Drop).
    pub fn shut_down(&mut self, timeout: Duration) {
        if !self.exited() {
            self.signal(libc::SIGTERM);
            let _ = self.wait_exit(timeout);
        }
    }

    /// Resident set size in KiB (from /proc; 0 once it is gone).
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(0)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `program args…` of a command, for messages.
fn shown(cmd: &Command) -> String {
    let mut v = vec![cmd.get_program().to_string_lossy().into_owned()];
    v.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    v.join(" ")
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

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    #[test]
    fn strips_ansi() {
        assert_eq!(strip_ansi("\u{1b}[32mINFO\u{1b}[0m x"), "INFO x");
    }

    #[test]
    fn collects_both_streams_and_finds_lines_after_a_point() {
        let p = Proc::spawn(
            sh("echo one; echo two >&2; echo three; sleep 5"),
            Options::new("t"),
        )
        .unwrap();
        assert_eq!(p.wait_for_line("three", soon()).unwrap(), "three");
        p.wait_for_line("two", soon()).unwrap();
        assert_eq!(p.line_count(), 3);
        let e = p
            .wait_for_line_after(3, "one", Instant::now() + Duration::from_millis(300))
            .unwrap_err();
        assert!(e.to_string().contains("did not log"), "{e}");
    }

    #[test]
    fn a_bounded_log_keeps_the_last_lines_and_counts_all() {
        let mut o = Options::new("t");
        o.keep_lines = Some(5);
        let mut p = Proc::spawn(sh("for i in $(seq 1 50); do echo line$i; done"), o).unwrap();
        p.wait_exit(Duration::from_secs(10)).unwrap().unwrap();
        let e = p.wait_for_line("never", soon()).unwrap_err();
        assert!(e.to_string().contains("ended its output"), "{e}");
        assert_eq!(p.line_count(), 50);
        assert_eq!(p.log_text().lines().count(), 5);
        assert_eq!(p.log_tail(1), "line50");
        assert!(p.find_line("line1\n").is_none() && p.find_line("line46").is_some());
    }

    #[test]
    fn fails_early_when_the_child_exits_without_the_line() {
        let t = Instant::now();
        let p = Proc::spawn(sh("echo bye; exit 3"), Options::new("quitter")).unwrap();
        let e = p.wait_for_line("ready", soon()).unwrap_err().to_string();
        assert!(e.contains("quitter") && e.contains("bye"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn stdin_control_channel_signals_and_exit() {
        let mut o = Options::new("t");
        o.stdin = true;
        o.control_stdout = true;
        let mut p = Proc::spawn(sh("read x; echo got-$x; echo err-$x >&2; sleep 30"), o).unwrap();
        let rx = p.take_control().unwrap();
        p.send_line("ping").unwrap();
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(10)).unwrap(),
            "got-ping"
        );
        p.wait_for_line("err-ping", soon()).unwrap();
        assert!(p.rss_kib() > 0);
        p.signal(libc::SIGTERM);
        let st = p.wait_exit(Duration::from_secs(10)).unwrap().unwrap();
        assert!(!st.success());
        assert!(Proc::spawn(Command::new("/nonexistent/x"), Options::new("x")).is_err());
    }
}
