//! The closing sections: marginal cost between the two cost scenarios, the latency and
//! memory charts, the external peers, the failed runs, and each runtime's version and
//! `gateway_info`.

use std::fmt::Write as _;

use super::super::cell::Cell;
use super::super::plan::{Offer, Scenario, Shape, Sink};
use super::super::summary::{Phase, Summary};
use super::common::{cell, failed, offer_of, opt, per_req, variants_of, Cells};
use crate::reporting::format::{fmt_rate, fmt_spread, fmt_us, md};

/// `## Marginal cost` (when there are exactly two cost scenarios).
pub(super) fn marginal_cost(o: &mut String, s: &Summary, cells: &Cells) {
    let costs: Vec<&Scenario> = s
        .plan
        .scenarios
        .iter()
        .filter(|sc| matches!(offer_of(sc), Some(Offer::Common { .. })))
        .collect();
    if let [lo, hi] = costs[..] {
        let _ = writeln!(o, "## Marginal cost\n");
        let _ = writeln!(
            o,
            "Gateway CPU per additional request between {} and {}: (cores at {} − cores at {}) / (ok/s at {} − ok/s at {}), which leaves out what a gateway spends whatever the load (timers, the producer's idle polling).\n",
            lo.id, hi.id, hi.id, lo.id, hi.id, lo.id
        );
        let _ = writeln!(
            o,
            "| gateway | marginal gw µs/req | average gw µs/req at {} |",
            hi.id
        );
        let _ = writeln!(o, "|---|---:|---:|");
        for v in variants_of(s, hi) {
            let (Some(a), Some(b)) = (cell(cells, &lo.id, &v), cell(cells, &hi.id, &v)) else {
                continue;
            };
            let marginal = match (a.cpu_s_and_ok, b.cpu_s_and_ok) {
                (Some((ca, oa)), Some((cb, ob))) if ob > oa => {
                    format!("{:.1}", (cb - ca) * 1e6 / (ob - oa))
                }
                _ => "–".into(),
            };
            let _ = writeln!(
                o,
                "| {} | {marginal} | {} |",
                v.name(),
                per_req(&b.cpu_us_per_req, 1)
            );
        }
        let _ = writeln!(o);
    }
}

/// The latency-against-load and memory charts, where their scenarios ran.
pub(super) fn load_and_memory_charts(o: &mut String, s: &Summary) {
    if s.plan
        .scenarios
        .iter()
        .any(|sc| matches!(offer_of(sc), Some(Offer::OwnMax { .. })))
    {
        let _ = writeln!(
            o,
            "## Latency against offered load\n\nOpen-loop p50 / p99 / p99.9 (corrected) at fractions of each gateway's own measured http-max maximum without pipelining (Kafka): an open loop sends one request per free connection.\n\n![latency against offered load](latency-vs-load.svg)\n"
        );
    }
    if s.plan
        .scenarios
        .iter()
        .any(|sc| matches!(sc.shape, Shape::Idle { .. }))
    {
        let _ = writeln!(o, "![memory per connection](memory.svg)\n");
    }
}

