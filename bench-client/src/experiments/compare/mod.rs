//! `bench-client compare`: every gateway side by side on one machine.
//!
//! Starts `kafka-mock` (unless `--brokers`), measures the bare producer (the ceiling of
//! the Kafka path), then runs the two phases of the [`Plan`](plan::Plan) (see [`plan`]): a
//! saturation search per variant for every scenario that claims a maximum, then rounds of
//! every cell in a shuffled order. Each gateway process gets identical arguments
//! (threads, backlog, producer config), pinned per `--pin`; `compare` waits for
//! `/readyz`, runs the scenario through [`crate::engine::run`] with the gateway's and
//! kafka-mock's PIDs (so every run carries the gateway's CPU per thread class, syscalls
//! and context switches over the measured phase, and the label of what bound it), stops
//! it with SIGTERM and requires exit status 0. Everything lands in `summary.json`
//! ([`summary`]); [`render`] turns that into `report.md` ([`report`]) and SVG charts
//! ([`charts`]).
//!
//! Entry points: [`Compare`] (the [`Experiment`]: [`compare`] runs → [`Summary`] →
//! [`render`]) and [`report_dir`] (`bench-client report DIR`). Files: `args.rs`
//! ([`CompareArgs`]), `run.rs` ([`compare`] in its steps), `execute.rs` (one search or one
//! run against a gateway), `peers.rs` (external gateways), `producer.rs` (the bare
//! producer), `procs.rs` (sharded client processes), `progress.rs` (progress lines), `retry.rs` (which runs are made again for steal),
//! `scenarios.rs` (the scenario matrix), `tls.rs` (the TLS cells' test certificate), `plan.rs` (the plan and the search logic),
//! `summary.rs` (the result types), `cell.rs` (a cell's figures over its runs),
//! `report/` (markdown), `charts.rs` (SVG). This file only wires them; none of them
//! depends on it.

mod args;
pub mod cell;
pub mod charts;
mod execute;
pub mod peers;
pub mod plan;
pub mod procs;
mod producer;
mod progress;
pub mod report;
mod retry;
mod run;
pub mod scenarios;
pub mod summary;
pub mod tls;

use std::path::{Path, PathBuf};

use anyhow::Context as _;

pub use self::args::CompareArgs;
pub use self::run::{compare, host_tag, Outcome};
pub use self::summary::{
    CompareManifest, GatewayDesc, GatewayStats, PeerDesc, Phase, ProducerRun, RunRecord, Summary,
    SUMMARY_VERSION,
};
use crate::engine::probes::manifest::Manifest;
use crate::experiments::shared::{Experiment, ExperimentArgs};
use crate::lab;

/// Write `report.md` and the charts of `s` into `dir`.
pub fn render(s: &Summary, dir: &Path) -> anyhow::Result<()> {
    let p = dir.join("report.md");
    std::fs::write(&p, report::markdown(s)).with_context(|| format!("writing {}", p.display()))?;
    charts::draw_all(s, dir)?;
    Ok(())
}

/// `bench-client report DIR`: re-render `report.md` and the charts from `summary.json`.
pub fn report_dir(dir: &Path) -> anyhow::Result<()> {
    let s = Summary::read(dir)?;
    render(&s, dir)
}

/// The comparison in the shared shape: run (writing summary.json as it goes) → render
/// report.md and the charts → exit status 1 when a run failed.
pub struct Compare;

impl Experiment for Compare {
    type Args = CompareArgs;
    type Summary = Outcome;

    fn shared(a: &CompareArgs) -> &ExperimentArgs {
        &a.shared
    }
    fn default_out(_: &CompareArgs) -> PathBuf {
        let machine = Manifest::collect();
        lab::default_out_dir(&host_tag(
            machine.cpu_count.max(1),
            machine.hostname.as_deref(),
        ))
    }
    fn run(a: &CompareArgs, dir: &Path) -> anyhow::Result<Outcome> {
        compare(a, dir)
    }
    fn render(o: &Outcome, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
        match &o.summary {
            Some(s) => {
                s.write(dir)?;
                render(s, dir)?;
                Ok(vec![dir.join("summary.json"), dir.join("report.md")])
            }
            None => Ok(vec![]),
        }
    }
    fn finish(_: &CompareArgs, o: &Outcome, files: &[PathBuf]) -> u8 {
        if let Some(r) = files.iter().find(|f| f.ends_with("report.md")) {
            eprintln!("compare: report in {}", r.display());
        }
        u8::from(o.failed_runs > 0)
    }
}
