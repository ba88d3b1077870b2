//! The human summary printed after a run ([`summary`]): the scenario, what came back,
//! how the client fared, what bound the run and why, the stalls. Reads a [`RunResult`] only; the same text for a run
//! just made and for a file read back.

use std::fmt::Write as _;

use crate::engine::analysis::bound::Binding;
use crate::engine::analysis::stats::HistSummary;
use crate::engine::config::{Format, Mode};
use crate::engine::result::RunResult;
use crate::engine::units::human_bytes;

fn ms(us: f64) -> String {
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} us")
    }
}

fn hist_line(h: &HistSummary) -> String {
    format!(
        "p50 {}  p90 {}  p99 {}  p99.9 {}  p99.99 {}  max {}  (n={})",
        ms(h.p50_us),
        ms(h.p90_us),
        ms(h.p99_us),
        ms(h.p999_us),
        ms(h.p9999_us),
        ms(h.max_us),
        h.count
    )
}

/// The human summary printed after a run.
pub fn summary(r: &RunResult) -> String {
    let mut s = String::new();
    scenario(&mut s, r);
    outcome(&mut s, r);
    client(&mut s, r);
    let _ = writeln!(s, "{}", binding_line(&r.binding));
    stalls(&mut s, r);
    if r.config.collect_acks {
        let _ = writeln!(s, "acked      {} ids", r.acked);
    }
    s
}

/// What ran: mode, target, shape, loop, threads, the measured window.
fn scenario(s: &mut String, r: &RunResult) {
    let c = &r.config;
    let shape = match c.mode {
        Mode::Http => {
            format!("{} connections x pipeline {}", c.connections, c.pipeline)
        }
        Mode::HttpClose => {
            format!("{} concurrent connect-per-request", c.connections)
        }
        Mode::Ws => {
            format!("{} connections x window {}", c.connections, c.window)
        }
    };
    let loop_ = match c.rate {
        Some(rate) => format!("open loop at {rate} req/s"),
        None => "closed loop".to_string(),
    };
    let payload = match (&c.body_file, c.payload) {
        (Some(f), p) => format!("payload {} ({})", human_bytes(p.min as f64), f.display()),
        (None, p) if p.min == p.max => format!("payload {}", human_bytes(p.min as f64)),
        (None, p) => format!("payload {}..{} B", p.min, p.max),
    };
    let _ = writeln!(
        s,
        "{} {} ack={} topic={} {payload}",
        c.mode.label(),
        c.target,
        c.ack.as_str(),
        c.topic,
    );
    let _ = writeln!(s, "  {shape}, {loop_}, {} client thread(s)", c.threads);
    let _ = writeln!(
        s,
        "measured {:.2} s after {:.2} s warmup, run id {}{}",
        r.measured_s,
        c.warmup_s,
        r.run_id,
        if r.interrupted {
            " -- INTERRUPTED: figures cover the part that ran"
        } else {
            ""
        }
    );
}

/// What came back: throughput, records, latency, connects, errors, statuses.
fn outcome(s: &mut String, r: &RunResult) {
    let c = &r.config;
    let t = &r.totals;
    let _ = writeln!(
        s,
        "throughput {:.0} ok/s  {}/s   ({} ok, {} sent, {} backpressure, {} errors, {} in flight at end)",
        t.ok_per_sec,
        human_bytes(t.ok_bytes_per_sec),
        t.ok,
        t.sent,
        t.backpressure,
        t.errors,
        t.in_flight_at_end
    );
    if c.format != Format::Raw || c.batch > 1 {
        let _ = writeln!(
            s,
            "records     {:.0} records/s ok   ({:?}, {} records per request)",
            t.ok_per_sec * c.batch as f64,
            c.format,
            c.batch
        );
    }
    let label = if r.open_loop {
        "latency (corrected)   "
    } else {
        "latency    "
    };
    let _ = writeln!(s, "{label}{}", hist_line(&r.latency));
    if let Some(u) = &r.latency_uncorrected {
        let _ = writeln!(s, "latency (uncorrected) {}", hist_line(u));
    }
    if t.connects + t.connect_errors == 0 {
        let _ = writeln!(s, "connect    none in the measured phase");
    } else {
        let _ = writeln!(
            s,
            "connect    {} connects, {} failed; {}",
            t.connects,
            t.connect_errors,
            hist_line(&r.connect_latency)
        );
    }
    if let Some(tls) = &r.tls {
        let _ = writeln!(
            s,
            "tls        {} handshakes: {} full, {} resumed (resumption {}), {} failed; {}",
            tls.full + tls.resumed,
            tls.full,
            tls.resumed,
            if tls.resume { "on" } else { "off" },
            tls.failed,
            hist_line(&tls.handshake_latency)
        );
    }
    if r.errors.is_empty() {
        let _ = writeln!(s, "errors     none");
    } else {
        let list: Vec<String> = r
            .errors
            .iter()
            .map(|e| format!("{} {}: {}", e.phase, e.kind, e.count))
            .collect();
        let _ = writeln!(s, "errors     {}", list.join(", "));
    }
    if !r.http_status.is_empty() {
        let list: Vec<String> = r
            .http_status
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        let _ = writeln!(s, "status     {}", list.join(", "));
    }
}

