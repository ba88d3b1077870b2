//! Getting a TCP connection: `--connect-rate` pacing, `--bind-range` source ports, the
//! connect timeout, the TLS handshake of `https://` and `wss://` ([`secure`]), and the
//! bookkeeping the stall detector needs (how long a connection
//! task waited for a connection, how each attempt ended).
//!
//! Entry point: [`establish`]. Part of the [engine](crate::engine): must not depend on
//! anything outside it.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;

use crate::engine::analysis::errors::{ConnectClass, ErrorKey};
use crate::engine::config::{BindRange, SourceIps};
use crate::engine::load::shared::Shared;
use crate::engine::load::tls::Tls;

/// Pause between failed attempts (connects, TLS handshakes), so a refusing server is not
/// hammered in a busy loop.
pub(crate) const RETRY_BACKOFF: Duration = Duration::from_millis(50);

/// Marks a connection task as waiting for a connection until dropped; recorded even when
/// the run ends (the task is aborted) while it still waits.
struct Connecting<'a> {
    sh: &'a Shared,
    start: Instant,
    last_failure: Option<ConnectClass>,
}

impl Drop for Connecting<'_> {
    fn drop(&mut self) {
        self.sh
            .rec
            .on_connecting_end(self.start, Instant::now(), self.last_failure);
    }
}

/// Connect to the target, retrying until it works (the run ends by aborting the task).
pub(crate) async fn establish(sh: &Shared) -> TcpStream {
    sh.connects.slot().await;
    let start = Instant::now();
    sh.rec.on_connecting_start(start);
    let mut waiting = Connecting {
        sh,
        start,
        last_failure: None,
    };
    loop {
        let t = Instant::now();
        sh.rec.on_connect_attempt(t);
        match attempt(sh).await {
            Ok(s) => {
                let now = Instant::now();
                sh.rec.on_connect_ok(now, now - t);
                waiting.last_failure = None;
                return s;
            }
            Err(e) => {
                waiting.last_failure = Some(sh.rec.on_connect_failed(Instant::now(), &e));
                tokio::time::sleep(RETRY_BACKOFF).await;
                sh.connects.slot().await;
            }
        }
    }
}

/// The TLS handshake on a connection `establish` just made. The ClientHello is the
/// connection's first request and the server's handshake its first answer (a listener
/// that accepts nothing leaves the handshake unanswered, as it leaves a plaintext request).
/// A failure is returned for the caller to count: as a connection error, or as the error
/// of the request that was waiting for this connection.
pub(crate) async fn secure(
    sh: &Shared,
    tls: &Tls,
    tcp: TcpStream,
    open: &Open<'_>,
) -> Result<TlsStream<TcpStream>, ErrorKey> {
    open.sent();
    let s = tls.handshake(&sh.rec, sh.cfg.timeout(), tcp).await?;
    open.answered();
    Ok(s)
}

async fn attempt(sh: &Shared) -> io::Result<TcpStream> {
    let connect = async {
        match (sh.cfg.bind_range, sh.cfg.source_ips) {
            (Some(r), _) => connect_bound(sh, r).await,
            (None, Some(ips)) => connect_from(sh, ips).await,
            (None, None) => TcpStream::connect(sh.addr).await,
        }
    };
    let s = tokio::time::timeout(sh.cfg.timeout(), connect)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    s.set_nodelay(true)?;
    Ok(s)
}

/// Connect from the next source address of `ips` (round robin), the port left to the
/// kernel until connect (IP_BIND_ADDRESS_NO_PORT), so each address has the whole
/// ephemeral range per destination.
async fn connect_from(sh: &Shared, ips: SourceIps) -> io::Result<TcpStream> {
    let ip = ips.nth(sh.bind_cursor.fetch_add(1, Relaxed));
    let sock = TcpSocket::new_v4()?;
    set_bind_no_port(&sock)?;
    sock.bind(SocketAddr::new(ip.into(), 0))?;
    sock.connect(sh.addr).await
}

