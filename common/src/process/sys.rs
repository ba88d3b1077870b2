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
