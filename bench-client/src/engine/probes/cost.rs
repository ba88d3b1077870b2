//! What a process on this host spent over exactly the measured phase of a run: CPU time
//! per thread (from `/proc/PID/task/TID/schedstat`, nanoseconds), voluntary and
//! involuntary context switches (`/proc/PID/task/TID/status`), and system calls (one
//! `raw_syscalls:sys_enter` tracepoint counter per thread through `perf_event_open(2)`;
//! `None` where the kernel does not allow it). Threads are grouped by what they do, from
//! their names: the gateway's I/O threads, the producer's poll thread, librdkafka's own
//! threads, the rest. Also the busy fraction of every CPU (`/proc/stat`), which is what
//! tells a saturated core from an idle one when processes share it.
//!
//! This is the "cost is measured on its own" half of the methodology: the client may not
//! be able to saturate a gateway, but the gateway's CPU, syscalls and context switches per
//! request at a common offered rate still separate the runtimes.
//!
//! Entry point: [`ProcessCost`] (see the functions below). Part of the
//! [engine](crate::engine): must not depend on anything outside it.

use std::collections::BTreeMap;
use std::os::fd::{FromRawFd as _, OwnedFd};
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// What a thread does, from its name (`comm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ThreadClass {
    /// The gateway's I/O threads (`io-N`, tokio's `tokio-worker`).
    Io,
    /// The producer's poll thread (`kafka-poll`).
    Poll,
    /// librdkafka's internal threads (`rdk:…`).
    Librdkafka,
    /// Everything else (main, signals, readiness probe, runtime helpers).
    Other,
}

impl ThreadClass {
    pub fn of(comm: &str) -> ThreadClass {
        if comm.starts_with("io-") || comm.starts_with("tokio-") {
            ThreadClass::Io
        } else if comm == "kafka-poll" {
            ThreadClass::Poll
        } else if comm.starts_with("rdk:") {
            ThreadClass::Librdkafka
        } else {
            ThreadClass::Other
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ThreadClass::Io => "io",
            ThreadClass::Poll => "poll",
            ThreadClass::Librdkafka => "librdkafka",
            ThreadClass::Other => "other",
        }
    }
}

/// The counters of one thread at one instant.
#[derive(Debug, Clone, Default, PartialEq)]
struct ThreadSnap {
    comm: String,
    cpu_ns: u64,
    voluntary: u64,
    involuntary: u64,
}

fn read_thread(pid: u32, tid: u32) -> Option<ThreadSnap> {
    let base = format!("/proc/{pid}/task/{tid}");
    let comm = std::fs::read_to_string(format!("{base}/comm")).ok()?;
    let sched = std::fs::read_to_string(format!("{base}/schedstat")).ok()?;
    let cpu_ns = sched.split_whitespace().next()?.parse().ok()?;
    let status = std::fs::read_to_string(format!("{base}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    Some(ThreadSnap {
        comm: comm.trim().to_string(),
        cpu_ns,
        voluntary: field("voluntary_ctxt_switches"),
        involuntary: field("nonvoluntary_ctxt_switches"),
    })
}

fn tids(pid: u32) -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut v: Vec<u32> = rd
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    v.sort_unstable();
    v
}

/// Busy (steal included: the CPU was not idle, and not ours), steal and total jiffies of
/// every CPU (`/proc/stat`).
fn cpu_times() -> BTreeMap<usize, (u64, u64, u64)> {
    let mut out = BTreeMap::new();
    let Ok(s) = std::fs::read_to_string("/proc/stat") else {
        return out;
    };
    for l in s.lines() {
        let Some(rest) = l.strip_prefix("cpu") else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let Some(Ok(cpu)) = f.next().map(str::parse::<usize>) else {
            continue; // the "cpu" total line
        };
        let v: Vec<u64> = f.filter_map(|x| x.parse().ok()).collect();
        if v.len() < 5 {
            continue;
        }
        // user nice system idle iowait irq softirq steal (guest is inside user).
        let total: u64 = v.iter().take(8).sum();
        let idle = v[3] + v[4];
        let steal = v.get(7).copied().unwrap_or(0);
        out.insert(cpu, (total - idle, steal, total));
    }
    out
}

/// `perf_event_attr` as of `PERF_ATTR_SIZE_VER0` (64 bytes): the kernel reads only
/// `size` bytes and treats the rest as zero.
#[repr(C)]
#[derive(Default)]
struct PerfEventAttr {
    kind: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
}

const PERF_TYPE_TRACEPOINT: u32 = 2;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
/// `exclude_hv` (bit 6): the hypervisor's share is not the process's.
const EXCLUDE_HV: u64 = 1 << 6;

