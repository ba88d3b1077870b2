//! What the host's TCP tables say (/proc/net/tcp, tcp6, netstat; listeners through the
//! `NETLINK_SOCK_DIAG` socket), for the server-side evidence of stalls: the accept-queue
//! length of a listener, listen overflows, sockets in TIME_WAIT. Linux only; every reader
//! returns "nothing" where /proc is unreadable.
//!
//! Entry point: [`ServerProbe`]. Part of the [engine](crate::engine): must not depend on
//! anything outside it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

/// TCP states as /proc/net/tcp prints them.
const TCP_TIME_WAIT: u8 = 0x06;
const TCP_LISTEN: u8 = 0x0A;

/// One row of /proc/net/tcp or /proc/net/tcp6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpRow {
    pub local: SocketAddr,
    pub state: u8,
    /// For a listening socket: connections waiting in its accept queue.
    pub rx_queue: u64,
}

/// Every IPv4 and IPv6 TCP socket of this network namespace.
pub fn tcp_sockets() -> Vec<TcpRow> {
    let mut v = Vec::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        v.extend(text.lines().skip(1).filter_map(parse_row));
    }
    v
}

fn parse_row(line: &str) -> Option<TcpRow> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let (ip, port) = f.get(1)?.split_once(':')?;
    let state = u8::from_str_radix(f.get(3)?, 16).ok()?;
    let rx_queue = u64::from_str_radix(f.get(4)?.split(':').nth(1)?, 16).ok()?;
    Some(TcpRow {
        local: SocketAddr::new(parse_ip(ip)?, u16::from_str_radix(port, 16).ok()?),
        state,
        rx_queue,
    })
}

/// The kernel prints an address as 32-bit words in host byte order (`%08X`): each word's
/// native bytes are the address bytes in network order.
fn parse_ip(hex: &str) -> Option<IpAddr> {
    let word = |i: usize| -> Option<[u8; 4]> {
        Some(
            u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16)
                .ok()?
                .to_ne_bytes(),
        )
    };
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(0)?))),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            Some(IpAddr::V6(Ipv6Addr::from(b)))
        }
        _ => None,
    }
}

/// The listening TCP sockets of this network namespace, asked from the kernel through
/// `NETLINK_SOCK_DIAG` with a LISTEN state filter: it walks only the listening hash,
/// where reading /proc/net/tcp walks every socket (with thousands of connections open
/// that read costs milliseconds of the client's CPU, sampled every 50 ms). Falls back to
/// /proc/net/tcp where netlink is not available.
pub fn listening_sockets() -> Vec<TcpRow> {
    let mut v = Vec::new();
    for family in [libc::AF_INET, libc::AF_INET6] {
        match diag_listeners(family as u8) {
            Some(rows) => v.extend(rows),
            None => {
                return tcp_sockets()
                    .into_iter()
                    .filter(|r| r.state == TCP_LISTEN)
                    .collect()
            }
        }
    }
    v
}

/// `struct inet_diag_req_v2` after an `nlmsghdr` (linux/inet_diag.h).
#[repr(C)]
struct DiagRequest {
    nlmsg_len: u32,
    nlmsg_type: u16,
    nlmsg_flags: u16,
    nlmsg_seq: u32,
    nlmsg_pid: u32,
    sdiag_family: u8,
    sdiag_protocol: u8,
    idiag_ext: u8,
    pad: u8,
    idiag_states: u32,
    // struct inet_diag_sockid: sport, dport (be16), src[4], dst[4] (be32), if, cookie[2].
    sockid: [u32; 12],
}

const SOCK_DIAG_BY_FAMILY: u16 = 20;

fn diag_listeners(family: u8) -> Option<Vec<TcpRow>> {
    use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
    // SAFETY: plain socket(2) call; the fd is owned below.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: a fresh fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let req = DiagRequest {
        nlmsg_len: std::mem::size_of::<DiagRequest>() as u32,
        nlmsg_type: SOCK_DIAG_BY_FAMILY,
        nlmsg_flags: (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16,
        nlmsg_seq: 1,
        nlmsg_pid: 0,
        sdiag_family: family,
        sdiag_protocol: libc::IPPROTO_TCP as u8,
        idiag_ext: 0,
        pad: 0,
        idiag_states: 1 << TCP_LISTEN,
        sockid: [0; 12],
    };
    // SAFETY: sending the bytes of a repr(C) struct of the length it declares.
    let sent = unsafe {
        libc::send(
            fd.as_raw_fd(),
            (&req as *const DiagRequest).cast(),
            std::mem::size_of::<DiagRequest>(),
            0,
        )
    };
    if sent < 0 {
        return None;
    }
    let mut rows = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        // SAFETY: receiving into a buffer we own, of its length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n <= 0 {
            return None;
        }
        let mut b = &buf[..n as usize];
        while b.len() >= 16 {
            let len = u32::from_ne_bytes(b[0..4].try_into().ok()?) as usize;
            let kind = u16::from_ne_bytes(b[4..6].try_into().ok()?);
            if len < 16 || len > b.len() {
                return None;
            }
            match i32::from(kind) {
                libc::NLMSG_DONE => return Some(rows),
                libc::NLMSG_ERROR => return None,
                _ => rows.extend(parse_diag_msg(&b[16..len])),
            }
            b = &b[(len + 3) & !3..];
        }
    }
}