/// How the client fared: CPU, timer and schedule lag, steal, generator-bound.
fn client(s: &mut String, r: &RunResult) {
    let sc = &r.self_check;
    let _ = write!(
        s,
        "client     cpu {:.0}% of {} thread(s), timer lag p99 {}",
        sc.cpu_util * 100.0,
        sc.threads,
        ms(sc.runtime_lag.p99_us)
    );
    if let Some(l) = &sc.schedule_lag {
        let _ = write!(
            s,
            ", schedule lag p99 {} max {}",
            ms(l.p99_us),
            ms(l.max_us)
        );
    }
    if let Some(a) = sc.rate_achieved {
        let _ = write!(s, ", {:.1}% of target rate sent", a * 100.0);
    }
    let _ = writeln!(s);
    if r.cpu_steal.values().any(|&x| x >= 0.01) {
        let list: Vec<String> = r
            .cpu_steal
            .iter()
            .map(|(cpu, x)| format!("cpu{cpu} {:.0}%", x * 100.0))
            .collect();
        let _ = writeln!(
            s,
            "steal      {} (the hypervisor's share of each CPU over the run)",
            list.join(", ")
        );
    }
    if sc.generator_bound {
        let _ = writeln!(s, "GENERATOR-BOUND: {}", sc.reasons.join("; "));
    }
}

/// What bound the run (gateway, client, broker, ...) and the signals that decided it; a
/// result file older than the classification says so.
fn binding_line(b: &Binding) -> String {
    if b.reasons.is_empty() {
        format!("bound      {} (no signals recorded)", b.bound)
    } else {
        format!("bound      {}: {}", b.bound, b.reasons.join("; "))
    }
}

/// The stalls, one line each.
fn stalls(s: &mut String, r: &RunResult) {
    if r.stalls.is_empty() {
        let _ = writeln!(s, "no stalls");
    } else {
        let _ = writeln!(s, "{} stall(s):", r.stalls.len());
        for (i, st) in r.stalls.iter().enumerate() {
            let _ = writeln!(
                s,
                "  #{} at {:.3} s for {:.3} s{}  class {}  outstanding {}  pending connects {}  refused {}  connect timeouts {}  exhaustion {}",
                i + 1,
                st.start_ms / 1000.0,
                st.length_ms / 1000.0,
                if st.ongoing_at_end { " (still stalled at end)" } else { "" },
                st.class,
                st.outstanding,
                st.pending_connects,
                st.connect_refused,
                st.connect_timeouts,
                st.connect_exhaustion
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::analysis::bound::Bound;

    #[test]
    fn binding_line_names_the_constraint_and_its_reasons() {
        let b = Binding {
            bound: Bound::Gateway,
            reasons: vec!["gateway CPUs 97%".into(), "client CPU 41%".into()],
        };
        assert_eq!(
            binding_line(&b),
            "bound      gateway: gateway CPUs 97%; client CPU 41%"
        );
        let old = Binding {
            bound: Bound::Unknown,
            reasons: vec![],
        };
        assert_eq!(
            binding_line(&old),
            "bound      unknown (no signals recorded)"
        );
    }
}
