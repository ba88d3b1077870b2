//! Test fixtures the experiments share: a synthetic [`RunResult`].

use std::collections::BTreeMap;

use crate::engine::analysis::self_check::SelfCheck;
use crate::engine::analysis::stats::{new_hist, HistSummary};
use crate::engine::analysis::timeline::SecondStats;
use crate::engine::config::RunConfig;
use crate::engine::probes::manifest::Manifest;
use crate::engine::result::{RunResult, Totals};

/// A run result with a synthetic timeline of `secs` seconds at `ok` per second.
pub fn synthetic_run(secs: u64, ok: impl Fn(u64) -> u64) -> RunResult {
    let h = HistSummary::of(&new_hist());
    let timeline: Vec<SecondStats> = (0..secs)
        .map(|i| SecondStats {
            second: i,
            sent: ok(i),
            completed: ok(i),
            ok: ok(i),
            errors: 0,
            backpressure: u64::from(i == 3),
            connects: 2,
            connect_errors: 0,
            open_connections: 16,
            cpu_util: 0.2,
        })
        .collect();
    let total: u64 = timeline.iter().map(|s| s.ok).sum();
    let mut config = RunConfig::new("http://127.0.0.1:1").unwrap();
    config.rate = Some(1000.0);
    config.reconnect_after = Some(100);
    RunResult {
        schema_version: crate::engine::result::SCHEMA_VERSION,
        run_id: "0123456789".into(),
        started_at_unix_ms: 0,
        config,
        manifest: Manifest::collect(),
        open_loop: true,
        interrupted: false,
        measured_s: secs as f64,
        totals: Totals {
            sent: total,
            completed: total,
            ok: total,
            backpressure: 1,
            errors: 0,
            in_flight_at_end: 0,
            censored: 0,
            connects: 2 * secs,
            connect_errors: 0,
            ok_per_sec: total as f64 / secs as f64,
            ok_bytes_per_sec: 0.0,
            completed_per_sec: total as f64 / secs as f64,
            sent_per_sec: total as f64 / secs as f64,
        },
        latency: h.clone(),
        latency_uncorrected: Some(h.clone()),
        connect_latency: h.clone(),
        tls: None,
        errors: vec![],
        http_status: BTreeMap::from([(200, total), (503, 1)]),
        timeline,
        stalls: vec![],
        server_accept_queue: None,
        self_check: SelfCheck {
            threads: 1,
            cpu_seconds: 1.0,
            cpu_util: 0.2,
            schedule_lag: Some(h.clone()),
            runtime_lag: h,
            rate_achieved: Some(1.0),
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
