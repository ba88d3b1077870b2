//! What the lab measured: one [`LabRun`] per cause x gateway x configuration x repeat, in
//! a [`LabReport`] (written as `stall-lab.json`, the only input of the report), and the
//! verdict on them ([`expectations_met`]).

use serde::{Deserialize, Serialize};

use super::cause::{Cause, Expectation};
use super::evidence::Evidence;
use crate::engine::analysis::timeline::StallClass;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabRun {
    pub cause: Cause,
    pub gateway: String,
    /// `reproduction` or `default`.
    pub config: String,
    pub run: usize,
    pub gateway_args: Vec<String>,
    pub stalls: usize,
    pub first_stall_ms: Option<f64>,
    pub total_stall_ms: f64,
    /// Class of the longest stall.
    pub class: Option<StallClass>,
    pub ok: u64,
    pub errors: u64,
    pub evidence: Evidence,
    /// Completions per second (for the timeline chart).
    pub per_second: Vec<u64>,
    /// Why the run produced no result, if it failed.
    pub error: Option<String>,
    pub gateway_exit: Option<i32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabReport {
    pub manifest: crate::engine::probes::manifest::Manifest,
    pub pinning: String,
    pub duration_s: f64,
    pub runs: Vec<LabRun>,
    /// (cause, gateway, why) for the combinations the lab did not run.
    #[serde(default)]
    pub skipped: Vec<(Cause, String, String)>,
}

/// True if every reproduction showed what its cause expects and no default run stalled.
pub fn expectations_met(r: &LabReport) -> bool {
    r.runs.iter().all(run_met)
}

/// One run against its expectation (see [`expectations_met`]).
pub fn run_met(x: &LabRun) -> bool {
    x.error.is_none()
        && if x.config == "reproduction" {
            match x.cause.expectation() {
                Expectation::Stall(c) => x.stalls > 0 && x.class == Some(c),
                Expectation::NoStall => x.stalls == 0 && x.cause.exercised(&x.evidence),
            }
        } else {
            x.stalls == 0
        }
}
