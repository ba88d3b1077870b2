//! `chaos`: load a gateway at ack=kafka while kafka-mock injects faults, then check that
//! nothing acknowledged is missing from Kafka and how throughput came back.
//!
//! Per gateway: a fresh `kafka-mock --control-stdin` and the gateway (with a short
//! `message.timeout.ms`, so an outage longer than it surfaces as 503s rather than as slow
//! 200s); an open loop at a modest rate (the mock keeps only ~100k records / 5 MB per
//! partition, and verification reads everything back), collecting every acknowledged id.
//! During the run (`--faults` selects): every broker down for 5 s, then a 200 ms RTT on
//! one broker, then injected produce errors, then every partition's leader moved to
//! another broker three times (see [`plan`]). After it, while kafka-mock still runs,
//! [`verify`](crate::experiments::verify) reads the topic back: any acknowledged id
//! missing is a failure. The report gives, per fault, the per-second series around it, the
//! 503 and error counts, the seconds slowed below half the baseline, and the time to
//! recover.
//!
//! Files: `args.rs` ([`ChaosArgs`]), `faults.rs` (the fault kinds, their schedule and
//! their effects), `run.rs` (the experiment), `summary.rs` ([`ChaosReport`]), `report.rs`
//! (`chaos.md`, charts). This file only wires them into the [`Experiment`] shape; none of
//! them depends on it.
//!
//! Entry points: [`Chaos`], [`cli_main`]. Depends on the engine, the lab, the reporting and
//! [`verify`](crate::experiments::verify); no other module depends on it.

mod args;
mod faults;
mod report;
mod run;
mod summary;

use std::path::{Path, PathBuf};

pub use self::args::ChaosArgs;
pub use self::faults::{effects, plan, Fault, FaultEffect, FaultKind, PlanSpec};
pub use self::report::{chaos_markdown, write_chaos};
pub use self::run::run_chaos;
pub use self::summary::{ChaosReport, GatewayChaos, Injected, CHAOS_SCHEMA_VERSION};
use crate::experiments::shared::{Experiment, ExperimentArgs};
use crate::lab;
use crate::reporting::outcome;

/// `bench-client chaos`: run, write the outputs, print the summary; the exit code is 0
/// when every gateway passed (nothing acknowledged missing), 1 otherwise.
pub fn cli_main(a: &ChaosArgs) -> anyhow::Result<u8> {
    crate::experiments::shared::main::<Chaos>(a)
}

/// The chaos experiment in the shared shape.
pub struct Chaos;

impl Experiment for Chaos {
    type Args = ChaosArgs;
    type Summary = ChaosReport;

    fn shared(a: &ChaosArgs) -> &ExperimentArgs {
        &a.shared
    }
    fn default_out(_: &ChaosArgs) -> PathBuf {
        lab::default_out_dir("chaos")
    }
    fn run(a: &ChaosArgs, _dir: &Path) -> anyhow::Result<ChaosReport> {
        run_chaos(a)
    }
    fn render(r: &ChaosReport, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
        write_chaos(r, dir)
    }
    fn finish(_: &ChaosArgs, r: &ChaosReport, files: &[PathBuf]) -> u8 {
        outcome::print_outcome(
            "chaos",
            r.gateways.iter().map(report::one_line),
            "not run",
            &r.not_run,
            r.passed,
            files,
        )
    }
}
