//! What `compare` runs: the gateway variants (runtime × sink; the runtimes are
//! [`GatewayKind`], shared with the other lab commands), the scenarios, and the order of
//! the runs (repeats interleaved across gateways: A B C D A B C D …).
//!
//! The default matrix is sized to fit in 10 minutes on 2 cores and `--quick` in 2
//! (CI's smoke test); [`Plan::estimate_s`] is what `compare` prints before it starts.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::Mode;
use crate::lab::GatewayKind;

/// Where the gateway sends records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sink {
    Kafka,
    Null,
}

impl Sink {
    pub fn name(self) -> &'static str {
        match self {
            Sink::Kafka => "kafka",
            Sink::Null => "null",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim() {
            "kafka" => Ok(Sink::Kafka),
            "null" => Ok(Sink::Null),
            _ => Err(format!("unknown sink {s:?} (known: kafka, null)")),
        }
    }
}

/// A gateway with a sink: one column of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Variant {
    pub gateway: GatewayKind,
    pub sink: Sink,
}

impl Variant {
    /// `tokio-multi` (Kafka) or `tokio-multi/null`.
    pub fn name(&self) -> String {
        match self.sink {
            Sink::Kafka => self.gateway.name().to_string(),
            Sink::Null => format!("{}/null", self.gateway.name()),
        }
    }

    /// The variant ratios are taken against: tokio-multi with the same sink.
    pub fn baseline(&self) -> Variant {
        Variant {
            gateway: GatewayKind::TokioMulti,
            sink: self.sink,
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// What a scenario does to the gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Shape {
    /// Traffic through [`crate::run`].
    Load {
        mode: Mode,
        connections: usize,
        /// HTTP pipeline depth or WebSocket window.
        depth: usize,
        payload: usize,
        /// Open loop at this percentage of the same round's closed-loop `http-max`
        /// throughput (tokio-multi's with the same sink, so every gateway gets the same
        /// offered load; the variant's own if tokio-multi is not in the run).
        open_pct: Option<u32>,
    },
    /// N idle connections, each after one request; gateway RSS before and after.
    Idle { ws: bool, connections: usize },
}

/// One row of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    pub id: String,
    pub title: String,
    pub shape: Shape,
    /// Also run against the `--sink null` variants.
    pub null_sink: bool,
}

/// The closed-loop scenario open-loop rates derive from.
pub const MAX_SCENARIO: &str = "http-max";

/// Every scenario `compare` knows, in run order (`http-max` before the open-loop ones).
pub fn all_scenarios(idle_conns: usize) -> Vec<Scenario> {
    let load =
        |id: &str, title: &str, mode, connections, depth, payload, open_pct, null_sink| Scenario {
            id: id.to_string(),
            title: title.to_string(),
            shape: Shape::Load {
                mode,
                connections,
                depth,
                payload,
                open_pct,
            },
            null_sink,
        };
    let open = |pct: u32| {
        load(
            &format!("http-{pct}"),
            &format!("HTTP keep-alive, open loop at {pct}% of tokio-multi's http-max, 100 B"),
            Mode::Http,
            64,
            1,
            100,
            Some(pct),
            false,
        )
    };
    vec![
        load(
            MAX_SCENARIO,
            "HTTP keep-alive, max throughput (closed loop), 64 connections, 100 B",
            Mode::Http,
            64,
            1,
            100,
            None,
            true,
        ),
        open(25),
        open(50),
        open(75),
        load(
            "http-max-10k",
            "HTTP keep-alive, max throughput (closed loop), 64 connections, 10 KiB",
            Mode::Http,
            64,
            1,
            10 * 1024,
            None,
            false,
        ),
        load(
            "http-close",
            "HTTP connection per request (closed loop), 32 concurrent, 100 B",
            Mode::HttpClose,
            32,
            1,
            100,
            None,
            false,
        ),
        load(
            "ws-max",
            "WebSocket streaming, max throughput, 16 connections x window 64, 100 B",
            Mode::Ws,
            16,
            64,
            100,
            None,
            true,
        ),
        load(
            "ws-max-10k",
            "WebSocket streaming, max throughput, 16 connections x window 64, 10 KiB",
            Mode::Ws,
            16,
            64,
            10 * 1024,
            None,
            false,
        ),
        Scenario {
            id: "idle-http".into(),
            title: format!("{idle_conns} idle HTTP keep-alive connections (one request each)"),
            shape: Shape::Idle {
                ws: false,
                connections: idle_conns,
            },
            null_sink: false,
        },
        Scenario {
            id: "idle-ws".into(),
            title: format!("{idle_conns} idle WebSocket connections (one message each)"),
            shape: Shape::Idle {
                ws: true,
                connections: idle_conns,
            },
            null_sink: false,
        },
    ]
}

/// Scenario ids of the default matrix (the quick one drops some).
pub const DEFAULT_SCENARIOS: &[&str] = &[
    "http-max",
    "http-25",
    "http-50",
    "http-75",
    "http-max-10k",
    "http-close",
    "ws-max",
    "idle-http",
    "idle-ws",
];
pub const QUICK_SCENARIOS: &[&str] = &[
    "http-max",
    "http-50",
    "http-max-10k",
    "http-close",
    "ws-max",
    "idle-http",
    "idle-ws",
];

/// Seconds a gateway start (until `/readyz`) plus its SIGTERM drain take, measured on
/// 2 cores; used only for the printed estimate.
const PROCESS_OVERHEAD_S: f64 = 0.6;
/// Seconds per idle connection opened, used and closed (estimate only).
const IDLE_PER_CONN_S: f64 = 0.0003;

/// One run: a scenario against a variant in one round.
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
    pub quick: bool,
}

