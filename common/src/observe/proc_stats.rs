//! The process's own figures (CPU, memory, fds, threads) for the standard `process_*`
//! series of /metrics, read from /proc.

/// The process figures of the standard `process_*` Prometheus series, read from /proc.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub start_time_seconds: f64,
    pub open_fds: u64,
    pub max_fds: u64,
    pub threads: u64,
}

/// Reads this process's figures from /proc/self (None where /proc is not mounted).
pub fn process_stats() -> Option<ProcessStats> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let boot_time = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<u64>().ok())?;
    // SAFETY: sysconf has no preconditions.
    let (ticks, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    let max_fds = rlimit::Resource::NOFILE.get().map_or(0, |(soft, _)| soft);
    parse_stat(&stat, boot_time, ticks.max(1) as u64, page.max(1) as u64).map(|mut p| {
        // The read_dir handle itself was one of the fds counted.
        p.open_fds = open_fds.saturating_sub(1);
        p.max_fds = max_fds;
        p
    })
}

/// Parses /proc/<pid>/stat (fields after the parenthesised command name, which may hold
/// spaces and parentheses itself).
fn parse_stat(stat: &str, boot_time: u64, ticks: u64, page: u64) -> Option<ProcessStats> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // rest starts at field 3 (state); field N is index N - 3.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| f.get(n - 3)?.parse::<u64>().ok();
    let utime = field(14)?;
    let stime = field(15)?;
    let threads = field(20)?;
    let start = field(22)?;
    let vsize = field(23)?;
    let rss = field(24)?;
    Some(ProcessStats {
        cpu_seconds: (utime + stime) as f64 / ticks as f64,
        resident_bytes: rss * page,
        virtual_bytes: vsize,
        start_time_seconds: boot_time as f64 + start as f64 / ticks as f64,
        open_fds: 0,
        max_fds: 0,
        threads,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_line() {
        let line = "4242 (gate way) (x)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 150 0 0 20 0 7 0 12345 104857600 2560 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let p = parse_stat(line, 1_700_000_000, 100, 4096).unwrap();
        assert_eq!(p.cpu_seconds, 4.0);
        assert_eq!(p.threads, 7);
        assert!((p.start_time_seconds - 1_700_000_123.45).abs() < 1e-3);
        assert_eq!(p.virtual_bytes, 104_857_600);
        assert_eq!(p.resident_bytes, 2560 * 4096);
        assert!(parse_stat("garbage", 0, 100, 4096).is_none());
    }

    #[test]
    fn own_process() {
        let p = process_stats().expect("/proc/self");
        assert!(p.resident_bytes > 0 && p.open_fds >= 3 && p.max_fds >= p.open_fds);
        assert!(p.threads >= 1);
    }
}
