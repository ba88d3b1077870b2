//! `compare --client-procs N`: one cell's load as N pinned `bench-client run` processes
//! (shards `I/N` of one run with a common `--start-at`), merged by
//! [`crate::engine::analysis::merge`] — for machines where one client process cannot keep up.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context as _};

use crate::engine::analysis::merge;
use crate::engine::config::{Mode, RunConfig};
use crate::engine::RunResult;
use crate::lab;

/// Time allowed for launching the shard processes before the warmup must begin.
const LAUNCH_MARGIN: Duration = Duration::from_millis(700);

fn secs(s: f64) -> String {
    format!("{s}s")
}

/// The `bench-client run` arguments that reproduce `c` (without `--json`).
pub fn run_args(c: &RunConfig) -> anyhow::Result<Vec<String>> {
    if c.bind_range.is_some() {
        bail!("--client-procs cannot split a --bind-range run");
    }
    let mode = match c.mode {
        Mode::Http => "http",
        Mode::HttpClose => "http-close",
        Mode::Ws => "ws",
    };
    let mut v: Vec<String> = vec![
        "run".into(),
        "--target".into(),
        c.target.clone(),
        "--mode".into(),
        mode.into(),
        "--pipeline".into(),
        c.pipeline.to_string(),
        "--window".into(),
        c.window.to_string(),
        "--connections".into(),
        c.connections.to_string(),
        "--warmup".into(),
        secs(c.warmup_s),
        "--payload".into(),
        format!("{}..{}", c.payload.min, c.payload.max),
        "--topic".into(),
        c.topic.clone(),
        "--ack".into(),
        c.ack.as_str().into(),
        "--threads".into(),
        c.threads.to_string(),
        "--timeout".into(),
        secs(c.timeout_s),
        "--stall-window".into(),
        secs(c.stall_window_s),
        "--quiet".into(),
    ];
    let mut opt = |flag: &str, val: Option<String>| {
        if let Some(x) = val {
            v.push(flag.into());
            v.push(x);
        }
    };
    opt("--duration", c.duration_s.map(secs));
    opt("--requests", c.requests.map(|n| n.to_string()));
    opt("--rate", c.rate.map(|r| r.to_string()));
    opt("--connect-rate", c.connect_rate.map(|r| r.to_string()));
    opt(
        "--reconnect-after",
        c.reconnect_after.map(|n| n.to_string()),
    );
    opt("--source-ips", c.source_ips.map(|s| s.to_string()));
    opt("--target-pid", c.target_pid.map(|p| p.to_string()));
    opt("--broker-pid", c.broker_pid.map(|p| p.to_string()));
    opt("--start-at", c.start_at_unix_ms.map(|t| t.to_string()));
    opt("--shard", c.shard.map(|s| s.to_string()));
    if let Some(t) = &c.tls {
        opt("--ca", t.ca.as_ref().map(|p| p.display().to_string()));
        v.push("--tls-resume".into());
        v.push(if t.resume { "on" } else { "off" }.into());
        if t.insecure {
            v.push("--insecure".into());
        }
    }
    if !c.server_probe {
        v.push("--no-server-probe".into());
    }
    if !c.count_syscalls {
        v.push("--no-syscalls".into());
    }
    Ok(v)
}

/// The config of shard `k` of `n`: its share of the connections, rate and threads.
pub fn shard_config(c: &RunConfig, k: usize, n: usize, start_at_ms: u64) -> RunConfig {
    let mut s = c.clone();
    s.connections = c.connections / n + usize::from(k < c.connections % n);
    s.rate = c.rate.map(|r| r / n as f64);
    s.connect_rate = c.connect_rate.map(|r| r / n as f64);
    s.requests = c
        .requests
        .map(|r| r / n as u64 + u64::from((k as u64) < r % n as u64));
    s.threads = (c.threads / n).max(1);
    s.start_at_unix_ms = Some(start_at_ms);
    s.shard = Some(crate::engine::config::Shard {
        index: k as u32,
        count: n as u32,
    });
    s
}

/// Run `c` as `n` shard processes of `exe`, shard `k` pinned to `cpus[k % len]` (not
/// pinned when `cpus` is empty), and merge them.
pub fn run_sharded(
    exe: &Path,
    c: &RunConfig,
    n: usize,
    cpus: &[usize],
) -> anyhow::Result<RunResult> {
    if n == 0 || c.connections < n {
        bail!(
            "--client-procs {n} needs at least one connection per process ({} connections)",
            c.connections
        );
    }
    let dir = std::env::temp_dir().join(format!(
        "bench-client-shards-{}-{}",
        std::process::id(),
        lab::now_unix_ms()
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let out = run_in(exe, c, n, cpus, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    out
}

fn run_in(
    exe: &Path,
    c: &RunConfig,
    n: usize,
    cpus: &[usize],
    dir: &Path,
) -> anyhow::Result<RunResult> {
    let start_at = lab::now_unix_ms()
        + (LAUNCH_MARGIN + Duration::from_secs_f64(c.warmup_s)).as_millis() as u64;
    let mut children = Vec::new();
    let mut files: Vec<PathBuf> = Vec::new();
    for k in 0..n {
        let file = dir.join(format!("shard-{k}.json"));
        let mut args = run_args(&shard_config(c, k, n, start_at))?;
        args.push("--json".into());
        args.push(file.display().to_string());
        let pin: Vec<usize> = if cpus.is_empty() {
            vec![]
        } else {
            vec![cpus[k % cpus.len()]]
        };
        let shown = lab::process::command_line(exe, &args, &pin);
        let child = std::process::Command::new(&shown[0])
            .args(&shown[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting shard {k}: {}", shown.join(" ")))?;
        children.push(child);
        files.push(file);
    }
    let mut failed = Vec::new();
    for (k, ch) in children.into_iter().enumerate() {
        let o = ch.wait_with_output()?;
        if !o.status.success() {
            failed.push(format!(
                "shard {k}/{n} exited with {}: {}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            ));
        }
    }
    if !failed.is_empty() {
        bail!("{}", failed.join("; "));
    }
    let m = merge::merge_files(&files)?;
    for w in &m.warnings {
        tracing::warn!("merging {n} client processes: {w}");
    }
    Ok(m.result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_and_args_round_trip() {
        let mut c = RunConfig::new("http://127.0.0.1:9").unwrap();
        c.connections = 10;
        c.rate = Some(3000.0);
        c.threads = 4;
        c.source_ips = Some("127.0.0.2-127.0.0.9".parse().unwrap());
        let parts: Vec<RunConfig> = (0..3)
            .map(|k| shard_config(&c, k, 3, 1_800_000_000_000))
            .collect();
        assert_eq!(parts.iter().map(|p| p.connections).sum::<usize>(), 10);
        assert!(parts
            .iter()
            .all(|p| p.rate == Some(1000.0) && p.threads == 1));
        // What a shard process parses back is the shard's config.
        use clap::Parser;
        #[derive(Parser)]
        struct P {
            #[command(subcommand)]
            c: Sub,
        }
        #[derive(clap::Subcommand)]
        enum Sub {
            Run(crate::engine::config::RunArgs),
        }
        let Sub::Run(a) = P::try_parse_from(
            std::iter::once("bench-client".to_string()).chain(run_args(&parts[1]).unwrap()),
        )
        .unwrap()
        .c;
        let mut back = RunConfig::from_args(&a).unwrap();
        back.progress = parts[1].progress;
        back.collect_acks = parts[1].collect_acks;
        back.interval_histograms = parts[1].interval_histograms;
        assert_eq!(back, parts[1]);
    }
}
