//! The lab's outputs, from a [`LabReport`] alone: `stall-lab.json`, `stall-lab.md` and a
//! chart of completions per second per cause ([`write_report`], [`rerender`]).

use std::fmt::Write as _;
use std::path::Path;

use super::cause::{Cause, Expectation};
use super::summary::{expectations_met, LabReport, LabRun};
use crate::reporting::charts::line_chart;

pub(super) fn write_report(r: &LabReport, out: &Path) -> anyhow::Result<()> {
    std::fs::write(out.join("stall-lab.json"), serde_json::to_string_pretty(r)?)?;
    std::fs::write(out.join("stall-lab.md"), render_markdown(r))?;
    for cause in Cause::ALL {
        let rows: Vec<&LabRun> = r
            .runs
            .iter()
            .filter(|x| x.cause == cause && x.run == 1)
            .collect();
        if rows.is_empty() {
            continue;
        }
        let series: Vec<(String, Vec<(f64, f64)>)> = rows
            .iter()
            .map(|x| {
                let pts = (x.per_second.iter().enumerate())
                    .map(|(i, &v)| (i as f64, v as f64))
                    .collect();
                (format!("{} {}", x.gateway, x.config), pts)
            })
            .collect();
        let svg = line_chart(
            &format!("{}: completions per second (run 1)", cause.name()),
            "second of the run",
            "completions / s",
            &series,
            &[],
            true,
        )?;
        std::fs::write(out.join(format!("stall-lab-{}.svg", cause.name())), svg)?;
    }
    Ok(())
}

/// Re-renders `stall-lab.md` and the charts from `stall-lab.json`.
pub fn rerender(dir: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(dir.join("stall-lab.json"))?;
    let r: LabReport = serde_json::from_str(&text)?;
    write_report(&r, dir)
}

pub(super) fn render_markdown(r: &LabReport) -> String {
    let mut s = String::new();
    intro(&mut s, r);
    for cause in causes_in_order(r) {
        cause_section(&mut s, r, cause);
    }
    let _ = writeln!(
        s,
        "Verdict: {}",
        if expectations_met(r) {
            "every reproduction showed what its cause expects (a stall of the expected class, \
             or no stall with the mechanism exercised); no default run stalled."
        } else {
            "NOT every expectation held: see the rows above."
        }
    );
    s
}

/// The title, the machine and what *stalled* and *class* mean.
fn intro(s: &mut String, r: &LabReport) {
    let _ = writeln!(s, "# Stall lab\n");
    let m = &r.manifest;
    let _ = writeln!(
        s,
        "Commit `{}`{}, kernel `{}`, CPU `{}` x {}, pinning: {}. Each run: {:.0} s measured. \
         Produced by `bench-client stall-lab`; raw data in `stall-lab.json`.\n",
        m.commit.as_deref().unwrap_or("?"),
        m.dirty_note(),
        m.kernel.as_deref().unwrap_or("?"),
        m.cpu_model.as_deref().unwrap_or("?"),
        m.cpu_count,
        r.pinning,
        r.duration_s
    );
    let _ = writeln!(
        s,
        "A run *stalled* if bench-client found a window of at least 500 ms with no completion \
         while requests were outstanding, or a connection waiting that long to be accepted or \
         answered. *Class* is bench-client's own classification of the longest stall; the \
         evidence columns are sampled from /proc on the server side while the run went on.\n"
    );
}

/// Causes that ran, then those skipped on every gateway asked for (their notes only).
fn causes_in_order(r: &LabReport) -> Vec<Cause> {
    let mut causes: Vec<Cause> = Vec::new();
    for c in r
        .runs
        .iter()
        .map(|x| x.cause)
        .chain(r.skipped.iter().map(|x| x.0))
    {
        if !causes.contains(&c) {
            causes.push(c);
        }
    }
    causes
}

