//! The headline: one row per variant with its maxima, its cost at the common rate, its
//! p99 under load and its memory per idle connection; what the figures mean; the bare
//! producer's ceiling.

use std::fmt::Write as _;

use super::super::plan::{Offer, Scenario, Shape};
use super::super::summary::Summary;
use super::common::{cell, is_search, max_text, offer_of, opt, per_req, variants_of, Cells};
use crate::reporting::format::{fmt_rate, fmt_spread, fmt_us, kib, Spread};

/// `## Headline`.
pub(super) fn headline(o: &mut String, s: &Summary, cells: &Cells, producer: Option<Spread>) {
    let _ = writeln!(o, "## Headline\n");
    let maxima: Vec<&Scenario> = s.plan.scenarios.iter().filter(|sc| is_search(sc)).collect();
    let cost = s
        .plan
        .scenarios
        .iter()
        .rfind(|sc| matches!(offer_of(sc), Some(Offer::Common { .. })));
    let load75 = s
        .plan
        .scenarios
        .iter()
        .rfind(|sc| matches!(offer_of(sc), Some(Offer::OwnMax { .. })));
    let idle: Vec<&Scenario> = s
        .plan
        .scenarios
        .iter()
        .filter(|sc| matches!(sc.shape, Shape::Idle { .. }))
        .collect();
    let _ = write!(o, "| gateway |");
    for sc in &maxima {
        let _ = write!(o, " {} max ok/s *(bound)* |", sc.id);
    }
    if let Some(sc) = cost {
        let _ = write!(o, " {} gw CPU µs/req | syscalls/req | ctx sw/req |", sc.id);
    }
    if let Some(sc) = load75 {
        let _ = write!(o, " {} p99 |", sc.id);
    }
    for sc in &idle {
        let _ = write!(o, " {} per conn |", sc.id);
    }
    let _ = writeln!(o);
    let ncols = maxima.len() + cost.map_or(0, |_| 3) + load75.map_or(0, |_| 1) + idle.len();
    let _ = writeln!(o, "|---|{}", "---:|".repeat(ncols));
    for v in &s.plan.variants {
        let _ = write!(o, "| {} |", v.name());
        for sc in &maxima {
            let txt = match (variants_of(s, sc).contains(v), cell(cells, &sc.id, v)) {
                (true, Some(c)) => max_text(c, cell(cells, &sc.id, &v.baseline()), v),
                _ => String::new(),
            };
            let _ = write!(o, " {txt} |");
        }
        if let Some(sc) = cost {
            match cell(cells, &sc.id, v).filter(|_| variants_of(s, sc).contains(v)) {
                Some(c) => {
                    let _ = write!(
                        o,
                        " {} | {} | {} |",
                        per_req(&c.cpu_us_per_req, 1),
                        per_req(&c.syscalls_per_req, 2),
                        opt(
                            c.voluntary_cs_per_req.zip(c.involuntary_cs_per_req),
                            |(a, b)| format!("{:.2}", a.median + b.median)
                        ),
                    );
                }
                None => {
                    let _ = write!(o, " | | |");
                }
            }
        }
        if let Some(sc) = load75 {
            let txt = match cell(cells, &sc.id, v).filter(|_| variants_of(s, sc).contains(v)) {
                Some(c) => opt(c.latency.as_ref(), |l| fmt_us(l.p99_us)),
                None => String::new(),
            };
            let _ = write!(o, " {txt} |");
        }
        for sc in &idle {
            let txt = match cell(cells, &sc.id, v).filter(|_| variants_of(s, sc).contains(v)) {
                Some(c) => opt(c.bytes_per_conn, |b| kib(b.median)),
                None => String::new(),
            };
            let _ = write!(o, " {txt} |");
        }
        let _ = writeln!(o);
    }
    let _ = writeln!(
        o,
        "\nMaxima: median [min–max] of {} round(s) at the point the saturation search found, with \
         the binding constraint most of those runs had (*gateway*: the gateway's CPU was ≥ 90% busy, \
         the only label that makes a figure the gateway's maximum; *client*: the load generator was \
         the limit, so the gateway's maximum is at least that; *concurrency*: the client's \
         window was full with both CPUs below 90% — shown as ≥). `(1.05×)` = ratio to \
         tokio-multi with the same sink; `≈`: the two ranges overlap, so the difference is not \
         established. Cost columns: gateway CPU time, system calls and context switches per \
         request at the same offered rate for every gateway, measured phase only. `/null` = \
         `--sink null` (the gateway's own cost). ⚠: a run of that cell reported an error.\n",
        s.plan.repeats
    );
    if let Some(p) = producer {
        let _ = writeln!(
            o,
            "Bare producer (the ceiling of the Kafka path, same configuration and broker, one thread pinned to the gateway's CPU): **{}** records/s.\n",
            fmt_spread(&p, fmt_rate)
        );
    }
}
