//! Error taxonomy: every failure the client sees is counted under a phase (where in a
//! request's life it happened) and a kind (the errno name, the HTTP status, or a short
//! protocol code). Connect failures are also reduced to a [`ConnectClass`], which is what
//! the stall classifier looks at.
//!
//! Entry points: [`ErrorKey`], [`connect_class`]. Part of the [engine](crate::engine): must
//! not depend on anything outside it.

use std::fmt;
use std::io;

use serde::{Deserialize, Serialize};

/// Where in a request's (or connection's) life a failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// TCP connect (including source-port binding).
    Connect,
    /// WebSocket upgrade handshake.
    Handshake,
    /// TLS handshake (`https://`, `wss://`): the kind is the reason, e.g.
    /// `certificate-unknown-issuer`, `alert-handshake-failure`, an errno name.
    Tls,
    /// Writing a request / message.
    Write,
    /// Reading a response / ack (resets and unexpected EOF land here).
    Read,
    /// No response within `--timeout`.
    Timeout,
    /// The server answered with an error status (not 503, which is backpressure).
    Http,
    /// The server's bytes made no sense (bad status line, bad ack frame, ...).
    Protocol,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Phase::Connect => "connect",
            Phase::Handshake => "handshake",
            Phase::Tls => "tls",
            Phase::Write => "write",
            Phase::Read => "read",
            Phase::Timeout => "timeout",
            Phase::Http => "http",
            Phase::Protocol => "protocol",
        };
        f.write_str(s)
    }
}

/// What a failed connect attempt means for stall classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConnectClass {
    /// ECONNREFUSED: nobody listens (or the backlog overflowed with tcp_abort_on_overflow).
    Refused,
    /// ETIMEDOUT or our own connect timeout: the SYN was not answered in time.
    Timeout,
    /// EADDRNOTAVAIL / EADDRINUSE / EMFILE / ENFILE / ENOBUFS: the client ran out of ports or fds.
    Exhaustion,
    /// Anything else (unreachable, reset during handshake, ...).
    Other,
}

/// A failure: phase plus kind, the unit errors are counted in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ErrorKey {
    pub phase: Phase,
    pub kind: String,
}

impl ErrorKey {
    pub fn new(phase: Phase, kind: impl Into<String>) -> Self {
        ErrorKey {
            phase,
            kind: kind.into(),
        }
    }

    /// An I/O error in `phase`, named by its errno.
    pub fn io(phase: Phase, e: &io::Error) -> Self {
        ErrorKey::new(phase, errno_name(e))
    }

    pub fn timeout() -> Self {
        ErrorKey::new(Phase::Timeout, "request")
    }

    pub fn status(status: u16) -> Self {
        ErrorKey::new(Phase::Http, status.to_string())
    }
}

impl fmt::Display for ErrorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.phase, self.kind)
    }
}

/// One line of the error table in a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorCount {
    pub phase: Phase,
    pub kind: String,
    pub count: u64,
}

/// The symbolic errno name of an I/O error (`ECONNREFUSED`), or a short name for errors
/// that carry no errno (`EOF`, `ETIMEDOUT` for our own timeouts).
pub fn errno_name(e: &io::Error) -> String {
    if let Some(code) = e.raw_os_error() {
        let name = match code {
            libc::ECONNREFUSED => "ECONNREFUSED",
            libc::ETIMEDOUT => "ETIMEDOUT",
            libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
            libc::EADDRINUSE => "EADDRINUSE",
            libc::EMFILE => "EMFILE",
            libc::ENFILE => "ENFILE",
            libc::ENOBUFS => "ENOBUFS",
            libc::ENOMEM => "ENOMEM",
            libc::ECONNRESET => "ECONNRESET",
            libc::ECONNABORTED => "ECONNABORTED",
            libc::EPIPE => "EPIPE",
            libc::ENETUNREACH => "ENETUNREACH",
            libc::EHOSTUNREACH => "EHOSTUNREACH",
            libc::EAGAIN => "EAGAIN",
            libc::EINVAL => "EINVAL",
            libc::EACCES => "EACCES",
            libc::EPERM => "EPERM",
            _ => return format!("errno {code}"),
        };
        return name.to_string();
    }
    match e.kind() {
        io::ErrorKind::UnexpectedEof => "EOF".to_string(),
        io::ErrorKind::TimedOut => "ETIMEDOUT".to_string(),
        io::ErrorKind::ConnectionReset => "ECONNRESET".to_string(),
        io::ErrorKind::ConnectionRefused => "ECONNREFUSED".to_string(),
        io::ErrorKind::BrokenPipe => "EPIPE".to_string(),
        io::ErrorKind::AddrNotAvailable => "EADDRNOTAVAIL".to_string(),
        k => format!("{k:?}"),
    }
}

/// Reduce a connect error to the class the stall detector cares about.
pub fn connect_class(e: &io::Error) -> ConnectClass {
    match e.raw_os_error() {
        Some(libc::ECONNREFUSED) => ConnectClass::Refused,
        Some(libc::ETIMEDOUT) => ConnectClass::Timeout,
        Some(libc::EADDRNOTAVAIL | libc::EADDRINUSE | libc::EMFILE | libc::ENFILE)
        | Some(libc::ENOBUFS) => ConnectClass::Exhaustion,
        Some(_) => ConnectClass::Other,
        None => match e.kind() {
            io::ErrorKind::TimedOut => ConnectClass::Timeout,
            io::ErrorKind::ConnectionRefused => ConnectClass::Refused,
            io::ErrorKind::AddrNotAvailable | io::ErrorKind::AddrInUse => ConnectClass::Exhaustion,
            _ => ConnectClass::Other,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_names_and_classes() {
        let refused = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(errno_name(&refused), "ECONNREFUSED");
        assert_eq!(connect_class(&refused), ConnectClass::Refused);
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        assert_eq!(connect_class(&emfile), ConnectClass::Exhaustion);
        let ours = io::Error::new(io::ErrorKind::TimedOut, "connect timeout");
        assert_eq!(errno_name(&ours), "ETIMEDOUT");
        assert_eq!(connect_class(&ours), ConnectClass::Timeout);
        let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
        assert_eq!(errno_name(&eof), "EOF");
        assert_eq!(ErrorKey::status(500).to_string(), "http 500");
    }
}