/// The id of tracepoint `category:name` (tracefs `events/CATEGORY/NAME/id`).
fn tracepoint_id(category: &str, name: &str) -> Option<u64> {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .iter()
        .find_map(|d| std::fs::read_to_string(format!("{d}/events/{category}/{name}/id")).ok())
        .and_then(|s| s.trim().parse().ok())
}

/// Whether the system-call counter can find its tracepoint, after [`ensure_tracefs`] tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tracefs {
    /// tracefs was mounted already.
    Available,
    /// This process mounted tracefs at [`TRACEFS`].
    Mounted,
    /// Not mounted and could not be: the reason, for the one-line warning.
    Missing(String),
}

/// Where tracefs belongs; a fresh machine often has the directory but nothing mounted.
pub const TRACEFS: &str = "/sys/kernel/tracing";

/// The command that makes system calls countable, for warnings and reports.
pub const TRACEFS_MOUNT_CMD: &str = "mount -t tracefs nodev /sys/kernel/tracing";

/// Makes the `raw_syscalls:sys_enter` tracepoint findable: mounts tracefs when it is
/// missing and this process is root. Without it every system-call figure is "not
/// measured", so callers say so up front instead of leaving a column of dashes.
pub fn ensure_tracefs() -> Tracefs {
    if tracepoint_id("raw_syscalls", "sys_enter").is_some() {
        return Tracefs::Available;
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Tracefs::Missing("tracefs is not mounted and bench-client is not root".into());
    }
    let c = |s: &str| std::ffi::CString::new(s).expect("no NUL in a constant");
    let (source, target, fstype) = (c("nodev"), c(TRACEFS), c("tracefs"));
    // SAFETY: three valid NUL-terminated strings that outlive the call; no mount data.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        return Tracefs::Missing(format!(
            "tracefs is not mounted and mounting it failed: {err}"
        ));
    }
    if tracepoint_id("raw_syscalls", "sys_enter").is_some() {
        Tracefs::Mounted
    } else {
        Tracefs::Missing("tracefs mounted but it has no raw_syscalls:sys_enter tracepoint".into())
    }
}

/// One tracepoint counter per thread of a process (the system-call counter, or any other
/// tracepoint through [`TracepointCounter`]).
struct SyscallCounters {
    fds: Vec<(u32, OwnedFd)>,
}

impl SyscallCounters {
    /// `None` when the tracepoint or `perf_event_open` is not available (no tracefs,
    /// `perf_event_paranoid`, seccomp): the figure is then "not measured", never a guess.
    fn open(pid: u32, tids: &[u32]) -> Option<SyscallCounters> {
        Self::open_tracepoint(pid, tids, tracepoint_id("raw_syscalls", "sys_enter")?)
    }

    fn open_tracepoint(pid: u32, tids: &[u32], id: u64) -> Option<SyscallCounters> {
        let mut fds = Vec::new();
        for &tid in tids {
            let attr = PerfEventAttr {
                kind: PERF_TYPE_TRACEPOINT,
                size: std::mem::size_of::<PerfEventAttr>() as u32,
                config: id,
                sample_period: 0,
                flags: EXCLUDE_HV,
                ..Default::default()
            };
            // SAFETY: `attr` is a valid, fully initialized perf_event_attr of the size it
            // declares; the other arguments are plain integers. The returned fd is owned.
            let fd = unsafe {
                libc::syscall(
                    libc::SYS_perf_event_open,
                    &attr as *const PerfEventAttr,
                    tid as libc::pid_t,
                    -1 as libc::c_int,
                    -1 as libc::c_int,
                    PERF_FLAG_FD_CLOEXEC,
                )
            };
            if fd < 0 {
                // A thread that exited in between is fine; anything else means no counters.
                if std::path::Path::new(&format!("/proc/{pid}/task/{tid}")).exists() {
                    return None;
                }
                continue;
            }
            // SAFETY: a non-negative return of perf_event_open is a new fd we own.
            fds.push((tid, unsafe { OwnedFd::from_raw_fd(fd as i32) }));
        }
        Some(SyscallCounters { fds })
    }

