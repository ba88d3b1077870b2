//! What a soak measured: [`SoakReport`] (written as `soak.json`, the only input of the
//! report) and its per-gateway [`GatewaySoak`] with the series the report draws.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::growth::{growth, Growth, GROWTH_WINDOW_S};
use crate::engine::analysis::stats::HistSummary;
use crate::engine::probes::manifest::Manifest;
use crate::engine::result::RunResult;
use crate::experiments::verify::VerifyResult;
use crate::lab::{ExitInfo, ProcSample};

/// Version of the `soak.json` layout.
pub const SOAK_SCHEMA_VERSION: u32 = 1;

/// One gateway's soak.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GatewaySoak {
    pub gateway: String,
    /// First line of `<binary> --version`.
    pub version: Option<String>,
    /// Closed-loop maximum (ok/s) the rate was derived from; `None` with `--rate`.
    pub probe_ok_per_sec: Option<f64>,
    pub probe_latency: Option<HistSummary>,
    /// Open-loop rate of the soak (requests/s).
    pub rate: f64,
    /// Gateway samples; `t_s` counts from the start of the soak run (its warmup included).
    pub samples: Vec<ProcSample>,
    /// Growth of the RSS in MiB over the measured phase (samples after warmup).
    pub rss_mib: Option<Growth>,
    /// Growth of the open fd count over the measured phase.
    pub fds: Option<Growth>,
    /// The soak run (per-second timeline, errors, stalls, latency).
    pub run: RunResult,
    /// `/metrics` at the end (histogram buckets left out).
    pub metrics_end: BTreeMap<String, f64>,
    /// How the gateway ended on SIGTERM after the run.
    pub exit: Option<ExitInfo>,
    /// The acknowledged ids looked up in Kafka after the soak (`None`: not checked).
    #[serde(default)]
    pub verify: Option<VerifyResult>,
    /// Why this gateway failed the soak (empty: passed).
    pub failures: Vec<String>,
}

impl GatewaySoak {
    pub(super) fn rss_points(&self) -> Vec<(f64, f64)> {
        self.samples
            .iter()
            .map(|s| (s.t_s, s.rss_kib as f64 / 1024.0))
            .collect()
    }
    pub(super) fn fd_points(&self) -> Vec<(f64, f64)> {
        self.samples.iter().map(|s| (s.t_s, s.fds as f64)).collect()
    }
    /// The points of the measured phase (after warmup): growth is judged under load only,
    /// not from the idle first sample.
    pub(super) fn measured(&self, pts: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
        let from = self.run.config.warmup_s;
        pts.into_iter().filter(|p| p.0 >= from).collect()
    }
    pub(super) fn compute_growth(&mut self, settle_s: f64) {
        self.rss_mib = growth(&self.measured(self.rss_points()), GROWTH_WINDOW_S, settle_s);
        self.fds = growth(&self.measured(self.fd_points()), GROWTH_WINDOW_S, settle_s);
    }
    /// ok/s per second, on the samples' clock (seconds since the soak run started).
    pub(super) fn ok_points(&self) -> Vec<(f64, f64)> {
        let w = self.run.config.warmup_s;
        self.run
            .timeline
            .iter()
            .map(|s| (w + s.second as f64 + 0.5, s.ok as f64))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SoakReport {
    pub schema_version: u32,
    pub started_at_unix_ms: u64,
    pub duration_s: f64,
    pub fraction: f64,
    pub reconnect_after: u64,
    pub fail_on_growth_mib: Option<f64>,
    #[serde(default)]
    pub fail_on_growth_pct: Option<f64>,
    /// `--settle`: where the growth limits start judging, seconds into the measured phase.
    #[serde(default)]
    pub settle_s: f64,
    pub manifest: Manifest,
    pub gateways: Vec<GatewaySoak>,
    /// Gateways that could not be soaked at all: `(gateway, error)`.
    pub not_run: Vec<(String, String)>,
    pub passed: bool,
}
