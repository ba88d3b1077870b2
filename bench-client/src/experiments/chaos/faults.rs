//! The faults: what `--faults` names ([`FaultKind`]), their schedule over a run
//! ([`plan`]), and what each did to the per-second series ([`effects`]).

use serde::{Deserialize, Serialize};

use crate::engine::analysis::timeline::SecondStats;

/// A kind of fault `chaos` can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// Every broker down for 5 s.
    Outage,
    /// Added round-trip time on broker 1.
    Rtt,
    /// Injected produce errors.
    ProduceErrors,
    /// Every partition's leader moved to another broker, three times.
    Leaders,
}

/// What [`plan`] lays out.
#[derive(Debug, Clone)]
pub struct PlanSpec<'a> {
    pub kinds: &'a [FaultKind],
    pub rtt_ms: u64,
    pub produce_errors: u64,
    /// Topic and partition count of the leader changes.
    pub topic: &'a str,
    pub partitions: u32,
}

/// One planned fault: commands at `start_s` and at `end_s` (seconds of the measured phase).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    pub name: String,
    pub start_s: f64,
    pub end_s: f64,
    pub begin: Vec<String>,
    pub end: Vec<String>,
    /// Commands between the two, `(seconds of the measured phase, command)` (absent in
    /// older files).
    #[serde(default)]
    pub during: Vec<(f64, String)>,
}

/// The schedule for a run of `d` seconds: a baseline, then each fault of `spec.kinds` in
/// order, with a gap after each, and a tail to watch the recovery: all brokers down for
/// 5 s; RTT on broker 1; produce errors; every partition's leader moved three times. An
/// error when they do not fit in `d`.
pub fn plan(d: f64, spec: &PlanSpec) -> Result<Vec<Fault>, String> {
    let base = (0.15 * d).max(3.0);
    let gap = (0.1 * d).max(2.5);
    let brokers = |cmd: &str| (1..=3).map(|b| format!("{cmd} {b}")).collect::<Vec<_>>();
    let half = spec.produce_errors.div_ceil(2);
    let (rtt_ms, errors) = (spec.rtt_ms, spec.produce_errors);
    // Round r moves partition p's leadership to broker (p + r + 1) % 3 + 1: three rounds
    // give each partition every broker once.
    let leaders = |r: u32| -> Vec<String> {
        (0..spec.partitions)
            .map(|p| format!("leader {} {p} {}", spec.topic, (p + r + 1) % 3 + 1))
            .collect()
    };
    let mut out = Vec::new();
    let mut t = base;
    for &k in spec.kinds {
        let (len, mut f) = match k {
            FaultKind::Outage => (
                5.0,
                Fault {
                    name: "all brokers down 5 s".into(),
                    begin: brokers("broker-down"),
                    end: brokers("broker-up"),
                    ..Fault::default()
                },
            ),
            FaultKind::Rtt => (
                (0.1 * d).max(2.5),
                Fault {
                    name: format!("{rtt_ms} ms RTT on broker 1"),
                    begin: vec![format!("rtt 1 {rtt_ms}")],
                    end: vec!["rtt 1 0".into()],
                    ..Fault::default()
                },
            ),
            FaultKind::ProduceErrors => (
                (0.1 * d).max(2.0),
                Fault {
                    name: format!("{errors} produce errors"),
                    begin: vec![
                        format!("produce-errors {half} not-enough-replicas"),
                        format!("produce-errors {} transport", errors - half),
                    ],
                    end: vec!["clear-errors".into()],
                    ..Fault::default()
                },
            ),
            FaultKind::Leaders => (
                (0.1 * d).max(3.0),
                Fault {
                    name: format!("{} partition leaders moved 3 times", spec.partitions),
                    begin: leaders(0),
                    ..Fault::default()
                },
            ),
        };
        f.start_s = t;
        f.end_s = t + len;
        if k == FaultKind::Leaders {
            for r in 1..3u32 {
                let at = t + len * f64::from(r) / 3.0;
                f.during.extend(leaders(r).into_iter().map(|c| (at, c)));
            }
        }
        t = f.end_s + gap;
        out.push(f);
    }
    // At least 2.5 s after the last fault to show the recovery.
    let last_end = out.last().map_or(0.0, |f: &Fault| f.end_s);
    if last_end + 2.5 > d {
        let names: Vec<String> = spec
            .kinds
            .iter()
            .filter_map(clap::ValueEnum::to_possible_value)
            .map(|v| v.get_name().to_string())
            .collect();
        return Err(format!(
            "--duration {d}s is too short for --faults {}: with the baseline, gaps and a 2.5 s recovery tail they take {:.1}s (give a longer --duration or fewer --faults)",
            names.join(","),
            last_end + 2.5
        ));
    }
    Ok(out)
}

