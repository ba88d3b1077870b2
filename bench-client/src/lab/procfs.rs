//! What /proc says about a process (RSS, fds, threads, CPU time), read once
//! ([`read_proc`], [`proc_status_kib`], …) or sampled on a fixed grid in its own thread
//! ([`Sampler`], which can scrape a gateway's `/metrics` alongside).
//!
//! Depends only on [`super::probe`]. Linux only.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::probe::{http_get, parse_metrics};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_proc() {
        let pid = std::process::id();
        let (rss, fds, threads, _) = read_proc(pid).unwrap();
        assert!(rss > 0 && fds > 0 && threads > 0);
        assert!(proc_status_kib(pid, "VmRSS").unwrap() > 0);
        assert!(proc_cpu_s(pid).is_some());
    }
}
