//! The scale scenarios' tables: many connections (memory per connection, net of the
//! 64-connection twin) and the accept storm (accept rate, connect latency, each runtime's
//! accept style read from its `gateway_info` line).

use std::fmt::Write as _;

use super::super::cell::Cell;
use super::super::plan::{Scenario, Shape, HTTP_MANY_TWIN};
use super::super::summary::Summary;
use super::common::{c_step, failed, notes, opt, per_req, variants_of, Cells};
use crate::reporting::format::{fmt_rate, fmt_spread, fmt_us, kib};

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
pub(super) fn many_table(s: &Summary, sc: &Scenario, cells: &Cells) -> String {
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
            super::super::plan::SCALE_CONNECT_RATE,
            match &sc.shape {
                Shape::Load { offer, .. } => offer.warmup_s(s.plan.warmup_s),
                Shape::Idle { .. } => s.plan.warmup_s,
            },
            super::super::plan::SCALE_SOURCE_IPS,
        );
    }
    if let Some(twin) = s
        .plan
        .scenarios
        .iter()
        .find(|t| t.id == HTTP_MANY_TWIN && t.id != sc.id)
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
pub(super) fn storm_table(s: &Summary, sc: &Scenario, cells: &Cells) -> String {
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
        super::super::plan::SCALE_SOURCE_IPS,
    );
    let _ = writeln!(
        o,
        "\n![throughput over time](throughput-{id}.svg) ![latency percentiles](latency-{id}.svg)",
        id = sc.id
    );
    o
}
