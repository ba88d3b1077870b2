//! The verdict: the paragraph that opens the report. Per maximum scenario (and for the CPU
//! cost per request at the common rate), every gateway against the reference (tokio-per-core
//! with the same sink when the plan has it, else the first variant): *established, N×* when
//! the two ranges over the rounds do not overlap (N = ratio of the medians), *not
//! established* when they do, and *not a gateway difference* when the cells were bound by
//! something else (the client, the window, the hypervisor's steal). Then how many runs
//! had steal, how many were re-run for it (`--retries`) and which cells still carry one.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::super::cell::Cell;
use super::super::plan::{Offer, Scenario, Variant};
use super::super::summary::{Phase, Summary};
use super::common::{cell, is_search, offer_of, variants_of, Cells};
use crate::engine::analysis::bound::{Bound, STEAL};
use crate::lab::GatewayKind;
use crate::reporting::format::{overlap, Spread};

/// What one comparison of a variant with the reference says.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Judgement {
    /// Ranges apart: the ratio of the medians.
    Established(f64),
    /// Ranges overlap (or one round only): the ratio of the medians, not a difference.
    NotEstablished(f64),
    /// One of the two cells was bound by this, not by the gateway.
    NotGateway(String),
    /// One of the two cells has no figures.
    NoFigures,
}

/// `c` against the reference `base` on `metric`, each cell's label required to be `want`;
/// `stolen`: either cell had a run with steal (then an *unknown* label is the steal's).
pub(super) fn judge(
    c: &Cell,
    base: &Cell,
    metric: impl Fn(&Cell) -> Option<Spread>,
    want: Bound,
    stolen: bool,
) -> Judgement {
    let (Some(a), Some(b)) = (metric(c), metric(base)) else {
        return Judgement::NoFigures;
    };
    for x in [c, base] {
        match x.bound() {
            Some(bd) if bd == want => {}
            Some(Bound::Unknown) if stolen => return Judgement::NotGateway("steal".into()),
            bd => return Judgement::NotGateway(bd.map_or("unknown", Bound::name).into()),
        }
    }
    if b.median <= 0.0 {
        return Judgement::NoFigures;
    }
    let r = a.median / b.median;
    if a.n > 1 && b.n > 1 && !overlap(&a, &b) {
        Judgement::Established(r)
    } else {
        Judgement::NotEstablished(r)
    }
}

/// The reference of `sink`'s variants: tokio-per-core if the plan has it, else the first.
fn reference(s: &Summary, v: &Variant) -> Option<Variant> {
    let first = s.plan.variants.first()?;
    let r = s
        .plan
        .variants
        .iter()
        .find(|x| x.gateway == GatewayKind::TokioPerCore)
        .unwrap_or(first)
        .with_sink(v.sink);
    s.plan.variants.contains(&r).then_some(r)
}

/// Round runs with steal, per (scenario, variant), and the number of round runs.
fn stolen_runs(s: &Summary) -> (BTreeMap<(String, String), usize>, usize) {
    let mut m = BTreeMap::new();
    let mut n = 0;
    for r in s.runs.iter().filter(|r| r.phase == Phase::Round) {
        n += 1;
        if r.stolen(&s.manifest.pinning) {
            *m.entry((r.scenario.clone(), r.variant.clone()))
                .or_insert(0) += 1;
        }
    }
    (m, n)
}

/// What every sentence reads: the summary, its cells, its round runs with steal.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    s: &'a Summary,
    cells: &'a Cells,
    stolen: &'a BTreeMap<(String, String), usize>,
}

/// Counts of the judgements over the whole verdict: established, not, not the gateways'.
#[derive(Debug, Default)]
struct Tally {
    established: usize,
    not_established: usize,
    not_gateway: usize,
}

