//! `bench-client stall-lab`: reproduce, classify and fix the tokio-uring accept stall of
//! the seed report ("stops accepting new TCP connections", "no ephemeral ports assigned").
//!
//! Each plausible cause is run against each gateway twice over: once in a *reproduction*
//! configuration (a gateway `--fault` flag, a low limit, or the naive client), once in the
//! gateway's *default* configuration under the same load. Every run records what
//! bench-client saw (stalls and their class) next to server-side evidence sampled from
//! /proc while it ran: the listener's accept-queue length, listen overflows and drops, the
//! gateway's open fds, and the client's sockets in TIME_WAIT. No root sysctl is touched:
//! the port-exhaustion case binds the client to a small source-port range instead.
//!
//! Files: `args.rs` ([`StallLabArgs`]), `cause.rs` ([`Cause`] and what each must show),
//! `evidence.rs` ([`Evidence`]), `run.rs` (the experiment), `summary.rs` ([`LabReport`]
//! and the verdict), `report.rs` (`stall-lab.md`, charts). This file only wires them into
//! the [`Experiment`] shape; none of them depends on it.
//!
//! Entry points: [`StallLab`] (the [`Experiment`]), [`stall_lab`], [`rerender`]. Depends on
//! the engine, the lab and the reporting; no other module depends on it.

mod args;
mod cause;
mod evidence;
mod report;
mod run;
mod summary;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use anyhow::Context as _;

pub use self::args::StallLabArgs;
pub use self::cause::{Cause, Expectation};
pub use self::evidence::Evidence;
pub use self::report::rerender;
pub use self::run::{plan, stall_lab};
pub use self::summary::{expectations_met, run_met, LabReport, LabRun};
use crate::experiments::shared::{Experiment, ExperimentArgs};
use crate::lab;

/// The stall lab in the shared shape: run → [`LabReport`] → `stall-lab.json`,
/// `stall-lab.md` and a chart per cause → with `--check`, exit status 1 unless
/// [`expectations_met`].
pub struct StallLab;

impl Experiment for StallLab {
    type Args = StallLabArgs;
    type Summary = LabReport;

    fn shared(a: &StallLabArgs) -> &ExperimentArgs {
        &a.shared
    }
    fn default_out(_: &StallLabArgs) -> PathBuf {
        lab::default_out_dir("stall-lab")
    }
    fn run(a: &StallLabArgs, _dir: &Path) -> anyhow::Result<LabReport> {
        stall_lab(a)
    }
    fn render(r: &LabReport, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        report::write_report(r, dir)?;
        eprintln!("stall-lab: report in {}", dir.display());
        Ok(vec![dir.join("stall-lab.json"), dir.join("stall-lab.md")])
    }
    fn finish(a: &StallLabArgs, r: &LabReport, _files: &[PathBuf]) -> u8 {
        u8::from(a.check && !expectations_met(r))
    }
}