    fn read(&self) -> BTreeMap<u32, u64> {
        use std::os::fd::AsRawFd as _;
        let mut out = BTreeMap::new();
        for (tid, fd) in &self.fds {
            let mut v = 0u64;
            // SAFETY: reading 8 bytes into a u64 from an fd we own.
            let n = unsafe { libc::read(fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
            if n == 8 {
                out.insert(*tid, v);
            }
        }
        out
    }
}

/// How often a kernel tracepoint (`io_uring:io_uring_cqe_overflow`, say) fired in the
/// threads a process had when the counter was opened, from then on.
pub struct TracepointCounter(SyscallCounters);

impl TracepointCounter {
    /// `None` when the tracepoint does not exist on this kernel or `perf_event_open` is
    /// not allowed: the figure is then "not measured".
    pub fn open(pid: u32, category: &str, name: &str) -> Option<TracepointCounter> {
        let id = tracepoint_id(category, name)?;
        SyscallCounters::open_tracepoint(pid, &tids(pid), id).map(TracepointCounter)
    }

    /// Events counted so far, over every thread.
    pub fn total(&self) -> u64 {
        self.0.read().values().sum()
    }
}

/// Counters of a process at the start of the measured phase; [`Probe::finish`] turns them
/// into what was spent until now.
pub struct Probe {
    pid: u32,
    at: Instant,
    threads: BTreeMap<u32, ThreadSnap>,
    syscalls: Option<SyscallCounters>,
}

impl Probe {
    /// `None` when the process is gone. `count_syscalls` opens one perf counter per thread.
    pub fn start(pid: u32, count_syscalls: bool) -> Option<Probe> {
        let ids = tids(pid);
        let threads: BTreeMap<u32, ThreadSnap> = ids
            .iter()
            .filter_map(|&t| Some((t, read_thread(pid, t)?)))
            .collect();
        if threads.is_empty() {
            return None;
        }
        let syscalls = if count_syscalls {
            SyscallCounters::open(pid, &ids)
        } else {
            None
        };
        Some(Probe {
            pid,
            at: Instant::now(),
            threads,
            syscalls,
        })
    }

    pub fn finish(self) -> Option<ProcessCost> {
        let wall_s = self.at.elapsed().as_secs_f64();
        let calls = self.syscalls.as_ref().map(SyscallCounters::read);
        let mut by_class: BTreeMap<ThreadClass, ClassCost> = BTreeMap::new();
        let mut any = false;
        for tid in tids(self.pid) {
            let Some(now) = read_thread(self.pid, tid) else {
                continue;
            };
            any = true;
            // A thread born during the phase counts from zero.
            let before = self.threads.get(&tid).cloned().unwrap_or_default();
            let c = by_class.entry(ThreadClass::of(&now.comm)).or_default();
            c.threads += 1;
            c.cpu_s += now.cpu_ns.saturating_sub(before.cpu_ns) as f64 / 1e9;
            c.voluntary_cs += now.voluntary.saturating_sub(before.voluntary);
            c.involuntary_cs += now.involuntary.saturating_sub(before.involuntary);
            if let Some(calls) = &calls {
                *c.syscalls.get_or_insert(0) += calls.get(&tid).copied().unwrap_or(0);
            }
        }
        if !any {
            return None;
        }
        let sum = |f: &dyn Fn(&ClassCost) -> u64| by_class.values().map(f).sum::<u64>();
        Some(ProcessCost {
            pid: self.pid,
            rss_kib: rss_kib(self.pid),
            wall_s,
            cpu_s: by_class.values().map(|c| c.cpu_s).sum(),
            voluntary_cs: sum(&|c| c.voluntary_cs),
            involuntary_cs: sum(&|c| c.involuntary_cs),
            syscalls: calls.is_some().then(|| sum(&|c| c.syscalls.unwrap_or(0))),
            by_class: by_class
                .into_iter()
                .map(|(k, v)| (k.name().to_string(), v))
                .collect(),
        })
    }
}

/// What one group of threads spent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassCost {
    pub threads: u32,
    pub cpu_s: f64,
    pub voluntary_cs: u64,
    pub involuntary_cs: u64,
    /// System calls entered (`None`: not measured).
    pub syscalls: Option<u64>,
}

/// What a process spent over the measured phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessCost {
    pub pid: u32,
    pub wall_s: f64,
    /// CPU seconds of all its threads (schedstat: nanosecond resolution).
    pub cpu_s: f64,
    pub voluntary_cs: u64,
    pub involuntary_cs: u64,
    /// System calls entered by all its threads; `None` where perf counters are not allowed.
    pub syscalls: Option<u64>,
    /// Per thread class (`io`, `poll`, `librdkafka`, `other`).
    pub by_class: BTreeMap<String, ClassCost>,
    /// Resident memory at the end of the measured phase, while the run's connections are
    /// still open (absent in older files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_kib: Option<u64>,
}

/// VmRSS of `pid` in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