/// What one fault did to the load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultEffect {
    pub fault: Fault,
    /// Mean ok/s over the seconds before the first fault.
    pub baseline_ok_per_sec: f64,
    /// Mean ok/s over the seconds the fault was active.
    pub ok_per_sec_during: f64,
    pub min_ok_per_sec: u64,
    /// From the fault's start to the next fault (or the end): 503/nack responses.
    pub backpressure: u64,
    /// Same span: failed requests.
    pub errors: u64,
    /// Same span: seconds with ok/s below half the baseline.
    pub slowed_seconds: u64,
    /// Seconds from the fault's end until a second reached 90% of the baseline again
    /// (`None`: not before the next fault or the end of the run).
    pub recovered_after_s: Option<f64>,
    /// Per-second series from 3 s before the fault to the next fault (or the end);
    /// `second` counts from the start of the measured phase.
    pub series: Vec<SecondStats>,
}

/// Effects of `faults` (in time order) on a per-second `timeline`.
pub fn effects(timeline: &[SecondStats], faults: &[Fault]) -> Vec<FaultEffect> {
    let end = timeline.len() as f64;
    let first = faults.first().map_or(end, |f| f.start_s);
    let before: Vec<f64> = timeline
        .iter()
        // The first second after warmup can carry warmup leftovers; skip it if possible.
        .filter(|s| (s.second as f64 + 1.0) <= first && (s.second > 0 || first < 3.0))
        .map(|s| s.ok as f64)
        .collect();
    let baseline = before.iter().sum::<f64>() / before.len().max(1) as f64;
    faults
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let until = faults.get(i + 1).map_or(end, |n| n.start_s);
            let within = |s: &&SecondStats, from: f64, to: f64| {
                let t = s.second as f64;
                t + 1.0 > from && t < to
            };
            let during: Vec<&SecondStats> = timeline
                .iter()
                .filter(|s| within(s, f.start_s, f.end_s))
                .collect();
            let span: Vec<&SecondStats> = timeline
                .iter()
                .filter(|s| within(s, f.start_s, until))
                .collect();
            let recovered_after_s = timeline
                .iter()
                .filter(|s| s.second as f64 >= f.end_s.floor() && (s.second as f64) < until)
                .find(|s| s.ok as f64 >= 0.9 * baseline)
                .map(|s| (s.second as f64 + 1.0 - f.end_s).max(0.0));
            FaultEffect {
                fault: f.clone(),
                baseline_ok_per_sec: baseline,
                ok_per_sec_during: during.iter().map(|s| s.ok as f64).sum::<f64>()
                    / during.len().max(1) as f64,
                min_ok_per_sec: during.iter().map(|s| s.ok).min().unwrap_or(0),
                backpressure: span.iter().map(|s| s.backpressure).sum(),
                errors: span.iter().map(|s| s.errors).sum(),
                slowed_seconds: span
                    .iter()
                    .filter(|s| (s.ok as f64) < 0.5 * baseline)
                    .count() as u64,
                recovered_after_s,
                series: timeline
                    .iter()
                    .filter(|s| within(s, f.start_s - 3.0, until))
                    .cloned()
                    .collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sec(i: u64, ok: u64, bp: u64) -> SecondStats {
        SecondStats {
            second: i,
            sent: ok + bp,
            completed: ok + bp,
            ok,
            errors: 0,
            backpressure: bp,
            connects: 0,
            connect_errors: 0,
            open_connections: 8,
            cpu_util: 0.1,
        }
    }

    const THREE: [FaultKind; 3] = [FaultKind::Outage, FaultKind::Rtt, FaultKind::ProduceErrors];
    const ALL: [FaultKind; 4] = [
        FaultKind::Outage,
        FaultKind::Rtt,
        FaultKind::ProduceErrors,
        FaultKind::Leaders,
    ];

    fn spec(kinds: &[FaultKind]) -> PlanSpec<'_> {
        PlanSpec {
            kinds,
            rtt_ms: 200,
            produce_errors: 60,
            topic: "chaos",
            partitions: 4,
        }
    }

    #[test]
    fn plan_fits_the_run() {
        for (kinds, d) in [
            (&THREE[..], 20.0),
            (&ALL[..], 30.0),
            (&ALL[..], 40.0),
            (&ALL[..], 600.0),
        ] {
            let p = plan(d, &spec(kinds)).unwrap();
            assert_eq!(p.len(), kinds.len());
            assert!((p[0].end_s - p[0].start_s - 5.0).abs() < 1e-9);
            for w in p.windows(2) {
                assert!(w[0].end_s < w[1].start_s, "{p:?}");
            }
            assert!(p.last().unwrap().end_s < d, "{d}: {p:?}");
            assert_eq!(p[2].begin.len(), 2);
        }
        assert!(plan(20.0, &spec(&ALL)).is_err());
        assert!(plan(8.0, &spec(&[FaultKind::Leaders])).is_err());
    }

    #[test]
    fn leader_changes_move_every_partition_to_every_broker() {
        let p = plan(10.0, &spec(&[FaultKind::Leaders])).unwrap();
        let f = &p[0];
        assert_eq!((f.start_s, f.end_s), (3.0, 6.0));
        assert!(f.end.is_empty());
        let mut cmds: Vec<(f64, &str)> = f.begin.iter().map(|c| (f.start_s, c.as_str())).collect();
        cmds.extend(f.during.iter().map(|(t, c)| (*t, c.as_str())));
        assert_eq!(cmds.len(), 12);
        for part in 0..4 {
            let mut brokers: Vec<&str> = cmds
                .iter()
                .filter_map(|(_, c)| c.strip_prefix(&format!("leader chaos {part} ")))
                .collect();
            brokers.sort_unstable();
            assert_eq!(brokers, ["1", "2", "3"], "partition {part}");
        }
        // The rounds are spread over the phase, inside it.
        assert!(f.during.iter().all(|(t, _)| *t > f.start_s && *t < f.end_s));
    }

    #[test]
    fn effects_of_an_outage() {
        let faults = plan(20.0, &spec(&THREE)).unwrap();
        // Outage 3..8 s: nothing acknowledged, 503s from second 6 on, a surge at 8.
        let tl: Vec<SecondStats> = (0..20)
            .map(|i| match i {
                3..=7 => sec(i, 0, if i >= 6 { 500 } else { 0 }),
                8 => sec(i, 4000, 0),
                _ => sec(i, 2000, 0),
            })
            .collect();
        let e = effects(&tl, &faults);
        assert_eq!(e[0].baseline_ok_per_sec, 2000.0);
        assert_eq!(e[0].ok_per_sec_during, 0.0);
        assert_eq!(e[0].backpressure, 1000);
        assert_eq!(e[0].slowed_seconds, 5);
        assert_eq!(e[0].recovered_after_s, Some(1.0));
        assert_eq!(e[0].series.first().unwrap().second, 0);
        // The RTT phase did not slow anything here.
        assert_eq!(e[1].slowed_seconds, 0);
        assert_eq!(e[1].recovered_after_s, Some(1.0));
    }
}
