//! `report.md` of a comparison from a `summary.json` alone, so `bench-client report DIR`
//! re-renders what `compare` wrote: [`markdown`], over the per-cell figures of
//! [`super::cell`]. Ratios divide a variant's median by tokio-multi's median (same sink)
//! from the same run. A cell without figures shows the error that emptied it.
//!
//! Reads the [`Summary`] types and the [`plan`](super::plan) only: must not depend on the
//! compare run logic (`compare/mod.rs`) nor on the charts.

use std::fmt::Write as _;

use super::cell::{cells, producer_rate, Cell};
use super::plan::{Offer, Scenario, Shape, Sink, Variant};
use super::summary::{Phase, Summary};
use crate::engine::analysis::bound::Bound;
use crate::reporting::format::{
    fmt_rate, fmt_ratio, fmt_spread, fmt_us, kib, md, overlap, ratio, Spread,
};

fn failed(reason: &str) -> String {
    format!("**FAILED**: {}", md(reason))
}

fn variants_of(s: &Summary, sc: &Scenario) -> Vec<Variant> {
    s.plan
        .variants_for(sc)
        .into_iter()
        .map(|i| s.plan.variants[i])
        .collect()
}

fn offer_of(sc: &Scenario) -> Option<&Offer> {
    match &sc.shape {
        Shape::Load { offer, .. } => Some(offer),
        Shape::Idle { .. } => None,
    }
}

fn is_search(sc: &Scenario) -> bool {
    matches!(offer_of(sc), Some(Offer::Search { .. }))
}

fn opt<T>(x: Option<T>, f: impl Fn(T) -> String) -> String {
    x.map_or_else(|| "–".to_string(), f)
}

fn per_req(x: &Option<Spread>, digits: usize) -> String {
    opt(x.as_ref(), |s| format!("{:.*}", digits, s.median))
}

