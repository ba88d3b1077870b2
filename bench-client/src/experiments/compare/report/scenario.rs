//! One section per scenario: the table its kind of load calls for — a maximum with its
//! saturation search, an open loop at a given rate, a memory scenario — or the scale
//! tables of [`scale`](super::scale).

use std::fmt::Write as _;

use super::super::plan::{Offer, Scenario, Sink};
use super::super::summary::Summary;
use super::common::{cell, failed, notes, offer_of, opt, per_req, tp_text, variants_of, Cells};
use super::scale::{many_table, storm_table};
use crate::reporting::format::{fmt_rate, fmt_ratio, fmt_spread, fmt_us, kib, md, ratio, Spread};

/// `## <id>: <title>` and its table.
pub(super) fn section(
    o: &mut String,
    s: &Summary,
    sc: &Scenario,
    cells: &Cells,
    producer: Option<Spread>,
) {
    let _ = writeln!(o, "## {}: {}\n", sc.id, sc.title);
    match offer_of(sc) {
        Some(Offer::Search { .. }) => {
            search_table(o, s, sc, cells, producer);
            search_ladders(o, s, sc);
        }
        Some(Offer::OwnMax { .. }) | Some(Offer::Common { .. }) => open_loop_table(o, s, sc, cells),
        Some(Offer::Storm { .. }) => {
            let _ = writeln!(o, "{}", storm_table(s, sc, cells));
        }
        Some(Offer::ManyCommon { .. }) | Some(Offer::PerConnection { .. }) => {
            let _ = writeln!(o, "{}", many_table(s, sc, cells));
        }
        None => idle_table(o, s, sc, cells),
    }
    let _ = writeln!(o);
}

