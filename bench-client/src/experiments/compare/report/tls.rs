//! The TLS section of the report: for each gateway (Kafka sink), the TLS cells beside
//! their plaintext twins — maxima over HTTPS and WSS against plaintext (ratio, binding
//! constraint), CPU µs and syscalls per request at cost-low's common rate with and
//! without TLS, CPU µs per handshake in the accept storms (full and resumed) and the
//! client's handshake latency. Written only when the plan has a TLS scenario, so older
//! summaries re-render unchanged.

use std::fmt::Write as _;

use super::super::cell::Cell;
use super::super::plan::{Scenario, Sink, Variant};
use super::super::summary::{Phase, RunRecord, Summary};
use super::common::{cell, opt, Cells};
use crate::engine::analysis::stats::{merge, new_hist, HistSummary};
use crate::reporting::format::{fmt_rate, fmt_ratio, fmt_us, md, ratio, Spread};

/// The section, or nothing when no scenario of the plan speaks TLS.
pub(super) fn section(o: &mut String, s: &Summary, cells: &Cells) {
    let tls: Vec<&Scenario> = s
        .plan
        .scenarios
        .iter()
        .filter(|sc| sc.tls.is_some())
        .collect();
    if tls.is_empty() {
        return;
    }
    let ids: Vec<&str> = tls.iter().map(|sc| sc.id.as_str()).collect();
    let _ = writeln!(o, "## TLS: HTTPS and WSS\n");
    let _ = writeln!(
        o,
        "The TLS cells ({}) run against the same gateways started with `--tls-cert/--tls-key` \
         (a test CA and a certificate for 127.0.0.1 that compare made with rcgen), the client \
         trusting that CA (`--ca`); everything else as their plaintext twins. Medians over the \
         rounds; Kafka sink.\n",
        ids.join(", ")
    );
    let variants: Vec<Variant> = s
        .plan
        .variants
        .iter()
        .copied()
        .filter(|v| v.sink == Sink::Kafka)
        .collect();
    maxima(o, cells, &variants);
    cost(o, s, cells, &variants);
    handshakes(o, s, &tls, &variants);
}

fn tp(c: Option<&Cell>) -> Option<f64> {
    c.and_then(|c| c.throughput).map(|t| t.median)
}

fn bound(c: Option<&Cell>) -> String {
    c.filter(|c| c.measured > 0)
        .map_or_else(|| "–".into(), Cell::bound_text)
}

fn rate_text(c: Option<&Cell>) -> String {
    match c {
        Some(c) if c.measured == 0 => {
            format!("**FAILED**: {}", md(&c.empty_reason().unwrap_or_default()))
        }
        _ => opt(tp(c), fmt_rate),
    }
}

fn median(x: Option<&Spread>) -> Option<f64> {
    x.map(|s| s.median)
}

fn num(x: Option<f64>, digits: usize) -> String {
    opt(x, |v| format!("{v:.digits$}"))
}

/// TLS maxima against plaintext maxima.
fn maxima(o: &mut String, cells: &Cells, variants: &[Variant]) {
    let _ = writeln!(
        o,
        "**Maxima** (saturation search, ok/s; TLS ÷ plaintext; binding constraint of the TLS cell):\n"
    );
    let _ = writeln!(
        o,
        "| gateway | http-max | http-max-tls | ratio | bound | ws-max | ws-max-tls | ratio | bound |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|");
    for v in variants {
        let mut row = format!("| {} |", v.name());
        for (plain, tls) in [("http-max", "http-max-tls"), ("ws-max", "ws-max-tls")] {
            let (p, t) = (cell(cells, plain, v), cell(cells, tls, v));
            let _ = write!(
                row,
                " {} | {} | {} | {} |",
                rate_text(p),
                rate_text(t),
                fmt_ratio(ratio(tp(t), tp(p))),
                bound(t)
            );
        }
        let _ = writeln!(o, "{row}");
    }
    o.push('\n');
}

