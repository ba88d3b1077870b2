//! What `compare` runs and in which order: the plan over the scenario matrix (see
//! [`scenarios`](super::scenarios)), the shuffled order of the runs, and the search logic.
//!
//! A run of `compare` has two phases:
//! 1. **search**: for every scenario that claims a maximum, every variant climbs a ladder
//!    of offered concurrency — connections first, then pipeline depth (HTTP) or window
//!    (WebSocket) at the best connection count — until throughput gains less than
//!    [`MIN_GAIN`] over the best step so far. The best step is the variant's maximum point.
//! 2. **rounds**: every cell (scenario × variant) once per round, in an order shuffled
//!    with a recorded seed per round: maxima at their maximum point, open-loop points at
//!    fractions of each variant's own measured maximum, cost points at rates common to all
//!    variants (below every gateway's maximum), idle-memory points.
//!
//! [`Plan::estimate_s`] is what `compare` prints before it starts.
//!
//! Depends on the scenarios and the lab's [`GatewayKind`]; never on the run
//! logic, the summary or the report.

use serde::{Deserialize, Serialize};

pub use super::scenarios::TlsHandshakes;
pub use super::scenarios::{
    all_scenarios, scale_sizes, Offer, Scenario, Shape, Sink, Step, Variant, DEFAULT_SCENARIOS,
    HTTP_MANY_TWIN, MANY_PCT, MAX_SCENARIO, QUICK_SCENARIOS, SCALE_CONNECT_RATE, SCALE_SETTLE_S,
    SCALE_SOURCE_IPS, TLS_SCENARIOS, WS_MANY_PER_CONN,
};
use crate::lab::GatewayKind;

/// A search step that adds less than this to the best throughput so far ends the search
/// along its dimension.
pub const MIN_GAIN: f64 = 0.05;

/// Seconds a gateway start (until `/readyz`) plus its SIGTERM drain take, measured on
/// 2 cores; used only for the printed estimate.
const PROCESS_OVERHEAD_S: f64 = 0.6;
/// Seconds per idle connection opened, used and closed (estimate only).
const IDLE_PER_CONN_S: f64 = 0.0003;

/// One run of the rounds phase: a scenario against a variant in one round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    pub round: usize,
    pub scenario: usize,
    pub variant: usize,
}

/// The whole matrix, as recorded in `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub variants: Vec<Variant>,
    pub scenarios: Vec<Scenario>,
    pub repeats: usize,
    pub warmup_s: f64,
    pub duration_s: f64,
    /// Warmup and measured time of each search step.
    pub search_warmup_s: f64,
    pub search_duration_s: f64,
    /// Memory scenarios run in the first this many rounds only.
    pub idle_repeats: usize,
    /// Seed of the shuffled orders: round r (search = round 0 of the search phase) uses
    /// `seed + r`.
    pub seed: u64,
    pub quick: bool,
}

impl Plan {
    /// Variants that run `scenario` (null-sink variants only where the scenario says so).
    pub fn variants_for(&self, s: &Scenario) -> Vec<usize> {
        (0..self.variants.len())
            .filter(|&i| self.variants[i].sink == Sink::Kafka || s.null_sink)
            .collect()
    }

    /// Gateway × scenario cells.
    pub fn cells(&self) -> usize {
        self.scenarios
            .iter()
            .map(|s| self.variants_for(s).len())
            .sum()
    }

    /// The search phase: (scenario, variant) in an order shuffled with `seed`.
    pub fn search_slots(&self) -> Vec<(usize, usize)> {
        let mut v: Vec<(usize, usize)> = self
            .scenarios
            .iter()
            .enumerate()
            .filter(|(_, s)| s.search().is_some())
            .flat_map(|(si, s)| self.variants_for(s).into_iter().map(move |vi| (si, vi)))
            .collect();
        shuffle(&mut v, self.seed);
        v
    }

    /// Every run of the rounds phase, in order: round by round, each round's cells in an
    /// order shuffled with `seed + 1 + round`, so order and gateway are not confounded.
    /// Within a round, scenarios that need a rate derived from the search come after the
    /// search only in time, never in a fixed gateway order.
    pub fn slots(&self) -> Vec<Slot> {
        let mut v = Vec::new();
        for round in 0..self.repeats {
            let mut cells: Vec<Slot> = Vec::new();
            for (si, s) in self.scenarios.iter().enumerate() {
                if matches!(s.shape, Shape::Idle { .. }) && round >= self.idle_repeats {
                    continue;
                }
                for variant in self.variants_for(s) {
                    cells.push(Slot {
                        round,
                        scenario: si,
                        variant,
                    });
                }
            }
            shuffle(&mut cells, self.round_seed(round));
            v.extend(cells);
        }
        v
    }