/// One scenario's sentence: `**http-max** maximum, vs tokio-per-core (same sink): uring
/// established, 1.12×; not established (ranges overlap): compio 0.97×; not a gateway
/// difference: tokio-multi (bound: client).`
fn sentence(
    ctx: &Ctx<'_>,
    sc: &Scenario,
    what: &str,
    metric: &dyn Fn(&Cell) -> Option<Spread>,
    want: Bound,
    tally: &mut Tally,
) -> Option<String> {
    let Ctx { s, cells, stolen } = *ctx;
    let (mut est, mut not, mut other) = (vec![], vec![], BTreeMap::<String, Vec<String>>::new());
    let mut reference_name = None;
    for v in variants_of(s, sc) {
        let Some(r) = reference(s, &v).filter(|r| *r != v) else {
            continue;
        };
        let (Some(c), Some(base)) = (cell(cells, &sc.id, &v), cell(cells, &sc.id, &r)) else {
            continue;
        };
        let st = [&v, &r]
            .iter()
            .any(|x| stolen.contains_key(&(sc.id.clone(), x.name())));
        match judge(c, base, metric, want, st) {
            Judgement::Established(x) => est.push(format!("{} established, {x:.2}×", v.name())),
            Judgement::NotEstablished(x) => not.push(format!("{} {x:.2}×", v.name())),
            Judgement::NotGateway(b) => other.entry(b).or_default().push(v.name()),
            Judgement::NoFigures => continue,
        }
        reference_name.get_or_insert(r.gateway.name());
    }
    let reference_name = reference_name?;
    tally.established += est.len();
    tally.not_established += not.len();
    tally.not_gateway += other.values().map(Vec::len).sum::<usize>();
    let mut parts = est;
    if !not.is_empty() {
        parts.push(format!(
            "not established (ranges overlap): {}",
            not.join(", ")
        ));
    }
    if !other.is_empty() {
        let why: Vec<String> = other
            .iter()
            .map(|(b, vs)| match b.as_str() {
                "steal" => format!("{} (hypervisor steal)", vs.join(", ")),
                _ => format!("{} (bound: {b})", vs.join(", ")),
            })
            .collect();
        parts.push(format!("not a gateway difference: {}", why.join("; ")));
    }
    Some(format!(
        "**{}**{what}, vs {reference_name} (same sink): {}.",
        sc.id,
        parts.join("; ")
    ))
}

/// The verdict paragraph (no trailing blank line).
pub(super) fn verdict_text(s: &Summary, cells: &Cells) -> String {
    let (stolen, n_runs) = stolen_runs(s);
    let ctx = Ctx {
        s,
        cells,
        stolen: &stolen,
    };
    let mut out = vec![];
    let mut tally = Tally::default();
    let throughput = |c: &Cell| c.throughput;
    for sc in s.plan.scenarios.iter().filter(|sc| is_search(sc)) {
        out.extend(sentence(
            &ctx,
            sc,
            " maximum",
            &throughput,
            Bound::Gateway,
            &mut tally,
        ));
    }
    let cost = s
        .plan
        .scenarios
        .iter()
        .rfind(|sc| matches!(offer_of(sc), Some(Offer::Common { .. })));
    if let Some(sc) = cost {
        let cpu = |c: &Cell| c.cpu_us_per_req;
        out.extend(sentence(
            &ctx,
            sc,
            " gateway CPU µs/request",
            &cpu,
            Bound::OfferedLoad,
            &mut tally,
        ));
    }
    let lead = if out.is_empty() {
        let any = cost.is_some() || s.plan.scenarios.iter().any(is_search);
        if any {
            "**Verdict.** No maximum or cost cell has figures to compare.".to_string()
        } else {
            "**Verdict.** This comparison has no maximum or cost scenario, so no gateway \
             difference to judge: the tables below give its figures."
                .to_string()
        }
    } else {
        format!(
            "**Verdict.** Of {} comparisons with the reference, {} established (ranges over the \
             rounds apart), {} not established (ranges overlap), {} not a gateway difference \
             (a cell bound by something else).",
            tally.established + tally.not_established + tally.not_gateway,
            tally.established,
            tally.not_established,
            tally.not_gateway
        )
    };
    // Steal first: when it took most runs, nothing after it is the gateways'.
    out.insert(0, steal_sentence(s, &stolen, n_runs));
    out.insert(0, lead);
    out.retain(|x| !x.is_empty());
    out.join(" ")
}

/// How many round runs had steal, how many were re-run for it, which cells still do.
fn steal_sentence(s: &Summary, stolen: &BTreeMap<(String, String), usize>, n: usize) -> String {
    let rerun = s
        .runs
        .iter()
        .filter(|r| r.phase == Phase::Round && r.attempts > 1)
        .count();
    let mut t = String::new();
    if let Some(k) = s.manifest.retries {
        let _ = write!(
            t,
            "{rerun} run(s) were re-run for hypervisor steal ≥ {:.0}% (`--retries {k}`). ",
            STEAL * 100.0
        );
    }
    let k: usize = stolen.values().sum();
    if k == 0 {
        if s.manifest.retries.is_some() {
            t.push_str("No kept run has steal.");
        }
        return t.trim_end().to_string();
    }
    let _ = write!(
        t,
        "{k} of {n} kept round runs had steal ≥ {:.0}% on the gateway's or the client's CPUs",
        STEAL * 100.0
    );
    if 2 * k >= n {
        t.push_str(
            ": most figures of this run are the host's, not the gateways' — \
             no difference between gateways can be read from them",
        );
    }
    if stolen.len() <= 6 {
        let cells: Vec<String> = stolen
            .iter()
            .map(|((sc, v), k)| format!("{sc} × {v} ({k})"))
            .collect();
        let _ = write!(t, "; cells still carrying one: {}.", cells.join(", "));
    } else {
        let _ = write!(
            t,
            "; {} cells still carry one (listed under Machine and method).",
            stolen.len()
        );
    }
    t
}