fn set_bind_no_port(sock: &TcpSocket) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: a valid socket fd and a c_int option value of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Connect from a source port of the range. No SO_REUSEADDR: a port in TIME_WAIT stays
/// unusable, which is exactly the exhaustion this option exists to reproduce.
async fn connect_bound(sh: &Shared, r: BindRange) -> io::Result<TcpStream> {
    let n = u32::from(r.high - r.low) + 1;
    for _ in 0..n {
        let port = r.low + (sh.bind_cursor.fetch_add(1, Relaxed) % n) as u16;
        let sock = match sh.addr {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        match sock.bind(SocketAddr::new(r.ip, port)) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => continue,
            Err(e) => return Err(e),
        }
        match sock.connect(sh.addr).await {
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EADDRNOTAVAIL) | Some(libc::EADDRINUSE)
                ) =>
            {
                continue
            }
            res => return res,
        }
    }
    Err(io::Error::from_raw_os_error(libc::EADDRNOTAVAIL))
}

/// Counts an established connection as open until dropped, and as *unanswered* from its
/// first request until the server first answers on it (HTTP response, WebSocket handshake):
/// a stall whose waiting requests all sit on unanswered connections is an accept stall,
/// even though the kernel completed the TCP handshake (a listener whose accept loop died
/// still does that). The clock starts at the first request, not at establishment: an open
/// loop spreading its rate over many connections leaves a new connection waiting for the
/// client's own schedule (10,000 connections at 15,000 req/s: ~0.7 s each), and that is
/// not the server's doing.
pub(crate) struct Open<'a> {
    sh: &'a Shared,
    since: std::sync::OnceLock<Instant>,
    answered: std::sync::atomic::AtomicBool,
}

impl<'a> Open<'a> {
    pub(crate) fn new(sh: &'a Shared) -> Open<'a> {
        Open {
            sh,
            since: std::sync::OnceLock::new(),
            answered: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The client sent its first request on this connection (idempotent, cheap after the
    /// first call): from now on it waits for the server.
    pub(crate) fn sent(&self) {
        if self.since.get().is_none() {
            let now = Instant::now();
            if self.since.set(now).is_ok() {
                self.sh.rec.on_unanswered(now, now, true);
            }
        }
    }

    /// The server answered on this connection (idempotent, cheap after the first call).
    pub(crate) fn answered(&self) {
        if !self.answered.load(std::sync::atomic::Ordering::Relaxed)
            && !self
                .answered
                .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            if let Some(&since) = self.since.get() {
                self.sh.rec.on_unanswered(since, Instant::now(), false);
            }
        }
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.answered();
        self.sh.rec.on_closed(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::config::RunConfig;

    /// A connection waiting for the client's own schedule is not waiting for the server:
    /// only time after its first request counts as unanswered (an open loop over 10,000
    /// connections made every new connection look unaccepted for ~0.7 s, and the
    /// overlapping spans one whole-run accept stall).
    #[test]
    fn a_connection_is_unanswered_only_after_its_first_request() {
        let mut cfg = RunConfig::new("http://127.0.0.1:9").unwrap();
        cfg.stall_window_s = 0.02;
        let sh = Shared::new(cfg, "127.0.0.1:9".parse().unwrap(), "test".into());
        let wait = Duration::from_millis(30);

        // Idle for longer than a stall window, never sent, then closed: nothing.
        let idle = Open::new(&sh);
        std::thread::sleep(wait);
        drop(idle);
        // Idle, then sent and answered at once: nothing either.
        let quick = Open::new(&sh);
        std::thread::sleep(wait);
        quick.sent();
        quick.answered();
        drop(quick);

        // Sent, then left without an answer for a window: one span, from the send.
        let stuck = Open::new(&sh);
        std::thread::sleep(wait);
        let sent = Instant::now();
        stuck.sent();
        std::thread::sleep(wait);
        drop(stuck);
        let recs = sh.rec.registry.drain();
        let spans: Vec<_> = recs.iter().flat_map(|r| r.spans.iter()).collect();
        assert_eq!(
            spans.len(),
            1,
            "only the third connection waited: {spans:?}"
        );
        let since = sh.ns(sent);
        assert!(
            spans[0].start_ns >= since.saturating_sub(1_000_000),
            "{spans:?}"
        );
    }
}
