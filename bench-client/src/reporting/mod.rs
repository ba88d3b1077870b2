//! Reporting pieces every experiment shares: how figures are printed ([`format`](mod@format): spreads,
//! ratios, rates, latencies, markdown escaping), the chart primitives ([`charts`]: palette,
//! axis labels, legend, [`charts::line_chart`]) and the end of a lab command
//! ([`outcome`]: verdict, files written, stdout lines).
//!
//! Each experiment builds its own report from these. Reporting depends at most on the
//! engine and the lab, never on an experiment.

pub mod charts;
pub mod format;
pub mod outcome;
pub mod progress;