/// The machine section's list of every cell that kept a run with steal (round runs), or
/// `None` when none did.
pub(super) fn stolen_cells_line(s: &Summary) -> Option<String> {
    let (stolen, _) = stolen_runs(s);
    (!stolen.is_empty()).then(|| {
        let cells: Vec<String> = stolen
            .iter()
            .map(|((sc, v), k)| format!("{sc} × {v} ({k})"))
            .collect();
        format!(
            "- cells that kept a round run with steal ≥ {:.0}% on the gateway's or the client's CPUs (runs): {}",
            STEAL * 100.0,
            cells.join(", ")
        )
    })
}

/// The verdict paragraph and a blank line.
pub(super) fn verdict(o: &mut String, s: &Summary, cells: &Cells) {
    let _ = writeln!(o, "{}\n", verdict_text(s, cells));
}

#[cfg(test)]
mod tests {
    use super::{judge, Judgement};
    use crate::engine::analysis::bound::Bound;
    use crate::experiments::compare::cell::Cell;
    use crate::reporting::format::Spread;

    fn cell(median: f64, min: f64, max: f64, bound: Bound) -> Cell {
        let mut c = Cell {
            throughput: Some(Spread {
                median,
                min,
                max,
                n: 5,
            }),
            measured: 5,
            runs: 5,
            ..Cell::default()
        };
        c.bounds.insert(bound, 5);
        c
    }

    fn tp(c: &Cell) -> Option<Spread> {
        c.throughput
    }

    #[test]
    fn overlapping_ranges_are_not_established() {
        let base = cell(100.0, 90.0, 110.0, Bound::Gateway);
        let c = cell(120.0, 105.0, 130.0, Bound::Gateway);
        assert_eq!(
            judge(&c, &base, tp, Bound::Gateway, false),
            Judgement::NotEstablished(1.2)
        );
    }

    #[test]
    fn disjoint_ranges_are_established_with_the_ratio_of_medians() {
        let base = cell(100.0, 90.0, 110.0, Bound::Gateway);
        let c = cell(150.0, 140.0, 160.0, Bound::Gateway);
        assert_eq!(
            judge(&c, &base, tp, Bound::Gateway, false),
            Judgement::Established(1.5)
        );
        // Slower is established too.
        let c = cell(50.0, 45.0, 60.0, Bound::Gateway);
        assert_eq!(
            judge(&c, &base, tp, Bound::Gateway, false),
            Judgement::Established(0.5)
        );
    }

    #[test]
    fn a_cell_not_bound_by_the_gateway_is_not_a_gateway_difference() {
        let base = cell(100.0, 90.0, 110.0, Bound::Gateway);
        for (b, stolen, name) in [
            (Bound::Client, false, "client"),
            (Bound::Concurrency, false, "concurrency"),
            (Bound::Unknown, false, "unknown"),
            (Bound::Unknown, true, "steal"),
        ] {
            let c = cell(300.0, 290.0, 310.0, b);
            assert_eq!(
                judge(&c, &base, tp, Bound::Gateway, stolen),
                Judgement::NotGateway(name.into())
            );
            // The reference's label counts as much as the variant's.
            assert_eq!(
                judge(&base, &c, tp, Bound::Gateway, stolen),
                Judgement::NotGateway(name.into())
            );
        }
    }

    #[test]
    fn one_round_establishes_nothing() {
        let mut base = cell(100.0, 100.0, 100.0, Bound::Gateway);
        let mut c = cell(200.0, 200.0, 200.0, Bound::Gateway);
        for x in [&mut base, &mut c] {
            if let Some(t) = x.throughput.as_mut() {
                t.n = 1;
            }
        }
        assert_eq!(
            judge(&c, &base, tp, Bound::Gateway, false),
            Judgement::NotEstablished(2.0)
        );
    }
}
