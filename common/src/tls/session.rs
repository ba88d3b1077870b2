//! One connection's TLS session over the connection state machine: ciphertext in
//! (`read_tls`, `process_new_packets`, then the decrypted bytes to `Conn::on_data`),
//! ciphertext out (the state machine's output through `writer`, then `write_tls`), the
//! handshake's deadline, and its outcome counted in `gateway_tls_*`.
//!
//! A fatal TLS error (a record that is not TLS, no common version or cipher suite, a bad
//! MAC) ends the connection: rustls's alert, if it queued one, is written, then the socket
//! closes. Nothing else is spent on it: rustls bounds what it buffers (one record being
//! deframed, a handshake message of at most 64 KiB), and the decrypted bytes go to the state
//! machine, which bounds its own.

use std::io::{BufRead as _, Write as _};
use std::sync::Arc;
use std::time::Instant;

use rustls::{HandshakeKind, ServerConnection};

use super::Setup;
use crate::conn::Conn;
use crate::observe::metrics::Metrics;
use crate::observe::tls_metrics::TlsFailure;
use crate::policy::config::IDLE_BUFFER_FLOOR;

/// A written ciphertext buffer at most this large is kept for the next write.
const SPARE_MAX: usize = 8 * IDLE_BUFFER_FLOOR;

pub struct TlsSession {
    tls: ServerConnection,
    metrics: Arc<Metrics>,
    /// While the handshake is under way: when it must be done.
    handshake_deadline: Option<Instant>,
    /// Close once the queued records (an alert) are written: a fatal error, the handshake
    /// timeout, shutdown mid-handshake.
    closing: bool,
    /// The peer's close_notify or EOF was passed to the state machine.
    eof_sent: bool,
    close_notify_sent: bool,
    /// The last written ciphertext buffer, reused.
    spare: Vec<u8>,
}

/// The class of a fatal rustls error during the handshake.
pub fn failure_reason(e: &rustls::Error) -> TlsFailure {
    use rustls::Error;
    match e {
        Error::InvalidMessage(_)
        | Error::InappropriateMessage { .. }
        | Error::InappropriateHandshakeMessage { .. }
        | Error::DecryptError => TlsFailure::BadRecord,
        Error::PeerIncompatible(_) => TlsFailure::NoSharedCipherOrVersion,
        _ => TlsFailure::Other,
    }
}

impl TlsSession {
    pub fn new(setup: &Setup, metrics: Arc<Metrics>, now: Instant) -> Option<TlsSession> {
        let tls = match ServerConnection::new(setup.config.clone()) {
            Ok(tls) => tls,
            Err(e) => {
                tracing::warn!(error = %e, "TLS session not created");
                metrics.tls.handshake_failed(TlsFailure::Other);
                return None;
            }
        };
        Some(TlsSession {
            tls,
            metrics,
            handshake_deadline: Some(now + setup.handshake_timeout),
            closing: false,
            eof_sent: false,
            close_notify_sent: false,
            spare: Vec::new(),
        })
    }

    pub fn is_handshaking(&self) -> bool {
        self.handshake_deadline.is_some()
    }

    /// The handshake failed (`reason`) or the connection must end (`None`): queued records
    /// are written, then the socket closes.
    fn fail(&mut self, reason: Option<TlsFailure>) {
        if let (Some(r), true) = (reason, self.is_handshaking()) {
            tracing::debug!(reason = r.label(), "TLS handshake failed");
            self.metrics.tls.handshake_failed(r);
        }
        self.handshake_deadline = None;
        self.closing = true;
    }

    fn check_handshake_done(&mut self) {
        if self.handshake_deadline.is_some() && !self.tls.is_handshaking() {
            self.handshake_deadline = None;
            let resumed = self.tls.handshake_kind() == Some(HandshakeKind::Resumed);
            self.metrics.tls.handshake_ok(resumed);
        }
    }

    /// Ciphertext read from the socket: decrypted, and the plaintext handed to `conn`.
    pub fn on_data(&mut self, conn: &mut Conn, mut data: &[u8], now: Instant) {
        while !data.is_empty() && !self.closing {
            if let Err(e) = self.tls.read_tls(&mut data) {
                tracing::debug!(error = %e, "TLS read");
                return self.fail(Some(TlsFailure::Other));
            }
            let state = match self.tls.process_new_packets() {
                Ok(state) => state,
                Err(e) => return self.fail(Some(failure_reason(&e))),
            };
            self.check_handshake_done();
            let mut reader = self.tls.reader();
            loop {
                match reader.fill_buf() {
                    Ok([]) | Err(_) => break,
                    Ok(plain) => {
                        let n = plain.len();
                        conn.on_data(plain, now);
                        reader.consume(n);
                    }
                }
            }
            if state.peer_has_closed() {
                self.on_eof(conn, now);
            }
        }
    }

    /// The socket reached EOF (or its read failed).
    pub fn on_eof(&mut self, conn: &mut Conn, now: Instant) {
        if self.is_handshaking() {
            return self.fail(Some(TlsFailure::PeerClosed));
        }
        if !self.eof_sent {
            self.eof_sent = true;
            conn.on_eof(now);
        }
    }

    pub fn wants_read(&self, conn: &Conn) -> bool {
        if self.closing || self.eof_sent {
            return false;
        }
        self.is_handshaking() || conn.wants_read()
    }

    pub fn is_finished(&self, conn: &Conn) -> bool {
        (self.closing || conn.is_finished()) && !self.tls.wants_write()
    }

    pub fn deadline(&self, conn: &Conn) -> Option<Instant> {
        if self.closing {
            return None;
        }
        match (self.handshake_deadline, conn.deadline()) {
            (Some(h), Some(c)) => Some(h.min(c)),
            (h, c) => h.or(c),
        }
    }

    pub fn on_timer(&mut self, conn: &mut Conn, now: Instant) {
        if self.handshake_deadline.is_some_and(|d| now >= d) {
            return self.fail(Some(TlsFailure::Timeout));
        }
        conn.on_timer(now);
    }

    pub fn on_shutdown(&mut self, conn: &mut Conn, now: Instant) {
        if self.is_handshaking() {
            return self.fail(None);
        }
        conn.on_shutdown(now);
    }

    /// Records to write now: the handshake's, an alert, or the state machine's output
    /// encrypted (and a close_notify once it is finished).
    pub fn take_output(&mut self, conn: &mut Conn) -> Option<Vec<u8>> {
        let mut out = std::mem::take(&mut self.spare);
        if !self.closing && !self.is_handshaking() {
            if let Some(plain) = conn.take_output() {
                let mut rest = &plain[..];
                while !rest.is_empty() {
                    // rustls takes at most its buffer limit at a time: drain, then go on.
                    match self.tls.writer().write(rest) {
                        Ok(n) if n > 0 => rest = &rest[n..],
                        _ => break,
                    }
                    self.drain(&mut out);
                }
                conn.recycle_output(plain);
            }
            if conn.is_finished() && !self.close_notify_sent {
                self.close_notify_sent = true;
                self.tls.send_close_notify();
            }
        }
        self.drain(&mut out);
        if out.is_empty() {
            return None;
        }
        Some(out)
    }

    fn drain(&mut self, out: &mut Vec<u8>) {
        while self.tls.wants_write() {
            if self.tls.write_tls(out).is_err() {
                break;
            }
        }
    }

    /// A written buffer back from the driver (kept if small).
    pub fn recycle_output(&mut self, mut buf: Vec<u8>) {
        if buf.capacity() <= SPARE_MAX {
            buf.clear();
            self.spare = buf;
        }
    }
}
