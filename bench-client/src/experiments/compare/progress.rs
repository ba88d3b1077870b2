//! The progress lines `compare` prints as it goes: a search's steps, a run's figures.

use super::summary::RunRecord;
use crate::reporting::format::{fmt_rate, fmt_us};

/// A search's steps, one `STEP RATE/s (bound)` per step.
pub(super) fn steps_line(recs: &[RunRecord]) -> String {
    let steps: Vec<String> = recs
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r.step.map_or("-".into(), |s| s.to_string()),
                progress_rate(r)
            )
        })
        .collect();
    steps.join(" | ")
}

fn progress_rate(r: &RunRecord) -> String {
    match (&r.result, &r.error) {
        (_, Some(e)) => format!("ERROR {}", e.lines().next().unwrap_or_default()),
        (Some(res), None) => format!(
            "{}/s ({})",
            fmt_rate(res.totals.ok_per_sec),
            res.binding.bound
        ),
        (None, None) => "-".into(),
    }
}

pub(super) fn progress_line(r: &RunRecord) -> String {
    let mut s = String::new();
    if let Some(res) = &r.result {
        s = format!(
            "{:>9.0} ok/s  p50 {}  p99 {}  max {}  errors {}  stalls {}  bound {}",
            res.totals.ok_per_sec,
            fmt_us(res.latency.p50_us),
            fmt_us(res.latency.p99_us),
            fmt_us(res.latency.max_us),
            res.totals.errors,
            res.stalls.len(),
            res.binding.bound,
        );
        if let Some(step) = r.step {
            s.push_str(&format!("  at {step}"));
        }
        if let Some(rate) = r.rate {
            s.push_str(&format!("  (open loop {rate:.0}/s)"));
        }
        if let Some(c) = &res.target_cost {
            if res.totals.ok > 0 {
                s.push_str(&format!(
                    "  gw {:.1} µs/req",
                    c.cpu_s * 1e6 / res.totals.ok as f64
                ));
            }
        }
    }
    if let Some(i) = &r.idle {
        s = format!(
            "{}/{} open, RSS {} -> {} KiB = {:.1} KiB/conn",
            i.open,
            i.requested,
            i.rss_before_kib,
            i.rss_after_kib,
            i.bytes_per_conn / 1024.0
        );
    }
    if let Some(e) = &r.error {
        let first = e.lines().next().unwrap_or_default();
        s.push_str(&format!("  ERROR: {first}"));
    }
    format!("{s}  [{:.1} s]", r.wall_s)
}