impl ProcessCost {
    /// Cores' worth of CPU used (`cpu_s / wall_s`).
    pub fn cores(&self) -> f64 {
        if self.wall_s > 0.0 {
            self.cpu_s / self.wall_s
        } else {
            0.0
        }
    }
}

/// Per-CPU busy and steal fractions over an interval.
pub struct CpuProbe {
    start: BTreeMap<usize, (u64, u64, u64)>,
}

/// What [`CpuProbe::finish`] measured, CPU number → fraction of the interval (0..1).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct CpuShares {
    /// Not idle: any process's, the kernel's, or the hypervisor's (steal).
    pub busy: BTreeMap<usize, f64>,
    /// Steal: time this virtual CPU wanted to run and the hypervisor ran something else.
    /// It makes every process on that CPU slower without showing as their CPU time.
    pub steal: BTreeMap<usize, f64>,
}

impl CpuProbe {
    pub fn start() -> CpuProbe {
        CpuProbe { start: cpu_times() }
    }

    /// Busy and steal fractions of every CPU since [`CpuProbe::start`].
    pub fn finish(self) -> CpuShares {
        shares(&self.start, &cpu_times())
    }
}

fn shares(
    start: &BTreeMap<usize, (u64, u64, u64)>,
    end: &BTreeMap<usize, (u64, u64, u64)>,
) -> CpuShares {
    let mut out = CpuShares::default();
    for (&cpu, &(busy, steal, total)) in end {
        let Some(&(b0, s0, t0)) = start.get(&cpu) else {
            continue;
        };
        let dt = total.saturating_sub(t0);
        if dt == 0 {
            continue;
        }
        out.busy
            .insert(cpu, busy.saturating_sub(b0) as f64 / dt as f64);
        out.steal
            .insert(cpu, steal.saturating_sub(s0) as f64 / dt as f64);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steal_is_busy_and_also_counted_on_its_own() {
        // CPU 1: 100 jiffies, 50 user, 30 idle, 20 steal. CPU 0 has not moved.
        let start = BTreeMap::from([(0, (10, 0, 100)), (1, (0, 0, 0))]);
        let end = BTreeMap::from([(0, (10, 0, 100)), (1, (70, 20, 100))]);
        let s = shares(&start, &end);
        assert_eq!(s.busy.get(&1), Some(&0.7));
        assert_eq!(s.steal.get(&1), Some(&0.2));
        assert!(!s.busy.contains_key(&0) && !s.steal.contains_key(&0));
        // This machine's own counters: fractions, steal never more than busy.
        let live = CpuProbe::start();
        std::thread::sleep(std::time::Duration::from_millis(30));
        let l = live.finish();
        for (cpu, st) in &l.steal {
            assert!(
                (0.0..=1.0).contains(st) && *st <= l.busy[cpu] + 1e-9,
                "{l:?}"
            );
        }
    }

    #[test]
    fn tracepoint_counter_counts_or_says_not_measured() {
        assert!(TracepointCounter::open(std::process::id(), "no_such", "tracepoint").is_none());
        // Where perf_event_open is allowed the counter sees this thread's own system calls.
        if let Some(c) = TracepointCounter::open(std::process::id(), "raw_syscalls", "sys_enter") {
            for _ in 0..10 {
                let _ = std::fs::metadata("/");
            }
            assert!(c.total() >= 10, "{}", c.total());
        }
    }

    #[test]
    fn thread_classes() {
        assert_eq!(ThreadClass::of("io-0"), ThreadClass::Io);
        assert_eq!(ThreadClass::of("tokio-worker"), ThreadClass::Io);
        assert_eq!(ThreadClass::of("kafka-poll"), ThreadClass::Poll);
        assert_eq!(ThreadClass::of("rdk:broker1"), ThreadClass::Librdkafka);
        assert_eq!(ThreadClass::of("gateway-tokio"), ThreadClass::Other);
    }

    #[test]
    fn own_process_cost_is_measured() {
        let p = Probe::start(std::process::id(), true).expect("own process");
        let cpus = CpuProbe::start();
        // Burn a little CPU and make some system calls.
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed().as_millis() < 30 {
            x = x.wrapping_add(std::fs::metadata("/").map_or(1, |m| m.len()));
        }
        assert!(x > 0);
        let c = p.finish().expect("own process");
        assert!(c.cpu_s > 0.01, "{c:?}");
        assert!(c.cores() > 0.2, "{c:?}");
        if let Some(n) = c.syscalls {
            assert!(n > 100, "{c:?}");
        }
        let shares = cpus.finish();
        assert!(!shares.busy.is_empty());
        assert!(shares.busy.values().all(|&b| (0.0..=1.0).contains(&b)));
    }
}