/// External gateways (`--peer`): one row per HTTP scenario and peer, labelled like every
/// other cell; gateway CPU only where `--peer-pid` was given.
pub(super) fn peers_section(s: &Summary, o: &mut String) {
    if s.peers.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "## External peers\n\nGateways this comparison did not start (`--peer NAME=URL`), driven through the same HTTP scenarios with the same load configurations, after the gateways' rounds (rates derived from each peer's own search as for the gateways; common rates are the gateways'). compare neither pins nor restarts them, and measures their CPU only when given their PID (`--peer-pid`).\n"
    );
    for p in &s.peers {
        let _ = writeln!(
            o,
            "- **{}** (external): {} — format `{}`, CPU {}",
            md(&p.name),
            md(&p.url),
            match p.format {
                crate::engine::config::Format::Raw => "raw",
                crate::engine::config::Format::RestV2Binary => "rest-v2-binary",
                crate::engine::config::Format::RestV2Json => "rest-v2-json",
            },
            p.pid.map_or("not measured".to_string(), |pid| format!(
                "measured (PID {pid})"
            ))
        );
    }
    let _ = writeln!(
        o,
        "\n| scenario | peer | ok/s (median [min–max]) | p50 | p99 | bound | gateway CPU / req |\n|---|---|---:|---:|---:|---|---:|"
    );
    for sc in &s.plan.scenarios {
        if !matches!(
            sc.mode(),
            Some(crate::engine::config::Mode::Http | crate::engine::config::Mode::HttpClose)
        ) {
            continue;
        }
        for p in &s.peers {
            let v = p.variant();
            let runs: Vec<_> = s
                .runs
                .iter()
                .filter(|r| r.phase == Phase::Round && r.scenario == sc.id && r.variant == v)
                .collect();
            if runs.is_empty() {
                continue;
            }
            let c = Cell::of(&runs);
            let cpu = match (p.pid, &c.cpu_us_per_req) {
                (None, _) => "not measured".to_string(),
                (Some(_), Some(x)) => format!("{} µs", fmt_spread(x, |v| format!("{v:.1}"))),
                (Some(_), None) => "–".to_string(),
            };
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {} |",
                sc.id,
                md(&v),
                c.throughput
                    .as_ref()
                    .map_or_else(|| failed(&c.errors.join("; ")), |t| fmt_spread(t, fmt_rate)),
                opt(c.latency.as_ref(), |l| fmt_us(l.p50_us)),
                opt(c.latency.as_ref(), |l| fmt_us(l.p99_us)),
                c.bound_text(),
                cpu
            );
        }
    }
    let _ = writeln!(o);
}

/// `## Failed runs`: the first line of every run's error.
pub(super) fn failed_runs(o: &mut String, s: &Summary) {
    let mut errs = Vec::new();
    for r in &s.runs {
        if let Some(e) = &r.error {
            errs.push(format!(
                "- {} {} {} {}: {}",
                match r.phase {
                    Phase::Search => "search".to_string(),
                    Phase::Round => format!("round {}", r.round + 1),
                },
                r.scenario,
                r.variant,
                opt(r.step, |s| s.to_string()),
                e.lines().next().unwrap_or_default()
            ));
        }
    }
    let _ = writeln!(o, "## Failed runs\n");
    if errs.is_empty() {
        let _ = writeln!(
            o,
            "None: every run produced figures and every gateway exited 0.\n"
        );
    } else {
        let _ = writeln!(
            o,
            "Full messages (with the gateway's last log lines) are in summary.json `runs[].error`.\n"
        );
        for e in errs {
            let _ = writeln!(o, "{e}");
        }
        let _ = writeln!(o);
    }
}

/// `## Runtimes and their asymmetries`: each runtime's `--version`, `gateway_info` line and
/// command, once per runtime.
pub(super) fn runtimes(o: &mut String, s: &Summary) {
    let m = &s.manifest;
    let _ = writeln!(o, "## Runtimes and their asymmetries\n");
    let _ = writeln!(
        o,
        "Each gateway's `--version` and its `/metrics` `gateway_info` line (first run).\n"
    );
    let mut seen = Vec::new();
    for v in &s.plan.variants {
        let Some(d) = m.gateways.get(&v.name()) else {
            continue;
        };
        let key = (v.gateway, &d.version);
        if v.sink == Sink::Null && seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let _ = writeln!(o, "### {}\n", v.gateway.name());
        let _ = writeln!(o, "```\n{}\n```\n", d.version);
        if let Some(i) = &d.info {
            let _ = writeln!(o, "```\n{i}\n```\n");
        }
        if !d.command.is_empty() {
            let _ = writeln!(o, "command: `{}`\n", d.command.join(" "));
        }
    }
}
