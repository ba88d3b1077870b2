//! TLS handshake counters (issue 31): rendered only when the gateway listens with TLS.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::expo::counter;

/// Why a TLS handshake failed: the `reason` label of `gateway_tls_handshake_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFailure {
    /// Bytes that are not TLS records (garbage, plaintext HTTP), or a malformed message.
    BadRecord,
    /// The client offers no protocol version or cipher suite this server has.
    NoSharedCipherOrVersion,
    /// The handshake did not complete within `--tls-handshake-timeout`.
    Timeout,
    /// The client closed (or the read failed) mid-handshake.
    PeerClosed,
    Other,
}

impl TlsFailure {
    pub const ALL: [TlsFailure; 5] = [
        TlsFailure::BadRecord,
        TlsFailure::NoSharedCipherOrVersion,
        TlsFailure::Timeout,
        TlsFailure::PeerClosed,
        TlsFailure::Other,
    ];

    pub fn label(self) -> &'static str {
        match self {
            TlsFailure::BadRecord => "bad_record",
            TlsFailure::NoSharedCipherOrVersion => "no_shared_cipher_or_version",
            TlsFailure::Timeout => "timeout",
            TlsFailure::PeerClosed => "peer_closed",
            TlsFailure::Other => "other",
        }
    }
}

/// TLS handshake counters; `enabled` (set at start with `--tls-cert`) renders them, all
/// from 0.
#[derive(Default)]
pub struct TlsMetrics {
    pub enabled: std::sync::atomic::AtomicBool,
    ok: AtomicU64,
    resumed: AtomicU64,
    failures: [AtomicU64; TlsFailure::ALL.len()],
}

impl TlsMetrics {
    /// A completed handshake; `resumed` if it resumed an earlier session.
    pub fn handshake_ok(&self, resumed: bool) {
        self.ok.fetch_add(1, Relaxed);
        if resumed {
            self.resumed.fetch_add(1, Relaxed);
        }
    }

    pub fn handshake_failed(&self, reason: TlsFailure) {
        self.failures[reason as usize].fetch_add(1, Relaxed);
    }

    pub fn failed(&self, reason: TlsFailure) -> u64 {
        self.failures[reason as usize].load(Relaxed)
    }

    pub(super) fn render(&self, s: &mut String) {
        if !self.enabled.load(Relaxed) {
            return;
        }
        let failed: u64 = self.failures.iter().map(|f| f.load(Relaxed)).sum();
        let name = "gateway_tls_handshakes_total";
        let _ = writeln!(
            s,
            "# HELP {name} TLS handshakes by result.\n# TYPE {name} counter"
        );
        let _ = writeln!(s, "{name}{{result=\"ok\"}} {}", self.ok.load(Relaxed));
        let _ = writeln!(s, "{name}{{result=\"failed\"}} {failed}");
        let name = "gateway_tls_handshake_failures_total";
        let _ = writeln!(
            s,
            "# HELP {name} Failed TLS handshakes by reason.\n# TYPE {name} counter"
        );
        for r in TlsFailure::ALL {
            let _ = writeln!(s, "{name}{{reason=\"{}\"}} {}", r.label(), self.failed(r));
        }
        counter(
            s,
            "gateway_tls_resumed_total",
            "TLS handshakes that resumed a session (ticket or session cache).",
            &self.resumed,
        );
    }
}