/// One cause: its description and expectation, the gateways it skipped, one row per
/// gateway and configuration, its chart.
fn cause_section(s: &mut String, r: &LabReport, cause: Cause) {
    let _ = writeln!(s, "## {}\n\n{}\n", cause.name(), cause.description());
    let _ = match cause.expectation() {
        Expectation::Stall(c) => {
            writeln!(s, "Expected class of the reproduction: **{c}**.\n")
        }
        Expectation::NoStall => writeln!(
            s,
            "Expected of the reproduction: **no stall**, with the evidence showing the \
             mechanism happened ({}).\n",
            match cause {
                Cause::UringTinyRing => "completion-queue overflows > 0",
                _ => "at most 2 SQEs submitted per io_uring_enter",
            }
        ),
    };
    for (c, gw, why) in r.skipped.iter().filter(|x| x.0 == cause) {
        let _ = writeln!(s, "Not run on {gw}: {why}. ({})\n", c.name());
    }
    let uring = cause.uring_only();
    let _ = writeln!(
        s,
        "| gateway | config | stalled | classes | first stall (ms, median) | stall time (ms, median) | ok (median) | accept queue max | listen overflows | gateway fds max | client TIME_WAIT max | EMFILE accept errors |{}",
        if uring {
            " fds left after the run (max) | CQ overflows (median) | io_uring_enter (median) | SQEs per enter (median) |"
        } else {
            ""
        }
    );
    let _ = writeln!(
        s,
        "|---|---|---|---|---|---|---|---|---|---|---|---|{}",
        if uring { "---|---|---|---|" } else { "" }
    );
    let mut gateways: Vec<String> = Vec::new();
    for x in r.runs.iter().filter(|x| x.cause == cause) {
        if !gateways.contains(&x.gateway) {
            gateways.push(x.gateway.clone());
        }
    }
    for gw in &gateways {
        for config in ["reproduction", "default"] {
            let rows: Vec<&LabRun> = r
                .runs
                .iter()
                .filter(|x| x.cause == cause && &x.gateway == gw && x.config == config)
                .collect();
            config_row(s, gw, config, &rows, uring);
        }
    }
    let _ = writeln!(s, "\n![{0}](stall-lab-{0}.svg)\n", cause.name());
}

/// The row of one gateway x configuration over its repeats (medians and maxima; the
/// io_uring columns when `uring`), or its first error.
fn config_row(s: &mut String, gw: &str, config: &str, rows: &[&LabRun], uring: bool) {
    let errs: Vec<&str> = rows.iter().filter_map(|x| x.error.as_deref()).collect();
    if !errs.is_empty() {
        let _ = writeln!(
            s,
            "| {gw} | {config} | error: {} | | | | | | | | | |{}",
            errs[0].replace('|', "/"),
            if uring { " | | | |" } else { "" }
        );
        return;
    }
    let stalled = rows.iter().filter(|x| x.stalls > 0).count();
    let classes: Vec<String> = rows
        .iter()
        .map(|x| x.class.map_or("-".to_string(), |c| c.to_string()))
        .collect();
    let first: Vec<f64> = rows.iter().filter_map(|x| x.first_stall_ms).collect();
    let total: Vec<f64> = rows.iter().map(|x| x.total_stall_ms).collect();
    let ok: Vec<f64> = rows.iter().map(|x| x.ok as f64).collect();
    let maxu = |f: &dyn Fn(&LabRun) -> u64| rows.iter().map(|x| f(x)).max().unwrap_or(0);
    let med_u = |f: &dyn Fn(&LabRun) -> Option<f64>| {
        let v: Vec<f64> = rows.iter().filter_map(|x| f(x)).collect();
        median(&v)
    };
    let uring_cols = if uring {
        format!(
            " {} | {} | {} | {} |",
            rows.iter()
                .filter_map(|x| x.evidence.gateway_fds_left)
                .max()
                .map_or("-".into(), |v| v.to_string()),
            med_u(&|x| x.evidence.uring_cq_overflows.map(|v| v as f64))
                .map_or("not measured".into(), |v| format!("{v:.0}")),
            med_u(&|x| x.evidence.uring_enters.map(|v| v as f64))
                .map_or("not measured".into(), |v| format!("{v:.0}")),
            med_u(&|x| x.evidence.sqes_per_enter())
                .map_or("not measured".into(), |v| format!("{v:.2}")),
        )
    } else {
        String::new()
    };
    let _ = writeln!(
            s,
            "| {gw} | {config} | {stalled}/{} | {} | {} | {:.0} | {:.0} | {} | {} | {} | {} | {} |{uring_cols}",
            rows.len(),
            classes.join(", "),
            median(&first).map_or("-".into(), |v| format!("{v:.0}")),
            median(&total).unwrap_or(0.0) + 0.0, // no "-0" for an empty sum
            median(&ok).unwrap_or(0.0),
            maxu(&|x| x.evidence.max_accept_queue),
            maxu(&|x| x.evidence.listen_overflows),
            maxu(&|x| x.evidence.max_gateway_fds),
            maxu(&|x| x.evidence.max_client_time_wait),
            rows.iter()
                .filter_map(|x| x.evidence.accept_errors_emfile)
                .max()
                .map_or("-".into(), |v| v.to_string()),
        );
}

/// The median, as every report of this crate computes it.
fn median(v: &[f64]) -> Option<f64> {
    crate::reporting::format::Spread::of(v).map(|s| s.median)
}
