//! The manifest every result carries: where and how the numbers were made.
//!
//! Entry point: [`Manifest::collect`]. Part of the [engine](crate::engine): must not depend
//! on anything outside it.

use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// `git rev-parse HEAD` in the working directory, if it is a repository with commits.
    pub commit: Option<String>,
    /// `git status --porcelain` was non-empty.
    pub dirty: Option<bool>,
    /// uname: sysname release version machine.
    pub kernel: Option<String>,
    pub hostname: Option<String>,
    /// First `model name` of /proc/cpuinfo.
    pub cpu_model: Option<String>,
    /// Processors listed in /proc/cpuinfo.
    pub cpu_count: usize,
    /// CPUs this process may run on (sched_getaffinity).
    pub affinity: Vec<usize>,
    /// The command line.
    pub args: Vec<String>,
    /// `--version` of the target binary when `--target-bin` was given.
    pub target_version: Option<String>,
    pub bench_client_version: String,
    /// Merged results (`bench-client merge`): every shard's manifest and self-check.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardEntry>,
}

/// One shard of a merged result: where it ran and how the client fared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardEntry {
    /// `I/N` from `--shard`, or the position among the merged files (`#k`).
    pub shard: String,
    /// The file it was read from.
    pub file: String,
    pub run_id: String,
    pub hostname: Option<String>,
    pub commit: Option<String>,
    pub dirty: Option<bool>,
    pub affinity: Vec<usize>,
    pub target: String,
    pub connections: usize,
    pub threads: usize,
    pub measured_start_unix_ms: f64,
    pub measured_s: f64,
    pub ok: u64,
    pub p50_us: f64,
    /// What bound this shard (`binding.bound`).
    pub bound: crate::engine::analysis::bound::Bound,
    pub self_check: crate::engine::analysis::self_check::SelfCheck,
}

impl Manifest {
    /// What a report prints after the commit: says when the numbers came from uncommitted
    /// code.
    pub fn dirty_note(&self) -> &'static str {
        if self.dirty == Some(true) {
            " (working tree dirty)"
        } else {
            ""
        }
    }

    /// Collect everything about this machine and process.
    pub fn collect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string());
        let mut cpu_count = cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count();
        if cpu_count == 0 {
            cpu_count = std::thread::available_parallelism().map_or(0, |n| n.get());
        }
        let (kernel, hostname) = uname();
        Manifest {
            commit: git(&["rev-parse", "HEAD"]),
            dirty: git(&["status", "--porcelain"]).map(|s| !s.is_empty()),
            kernel,
            hostname,
            cpu_model,
            cpu_count,
            affinity: affinity(),
            args: std::env::args().collect(),
            target_version: None,
            bench_client_version: env!("CARGO_PKG_VERSION").to_string(),
            shards: Vec::new(),
        }
    }

    /// Ask `bin --version` (first line of stdout).
    pub fn target_version_of(bin: &Path) -> Option<String> {
        let out = Command::new(bin).arg("--version").output().ok()?;
        let s = String::from_utf8_lossy(&out.stdout);
        let line = s.lines().next()?.trim();
        (!line.is_empty()).then(|| line.to_string())
    }
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn field(b: &[libc::c_char]) -> String {
    let bytes: Vec<u8> = b
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn uname() -> (Option<String>, Option<String>) {
    // SAFETY: utsname is plain old data; uname fills it or fails.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        return (None, None);
    }
    let kernel = format!(
        "{} {} {} {}",
        field(&u.sysname),
        field(&u.release),
        field(&u.version),
        field(&u.machine)
    );
    (Some(kernel), Some(field(&u.nodename)))
}

fn affinity() -> Vec<usize> {
    affinity_of(0)
}

/// The CPUs a process (its main thread; 0 = the calling thread) may run on; empty if unknown.
pub fn affinity_of(pid: u32) -> Vec<usize> {
    // SAFETY: cpu_set_t is plain old data; sched_getaffinity fills it or fails.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: the size matches the set passed; an unknown pid is an error return.
    let rc = unsafe {
        libc::sched_getaffinity(
            pid as libc::pid_t,
            std::mem::size_of::<libc::cpu_set_t>(),
            &mut set,
        )
    };
    if rc != 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: i < CPU_SETSIZE and `set` is initialised.
        .filter(|&i| unsafe { libc::CPU_ISSET(i, &set) })
        .collect()
}

/// User + system CPU time of this process, in nanoseconds.
pub fn process_cpu_ns() -> u64 {
    // SAFETY: rusage is plain old data; getrusage fills it or fails.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0;
    }
    let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_this_machine() {
        let m = Manifest::collect();
        assert!(m.cpu_count > 0);
        assert!(!m.affinity.is_empty());
        assert!(m.kernel.as_deref().unwrap_or("").starts_with("Linux"));
        let a = process_cpu_ns();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        assert!(process_cpu_ns() >= a);
    }
}