/// A maximum: its figures at the point the search found, per variant.
fn search_table(
    o: &mut String,
    s: &Summary,
    sc: &Scenario,
    cells: &Cells,
    producer: Option<Spread>,
) {
    let kafka = variants_of(s, sc).iter().any(|v| v.sink == Sink::Kafka);
    let _ = writeln!(
        o,
        "| gateway | max ok/s median [min–max] | bound | at | in flight (Little) | p50 | p99 | p99.9 | p99.99 | gw CPU | gw µs/req | syscalls/req | ctx sw/req | of bare producer | errors | notes |"
    );
    let _ = writeln!(
        o,
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for v in variants_of(s, sc) {
        let Some(c) = cell(cells, &sc.id, &v) else {
            continue;
        };
        let _ = write!(o, "| {} |", v.name());
        if let Some(reason) = c.empty_reason() {
            let _ = writeln!(o, " {} |{}", failed(&reason), " |".repeat(14));
            continue;
        }
        let base = cell(cells, &sc.id, &v.baseline());
        let frac = match (v.sink, kafka, c.throughput, producer) {
            (Sink::Kafka, true, Some(t), Some(p)) => {
                format!("{:.2}", t.median / p.median)
            }
            _ => "–".into(),
        };
        let _ = writeln!(
            o,
            " {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {frac} | {} | {} |",
            tp_text(c, base, &v),
            c.bound_text(),
            opt(c.step, |st| st.to_string()),
            opt(c.little, |l| format!("{:.0}", l.median)),
            opt(c.latency.as_ref(), |l| fmt_us(l.p50_us)),
            opt(c.latency.as_ref(), |l| fmt_us(l.p99_us)),
            opt(c.latency.as_ref(), |l| fmt_us(l.p999_us)),
            opt(c.latency.as_ref(), |l| fmt_us(l.p9999_us)),
            opt(c.gateway_cores, |x| format!("{:.0}%", x.median * 100.0)),
            per_req(&c.cpu_us_per_req, 1),
            per_req(&c.syscalls_per_req, 2),
            opt(
                c.voluntary_cs_per_req.zip(c.involuntary_cs_per_req),
                |(a, b)| format!("{:.2}", a.median + b.median)
            ),
            c.client_errors,
            notes(c)
        );
    }
}

/// Each variant's saturation search, step by step, and the charts.
fn search_ladders(o: &mut String, s: &Summary, sc: &Scenario) {
    let _ = writeln!(o, "\nSaturation search (ok/s and binding constraint at each step of offered concurrency, connections × depth):\n");
    for v in variants_of(s, sc) {
        let steps = s.search_steps(&sc.id, &v.name());
        let txt: Vec<String> = steps
            .iter()
            .map(|r| {
                let st = opt(r.step, |x| x.to_string());
                match (&r.result, &r.error) {
                    (_, Some(e)) => format!(
                        "{st}: failed ({})",
                        md(e.lines().next().unwrap_or_default())
                    ),
                    (Some(x), None) => format!(
                        "{st}: {} ({}, p99 {})",
                        fmt_rate(x.totals.ok_per_sec),
                        x.binding.bound,
                        fmt_us(x.latency.p99_us)
                    ),
                    (None, None) => format!("{st}: –"),
                }
            })
            .collect();
        let best = s.search_max(&sc.id, &v.name());
        let _ = writeln!(
            o,
            "- **{}**: {} → maximum {}",
            v.name(),
            if txt.is_empty() {
                "not run".to_string()
            } else {
                txt.join(" → ")
            },
            opt(best, |b| format!(
                "{} at {}",
                fmt_rate(b.ok_per_sec),
                b.step
            ))
        );
    }
    let _ = writeln!(
        o,
        "\n![saturation search](saturation-{id}.svg)\n\n![throughput over time](throughput-{id}.svg) ![latency percentiles](latency-{id}.svg)",
        id = sc.id
    );
}

/// An open loop at a rate (the variant's own maximum's fraction, or common to all).
fn open_loop_table(o: &mut String, s: &Summary, sc: &Scenario, cells: &Cells) {
    let common = matches!(offer_of(sc), Some(Offer::Common { .. }));
    let _ = writeln!(
        o,
        "| gateway | target rate | sent/target | ok/s | bound | p50 | p99 | p99.9 | p99.99 | p99 uncorrected | censored | gw CPU | gw µs/req | io / poll / librdkafka µs | syscalls/req | voluntary / involuntary cs/req | errors | notes |"
    );
    let _ = writeln!(
        o,
        "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for v in variants_of(s, sc) {
        let Some(c) = cell(cells, &sc.id, &v) else {
            continue;
        };
        let _ = write!(o, "| {} |", v.name());
        if let Some(reason) = c.empty_reason() {
            let _ = writeln!(o, " {} |{}", failed(&reason), " |".repeat(16));
            continue;
        }
        let class = |k: &str| opt(c.cpu_us_by_class.get(k), |x| format!("{:.1}", x.median));
        let _ = writeln!(
            o,
            " {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} / {} | {} | {} | {} | {} |",
            opt(c.rate, |r| fmt_rate(r.median)),
            opt(c.rate_achieved, |r| format!("{:.1}%", r.median * 100.0)),
            opt(c.throughput, |t| fmt_rate(t.median)),
            c.bound_text(),
            opt(c.latency.as_ref(), |l| fmt_us(l.p50_us)),
            opt(c.latency.as_ref(), |l| fmt_us(l.p99_us)),
            opt(c.latency.as_ref(), |l| fmt_us(l.p999_us)),
            opt(c.latency.as_ref(), |l| fmt_us(l.p9999_us)),
            opt(c.latency_uncorrected.as_ref(), |l| fmt_us(l.p99_us)),
            c.censored,
            opt(c.gateway_cores, |x| format!("{:.0}%", x.median * 100.0)),
            per_req(&c.cpu_us_per_req, 1),
            class("io"),
            class("poll"),
            class("librdkafka"),
            per_req(&c.syscalls_per_req, 2),
            opt(c.voluntary_cs_per_req.zip(c.involuntary_cs_per_req), |(a, b)| format!("{:.2} / {:.2}", a.median, b.median)),
            c.client_errors,
            notes(c)
        );
    }
    if let Some(r) = s
        .runs
        .iter()
        .find(|r| r.scenario == sc.id && r.rate_from.is_some())
    {
        let _ = writeln!(
            o,
            "\nRate: {}{}.",
            r.rate_from.as_deref().unwrap_or_default(),
            if common {
                " — the same for every variant"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(
        o,
        "\n![throughput over time](throughput-{id}.svg) ![latency percentiles](latency-{id}.svg)",
        id = sc.id
    );
}

/// A memory scenario: bytes per idle connection.
fn idle_table(o: &mut String, s: &Summary, sc: &Scenario, cells: &Cells) {
    let _ = writeln!(
        o,
        "| gateway | per connection median [min–max] | vs tokio-multi | open | RSS before | RSS after | errors | notes |"
    );
    let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|---:|---|");
    for v in variants_of(s, sc) {
        let Some(c) = cell(cells, &sc.id, &v) else {
            continue;
        };
        let _ = write!(o, "| {} |", v.name());
        if let Some(reason) = c.empty_reason() {
            let _ = writeln!(o, " {} |{}", failed(&reason), " |".repeat(6));
            continue;
        }
        let base = cell(cells, &sc.id, &v.baseline());
        let b = c.bytes_per_conn.map(|x| x.median);
        let _ = writeln!(
            o,
            " {} | {} | {} | {} | {} | {} | {} |",
            opt(c.bytes_per_conn.as_ref(), |x| fmt_spread(x, kib)),
            fmt_ratio(ratio(
                b,
                base.and_then(|b| b.bytes_per_conn.map(|x| x.median))
            )),
            opt(c.idle_open, |x| format!("{:.0}", x.median)),
            opt(c.idle_rss_before_kib, |x| format!(
                "{:.1} MiB",
                x.median / 1024.0
            )),
            opt(c.idle_rss_after_kib, |x| format!(
                "{:.1} MiB",
                x.median / 1024.0
            )),
            c.client_errors,
            notes(c)
        );
    }
}