/// `struct inet_diag_msg`: family, state, timer, retrans, sockid (48 bytes), expires,
/// rqueue (the accept queue of a listener), wqueue, uid, inode.
fn parse_diag_msg(m: &[u8]) -> Option<TcpRow> {
    if m.len() < 72 {
        return None;
    }
    let family = m[0];
    let state = m[1];
    let port = u16::from_be_bytes([m[4], m[5]]);
    let ip = if i32::from(family) == libc::AF_INET {
        IpAddr::V4(Ipv4Addr::new(m[8], m[9], m[10], m[11]))
    } else {
        let a: [u8; 16] = m[8..24].try_into().ok()?;
        IpAddr::V6(Ipv6Addr::from(a))
    };
    let rqueue = u32::from_ne_bytes(m[56..60].try_into().ok()?);
    Some(TcpRow {
        local: SocketAddr::new(ip, port),
        state,
        rx_queue: u64::from(rqueue),
    })
}

/// Connections waiting in the accept queues of every listener on `port`.
pub fn accept_queue(port: u16) -> u64 {
    listening_sockets()
        .iter()
        .filter(|r| r.local.port() == port && r.state == TCP_LISTEN)
        .map(|r| r.rx_queue)
        .sum()
}

/// Sockets in TIME_WAIT whose local port is in `lo..=hi`.
pub fn time_wait_in_range(lo: u16, hi: u16) -> u64 {
    tcp_sockets()
        .iter()
        .filter(|r| (lo..=hi).contains(&r.local.port()) && r.state == TCP_TIME_WAIT)
        .count() as u64
}

/// Host-wide TcpExt (ListenOverflows, ListenDrops) from /proc/net/netstat.
pub fn listen_overflows() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/net/netstat").unwrap_or_default();
    let mut lines = text.lines();
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        if !names.starts_with("TcpExt:") {
            continue;
        }
        let get = |key: &str| {
            names
                .split_whitespace()
                .position(|n| n == key)
                .and_then(|i| values.split_whitespace().nth(i))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        return (get("ListenOverflows"), get("ListenDrops"));
    }
    (0, 0)
}

/// A view of the target's listening sockets, when the target listens on this host (in
/// this network namespace): then the client can tell "the process never took the
/// connection from its accept queue" from "it took it and never answered".
#[derive(Debug, Clone, Copy)]
pub struct ServerProbe {
    target: SocketAddr,
}

impl ServerProbe {
    /// `Some` if `target`'s address is one of this host's (it can be bound) and a socket
    /// listens on it here (on that address or a wildcard one).
    pub fn for_target(target: SocketAddr) -> Option<Self> {
        UdpSocket::bind(SocketAddr::new(target.ip(), 0)).ok()?;
        let p = ServerProbe { target };
        (p.listeners() > 0).then_some(p)
    }

    fn matches(&self, r: &TcpRow) -> bool {
        if r.state != TCP_LISTEN || r.local.port() != self.target.port() {
            return false;
        }
        let ip = r.local.ip();
        // A dual-stack [::] listener takes IPv4 connections too.
        ip == self.target.ip() || ip.is_unspecified()
    }

    /// Listening sockets of the target (several with SO_REUSEPORT).
    pub fn listeners(&self) -> usize {
        listening_sockets()
            .iter()
            .filter(|r| self.matches(r))
            .count()
    }

    /// Connections the kernel completed that no accept() has taken yet, over every
    /// listener of the target.
    pub fn accept_queue(&self) -> u64 {
        listening_sockets()
            .iter()
            .filter(|r| self.matches(r))
            .map(|r| r.rx_queue)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_v4_and_v6_rows() {
        let v4 = "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000003 00:00000000 00000000  1000        0 12345 1 0000000000000000 100 0 0 10 0";
        let r = parse_row(v4).unwrap();
        assert_eq!(r.local, "127.0.0.1:8080".parse().unwrap());
        assert_eq!((r.state, r.rx_queue), (TCP_LISTEN, 3));
        let v6 = "   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1 0000000000000000 100 0 0 10 0";
        assert_eq!(
            parse_row(v6).unwrap().local,
            "[::1]:8080".parse::<SocketAddr>().unwrap()
        );
        assert!(parse_row("garbage").is_none());
    }

    #[test]
    fn netlink_and_proc_agree_on_listeners() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let _c = std::net::TcpStream::connect(addr).unwrap();
        let nl: Vec<TcpRow> = [libc::AF_INET, libc::AF_INET6]
            .iter()
            .flat_map(|&f| diag_listeners(f as u8).expect("NETLINK_SOCK_DIAG works here"))
            .filter(|r| r.local == addr)
            .collect();
        let proc: Vec<TcpRow> = tcp_sockets()
            .into_iter()
            .filter(|r| r.local == addr && r.state == TCP_LISTEN)
            .collect();
        assert_eq!(nl, proc);
        assert_eq!(nl[0].rx_queue, 1);
    }

    #[test]
    fn probe_sees_a_local_listener_and_its_queue() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let p = ServerProbe::for_target(addr).expect("a local listener is visible");
        assert_eq!(p.listeners(), 1);
        assert_eq!(p.accept_queue(), 0);
        // Two handshakes the kernel completes; nobody accepts them.
        let a = std::net::TcpStream::connect(addr).unwrap();
        let _b = std::net::TcpStream::connect(addr).unwrap();
        assert_eq!(p.accept_queue(), 2);
        let _taken = l.accept().unwrap();
        assert_eq!(p.accept_queue(), 1);
        // Nothing listens on the client's own port (held by `a`, so no other test can
        // listen there meanwhile); TEST-NET addresses are not this host's.
        assert!(ServerProbe::for_target(a.local_addr().unwrap()).is_none());
        assert!(ServerProbe::for_target("192.0.2.1:80".parse().unwrap()).is_none());
    }
}