impl Plan {
    /// Variants that run `scenario` (null-sink variants only where the scenario says so).
    pub fn variants_for(&self, s: &Scenario) -> Vec<usize> {
        (0..self.variants.len())
            .filter(|&i| self.variants[i].sink == Sink::Kafka || s.null_sink)
            .collect()
    }

    /// Gateway × scenario cells (each run `repeats` times).
    pub fn cells(&self) -> usize {
        self.scenarios
            .iter()
            .map(|s| self.variants_for(s).len())
            .sum()
    }

    /// Every run in order: round by round; within a round scenario by scenario, each
    /// scenario across all variants (A B C D), so a scenario's repeats are spread over
    /// the whole run and every gateway sees the same drift.
    pub fn slots(&self) -> Vec<Slot> {
        let mut v = Vec::new();
        for round in 0..self.repeats {
            for (si, s) in self.scenarios.iter().enumerate() {
                for variant in self.variants_for(s) {
                    v.push(Slot {
                        round,
                        scenario: si,
                        variant,
                    });
                }
            }
        }
        v
    }

    /// Estimated wall time of one run of `s`.
    pub fn run_estimate_s(&self, s: &Scenario) -> f64 {
        match s.shape {
            Shape::Load { .. } => PROCESS_OVERHEAD_S + self.warmup_s + self.duration_s,
            Shape::Idle { connections, .. } => {
                PROCESS_OVERHEAD_S + 0.5 + connections as f64 * IDLE_PER_CONN_S
            }
        }
    }

    /// Estimated wall time of the whole matrix.
    pub fn estimate_s(&self) -> f64 {
        self.slots()
            .iter()
            .map(|sl| self.run_estimate_s(&self.scenarios[sl.scenario]))
            .sum()
    }

    pub fn variant_index(&self, v: Variant) -> Option<usize> {
        self.variants.iter().position(|&x| x == v)
    }

    pub fn scenario_index(&self, id: &str) -> Option<usize> {
        self.scenarios.iter().position(|s| s.id == id)
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
}

/// Build the plan; unknown scenario ids are an error.
pub fn plan(sel: &Selection) -> Result<Plan, String> {
    let all = all_scenarios(sel.idle_conns);
    let ids: Vec<String> = if sel.scenarios.is_empty() {
        let set = if sel.quick {
            QUICK_SCENARIOS
        } else {
            DEFAULT_SCENARIOS
        };
        set.iter().map(|s| s.to_string()).collect()
    } else {
        sel.scenarios.clone()
    };
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
    let (repeats, warmup_s, duration_s) = if sel.quick {
        (1, 0.5, 1.0)
    } else {
        (3, 1.0, 3.0)
    };
    let plan = Plan {
        variants,
        scenarios,
        repeats: sel.repeats.unwrap_or(repeats).max(1),
        warmup_s: sel.warmup_s.unwrap_or(warmup_s),
        duration_s: sel.duration_s.unwrap_or(duration_s),
        quick: sel.quick,
    };
    if plan.cells() == 0 {
        return Err("the selection leaves no gateway x scenario cell to run".into());
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        }
    }

    #[test]
    fn default_matrix_size_and_time() {
        let p = plan(&sel(false)).unwrap();
        assert_eq!(p.variants.len(), 8);
        assert_eq!(p.scenarios.len(), 9);
        // 4 Kafka variants x 9 scenarios + 4 null variants x (http-max, ws-max).
        assert_eq!(p.cells(), 4 * 9 + 4 * 2);
        assert_eq!(p.repeats, 3);
        assert_eq!(p.slots().len(), 3 * p.cells());
        assert!(p.estimate_s() <= 600.0, "{}", p.estimate_s());
    }

    #[test]
    fn quick_matrix_size_and_time() {
        let p = plan(&sel(true)).unwrap();
        assert_eq!(p.cells(), 4 * 7 + 4 * 2);
        assert_eq!(p.repeats, 1);
        assert!(p.estimate_s() <= 120.0, "{}", p.estimate_s());
    }

    #[test]
    fn runs_are_interleaved_across_gateways() {
        let mut s = sel(false);
        s.scenarios = vec!["ws-max".into(), "http-max".into()];
        s.sinks = vec![Sink::Kafka];
        let p = plan(&s).unwrap();
        // Canonical order: http-max first.
        assert_eq!(p.scenarios[0].id, "http-max");
        let order: Vec<(usize, usize, usize)> = p
            .slots()
            .iter()
            .map(|s| (s.round, s.scenario, s.variant))
            .collect();
        assert_eq!(
            &order[..5],
            &[(0, 0, 0), (0, 0, 1), (0, 0, 2), (0, 0, 3), (0, 1, 0)]
        );
        assert_eq!(order.len(), 3 * 2 * 4);
        assert_eq!(order[8], (1, 0, 0));
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
    }
}
