//! Child processes with their output collected: [`Proc`] keeps the last lines a child
//! wrote (stderr, and stdout unless it is a control channel), waits for a line, signals
//! it, waits for its exit, and kills it when dropped; the child also gets SIGTERM if
//! bench-client dies, so an interrupted run leaves no process behind.
//!
//! Entry point: `spawn`. Depends only on [`super::pinning`] (for `taskset`).

use std::collections::VecDeque;
use std::io::{BufRead as _, BufReader, Read};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use super::pinning::cpu_list;

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
    pub(crate) fn find_line(&self, needle: &str) -> Option<String> {
        let l = lock(&self.log.0);
        l.lines.iter().find(|l| l.contains(needle)).cloned()
    }

    /// Waits until `deadline` for a line containing `needle`, failing early if the
    /// process exits.
    pub(crate) fn wait_for_line(
        &mut self,
        needle: &str,
        deadline: Instant,
    ) -> anyhow::Result<String> {
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
    pub(crate) fn shut_down(&mut self, timeout: Duration) {
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
pub(crate) fn spawn(
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
    fn strips_ansi() {
        assert_eq!(strip_ansi("\u{1b}[32mINFO\u{1b}[0m x"), "INFO x");
    }
}