/// CPU and syscalls per request at the common rate, and per handshake in the storms.
fn cost(o: &mut String, s: &Summary, cells: &Cells, variants: &[Variant]) {
    let _ = writeln!(
        o,
        "**Cost** (gateway CPU µs per request at cost-low's common rate, plaintext and HTTPS, \
         and what TLS adds; syscalls and context switches per request; accept storms: gateway \
         CPU µs per connection = per handshake, request included):\n"
    );
    let _ = writeln!(
        o,
        "| gateway | CPU µs/req cost-low | cost-low-tls | TLS adds | syscalls/req plain → TLS | cs/req TLS | CPU µs/conn accept-storm | accept-storm-tls (full) | accept-storm-tls-resumed |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|");
    for v in variants {
        let (p, t) = (cell(cells, "cost-low", v), cell(cells, "cost-low-tls", v));
        let cpr = |c: Option<&Cell>| c.and_then(|c| median(c.cpu_us_per_req.as_ref()));
        let sys = |c: Option<&Cell>| c.and_then(|c| median(c.syscalls_per_req.as_ref()));
        let cs = t.and_then(|c| {
            Some(
                median(c.voluntary_cs_per_req.as_ref())?
                    + median(c.involuntary_cs_per_req.as_ref())?,
            )
        });
        let adds = cpr(t).zip(cpr(p)).map(|(a, b)| a - b);
        let storm = |id: &str| num(cpu_per_conn(s, id, v), 0);
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} → {} | {} | {} | {} | {} |",
            v.name(),
            num(cpr(p), 1),
            num(cpr(t), 1),
            opt(adds, |x| format!("{x:+.1}")),
            num(sys(p), 2),
            num(sys(t), 2),
            num(cs, 2),
            storm("accept-storm"),
            storm("accept-storm-tls"),
            storm("accept-storm-tls-resumed"),
        );
    }
    o.push('\n');
}

fn rounds<'a>(s: &'a Summary, id: &str, v: &Variant) -> Vec<&'a RunRecord> {
    s.runs
        .iter()
        .filter(|r| r.phase == Phase::Round && r.scenario == id && r.variant == v.name())
        .collect()
}

/// Median over the rounds of the gateway's CPU µs per connection the client opened in
/// the measured phase (per TLS handshake completed, when the run speaks TLS).
fn cpu_per_conn(s: &Summary, id: &str, v: &Variant) -> Option<f64> {
    let per: Vec<f64> = rounds(s, id, v)
        .iter()
        .filter_map(|r| {
            let res = r.result.as_ref()?;
            let cpu = res.target_cost.as_ref()?.cpu_s;
            let n = match &res.tls {
                Some(t) => t.full + t.resumed,
                None => res.totals.connects,
            };
            (n > 0).then(|| cpu * 1e6 / n as f64)
        })
        .collect();
    Spread::of(&per).map(|x| x.median)
}

/// Handshakes counted and their latency, per TLS cell and gateway.
fn handshakes(o: &mut String, s: &Summary, tls: &[&Scenario], variants: &[Variant]) {
    let _ = writeln!(
        o,
        "**Handshakes** (client side, measured phases of all rounds: completed full / resumed \
         / failed; latency from the TCP connect to the handshake's end; keep-alive cells open \
         their connections in the warmup, so their handshakes show only for reconnects):\n"
    );
    let _ = writeln!(
        o,
        "| cell | gateway | full | resumed | failed | p50 | p99 |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|");
    for sc in tls {
        for v in variants {
            let runs = rounds(s, &sc.id, v);
            let (mut full, mut resumed, mut failed) = (0, 0, 0);
            let mut h = new_hist();
            for t in runs.iter().filter_map(|r| r.result.as_ref()?.tls.as_ref()) {
                full += t.full;
                resumed += t.resumed;
                failed += t.failed;
                if let Ok(x) = t.handshake_latency.histogram() {
                    merge(&mut h, &x);
                }
            }
            if runs.is_empty() {
                continue;
            }
            let lat = (!h.is_empty()).then(|| HistSummary::of(&h));
            let _ = writeln!(
                o,
                "| {} | {} | {full} | {resumed} | {failed} | {} | {} |",
                sc.id,
                v.name(),
                opt(lat.as_ref(), |l| fmt_us(l.p50_us)),
                opt(lat.as_ref(), |l| fmt_us(l.p99_us)),
            );
        }
    }
    o.push('\n');
}
