//! `report.md` of a comparison from a `summary.json` alone, so `bench-client report DIR`
//! re-renders what `compare` wrote: [`markdown`], over the per-cell figures of
//! [`super::cell`]. Ratios divide a variant's median by tokio-multi's median (same sink)
//! from the same run. A cell without figures shows the error that emptied it.
//!
//! The sections in the order of the report: `verdict.rs` (the paragraph that opens it:
//! which differences are established), `headline.rs`, `method.rs` (machine, method,
//! bare producer), `scenario.rs` (one per scenario, with the scale tables of `scale.rs`),
//! `tls.rs` (the TLS cells beside their plaintext twins, when the plan has any),
//! `closing.rs` (marginal cost, charts, peers, failed runs, runtimes); `common.rs` holds
//! what they share. This file only strings them together; none of them depends on it.
//!
//! Reads the [`Summary`] types and the [`plan`](super::plan) only: must not depend on the
//! compare run logic nor on the charts.

mod closing;
mod common;
mod headline;
mod method;
mod scale;
mod scenario;
#[cfg(test)]
mod tests;
mod tls;
mod verdict;

use std::fmt::Write as _;

pub use self::scale::{accept_style, info_label, net_per_conn};
use super::cell::{cells, producer_rate};
use super::summary::Summary;

/// The whole `report.md`.
pub fn markdown(s: &Summary) -> String {
    let cells = cells(s);
    let mut o = String::new();
    title(&mut o, s);
    verdict::verdict(&mut o, s, &cells);
    provenance(&mut o);
    let producer = producer_rate(s);
    headline::headline(&mut o, s, &cells, producer);
    method::method(&mut o, s);
    method::bare_producer(&mut o, s);
    for sc in &s.plan.scenarios {
        scenario::section(&mut o, s, sc, &cells, producer);
    }
    tls::section(&mut o, s, &cells);
    closing::marginal_cost(&mut o, s, &cells);
    closing::load_and_memory_charts(&mut o, s);
    closing::peers_section(s, &mut o);
    closing::failed_runs(&mut o, s);
    closing::runtimes(&mut o, s);
    o
}

/// The title.
fn title(o: &mut String, s: &Summary) {
    let m = &s.manifest;
    let host = m.machine.hostname.as_deref().unwrap_or("?");
    let _ = writeln!(
        o,
        "# Gateway comparison: {} on {host} ({} CPU)\n",
        m.started_at, m.machine.cpu_count
    );
}

/// Where the report comes from.
fn provenance(o: &mut String) {
    let _ = writeln!(
        o,
        "Written by `bench-client compare`; `bench-client report DIR` re-renders this file and the \
         charts from `summary.json`, which holds every run's full result and manifest.\n"
    );
}