/// `94.1k [92.0k–95.2k]`, plus ` ≈` when the range overlaps the baseline's.
fn tp_text(c: &Cell, base: Option<&Cell>, v: &Variant) -> String {
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
fn max_text(c: &Cell, base: Option<&Cell>, v: &Variant) -> String {
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

/// The whole `report.md`.
pub fn markdown(s: &Summary) -> String {
    let cells = cells(s);
    let cell = |sc: &str, v: &Variant| cells.get(&(sc.to_string(), v.name()));
    let m = &s.manifest;
    let mut o = String::new();
    let host = m.machine.hostname.as_deref().unwrap_or("?");
    let _ = writeln!(
        o,
        "# Gateway comparison: {} on {host} ({} CPU)\n",
        m.started_at, m.machine.cpu_count
    );
    let _ = writeln!(
        o,
        "Written by `bench-client compare`; `bench-client report DIR` re-renders this file and the \
         charts from `summary.json`, which holds every run's full result and manifest.\n"
    );
    let producer = producer_rate(s);

    // ---- headline
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
            let txt = match (variants_of(s, sc).contains(v), cell(&sc.id, v)) {
                (true, Some(c)) => max_text(c, cell(&sc.id, &v.baseline()), v),
                _ => String::new(),
            };
            let _ = write!(o, " {txt} |");
        }
        if let Some(sc) = cost {
            match cell(&sc.id, v).filter(|_| variants_of(s, sc).contains(v)) {
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
            let txt = match cell(&sc.id, v).filter(|_| variants_of(s, sc).contains(v)) {
                Some(c) => opt(c.latency.as_ref(), |l| fmt_us(l.p99_us)),
                None => String::new(),
            };
            let _ = write!(o, " {txt} |");
        }
        for sc in &idle {
            let txt = match cell(&sc.id, v).filter(|_| variants_of(s, sc).contains(v)) {
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

    // ---- method
    let _ = writeln!(o, "## Machine and method\n");
    let mm = &m.machine;
    let _ = writeln!(
        o,
        "- commit `{}`{}; kernel {}",
        mm.commit.as_deref().unwrap_or("unknown"),
        mm.dirty_note(),
        mm.kernel.as_deref().unwrap_or("unknown")
    );
    let _ = writeln!(
        o,
        "- CPU: {} × {}",
        mm.cpu_count,
        mm.cpu_model.as_deref().unwrap_or("unknown")
    );
    if let Some(line) = steal_line(s) {
        let _ = writeln!(o, "{line}");
    }
    let _ = writeln!(
        o,
        "- pinning: {}; gateway `--threads {}`, client {} thread(s){}",
        m.pinning.description,
        m.gateway_threads,
        m.client_threads,
        if m.client_procs > 1 {
            format!(
                " in {} pinned client processes per run, merged (`--client-procs {}`)",
                m.client_procs, m.client_procs
            )
        } else {
            String::new()
        }
    );
    let _ = writeln!(o, "- Kafka: `{}` (bootstrap {})", m.kafka, m.bootstrap);
    let _ = writeln!(
        o,
        "- every gateway: `{}` plus `--listen 127.0.0.1:0 --sink kafka|null` and its runtime flag",
        m.gateway_args.join(" ")
    );
    if let Some(p) = &m.producer_config {
        let _ = writeln!(o, "- producer (as logged by the gateway): `{}`", md(p));
    }
    if !m.producer_overrides.is_empty() {
        let _ = writeln!(o, "- `-X` overrides: `{}`", m.producer_overrides.join(" "));
    }
    let _ = writeln!(
        o,
        "- search: every maximum climbs a ladder of offered concurrency (connections, then pipeline \
         depth or WebSocket window at the best connection count) with one gateway process, \
         {} s warmup + {} s per step, until a step adds less than {:.0}% to the best so far",
        s.plan.search_warmup_s,
        s.plan.search_duration_s,
        crate::experiments::compare::plan::MIN_GAIN * 100.0
    );
    let _ = writeln!(
        o,
        "- rounds: {} round(s) of every cell, each round in an order shuffled with seed {} + round \
         (recorded), {} s warmup (excluded) + {} s measured, a fresh gateway process per run, \
         primed with 16 ack=kafka requests once `/readyz` is 200, stopped with SIGTERM (exit \
         status must be 0); memory cells in the first {} round(s)",
        s.plan.repeats,
        s.plan.seed + 1,
        s.plan.warmup_s,
        s.plan.duration_s,
        s.plan.idle_repeats
    );
    let _ = writeln!(
        o,
        "- throughput: median [min–max] over the rounds; latency: the rounds' HdrHistograms merged \
         (open loop: from the intended send time, coordinated omission corrected; requests \
         unanswered at the end are censored into it, never dropped)"
    );
    let _ = writeln!(
        o,
        "- gateway cost: per-thread CPU time (`/proc/PID/task/*/schedstat`), context switches \
         (`/proc/PID/task/*/status`) and system calls (a `raw_syscalls:sys_enter` perf counter per \
         thread) over the measured phase only, divided by the successful requests; threads \
         grouped as I/O (`io-N`, `tokio-worker`), poll (`kafka-poll`), librdkafka (`rdk:*`), other"
    );
    let _ = writeln!(
        o,
        "- started {}, finished {}, {:.0} s wall; command: `{}`\n",
        m.started_at,
        m.finished_at.as_deref().unwrap_or("(interrupted)"),
        m.wall_s,
        mm.args.join(" ")
    );

    // ---- bare producer
    if !s.producer.is_empty() {
        let _ = writeln!(o, "## Bare producer\n");
        let _ = writeln!(
            o,
            "`producer-bench`: the gateways' producer configuration sending 100 B records to the \
             same broker and topic as fast as it can, from one thread pinned to the gateway's CPUs. \
             Each gateway's Kafka maximum is also given as a fraction of it.\n"
        );
        let _ = writeln!(o, "| round | records/s | CPU µs/record | note |");
        let _ = writeln!(o, "|---:|---:|---:|---|");
        for p in &s.producer {
            let _ = writeln!(
                o,
                "| {} | {} | {:.2} | {} |",
                p.round + 1,
                fmt_rate(p.records_per_sec),
                p.cpu_us_per_record,
                p.error.as_deref().map(md).unwrap_or_default()
            );
        }
        let _ = writeln!(o);
    }

    // ---- per scenario
    for sc in &s.plan.scenarios {
        let _ = writeln!(o, "## {}: {}\n", sc.id, sc.title);
        match offer_of(sc) {
            Some(Offer::Search { .. }) => {
                let kafka = variants_of(s, sc).iter().any(|v| v.sink == Sink::Kafka);
                let _ = writeln!(
                    o,
                    "| gateway | max ok/s median [min–max] | bound | at | in flight (Little) | p50 | p99 | p99.9 | p99.99 | gw CPU | gw µs/req | syscalls/req | ctx sw/req | of bare producer | errors | notes |"
                );
                let _ = writeln!(o, "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
                for v in variants_of(s, sc) {
                    let Some(c) = cell(&sc.id, &v) else { continue };
                    let _ = write!(o, "| {} |", v.name());
                    if let Some(reason) = c.empty_reason() {
                        let _ = writeln!(o, " {} |{}", failed(&reason), " |".repeat(14));
                        continue;
                    }
                    let base = cell(&sc.id, &v.baseline());
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
                        opt(c.voluntary_cs_per_req.zip(c.involuntary_cs_per_req), |(a, b)| format!("{:.2}", a.median + b.median)),
                        c.client_errors,
                        notes(c)
                    );
                }
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
            Some(Offer::OwnMax { .. }) | Some(Offer::Common { .. }) => {
                let common = matches!(offer_of(sc), Some(Offer::Common { .. }));
                let _ = writeln!(
                    o,
                    "| gateway | target rate | sent/target | ok/s | bound | p50 | p99 | p99.9 | p99.99 | p99 uncorrected | censored | gw CPU | gw µs/req | io / poll / librdkafka µs | syscalls/req | voluntary / involuntary cs/req | errors | notes |"
                );
                let _ = writeln!(o, "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
                for v in variants_of(s, sc) {
                    let Some(c) = cell(&sc.id, &v) else { continue };
                    let _ = write!(o, "| {} |", v.name());
                    if let Some(reason) = c.empty_reason() {
                        let _ = writeln!(o, " {} |{}", failed(&reason), " |".repeat(16));
                        continue;
                    }
                    let class =
                        |k: &str| opt(c.cpu_us_by_class.get(k), |x| format!("{:.1}", x.median));
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
            Some(Offer::Storm { .. }) => {
                let _ = writeln!(o, "{}", storm_table(s, sc, &cells));
            }
            Some(Offer::ManyCommon { .. }) | Some(Offer::PerConnection { .. }) => {
                let _ = writeln!(o, "{}", many_table(s, sc, &cells));
            }
            None => {
                let _ = writeln!(
                    o,
                    "| gateway | per connection median [min–max] | vs tokio-multi | open | RSS before | RSS after | errors | notes |"
                );
                let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|---:|---|");
                for v in variants_of(s, sc) {
                    let Some(c) = cell(&sc.id, &v) else { continue };
                    let _ = write!(o, "| {} |", v.name());
                    if let Some(reason) = c.empty_reason() {
                        let _ = writeln!(o, " {} |{}", failed(&reason), " |".repeat(6));
                        continue;
                    }
                    let base = cell(&sc.id, &v.baseline());
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
        }
        let _ = writeln!(o);
    }
    // ---- marginal cost and latency vs load
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
            let (Some(a), Some(b)) = (cell(&lo.id, &v), cell(&hi.id, &v)) else {
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
    if !idle.is_empty() {
        let _ = writeln!(o, "![memory per connection](memory.svg)\n");
    }

    peers_section(s, &mut o);

    // ---- errors
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

    // ---- asymmetries
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
    o
}

/// External gateways (`--peer`): one row per HTTP scenario and peer, labelled like every
/// other cell; gateway CPU only where `--peer-pid` was given.
/// The hypervisor's steal per CPU over the runs' measured phases (absent in older files):
/// a figure measured while the host took a share of the CPUs understates what ran there.
fn steal_line(s: &Summary) -> Option<String> {
    let mut per_cpu: std::collections::BTreeMap<usize, Vec<f64>> = Default::default();
    for r in s.runs.iter().filter_map(|r| r.result.as_ref()) {
        for (&cpu, &x) in &r.cpu_steal {
            per_cpu.entry(cpu).or_default().push(x);
        }
    }
    if per_cpu.is_empty() {
        return None;
    }
    let parts: Vec<String> = per_cpu
        .iter()
        .filter_map(|(cpu, v)| {
            let sp = Spread::of(v)?;
            let high = v
                .iter()
                .filter(|&&x| x >= crate::engine::analysis::bound::STEAL)
                .count();
            Some(format!(
                "CPU {cpu} median {:.0}%, max {:.0}%, {high} of {} runs ≥ {:.0}%",
                sp.median * 100.0,
                sp.max * 100.0,
                v.len(),
                crate::engine::analysis::bound::STEAL * 100.0
            ))
        })
        .collect();
    Some(format!(
        "- hypervisor steal over the measured runs: {} (a gateway run with that much on its CPUs is labelled *unknown*)",
        parts.join("; ")
    ))
}

fn peers_section(s: &Summary, o: &mut String) {
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

type Cells = std::collections::BTreeMap<(String, String), Cell>;

/// The value of label `key` in a `gateway_info{k="v",…} 1` line.
pub fn info_label(info: &str, key: &str) -> Option<String> {
    let inner = info.split_once('{')?.1.rsplit_once('}')?.0;
    let mut rest = inner;
    while !rest.is_empty() {
        let (k, after) = rest.split_once("=\"")?;
        let end = after.find('"')?;
        if k.trim_start_matches(',') == key {
            return Some(after[..end].to_string());
        }
        rest = after[end + 1..].trim_start_matches(',');
    }
    None
}

/// How a gateway accepts connections, from its `gateway_info` line: its `accept` label
/// (tokio-uring: one-shot accepts kept in flight; compio: multishot or single-shot), or
/// for tokio, which has none, its readiness (epoll) accept loop.
pub fn accept_style(info: Option<&str>) -> String {
    let Some(info) = info else {
        return "–".into();
    };
    match info_label(info, "accept") {
        Some(a) => match a.as_str() {
            "multishot" => "io_uring multishot accept".into(),
            "single" => "single-shot accept".into(),
            x if x.starts_with("oneshot") => format!("io_uring one-shot accepts ({x})"),
            x => x.to_string(),
        },
        None => match (info_label(info, "runtime"), info_label(info, "driver")) {
            (Some(r), Some(d)) if r == "tokio" && d == "epoll" => "epoll accept loop".into(),
            (Some(r), Some(d)) => format!("{r} ({d}), accept not labelled"),
            _ => "not labelled".into(),
        },
    }
}

/// The table of a many-connections open-loop scenario (http-many and its twin, ws-many).
fn many_table(s: &Summary, sc: &Scenario, cells: &Cells) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "| gateway | connections | target rate | sent/target | ok/s | bound | p50 | p99 | p99.9 | gw CPU | gw µs/req | syscalls/req | RSS with connections open | RSS growth per connection | errors | notes |"
    );
    let _ = writeln!(
        o,
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for v in variants_of(s, sc) {
        let Some(c) = cells.get(&(sc.id.clone(), v.name())) else {
            continue;
        };
        let _ = write!(o, "| {} |", v.name());
        if let Some(reason) = c.empty_reason() {
            let _ = writeln!(o, " {} |{}", failed(&reason), " |".repeat(14));
            continue;
        }
        let _ = writeln!(
            o,
            " {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            opt(c.step, |st| st.connections.to_string()),
            opt(c.rate, |r| fmt_rate(r.median)),
            opt(c.rate_achieved, |r| format!("{:.1}%", r.median * 100.0)),
            opt(c.throughput, |t| fmt_spread(&t, fmt_rate)),
            c.bound_text(),
            opt(c.latency.as_ref(), |l| fmt_us(l.p50_us)),
            opt(c.latency.as_ref(), |l| fmt_us(l.p99_us)),
            opt(c.latency.as_ref(), |l| fmt_us(l.p999_us)),
            opt(c.gateway_cores, |x| format!("{:.0}%", x.median * 100.0)),
            per_req(&c.cpu_us_per_req, 1),
            per_req(&c.syscalls_per_req, 2),
            opt(c.load_rss_kib, |x| format!("{:.1} MiB", x.median / 1024.0)),
            opt(c.load_bytes_per_conn.as_ref(), |x| fmt_spread(x, kib)),
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
            "\nRate: {} — the same for every variant. Connections opened at {:.0}/s during a warmup of {:.1} s from {} (excluded from every figure). RSS growth per connection = (VmRSS at the end of the measured phase, connections open − VmRSS of the fresh gateway before the load) / connections: the connections' memory under load, with whatever else grew (producer queues, allocator); the 64-connection twin shows that remainder.",
            r.rate_from.as_deref().unwrap_or_default(),
            super::plan::SCALE_CONNECT_RATE,
            match &sc.shape {
                Shape::Load { offer, .. } => offer.warmup_s(s.plan.warmup_s),
                Shape::Idle { .. } => s.plan.warmup_s,
            },
            super::plan::SCALE_SOURCE_IPS,
        );
    }
    if let Some(twin) = s
        .plan
        .scenarios
        .iter()
        .find(|t| t.id == super::plan::HTTP_MANY_TWIN && t.id != sc.id)
        .filter(|_| sc.id == "http-many")
    {
        let _ = writeln!(
            o,
            "\nNet of the twin: (RSS with the connections open − the same at {}) / (connections − the twin's), medians: the memory the extra connections cost at the same rate.\n",
            twin.id
        );
        let _ = writeln!(o, "| gateway | net RSS per connection |");
        let _ = writeln!(o, "|---|---:|");
        for v in variants_of(s, sc) {
            let get = |id: &str| cells.get(&(id.to_string(), v.name()));
            let _ = writeln!(
                o,
                "| {} | {} |",
                v.name(),
                opt(net_per_conn(get(&sc.id), get(&twin.id)), kib)
            );
        }
    }
    let _ = writeln!(
        o,
        "\n![throughput over time](throughput-{id}.svg) ![latency percentiles](latency-{id}.svg)",
        id = sc.id
    );
    o
}

/// Bytes per connection of `many` net of `twin` (the same rate over fewer connections):
/// (RSS of many − RSS of twin) / (connections of many − of twin), from medians.
pub fn net_per_conn(many: Option<&Cell>, twin: Option<&Cell>) -> Option<f64> {
    let (m, t) = (many?, twin?);
    let (rm, rt) = (m.load_rss_kib?.median, t.load_rss_kib?.median);
    let (nm, nt) = (m.step?.connections, t.step?.connections);
    (nm > nt).then(|| (rm - rt) * 1024.0 / (nm - nt) as f64)
}

/// The table of the accept storm: connections accepted and served per second, connect
/// latency, and each runtime's accept style.
fn storm_table(s: &Summary, sc: &Scenario, cells: &Cells) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "| gateway | accept style | connections/s accepted and served | bound | connect p50 | connect p99 | connect p99.9 | request p99 (connect included) | gw CPU | gw µs/connection | syscalls/connection | errors | notes |"
    );
    let _ = writeln!(
        o,
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for v in variants_of(s, sc) {
        let Some(c) = cells.get(&(sc.id.clone(), v.name())) else {
            continue;
        };
        let info = c.gateway_info.clone().or_else(|| {
            s.manifest
                .gateways
                .get(&v.name())
                .and_then(|d| d.info.clone())
        });
        let _ = write!(o, "| {} |", v.name());
        if let Some(reason) = c.empty_reason() {
            let _ = writeln!(
                o,
                " {} | {} |{}",
                accept_style(info.as_deref()),
                failed(&reason),
                " |".repeat(10)
            );
            continue;
        }
        let con = c.connect_latency.as_ref().filter(|l| l.count > 0);
        let _ = writeln!(
            o,
            " {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            accept_style(info.as_deref()),
            opt(c.throughput, |t| fmt_spread(&t, fmt_rate)),
            c.bound_text(),
            opt(con, |l| fmt_us(l.p50_us)),
            opt(con, |l| fmt_us(l.p99_us)),
            opt(con, |l| fmt_us(l.p999_us)),
            opt(c.latency.as_ref(), |l| fmt_us(l.p99_us)),
            opt(c.gateway_cores, |x| format!("{:.0}%", x.median * 100.0)),
            per_req(&c.cpu_us_per_req, 1),
            per_req(&c.syscalls_per_req, 2),
            c.client_errors,
            notes(c)
        );
    }
    let _ = writeln!(
        o,
        "\nEach connector connects, sends one request, reads the answer and closes (the client closes first, so TIME_WAIT stays on the client), at {} connectors in a closed loop from {}: connections/s is what the gateway accepted and answered. Connect latency is the client's connect() (SYN to established: the kernel's handshake and the listen backlog, before the gateway's accept); request latency runs from the start of the connect to the answer.",
        opt(c_step(s, sc), |n| n.to_string()),
        super::plan::SCALE_SOURCE_IPS,
    );
    let _ = writeln!(
        o,
        "\n![throughput over time](throughput-{id}.svg) ![latency percentiles](latency-{id}.svg)",
        id = sc.id
    );
    o
}

fn c_step(_s: &Summary, sc: &Scenario) -> Option<usize> {
    match &sc.shape {
        Shape::Load { offer, .. } => offer.fixed_connections(),
        Shape::Idle { .. } => None,
    }
}

fn notes(c: &Cell) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::BTreeMap;

    use super::super::plan::Step;
    use super::super::summary::RunRecord;
    use crate::engine::analysis::self_check::SelfCheck;
    use crate::engine::analysis::stats::record_ns;
    use crate::engine::analysis::stats::{new_hist, HistSummary};
    use crate::engine::analysis::timeline::Timeline;
    use crate::engine::probes::manifest::Manifest;
    use crate::engine::result::{RunResult, Totals};
    use crate::engine::RunConfig;
    use crate::experiments::compare::plan::{self, Selection};
    use crate::experiments::compare::summary::{CompareManifest, GatewayDesc, GatewayStats};
    use crate::experiments::idle::IdleResult;
    use crate::lab::GatewayKind;
    use crate::lab::Pinning;

    fn result(ok_per_sec: f64, lat_ms: u64) -> RunResult {
        let mut h = new_hist();
        for i in 0..1000 {
            record_ns(&mut h, lat_ms * 1_000_000 + i * 1000);
        }
        let mut timeline = Timeline::default().per_second(0, 2_000_000_000, 1);
        for t in &mut timeline {
            t.ok = ok_per_sec as u64;
        }
        RunResult {
            schema_version: 1,
            run_id: "0123456789".into(),
            started_at_unix_ms: 0,
            config: RunConfig::new("http://127.0.0.1:1").unwrap(),
            manifest: Manifest::collect(),
            open_loop: false,
            interrupted: false,
            measured_s: 2.0,
            totals: Totals {
                sent: 2 * ok_per_sec as u64,
                completed: 2 * ok_per_sec as u64,
                ok: 2 * ok_per_sec as u64,
                backpressure: 0,
                errors: 0,
                in_flight_at_end: 0,
                censored: 0,
                connects: 4,
                connect_errors: 0,
                ok_per_sec,
                ok_bytes_per_sec: 0.0,
                completed_per_sec: ok_per_sec,
                sent_per_sec: ok_per_sec,
            },
            latency: HistSummary::of(&h),
            latency_uncorrected: None,
            connect_latency: HistSummary::of(&new_hist()),
            tls: None,
            errors: vec![],
            http_status: BTreeMap::new(),
            timeline,
            stalls: vec![],
            server_accept_queue: None,
            self_check: SelfCheck {
                threads: 1,
                cpu_seconds: 0.5,
                cpu_util: 0.25,
                schedule_lag: None,
                runtime_lag: HistSummary::of(&new_hist()),
                rate_achieved: None,
                generator_bound: false,
                reasons: vec![],
            },
            latency_backpressure: None,
            little_in_flight: 0.0,
            window: None,
            target_cost: None,
            broker_cost: None,
            cpu_busy: BTreeMap::new(),
            cpu_steal: BTreeMap::new(),
            binding: crate::engine::analysis::bound::Binding {
                bound: crate::engine::analysis::bound::Bound::Unknown,
                reasons: vec![],
            },
            acked: 0,
            measured_start_unix_ms: 0.0,
            acked_ids: vec![],
            intervals: vec![],
        }
    }

    /// Every slot of the quick matrix filled, except compio/null http-max (failed).
    pub(crate) fn synthetic() -> Summary {
        let plan = plan::plan(&Selection {
            gateways: GatewayKind::ALL.to_vec(),
            sinks: vec![Sink::Kafka, Sink::Null],
            scenarios: vec![],
            quick: true,
            repeats: Some(3),
            warmup_s: None,
            duration_s: None,
            idle_conns: 100,
            seed: 7,
        })
        .unwrap();
        let mut runs = Vec::new();
        // The search: two steps per ladder, the second better (and the maximum).
        for (si, vi) in plan.search_slots() {
            let v = plan.variants[vi];
            let sc = &plan.scenarios[si];
            let k = (vi + 1) as f64;
            for (i, conns) in [64usize, 256].into_iter().enumerate() {
                runs.push(RunRecord {
                    phase: Phase::Search,
                    round: 0,
                    scenario: sc.id.clone(),
                    variant: v.name(),
                    step: Some(Step {
                        connections: conns,
                        depth: 1,
                    }),
                    rate: None,
                    rate_from: None,
                    result: Some(result(10_000.0 * k * (i + 1) as f64, k as u64)),
                    idle: None,
                    memory: None,
                    gateway: None,
                    gateway_info: None,
                    gateway_version: None,
                    error: None,
                    wall_s: 1.0,
                });
            }
        }
        for sl in plan.slots() {
            let v = plan.variants[sl.variant];
            let sc = &plan.scenarios[sl.scenario];
            let mut r = RunRecord {
                phase: Phase::Round,
                step: None,
                round: sl.round,
                scenario: sc.id.clone(),
                variant: v.name(),
                rate: None,
                rate_from: None,
                result: None,
                idle: None,
                memory: None,
                gateway: Some(GatewayStats {
                    pid: 1,
                    cpu_s: Some(1.0),
                    rss_kib: Some(10_000),
                    hwm_kib: Some(12_000),
                    wall_s: 2.0,
                }),
                gateway_info: Some("gateway_info{runtime=\"x\"} 1".into()),
                gateway_version: Some("gateway-x 0.1.0".into()),
                error: None,
                wall_s: 3.0,
            };
            let k = (sl.variant + 1) as f64;
            match sc.shape {
                Shape::Load { .. } => {
                    if v.gateway == GatewayKind::Compio
                        && v.sink == Sink::Null
                        && sc.id == "http-max"
                    {
                        r.error = Some("gateway exited with exit status: 1 after SIGTERM".into());
                    } else {
                        let mut res = result(10_000.0 * k + sl.round as f64 * 100.0, k as u64);
                        res.binding.bound = crate::engine::analysis::bound::Bound::Gateway;
                        res.target_cost = Some(crate::engine::probes::cost::ProcessCost {
                            pid: 1,
                            wall_s: 2.0,
                            cpu_s: 1.0,
                            voluntary_cs: 100,
                            involuntary_cs: 10,
                            syscalls: Some(1000),
                            by_class: BTreeMap::new(),
                            rss_kib: Some(20_000),
                        });
                        r.result = Some(res);
                        if !matches!(
                            sc.shape,
                            Shape::Load {
                                offer: Offer::Search { .. },
                                ..
                            }
                        ) {
                            r.rate = Some(5000.0);
                        }
                        r.step = Some(Step {
                            connections: 256,
                            depth: 1,
                        });
                    }
                }
                Shape::Idle { ws, connections } => {
                    r.idle = Some(IdleResult {
                        ws,
                        requested: connections,
                        open: connections,
                        answered: connections,
                        rss_before_kib: 10_000,
                        rss_after_kib: 10_000 + 10 * connections as u64 * k as u64,
                        bytes_per_conn: 10.0 * 1024.0 * k,
                        setup_s: 0.1,
                        errors: BTreeMap::new(),
                    })
                }
            }
            runs.push(r);
        }
        let gateways = plan
            .variants
            .iter()
            .map(|v| {
                (
                    v.name(),
                    GatewayDesc {
                        binary: v.gateway.bin().into(),
                        version: format!("{} 0.1.0\nasymmetries: test", v.gateway.bin()),
                        info: Some("gateway_info{runtime=\"x\"} 1".into()),
                        command: vec![v.gateway.bin().into()],
                    },
                )
            })
            .collect();
        Summary {
            summary_version: crate::experiments::compare::SUMMARY_VERSION,
            manifest: CompareManifest {
                started_at: "2026-01-01 00:00:00 UTC".into(),
                finished_at: None,
                wall_s: 1.0,
                machine: Manifest::collect(),
                pinning: Pinning::parse("auto", 2).unwrap(),
                gateway_threads: 1,
                client_threads: 1,
                client_procs: 1,
                gateway_args: vec!["--threads".into(), "1".into()],
                kafka: "kafka-mock".into(),
                bootstrap: "127.0.0.1:9092".into(),
                producer_overrides: vec![],
                producer_config: Some("producer configuration conf=[]".into()),
                topic: "bench".into(),
                gateways,
                client_nofile: 1024,
            },
            plan,
            runs,
            producer: vec![],
            peers: vec![],
        }
    }

    #[test]
    fn external_peers_get_their_own_labelled_rows() {
        let mut s = synthetic();
        let peer = super::super::summary::PeerDesc {
            name: "node".into(),
            url: "http://127.0.0.1:8090".into(),
            pid: None,
            format: crate::engine::config::Format::RestV2Json,
        };
        let mut extra: Vec<_> = s
            .runs
            .iter()
            .filter(|r| {
                r.phase == Phase::Round && r.variant == "tokio-multi" && r.scenario == "http-max"
            })
            .cloned()
            .collect();
        assert!(!extra.is_empty());
        for r in &mut extra {
            r.variant = peer.variant();
        }
        s.runs.extend(extra);
        s.peers.push(peer);
        let md = markdown(&s);
        let at = md.find("## External peers").expect("a peers section");
        let section = &md[at..];
        assert!(
            section.contains("| http-max | node (external) |"),
            "{section}"
        );
        assert!(section.contains("not measured"), "{section}");
        // Peers never enter the gateways' own cells.
        assert!(!cells(&s).keys().any(|(_, v)| v.contains("external")));
    }

    #[test]
    fn accept_style_from_gateway_info() {
        let tokio = "gateway_info{runtime=\"tokio\",version=\"0.1.0\",threads=\"1\",flavor=\"multi\",driver=\"epoll\"} 1";
        let uring = "gateway_info{runtime=\"tokio-uring\",driver=\"io_uring\",accept=\"oneshot x16\",reads=\"owned 4 KiB per connection\"} 1";
        let compio = "gateway_info{runtime=\"compio\",driver=\"io_uring\",accept=\"multishot\",asymmetries=\"multishot-accept(io_uring>=5.19;single-shot on polling/older kernels),x\"} 1";
        assert_eq!(info_label(uring, "accept").as_deref(), Some("oneshot x16"));
        assert_eq!(
            info_label(uring, "reads").as_deref(),
            Some("owned 4 KiB per connection")
        );
        assert_eq!(info_label(tokio, "accept"), None);
        assert_eq!(info_label("garbage", "accept"), None);
        assert_eq!(accept_style(Some(tokio)), "epoll accept loop");
        assert_eq!(
            accept_style(Some(uring)),
            "io_uring one-shot accepts (oneshot x16)"
        );
        assert_eq!(accept_style(Some(compio)), "io_uring multishot accept");
        assert_eq!(
            accept_style(Some(
                "gateway_info{runtime=\"compio\",driver=\"polling\",accept=\"single\"} 1"
            )),
            "single-shot accept"
        );
        assert_eq!(accept_style(None), "–");
    }

    #[test]
    fn scale_tables_show_memory_per_connection_and_accept_rate() {
        let mut s = synthetic();
        // http-many at 256 connections holds 4 MiB more than its twin at 64.
        for r in s.runs.iter_mut().filter(|r| r.phase == Phase::Round) {
            let (conns, rss) = match r.scenario.as_str() {
                "http-many" => (256, 14_096),
                "http-many-64" => (64, 10_000),
                _ => continue,
            };
            r.step = Some(Step {
                connections: conns,
                depth: 1,
            });
            r.memory = super::super::summary::LoadMemory::of(Some(9_000), Some(rss), conns);
        }
        let c = cells(&s);
        let get = |id: &str| c.get(&(id.to_string(), "tokio-multi".to_string()));
        let net = net_per_conn(get("http-many"), get("http-many-64")).unwrap();
        assert!((net - 4096.0 * 1024.0 / 192.0).abs() < 1e-6, "{net}");
        let md = markdown(&s);
        let many = md
            .split("## http-many: ")
            .nth(1)
            .unwrap()
            .split("\n## ")
            .next()
            .unwrap();
        // (14096 - 9000) KiB over 256 connections.
        assert!(many.contains("| 13.8 MiB | 19.9 KiB |"), "{many}");
        assert!(many.contains("| tokio-multi | 21.3 KiB |"), "{many}");
        let storm = md
            .split("## accept-storm: ")
            .nth(1)
            .unwrap()
            .split("\n## ")
            .next()
            .unwrap();
        assert!(
            storm.contains("connections/s accepted and served"),
            "{storm}"
        );
        assert!(
            storm.contains("| tokio-multi | not labelled | 10."),
            "{storm}"
        );
        // Memory lands in summary.json.
        let json = serde_json::to_string(&s).unwrap();
        assert!(
            json.contains("\"bytes_per_conn\":20384.0"),
            "memory in summary.json"
        );
    }

    #[test]
    fn cells_aggregate_repeats() {
        let s = synthetic();
        let c = cells(&s);
        let v = s.plan.variants[1].name();
        let cell = &c[&("http-max".to_string(), v)];
        assert_eq!(cell.measured, 3);
        let t = cell.throughput.unwrap();
        assert_eq!((t.min, t.median, t.max), (20_000.0, 20_100.0, 20_200.0));
        // Merged, not averaged: all 3000 samples.
        assert_eq!(cell.latency.as_ref().unwrap().count, 3000);
        let failed = &c[&("http-max".to_string(), "compio/null".to_string())];
        assert!(failed.empty_reason().unwrap().contains("exit status: 1"));
    }

    #[test]
    fn report_has_every_cell_and_valid_charts() {
        let s = synthetic();
        let md = markdown(&s);
        for sc in &s.plan.scenarios {
            let section = md
                .split(&format!("## {}: ", sc.id))
                .nth(1)
                .unwrap_or_else(|| panic!("no section for {}", sc.id));
            let section = section.split("\n## ").next().unwrap();
            for &vi in &s.plan.variants_for(sc) {
                let name = s.plan.variants[vi].name();
                let row = section
                    .lines()
                    .find(|l| l.starts_with(&format!("| {name} |")))
                    .unwrap_or_else(|| panic!("no row {name} in {}", sc.id));
                // Filled: a figure, or the error that emptied it.
                let first = row.split('|').nth(2).unwrap().trim();
                assert!(!first.is_empty() && first != "–", "{row}");
                let cols = row.matches(" |").count();
                let header = section
                    .lines()
                    .find(|l| l.starts_with("| gateway |"))
                    .unwrap();
                assert_eq!(cols, header.matches(" |").count(), "{row}");
            }
        }
        assert!(md.contains("**FAILED**: round 1: gateway exited with exit status: 1"));
        assert!(md.contains("asymmetries: test"));
        // (2 × 10000 + 100) / (10000 + 100) of tokio-multi's throughput, labelled.
        assert!(
            md.contains("20.1k [20.0k–20.2k] (1.99×) *(gateway)*"),
            "{md}"
        );
        // The search is reported step by step with its maximum.
        assert!(
            md.contains("- **tokio-per-core**: 64x1: 20.0k (unknown, p99 2.99 ms) → 256x1: 40.0k"),
            "{md}"
        );

        let dir = std::env::temp_dir().join(format!("compare-report-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        s.write(&dir).unwrap();
        super::super::report_dir(&dir).unwrap();
        assert_eq!(Summary::read(&dir).unwrap(), s);
        assert!(std::fs::read_to_string(dir.join("report.md")).unwrap() == md);
        let mut svgs = vec!["memory.svg".to_string()];
        for sc in &s.plan.scenarios {
            if matches!(sc.shape, Shape::Load { .. }) {
                svgs.push(format!("throughput-{}.svg", sc.id));
                svgs.push(format!("latency-{}.svg", sc.id));
            }
            if sc.search().is_some() {
                svgs.push(format!("saturation-{}.svg", sc.id));
            }
        }
        svgs.push("latency-vs-load.svg".into());
        for f in svgs {
            let t = std::fs::read_to_string(dir.join(&f)).unwrap();
            assert!(
                t.starts_with("<svg") && t.trim_end().ends_with("</svg>"),
                "{f}"
            );
            assert!(t.contains("tokio-multi"), "{f} has no legend");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
