//! What bound a run: every figure says it, decided from measured signals only.
//!
//! - `gateway`: the gateway's CPUs were ≥ 90% busy — a gateway-bound closed-loop cell is
//!   the only kind that is a gateway's maximum;
//! - `client`: the client's CPU was ≥ 90% of its threads, or an open-loop run fell behind
//!   its schedule on its own (schedule lag p99 ≥ 5 ms: sends left late while their
//!   connection was free); timer lag alone is not enough (it fires on a busy but
//!   unsaturated client). An open loop that sent less than it asked because every
//!   connection was waiting for an answer was held back by the server, not the client;
//! - `broker`: kafka-mock used ≥ 90% of a core, or the CPUs it shares with the client were
//!   ≥ 90% busy with kafka-mock the larger user;
//! - `concurrency`: a closed loop whose Little's-law in-flight figure (ok/s × mean latency)
//!   is ≥ 95% of the configured in-flight, with gateway and client below 90%: the window
//!   was measured, not the gateway;
//! - `offered-load`: an open-loop run that kept its schedule: it measures latency and cost
//!   at that rate, by design not a maximum;
//! - `unknown`: none of these — or the gateway's CPUs were busy with other processes
//!   (contention: the figure is not the gateway's), or the hypervisor took ≥ 15% of them
//!   (steal: on a virtual machine the gateway then ran slower than its own CPU time shows,
//!   whatever else the signals say).
//!
//! Entry point: [`classify`]. Part of the [engine](crate::engine): must not depend on
//! anything outside it.

use serde::{Deserialize, Serialize};

/// The binding constraint of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bound {
    Gateway,
    Client,
    Broker,
    Concurrency,
    OfferedLoad,
    Unknown,
}

impl Bound {
    pub fn name(self) -> &'static str {
        match self {
            Bound::Gateway => "gateway",
            Bound::Client => "client",
            Bound::Broker => "broker",
            Bound::Concurrency => "concurrency",
            Bound::OfferedLoad => "offered-load",
            Bound::Unknown => "unknown",
        }
    }

    /// Only a gateway-bound cell is a gateway's maximum.
    pub fn is_maximum(self) -> bool {
        self == Bound::Gateway
    }
}

impl std::fmt::Display for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Saturation threshold for CPUs.
pub const BUSY: f64 = 0.90;
/// A closed loop whose in-flight figure reaches this share of its window is window-bound.
pub const WINDOW_FULL: f64 = 0.95;
/// An open loop that sent less than this share of its rate did not keep its schedule.
pub const RATE_KEPT: f64 = 0.99;
/// Open-loop schedule lag p99 at or over this (ms) means the client fell behind.
pub const LAG_MS: f64 = 5.0;
/// Steal on the gateway's CPUs at or over this share of the run makes its figure not the
/// gateway's (measured on the 2-core VM: 1–10% on a quiet host, 20–70% on a busy one).
pub const STEAL: f64 = 0.15;
/// Steal below this is not worth a reason.
const STEAL_NOTED: f64 = 0.05;

/// What was measured around one run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Signals {
    /// The gateway process's CPU over the CPUs it may use. `None`: not measured.
    pub gateway_busy: Option<f64>,
    /// Busy fraction of the gateway's pinned CPUs, all processes (`None`: not pinned to a
    /// subset, or not measured). Much more than `gateway_busy` means contention.
    #[serde(default)]
    pub gateway_cpus_busy: Option<f64>,
    /// Steal on the gateway's pinned CPUs (`None`: not pinned to a subset, or not measured).
    #[serde(default)]
    pub gateway_cpus_steal: Option<f64>,
    /// Client process CPU over its threads.
    pub client_busy: f64,
    /// kafka-mock CPU in cores. `None`: not measured (remote Kafka).
    pub broker_cores: Option<f64>,
    /// Busy fraction of the CPUs the client (and kafka-mock) are pinned to.
    pub client_cpus_busy: Option<f64>,
    /// Client's CPU in cores (to compare with kafka-mock's on shared CPUs).
    pub client_cores: f64,
    /// Open loop: sent / asked rate.
    pub rate_achieved: Option<f64>,
    /// Open loop: schedule lag p99, ms.
    pub schedule_lag_p99_ms: Option<f64>,
    /// ok/s × mean latency (s).
    pub little_in_flight: f64,
    /// Requests the client can have in flight: connections × depth (open loop too).
    pub window: Option<f64>,
    /// The run was an open loop.
    #[serde(default)]
    pub open_loop: bool,
}

/// The label and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Binding {
    pub bound: Bound,
    pub reasons: Vec<String>,
}

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

