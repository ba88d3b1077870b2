//! The client checking itself ([`SelfCheck`]): its CPU, its timer and schedule lag, how
//! much of the asked rate it sent, and whether it (not the server) was the limit.
//!
//! Below both the result ([`crate::engine::result`]) and the manifest's shard entries
//! ([`crate::engine::probes::manifest`]), which both carry one.

use serde::{Deserialize, Serialize};

use crate::engine::analysis::stats::HistSummary;

/// The client checking itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelfCheck {
    pub threads: usize,
    /// Process CPU time over the measured phase.
    pub cpu_seconds: f64,
    /// `cpu_seconds / (measured seconds x threads)`.
    pub cpu_util: f64,
    /// Open loop: how late sends left when a connection was free to send.
    pub schedule_lag: Option<HistSummary>,
    /// Lateness of a 10 ms timer on the client's runtime.
    pub runtime_lag: HistSummary,
    /// Open loop: achieved send rate / `--rate`.
    pub rate_achieved: Option<f64>,
    /// The client, not the server, was the limit.
    pub generator_bound: bool,
    pub reasons: Vec<String>,
}
