//! Operating-system plumbing shared by every gateway, so all runtimes get identical
//! sockets: the RLIMIT_NOFILE raise and the socket2-built SO_REUSEPORT listeners.

use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, Socket, Type};

/// Raises the soft open-file limit to `target` (default: the hard limit). Returns
/// (soft, hard) after the change.
pub fn raise_fd_limit(target: Option<u64>) -> std::io::Result<(u64, u64)> {
    let (soft, hard) = rlimit::Resource::NOFILE.get()?;
    let want = target.unwrap_or(hard).min(hard);
    if want != soft {
        rlimit::Resource::NOFILE.set(want, hard)?;
    }
    let (soft, hard) = rlimit::Resource::NOFILE.get()?;
    tracing::info!(soft, hard, "open-file limit (RLIMIT_NOFILE)");
    Ok((soft, hard))
}

/// `net.core.somaxconn`: the kernel silently caps every listen backlog to it.
pub fn somaxconn() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn listener(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(socket.into())
}

/// Binds `count` SO_REUSEPORT listeners on the same address (port 0 resolves once, then
/// every listener shares that port), each with the same backlog. Non-blocking.
pub fn bind_listeners(
    addr: SocketAddr,
    count: usize,
    backlog: u32,
) -> std::io::Result<Vec<TcpListener>> {
    let first = listener(addr, backlog)?;
    let actual = first.local_addr()?;
    let mut all = vec![first];
    for _ in 1..count.max(1) {
        all.push(listener(actual, backlog)?);
    }
    if let Some(max) = somaxconn() {
        if backlog > max {
            tracing::warn!(
                backlog,
                somaxconn = max,
                "backlog is capped by net.core.somaxconn"
            );
        }
    }
    Ok(all)
}

/// Wakes an accept that is in flight on `listener` (it fails with EINVAL): how an accept
/// loop whose runtime cannot cancel an accept safely is told to stop.
pub fn shutdown_listener<L: AsRawFd>(listener: &L) {
    // SAFETY: shutdown(2) on a descriptor we borrow; it does not close it.
    unsafe {
        libc::shutdown(listener.as_raw_fd(), libc::SHUT_RDWR);
    }
}

/// Open file descriptors of this process (for metrics and the stall lab).
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// shutdown(2) both directions of a connected socket: the peer sees EOF and a pending read
/// on it returns 0, on every runtime (epoll or io_uring).
pub fn shutdown_both<S: std::os::fd::AsFd>(sock: &S) {
    let _ = socket2::SockRef::from(sock).shutdown(std::net::Shutdown::Both);
}

/// One `recv(2)` on a socket whose readiness a runtime tracks (the caller handles
/// `WouldBlock`).
pub fn recv<S: std::os::fd::AsFd>(sock: &S, buf: &mut [u8]) -> std::io::Result<usize> {
    use std::io::Read;
    let sock = socket2::SockRef::from(sock);
    (&*sock).read(buf)
}

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