/// Label one run.
pub fn classify(s: &Signals) -> Binding {
    let mut reasons = Vec::new();
    let gw = s.gateway_busy.unwrap_or(0.0);
    if s.gateway_busy.is_some() {
        reasons.push(format!("gateway CPUs {}", pct(gw)));
    }
    reasons.push(format!("client CPU {}", pct(s.client_busy)));
    if let Some(b) = s.broker_cores {
        reasons.push(format!("kafka-mock {:.2} cores", b));
    }
    if let Some(c) = s.client_cpus_busy {
        reasons.push(format!("client CPUs {}", pct(c)));
    }
    if let Some(w) = s.window {
        reasons.push(format!(
            "in flight {:.1} of {w:.0} (ok/s x mean latency)",
            s.little_in_flight
        ));
    }
    if let Some(a) = s.rate_achieved {
        reasons.push(format!("sent {} of the asked rate", pct(a)));
    }
    if let Some(l) = s.schedule_lag_p99_ms {
        reasons.push(format!("schedule lag p99 {l:.1} ms"));
    }
    // The CPUs' busy share counts the hypervisor's steal; "other processes" is what is
    // left after the gateway and the steal.
    let steal = s.gateway_cpus_steal.unwrap_or(0.0);
    let contended = s
        .gateway_cpus_busy
        .is_some_and(|c| c >= BUSY && gw < BUSY && c - gw - steal >= 0.1);
    if let Some(c) = s.gateway_cpus_busy.filter(|_| contended) {
        reasons.push(format!(
            "gateway CPUs {} busy, {} of it other processes",
            pct(c),
            pct(c - gw - steal)
        ));
    }
    let stolen = steal >= STEAL;
    if stolen {
        reasons.push(format!(
            "hypervisor steal {} of the gateway's CPUs: not the gateway's figure",
            pct(steal)
        ));
    } else if steal >= STEAL_NOTED {
        reasons.push(format!(
            "hypervisor steal {} of the gateway's CPUs",
            pct(steal)
        ));
    }
    let lagging = s.schedule_lag_p99_ms.is_some_and(|l| l >= LAG_MS);
    let shortfall = s.rate_achieved.is_some_and(|a| a < RATE_KEPT);
    let window_full = s
        .window
        .is_some_and(|w| w > 0.0 && s.little_in_flight >= WINDOW_FULL * w);
    let shared_busy = s.client_cpus_busy.is_some_and(|c| c >= BUSY);
    let broker_larger = s.broker_cores.is_some_and(|b| b > s.client_cores);
    // An open loop that sent what was asked, on time, measured the offered load even when
    // the client's CPU was busy doing it (the busy figure stays in the reasons).
    let kept = s.open_loop && !shortfall && !lagging;
    let bound = if contended || stolen {
        Bound::Unknown
    } else if gw >= BUSY {
        Bound::Gateway
    } else if !kept && (s.client_busy >= BUSY || lagging || (shared_busy && !broker_larger)) {
        Bound::Client
    } else if s.broker_cores.is_some_and(|b| b >= BUSY) || (shared_busy && broker_larger) {
        Bound::Broker
    } else if kept {
        Bound::OfferedLoad
    } else if window_full {
        Bound::Concurrency
    } else {
        Bound::Unknown
    };
    Binding { bound, reasons }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closed(gw: f64, client: f64, little: f64, window: f64) -> Signals {
        Signals {
            gateway_busy: Some(gw),
            client_busy: client,
            broker_cores: Some(0.1),
            client_cpus_busy: Some(client + 0.1),
            client_cores: client,
            rate_achieved: None,
            schedule_lag_p99_ms: None,
            little_in_flight: little,
            window: Some(window),
            open_loop: false,
            gateway_cpus_busy: Some(gw),
            gateway_cpus_steal: Some(0.02),
        }
    }

    #[test]
    fn a_gateway_run_that_the_hypervisor_stole_from_is_not_a_maximum() {
        // Saturated gateway, 30% of its CPU taken by the hypervisor: no maximum.
        let mut s = closed(0.95, 0.30, 40.0, 256.0);
        s.gateway_cpus_steal = Some(0.30);
        let b = classify(&s);
        assert_eq!(b.bound, Bound::Unknown);
        assert!(
            b.reasons.iter().any(|r| r.contains("hypervisor steal 30%")),
            "{b:?}"
        );
        // The CPU looks 100% busy, but what is not the gateway's is the hypervisor's.
        s.gateway_cpus_busy = Some(1.0);
        s.gateway_busy = Some(0.70);
        let b = classify(&s);
        assert_eq!(b.bound, Bound::Unknown);
        assert!(
            !b.reasons.iter().any(|r| r.contains("other processes")),
            "{b:?}"
        );
        s.gateway_busy = Some(0.95);
        s.gateway_cpus_busy = Some(0.95);
        // A little steal is a reason, not a verdict.
        s.gateway_cpus_steal = Some(0.07);
        let b = classify(&s);
        assert_eq!(b.bound, Bound::Gateway);
        assert!(b.reasons.iter().any(|r| r.contains("steal 7%")), "{b:?}");
        // Unmeasured (not pinned): as before.
        s.gateway_cpus_steal = None;
        assert_eq!(classify(&s).bound, Bound::Gateway);
    }

    #[test]
    fn the_committed_http_max_cells_were_concurrency_bound() {
        // 23.6k ok/s x 2.7 ms = 63.7 of 64 in flight, gateway 30%, client 20%.
        let b = classify(&closed(0.30, 0.20, 63.7, 64.0));
        assert_eq!(b.bound, Bound::Concurrency);
        assert!(!b.bound.is_maximum());
    }

    #[test]
    fn a_saturated_gateway_is_a_maximum_even_with_a_full_window() {
        let b = classify(&closed(0.97, 0.60, 255.0, 256.0));
        assert_eq!(b.bound, Bound::Gateway);
        assert!(b.bound.is_maximum());
    }

    #[test]
    fn a_saturated_client_binds() {
        assert_eq!(
            classify(&closed(0.70, 0.95, 40.0, 64.0)).bound,
            Bound::Client
        );
        // Shared client CPUs full, the client using more of them than kafka-mock.
        let mut s = closed(0.5, 0.6, 10.0, 64.0);
        s.client_cpus_busy = Some(0.97);
        s.client_cores = 0.6;
        s.broker_cores = Some(0.37);
        assert_eq!(classify(&s).bound, Bound::Client);
    }

    #[test]
    fn a_busy_broker_binds() {
        let mut s = closed(0.5, 0.3, 10.0, 64.0);
        s.broker_cores = Some(0.95);
        assert_eq!(classify(&s).bound, Bound::Broker);
        let mut s = closed(0.5, 0.3, 10.0, 64.0);
        s.client_cpus_busy = Some(0.96);
        s.client_cores = 0.3;
        s.broker_cores = Some(0.6);
        assert_eq!(classify(&s).bound, Bound::Broker);
    }

    #[test]
    fn open_loop_that_kept_its_schedule_is_offered_load() {
        let mut s = closed(0.4, 0.5, 12.0, 256.0);
        s.open_loop = true;
        s.rate_achieved = Some(0.999);
        s.schedule_lag_p99_ms = Some(0.3);
        assert_eq!(classify(&s).bound, Bound::OfferedLoad);
        // A busy client that still kept the schedule measured what was asked.
        s.client_busy = 0.91;
        s.client_cpus_busy = Some(0.95);
        assert_eq!(classify(&s).bound, Bound::OfferedLoad);
        // The busy client sending less than asked binds.
        s.rate_achieved = Some(0.97);
        assert_eq!(classify(&s).bound, Bound::Client);
        s.rate_achieved = Some(0.999);
        // The client falling behind its own schedule binds.
        s.client_busy = 0.5;
        s.client_cpus_busy = Some(0.6);
        s.schedule_lag_p99_ms = Some(12.0);
        assert_eq!(classify(&s).bound, Bound::Client);
        // Sending less than asked because every connection waited for an answer is the
        // server's doing: gateway-bound when its CPU is full, concurrency otherwise.
        let mut s = closed(0.97, 0.5, 255.0, 256.0);
        s.open_loop = true;
        s.rate_achieved = Some(0.2);
        s.schedule_lag_p99_ms = Some(0.001);
        assert_eq!(classify(&s).bound, Bound::Gateway);
        s.gateway_busy = Some(0.5);
        s.gateway_cpus_busy = Some(0.5);
        assert_eq!(classify(&s).bound, Bound::Concurrency);
    }

    #[test]
    fn a_gateway_cpu_busy_with_other_processes_is_not_a_gateway_figure() {
        let mut s = closed(0.34, 0.5, 200.0, 256.0);
        s.gateway_cpus_busy = Some(1.0);
        let b = classify(&s);
        assert_eq!(b.bound, Bound::Unknown);
        assert!(
            b.reasons.iter().any(|r| r.contains("other processes")),
            "{b:?}"
        );
    }

    #[test]
    fn nothing_saturated_and_window_not_full_is_unknown() {
        assert_eq!(
            classify(&closed(0.5, 0.5, 20.0, 64.0)).bound,
            Bound::Unknown
        );
        let mut s = closed(0.5, 0.5, 20.0, 64.0);
        s.gateway_busy = None;
        assert_eq!(classify(&s).bound, Bound::Unknown);
    }
}
