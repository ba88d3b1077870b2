//! What a chaos run measured: [`ChaosReport`] (written as `chaos.json`, the only input of
//! the report) and its per-gateway [`GatewayChaos`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::faults::{Fault, FaultEffect};
use crate::engine::probes::manifest::Manifest;
use crate::engine::result::RunResult;
use crate::experiments::verify::VerifyResult;
use crate::lab::ExitInfo;

pub const CHAOS_SCHEMA_VERSION: u32 = 1;

/// A fault-injection command as sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Injected {
    /// Seconds since the measured phase began.
    pub at_s: f64,
    pub command: String,
    /// `ok` or the error.
    pub reply: String,
}

/// One gateway's chaos run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GatewayChaos {
    pub gateway: String,
    pub version: Option<String>,
    pub injected: Vec<Injected>,
    pub effects: Vec<FaultEffect>,
    /// HTTP 503 responses over the measured phase.
    pub status_503: u64,
    pub verify: VerifyResult,
    /// `/metrics` at the end (histogram buckets left out).
    pub metrics_end: BTreeMap<String, f64>,
    pub exit: Option<ExitInfo>,
    /// The load run, with its per-second timeline.
    pub run: RunResult,
    /// Why this gateway failed (empty: passed).
    pub failures: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChaosReport {
    pub schema_version: u32,
    pub started_at_unix_ms: u64,
    pub duration_s: f64,
    pub rate: f64,
    pub message_timeout_ms: u64,
    pub plan: Vec<Fault>,
    pub manifest: Manifest,
    pub gateways: Vec<GatewayChaos>,
    /// Gateways that could not be run at all: `(gateway, error)`.
    pub not_run: Vec<(String, String)>,
    pub passed: bool,
}