    pub fn round_seed(&self, round: usize) -> u64 {
        self.seed.wrapping_add(1 + round as u64)
    }

    /// Steps of the search of `s` at most (the search may stop earlier).
    pub fn max_search_steps(s: &Scenario) -> usize {
        s.search().map_or(0, |(c, _, d)| c.len() + d.len())
    }

    /// Estimated wall time of one run of `s` in the rounds phase.
    pub fn run_estimate_s(&self, s: &Scenario) -> f64 {
        match s.shape {
            Shape::Load { ref offer, .. } => {
                PROCESS_OVERHEAD_S + offer.warmup_s(self.warmup_s) + self.duration_s
            }
            Shape::Idle { connections, .. } => {
                PROCESS_OVERHEAD_S + 0.5 + connections as f64 * IDLE_PER_CONN_S
            }
        }
    }

    /// Estimated wall time of the search phase (every ladder climbed to its top: an
    /// upper bound).
    pub fn search_estimate_s(&self) -> f64 {
        self.search_slots()
            .iter()
            .map(|&(si, _)| {
                PROCESS_OVERHEAD_S
                    + Self::max_search_steps(&self.scenarios[si]) as f64
                        * (self.search_warmup_s + self.search_duration_s)
            })
            .sum()
    }

    /// Estimated wall time of the whole comparison (search at its upper bound).
    pub fn estimate_s(&self) -> f64 {
        self.search_estimate_s()
            + self
                .slots()
                .iter()
                .map(|sl| self.run_estimate_s(&self.scenarios[sl.scenario]))
                .sum::<f64>()
    }

    pub fn variant_index(&self, v: Variant) -> Option<usize> {
        self.variants.iter().position(|&x| x == v)
    }

    pub fn scenario_index(&self, id: &str) -> Option<usize> {
        self.scenarios.iter().position(|s| s.id == id)
    }
}

/// Fisher–Yates with a seeded generator: the same seed gives the same order.
pub fn shuffle<T>(v: &mut [T], seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    for i in (1..v.len()).rev() {
        v.swap(i, rng.usize(..=i));
    }
}

/// Selection of the matrix, as given on the command line.
#[derive(Debug, Clone)]
pub struct Selection {
    pub gateways: Vec<GatewayKind>,
    pub sinks: Vec<Sink>,
    /// Scenario ids; empty = the default (or quick) set.
    pub scenarios: Vec<String>,
    pub quick: bool,
    pub repeats: Option<usize>,
    pub warmup_s: Option<f64>,
    pub duration_s: Option<f64>,
    pub idle_conns: usize,
    pub seed: u64,
    /// `--tls`: add [`TLS_SCENARIOS`] to the selected (or default) scenarios.
    pub tls: bool,
}

