//! What every section of the report shares: the cells by (scenario, variant), a variant's
//! figures as text (throughput with its ratio, a maximum with its bound, notes) and small
//! formatting helpers.

use std::collections::BTreeMap;

use super::super::cell::Cell;
use super::super::plan::{Offer, Scenario, Shape, Variant};
use super::super::summary::Summary;
use crate::engine::analysis::bound::Bound;
use crate::reporting::format::{fmt_rate, fmt_ratio, fmt_spread, md, overlap, ratio, Spread};

/// Every cell of a comparison, by `(scenario id, variant name)`.
pub(super) type Cells = BTreeMap<(String, String), Cell>;

/// The cell of `sc` x `v`.
pub(super) fn cell<'a>(cells: &'a Cells, sc: &str, v: &Variant) -> Option<&'a Cell> {
    cells.get(&(sc.to_string(), v.name()))
}

pub(super) fn failed(reason: &str) -> String {
    format!("**FAILED**: {}", md(reason))
}

pub(super) fn variants_of(s: &Summary, sc: &Scenario) -> Vec<Variant> {
    s.plan
        .variants_for(sc)
        .into_iter()
        .map(|i| s.plan.variants[i])
        .collect()
}

pub(super) fn offer_of(sc: &Scenario) -> Option<&Offer> {
    match &sc.shape {
        Shape::Load { offer, .. } => Some(offer),
        Shape::Idle { .. } => None,
    }
}

pub(super) fn is_search(sc: &Scenario) -> bool {
    matches!(offer_of(sc), Some(Offer::Search { .. }))
}

pub(super) fn opt<T>(x: Option<T>, f: impl Fn(T) -> String) -> String {
    x.map_or_else(|| "–".to_string(), f)
}

pub(super) fn per_req(x: &Option<Spread>, digits: usize) -> String {
    opt(x.as_ref(), |s| format!("{:.*}", digits, s.median))
}

/// `94.1k [92.0k–95.2k]`, plus ` ≈` when the range overlaps the baseline's.
pub(super) fn tp_text(c: &Cell, base: Option<&Cell>, v: &Variant) -> String {
    let Some(t) = c.throughput else {
        return "–".into();
    };
    let mut txt = fmt_spread(&t, fmt_rate);
    if v.baseline() != *v {
        if let Some(bt) = base.and_then(|b| b.throughput) {
            txt.push_str(&format!(
                " ({})",
                fmt_ratio(ratio(Some(t.median), Some(bt.median)))
            ));
            if t.n > 1 && bt.n > 1 && overlap(&t, &bt) {
                txt.push_str(" ≈");
            }
        }
    }
    txt
}

/// The headline entry of a maximum: its figure only when it is one.
pub(super) fn max_text(c: &Cell, base: Option<&Cell>, v: &Variant) -> String {
    if let Some(reason) = c.empty_reason() {
        return failed(&reason);
    }
    let b = c.bound().map_or("unknown", Bound::name);
    let mark = if c.errors.is_empty() { "" } else { " ⚠" };
    match c.bound() {
        Some(Bound::Concurrency) => format!(
            "≥ {} *(concurrency)*{mark}",
            opt(c.throughput, |t| fmt_rate(t.median))
        ),
        _ => format!("{} *({b})*{mark}", tp_text(c, base, v)),
    }
}

pub(super) fn c_step(_s: &Summary, sc: &Scenario) -> Option<usize> {
    match &sc.shape {
        Shape::Load { offer, .. } => offer.fixed_connections(),
        Shape::Idle { .. } => None,
    }
}

pub(super) fn notes(c: &Cell) -> String {
    let mut n = Vec::new();
    if c.measured < c.runs {
        n.push(format!("{}/{} runs have figures", c.measured, c.runs));
    }
    if let Some(t) = &c.throughput {
        if t.n > 1 && t.relative_range() > 0.2 {
            n.push(format!("spread {:.0}%", t.relative_range() * 100.0));
        }
    }
    if c.stalls > 0 {
        n.push(format!("{} stall(s), {:.0} ms", c.stalls, c.stall_ms));
    }
    if c.backpressure > 0 {
        n.push(format!("{} backpressure (503/nack)", c.backpressure));
    }
    for e in &c.errors {
        n.push(format!("⚠ {}", md(e)));
    }
    n.join("; ")
}
