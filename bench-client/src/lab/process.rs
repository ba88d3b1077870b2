//! Child processes of an experiment: command lines (pinned behind `taskset`) started with
//! the shared [`harness`] crate (the conformance suite uses the same one), which keeps the
//! last lines a child wrote, waits for a line, signals it, waits for its exit and kills it
//! when dropped.
//!
//! Entry point: `spawn`. Depends only on [`super::pinning`] (for `taskset`).

use std::path::Path;
use std::process::{ChildStdin, Command};
use std::sync::mpsc::Receiver;

use anyhow::{bail, Context as _};
use harness::Options;
pub use harness::{strip_ansi, Proc};

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

/// Lines of a child's output kept (a chatty child must not grow our memory).
const LOG_LINES: usize = 400;

/// Starts `shown` with stderr (and stdout unless `control`) collected, the last
/// [`LOG_LINES`] lines kept; with `control`, stdin is piped and stdout's lines come
/// through the returned channel. The child gets SIGTERM if bench-client dies, so an
/// interrupted run leaves no process behind.
pub(crate) fn spawn(
    name: &str,
    shown: &[String],
    control: bool,
) -> anyhow::Result<(Proc, Option<ChildStdin>, Option<Receiver<String>>)> {
    let mut cmd = Command::new(&shown[0]);
    cmd.args(&shown[1..])
        // `listening on ADDR` and the producer configuration are logged at info.
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1");
    let mut opts = Options::new(name);
    opts.keep_lines = Some(LOG_LINES);
    opts.stdin = control;
    opts.control_stdout = control;
    let mut proc = Proc::spawn(cmd, opts)?;
    let stdin = proc.take_stdin();
    let rx = proc.take_control();
    Ok((proc, stdin, rx))
}
