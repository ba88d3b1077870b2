//! The causes the lab reproduces ([`Cause`]): their names, what each reproduction must
//! show ([`Expectation`]), which gateways run them, and the report's description of each.

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use super::evidence::Evidence;
use crate::engine::analysis::timeline::StallClass;
use crate::lab::GatewayKind;

/// The causes the lab reproduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cause {
    /// Connection per request, client closes first: its ports pile up in TIME_WAIT.
    TimeWait,
    /// The accept loop dies on EMFILE (`?` on accept) with a low fd limit.
    Emfile,
    /// A blocking producer call on the I/O thread (flush per record, slow broker).
    Blocking,
    /// Listen-backlog overflow under a connect burst with a small backlog.
    Backlog,
    /// io_uring only: the accept loop drops in-flight accepts (`--fault uring-cancel-accept`).
    UringCancelAccept,
    /// io_uring only: completion-queue overflow with a tiny ring (`--fault uring-tiny-ring`).
    UringTinyRing,
    /// io_uring only: a full submission queue in a connect burst (`--fault uring-sq-full`).
    UringSqFull,
}

/// What the reproduction of a cause must show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expectation {
    /// It stalls, and bench-client gives the longest stall this class.
    Stall(StallClass),
    /// It does not stall, and the server-side evidence shows the mechanism was exercised
    /// (see [`Cause::exercised`]): what the measured runs showed for a cause the runtime
    /// absorbs.
    NoStall,
}

impl Cause {
    pub const ALL: [Cause; 7] = [
        Cause::TimeWait,
        Cause::Emfile,
        Cause::Blocking,
        Cause::Backlog,
        Cause::UringCancelAccept,
        Cause::UringTinyRing,
        Cause::UringSqFull,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Cause::TimeWait => "time-wait",
            Cause::Emfile => "emfile",
            Cause::Blocking => "blocking",
            Cause::Backlog => "backlog",
            Cause::UringCancelAccept => "uring-cancel-accept",
            Cause::UringTinyRing => "uring-tiny-ring",
            Cause::UringSqFull => "uring-sq-full",
        }
    }

    /// The cause named `s` (as `--causes` spells it).
    pub fn parse(s: &str) -> Option<Cause> {
        Cause::ALL.into_iter().find(|c| c.name() == s.trim())
    }

    /// What the reproduction must show (decided from the measured runs, see the README).
    pub fn expectation(self) -> Expectation {
        match self {
            Cause::TimeWait => Expectation::Stall(StallClass::ClientExhaustion),
            // A dropped tokio-uring accept: the stall begins while the burst's connects are
            // pending and lasts for the connections the process never took (io_uring took
            // them off the accept queue for a completion the driver discards): *accept*,
            // what the measured runs showed. The server-side tell is `gateway_fds_left`.
            Cause::Emfile | Cause::Backlog | Cause::UringCancelAccept => {
                Expectation::Stall(StallClass::Accept)
            }
            Cause::Blocking => Expectation::Stall(StallClass::Service),
            // The kernel keeps overflowing completions (IORING_FEAT_NODROP) and tokio-uring
            // submits whenever the submission queue is full: slower, never stuck.
            Cause::UringTinyRing | Cause::UringSqFull => Expectation::NoStall,
        }
    }

    /// The class bench-client must give the reproduction's stalls; `None` when the
    /// reproduction is expected not to stall.
    pub fn expected_class(self) -> Option<StallClass> {
        match self.expectation() {
            Expectation::Stall(c) => Some(c),
            Expectation::NoStall => None,
        }
    }

    /// The gateway fault this cause reproduces only on tokio-uring; `None` for causes every
    /// gateway reproduces.
    pub fn uring_only(self) -> bool {
        matches!(
            self,
            Cause::UringCancelAccept | Cause::UringTinyRing | Cause::UringSqFull
        )
    }

    /// Whether the lab runs this cause against `gw`; if not, why (for the report).
    pub fn skip_reason(self, gw: GatewayKind) -> Option<&'static str> {
        (self.uring_only() && gw != GatewayKind::Uring).then_some(
            "an io_uring (tokio-uring) fault: the other gateways refuse it at start, and their \
             default configuration is the same as in the other causes",
        )
    }

    /// For a cause expected not to stall: whether the reproduction's evidence shows the
    /// mechanism really happened (else "no stall" would prove nothing). Always true for
    /// the causes that must stall.
    pub fn exercised(self, e: &Evidence) -> bool {
        match self {
            // Completions went to the kernel's overflow list.
            Cause::UringTinyRing => e.uring_cq_overflows.is_some_and(|n| n > 0),
            // Every io_uring_enter submitted at most what the tiny queue holds.
            Cause::UringSqFull => e
                .sqes_per_enter()
                .is_some_and(|x| x <= URING_TINY_SQ as f64),
            _ => true,
        }
    }

    pub(super) fn description(self) -> &'static str {
        match self {
            Cause::TimeWait => "the naive client: a new connection per request, closed by the client first (so TIME_WAIT lands on the client, for 60 s), bound to 200 source ports (a stand-in for the whole ephemeral range, without root sysctls). Default: the same client with keep-alive connections (what every gateway offers by default).",
            Cause::Emfile => "400 keep-alive connections against `--fd-limit 256 --fault accept-exit-on-error` (the accept loop `?`s out on EMFILE). Default: fd limit raised to the hard limit, accept loop that backs off.",
            Cause::Blocking => "ack=enqueue load while every broker has 1 s RTT; `--fault blocking-produce` flushes the producer on the I/O thread for every record. Default: the I/O thread only calls the non-blocking send.",
            Cause::Backlog => "a burst of 1000 connects against `--backlog 8`: SYNs are dropped and retransmitted after 1 s. Default: backlog 4096.",
            Cause::UringCancelAccept => "gateway-uring only. The gateway idles 1 s, then 400 keep-alive connections arrive; `--fault uring-cancel-accept` races every accept against a 100 ms timer and drops the loser (a careless shutdown check). tokio-uring 0.5 does not cancel a dropped accept: the SQE stays armed, the kernel accepts the next connection into it and the driver discards the completion, so that connection is never served and its fd is never closed. Default: accepts are never dropped (shutdown(2) on the listener ends them).",
            Cause::UringTinyRing => "gateway-uring only. A burst of 1000 keep-alive connections against `--fault uring-tiny-ring`: a 2-entry submission and 4-entry completion queue, fewer completion slots than the 16 accepts kept in flight alone, so the completion queue overflows. Default: 4096/8192 entries.",
            Cause::UringSqFull => "gateway-uring only. A burst of 1000 keep-alive connections against `--fault uring-sq-full`: a 2-entry submission queue (completion queue kept at 8192), so every turn of the ring has more submissions than the queue holds. Default: 4096 submission entries.",
        }
    }
}

/// The submission queue of the `uring-tiny-ring` and `uring-sq-full` reproductions
/// (gateway-uring's `TINY_SQ_ENTRIES`).
const URING_TINY_SQ: u32 = 2;