/// Build the plan; unknown scenario ids are an error, and so is a scenario that derives
/// its rate from [`MAX_SCENARIO`] without it.
pub fn plan(sel: &Selection) -> Result<Plan, String> {
    let all = all_scenarios(sel.idle_conns, sel.quick);
    let ids: Vec<String> = if sel.scenarios.is_empty() {
        let set = if sel.quick {
            QUICK_SCENARIOS
        } else {
            DEFAULT_SCENARIOS
        };
        set.iter().map(|s| s.to_string()).collect()
    } else {
        let mut ids = sel.scenarios.clone();
        // http-many is reported next to its 64-connection twin: one comes with the other.
        if ids.iter().any(|i| i == "http-many") && !ids.iter().any(|i| i == HTTP_MANY_TWIN) {
            ids.push(HTTP_MANY_TWIN.to_string());
        }
        ids
    };
    let mut ids = ids;
    if sel.tls {
        ids.extend(TLS_SCENARIOS.iter().map(|s| s.to_string()));
    }
    for id in &ids {
        if !all.iter().any(|s| &s.id == id) {
            return Err(format!(
                "unknown scenario {id:?} (known: {})",
                all.iter()
                    .map(|s| s.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    // Keep the canonical order whatever order was asked for.
    let scenarios: Vec<Scenario> = all.into_iter().filter(|s| ids.contains(&s.id)).collect();
    let derived = scenarios.iter().any(|s| match &s.shape {
        Shape::Load { offer, .. } => offer.derived(),
        Shape::Idle { .. } => false,
    });
    if derived && !scenarios.iter().any(|s| s.id == MAX_SCENARIO) {
        return Err(format!(
            "open-loop and cost scenarios derive their rate from {MAX_SCENARIO}'s measured maximum: select it too"
        ));
    }
    let mut variants = Vec::new();
    for &sink in &sel.sinks {
        for &gateway in &sel.gateways {
            variants.push(Variant { gateway, sink });
        }
    }
    // Kafka variants first, then the null-sink ones; tokio-multi (the baseline) first in each.
    variants.sort_by_key(|v| (v.sink, v.gateway));
    variants.dedup();
    if variants.is_empty() {
        return Err("no gateway selected".into());
    }
    if derived && !variants.iter().any(|v| v.sink == Sink::Kafka) {
        return Err("open-loop and cost scenarios need the kafka sink".into());
    }
    let (repeats, warmup_s, duration_s, sw, sd, idle_repeats) = if sel.quick {
        (1, 0.5, 1.0, 0.5, 1.0, 1)
    } else {
        (5, 0.5, 2.0, 0.5, 2.0, 2)
    };
    let plan = Plan {
        variants,
        scenarios,
        repeats: sel.repeats.unwrap_or(repeats).max(1),
        warmup_s: sel.warmup_s.unwrap_or(warmup_s),
        duration_s: sel.duration_s.unwrap_or(duration_s),
        search_warmup_s: sel.warmup_s.unwrap_or(sw),
        search_duration_s: sel.duration_s.unwrap_or(sd),
        idle_repeats,
        seed: sel.seed,
        quick: sel.quick,
    };
    if plan.cells() == 0 {
        return Err("the selection leaves no gateway x scenario cell to run".into());
    }
    Ok(plan)
}

/// The result of one search step, as the search needs it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepOutcome {
    pub step: Step,
    pub ok_per_sec: f64,
}

/// The next step of a saturation search, given the steps so far (in order), or `None`
/// when the search is over. Connections rise first while each adds at least
/// [`MIN_GAIN`] over the best so far; then the depth rises at the best connection count
/// under the same rule. A failed step (0 ok/s) ends the dimension it was on.
pub fn next_step(
    connections: &[usize],
    depth: usize,
    depths: &[usize],
    done: &[StepOutcome],
) -> Option<Step> {
    let best = |v: &[StepOutcome]| first_best(v.iter().copied());
    let gained = |v: &[StepOutcome]| match v.split_last() {
        None => true,
        Some((last, rest)) => match best(rest) {
            None => last.ok_per_sec > 0.0,
            Some(b) => last.ok_per_sec >= b.ok_per_sec * (1.0 + MIN_GAIN),
        },
    };
    let on_conns: Vec<StepOutcome> = done
        .iter()
        .copied()
        .filter(|s| s.step.depth == depth)
        .collect();
    let conns_over = on_conns.len() >= connections.len() || !gained(&on_conns);
    if !conns_over {
        return Some(Step {
            connections: connections[on_conns.len()],
            depth,
        });
    }
    let top = best(&on_conns).filter(|b| b.ok_per_sec > 0.0)?;
    let at = top.step.connections;
    let on_depth: Vec<StepOutcome> = done
        .iter()
        .copied()
        .filter(|s| s.step.depth != depth)
        .collect();
    if on_depth.len() >= depths.len() {
        return None;
    }
    // The depth dimension gains against the best of everything so far.
    let mut so_far = vec![top];
    so_far.extend(on_depth.iter().copied());
    if !on_depth.is_empty() && !gained(&so_far) {
        return None;
    }
    Some(Step {
        connections: at,
        depth: depths[on_depth.len()],
    })
}

/// The highest throughput; of equal ones the first (the least concurrency).
fn first_best(v: impl Iterator<Item = StepOutcome>) -> Option<StepOutcome> {
    v.fold(None, |b: Option<StepOutcome>, s| match b {
        Some(b) if b.ok_per_sec >= s.ok_per_sec => Some(b),
        _ => Some(s),
    })
}

/// The best step of a finished search.
pub fn best_step(done: &[StepOutcome]) -> Option<StepOutcome> {
    first_best(done.iter().copied().filter(|s| s.ok_per_sec > 0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::config::Mode;

    fn sel(quick: bool) -> Selection {
        Selection {
            gateways: GatewayKind::ALL.to_vec(),
            sinks: vec![Sink::Kafka, Sink::Null],
            scenarios: vec![],
            quick,
            repeats: None,
            warmup_s: None,
            duration_s: None,
            idle_conns: if quick { 1000 } else { 5000 },
            seed: 42,
            tls: false,
        }
    }

    #[test]
    fn default_matrix_size_and_time() {
        let p = plan(&sel(false)).unwrap();
        assert_eq!(p.variants.len(), 8);
        assert_eq!(p.scenarios.len(), 16);
        // 4 Kafka variants x 16 scenarios + 4 null variants x (http-max, ws-max, 2 cost).
        assert_eq!(p.cells(), 4 * 16 + 4 * 4);
        assert!(p.repeats >= 5);
        // Idle cells run in the first two rounds only.
        assert_eq!(p.slots().len(), p.repeats * p.cells() - (p.repeats - 2) * 8);
        assert!(p.estimate_s() <= 45.0 * 60.0, "{}", p.estimate_s());
    }

    #[test]
    fn quick_matrix_fits_in_three_minutes() {
        let p = plan(&sel(true)).unwrap();
        assert_eq!(p.cells(), 4 * 10 + 4 * 3);
        assert_eq!(p.repeats, 1);
        assert!(p.estimate_s() <= 180.0, "{}", p.estimate_s());
    }

    fn offer(p: &Plan, id: &str) -> Offer {
        match &p.scenarios[p.scenario_index(id).unwrap()].shape {
            Shape::Load { offer, .. } => offer.clone(),
            Shape::Idle { .. } => panic!("{id} is not a load scenario"),
        }
    }

    #[test]
    fn scale_scenarios_at_full_and_quick_size() {
        for (quick, many, ws, storm) in [(false, 15_000, 10_000, 1_024), (true, 2_000, 1_000, 256)]
        {
            let p = plan(&sel(quick)).unwrap();
            let mode = |id: &str| p.scenarios[p.scenario_index(id).unwrap()].mode();
            assert_eq!(
                offer(&p, "http-many"),
                Offer::ManyCommon {
                    pct: MANY_PCT,
                    connections: many
                }
            );
            assert_eq!(mode("http-many"), Some(Mode::Http));
            // The twin: the same percentage (so the same rate) over 64 connections.
            assert_eq!(
                offer(&p, HTTP_MANY_TWIN),
                Offer::ManyCommon {
                    pct: MANY_PCT,
                    connections: 64
                }
            );
            assert_eq!(
                offer(&p, "ws-many"),
                Offer::PerConnection {
                    connections: ws,
                    per_conn: WS_MANY_PER_CONN
                }
            );
            assert_eq!(mode("ws-many"), Some(Mode::Ws));
            assert_eq!(
                offer(&p, "accept-storm"),
                Offer::Storm { connections: storm }
            );
            assert_eq!(mode("accept-storm"), Some(Mode::HttpClose));
            for id in ["http-many", HTTP_MANY_TWIN, "ws-many", "accept-storm"] {
                let sc = &p.scenarios[p.scenario_index(id).unwrap()];
                assert!(offer(&p, id).is_scale(), "{id}");
                // Kafka variants only: 4 cells each.
                assert_eq!(p.variants_for(sc).len(), 4, "{id}");
            }
            // The warmup opens every connection at the connect rate, then settles.
            let w = offer(&p, "http-many").warmup_s(p.warmup_s);
            assert!(
                (w - (p.warmup_s + many as f64 / SCALE_CONNECT_RATE + SCALE_SETTLE_S)).abs() < 1e-9
            );
            assert_eq!(offer(&p, "accept-storm").warmup_s(p.warmup_s), p.warmup_s);
            let sc = &p.scenarios[p.scenario_index("http-many").unwrap()];
            assert!(p.run_estimate_s(sc) >= w + p.duration_s);
        }
        // Ephemeral ports: 28,232 per source address and destination here; 8 addresses.
        let ips: crate::engine::config::SourceIps = SCALE_SOURCE_IPS.parse().unwrap();
        assert_eq!(ips.count, 8);
        assert!(
            scale_sizes(false).0 <= 20_000 - 256,
            "under the open-file limit"
        );
    }

    #[test]
    fn scale_rates_derive_as_stated() {
        let min_max = 52_000.0;
        // http-many and its twin: MANY_PCT of the smallest unpipelined maximum, the same rate.
        let many = Offer::ManyCommon {
            pct: MANY_PCT,
            connections: 15_000,
        };
        let twin = Offer::ManyCommon {
            pct: MANY_PCT,
            connections: 64,
        };
        assert_eq!(many.rate(Some(min_max), Some(90_000.0)), Some(15_600.0));
        assert_eq!(
            many.rate(Some(min_max), None),
            twin.rate(Some(min_max), None)
        );
        assert_eq!(many.rate(None, Some(90_000.0)), None, "no maximum, no rate");
        assert!(many.derived() && twin.derived());
        // ws-many: a fixed rate, connections x per connection, from nothing measured.
        let ws = Offer::PerConnection {
            connections: 10_000,
            per_conn: 2.0,
        };
        assert_eq!(ws.rate(None, None), Some(20_000.0));
        assert!(!ws.derived());
        // accept-storm: a closed loop.
        let storm = Offer::Storm { connections: 1024 };
        assert_eq!(storm.rate(Some(min_max), Some(min_max)), None);
        assert!(!storm.derived());
        // The existing offers keep their rules.
        assert_eq!(
            Offer::OwnMax { pct: 50 }.rate(Some(1.0), Some(80_000.0)),
            Some(40_000.0)
        );
        assert_eq!(
            Offer::Common {
                pct: 30,
                connections: 256
            }
            .rate(Some(min_max), Some(1.0)),
            Some(15_600.0)
        );
    }

    #[test]
    fn http_many_comes_with_its_twin_and_needs_http_max() {
        let mut s = sel(true);
        s.scenarios = vec![
            "http-max".into(),
            "http-many".into(),
            "ws-many".into(),
            "accept-storm".into(),
        ];
        let p = plan(&s).unwrap();
        let ids: Vec<&str> = p.scenarios.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "http-max",
                "http-many",
                HTTP_MANY_TWIN,
                "ws-many",
                "accept-storm"
            ]
        );
        // http-many derives its rate from http-max; ws-many and accept-storm do not.
        s.scenarios = vec!["http-many".into()];
        assert!(plan(&s).unwrap_err().contains("http-max"));
        s.scenarios = vec!["ws-many".into(), "accept-storm".into()];
        assert_eq!(plan(&s).unwrap().scenarios.len(), 2);
    }

    #[test]
    fn order_is_shuffled_per_round_and_reproducible() {
        let p = plan(&sel(false)).unwrap();
        let slots = p.slots();
        let round = |r: usize| -> Vec<(usize, usize)> {
            slots
                .iter()
                .filter(|s| s.round == r)
                .map(|s| (s.scenario, s.variant))
                .collect()
        };
        // Every round runs the same cells, in a different order.
        let (a, b) = (round(2), round(3));
        assert_ne!(a, b);
        let (mut sa, mut sb) = (a.clone(), b.clone());
        sa.sort_unstable();
        sb.sort_unstable();
        assert_eq!(sa, sb);
        // No fixed gateway order: the first variant to run differs between rounds for
        // the same scenario (over 5 rounds and 12 scenarios, surely somewhere).
        let first_of = |r: usize, sc: usize| {
            slots
                .iter()
                .find(|s| s.round == r && s.scenario == sc)
                .map(|s| s.variant)
        };
        assert!((0..p.scenarios.len())
            .any(|sc| (1..p.repeats).any(|r| first_of(r, sc) != first_of(0, sc))));
        // The same seed gives the same order; another seed another.
        assert_eq!(plan(&sel(false)).unwrap().slots(), slots);
        let mut other = sel(false);
        other.seed = 43;
        assert_ne!(plan(&other).unwrap().slots(), slots);
        assert_eq!(p.search_slots().len(), 8 + 8 + 4 + 4);
    }

    #[test]
    fn tls_cells_come_with_the_shortcut_or_by_name_only() {
        // Not in the default or quick sets: the default run does not grow.
        for quick in [false, true] {
            let p = plan(&sel(quick)).unwrap();
            assert!(p.scenarios.iter().all(|s| s.tls.is_none()));
        }
        let mut s = sel(true);
        s.tls = true;
        let p = plan(&s).unwrap();
        let tls: Vec<&str> = p
            .scenarios
            .iter()
            .filter(|s| s.tls.is_some())
            .map(|s| s.id.as_str())
            .collect();
        assert_eq!(tls, TLS_SCENARIOS);
        // Each TLS cell has its plaintext twin's offer; Kafka variants only.
        for (id, plain) in [
            ("http-max-tls", MAX_SCENARIO),
            ("cost-low-tls", "cost-low"),
            ("accept-storm-tls", "accept-storm"),
        ] {
            assert_eq!(offer(&p, id), offer(&p, plain), "{id}");
            let sc = &p.scenarios[p.scenario_index(id).unwrap()];
            assert_eq!(p.variants_for(sc).len(), 4, "{id}");
        }
        let hs = |id: &str| p.scenarios[p.scenario_index(id).unwrap()].tls;
        assert_eq!(hs("accept-storm-tls"), Some(TlsHandshakes::Full));
        assert_eq!(hs("accept-storm-tls-resumed"), Some(TlsHandshakes::Resumed));
        // cost-low-tls derives its rate from the plaintext http-max, like cost-low.
        let mut s = sel(true);
        s.scenarios = vec!["cost-low-tls".into()];
        assert!(plan(&s).unwrap_err().contains("http-max"));
        s.scenarios = vec![
            "http-max".into(),
            "http-max-tls".into(),
            "cost-low-tls".into(),
        ];
        assert_eq!(plan(&s).unwrap().scenarios.len(), 3);
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let mut v: Vec<u32> = (0..100).collect();
        shuffle(&mut v, 7);
        assert_ne!(v, (0..100).collect::<Vec<_>>());
        v.sort_unstable();
        assert_eq!(v, (0..100).collect::<Vec<_>>());
    }

    fn climb(tp: impl Fn(Step) -> f64) -> Vec<StepOutcome> {
        let (c, d, ds) = (&[64, 128, 256, 512, 1024][..], 1, &[2, 4, 8][..]);
        let mut done = Vec::new();
        while let Some(step) = next_step(c, d, ds, &done) {
            done.push(StepOutcome {
                step,
                ok_per_sec: tp(step),
            });
            assert!(done.len() <= 8);
        }
        done
    }

    #[test]
    fn search_raises_connections_then_depth_until_gains_stop() {
        // Little's law with a 2.7 ms latency up to a 70k/s gateway ceiling.
        let done = climb(|s| (s.in_flight() as f64 / 0.0027).min(70_000.0));
        let steps: Vec<String> = done.iter().map(|s| s.step.to_string()).collect();
        // 64: 23.7k, 128: 47.4k, 256: 70k, 512: 70k (no gain) -> depth at 256: 70k (no gain).
        assert_eq!(steps, ["64x1", "128x1", "256x1", "512x1", "256x2"]);
        let best = best_step(&done).unwrap();
        assert_eq!(best.step.connections, 256);
        assert_eq!(best.ok_per_sec, 70_000.0);
    }

    #[test]
    fn search_goes_deeper_while_pipelining_pays() {
        // Connections stop paying at 256; pipelining keeps paying up to depth 4.
        let done = climb(|s| {
            let conns = (s.connections.min(256)) as f64 * 300.0;
            conns * (s.depth.min(4) as f64).sqrt()
        });
        let steps: Vec<String> = done.iter().map(|s| s.step.to_string()).collect();
        assert_eq!(
            steps,
            ["64x1", "128x1", "256x1", "512x1", "256x2", "256x4", "256x8"]
        );
        assert_eq!(best_step(&done).unwrap().step.to_string(), "256x4");
    }

    #[test]
    fn a_failed_first_step_ends_the_search() {
        let done = climb(|_| 0.0);
        assert_eq!(done.len(), 1);
        assert!(best_step(&done).is_none());
    }

    #[test]
    fn names_and_errors() {
        let v = Variant {
            gateway: GatewayKind::Compio,
            sink: Sink::Null,
        };
        assert_eq!(v.name(), "compio/null");
        assert_eq!(v.baseline().name(), "tokio-multi/null");
        assert_eq!(GatewayKind::parse("uring").unwrap(), GatewayKind::Uring);
        assert!(GatewayKind::parse("glommio").is_err());
        let mut s = sel(true);
        s.scenarios = vec!["nope".into()];
        assert!(plan(&s).is_err());
        let mut s = sel(true);
        s.scenarios = vec!["http-load-50".into()];
        assert!(plan(&s).unwrap_err().contains("http-max"));
    }
}
