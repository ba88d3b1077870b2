//! `soak`: run each gateway for a bounded time (default 10 min) at a fraction of its
//! measured maximum throughput, with connection churn, and watch its resources.
//!
//! Per gateway: start `kafka-mock` (unless `--brokers`) and the gateway on port 0, probe
//! the maximum briefly (closed loop), then drive an open loop at `--fraction` of it while
//! every keep-alive connection is closed and reopened after `--reconnect-after` requests.
//! A sampler thread reads the gateway's RSS, fd count, threads and CPU from /proc every
//! second. The report: RSS and fds over time and their growth (last-window average minus
//! first-window average, the same from the window after `--settle`, and a least-squares
//! slope per hour), throughput over time, errors and stalls; `soak.json`, `soak.md` and SVG
//! charts overlaying every gateway soaked.
//!
//! Files: `args.rs` ([`SoakArgs`]), `growth.rs` ([`growth`]), `run.rs` (the experiment and
//! the verdict), `summary.rs` ([`SoakReport`]), `report.rs` (`soak.md`, charts). This file
//! only wires them into the [`Experiment`] shape; none of them depends on it.
//!
//! Entry points: [`Soak`], [`cli_main`], [`run_soak`]. Depends on the engine, the lab and
//! the reporting; no other module depends on it.

mod args;
mod growth;
mod report;
mod run;
mod summary;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use self::args::SoakArgs;
pub use self::growth::{growth, slope, Growth};
pub use self::report::{soak_charts, soak_markdown, write_soak};
pub use self::run::run_soak;
pub use self::summary::{GatewaySoak, SoakReport, SOAK_SCHEMA_VERSION};
use crate::experiments::shared::{Experiment, ExperimentArgs};
use crate::lab;
use crate::reporting::outcome;

/// `bench-client soak`: run, write the outputs, print the summary; the exit code is 0 when
/// every gateway passed, 1 otherwise.
pub fn cli_main(a: &SoakArgs) -> anyhow::Result<u8> {
    crate::experiments::shared::main::<Soak>(a)
}

/// The soak experiment in the shared shape.
pub struct Soak;

impl Experiment for Soak {
    type Args = SoakArgs;
    type Summary = SoakReport;

    fn shared(a: &SoakArgs) -> &ExperimentArgs {
        &a.shared
    }
    fn default_out(_: &SoakArgs) -> PathBuf {
        lab::default_out_dir("soak")
    }
    fn run(a: &SoakArgs, _dir: &Path) -> anyhow::Result<SoakReport> {
        run_soak(a)
    }
    fn render(r: &SoakReport, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
        write_soak(r, dir)
    }
    fn finish(_: &SoakArgs, r: &SoakReport, files: &[PathBuf]) -> u8 {
        outcome::print_outcome(
            "soak",
            r.gateways.iter().map(report::one_line),
            "not soaked",
            &r.not_run,
            r.passed,
            files,
        )
    }
}
