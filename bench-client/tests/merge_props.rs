//! Property: merging K result files gives the same histogram as recording all their
//! samples into one (count, min, max, every percentile), and the totals are sums.

use std::collections::BTreeMap;

use bench_client::engine::bound::{Binding, Bound};
use bench_client::engine::config::Shard;
use bench_client::engine::manifest::Manifest;
use bench_client::engine::merge::merge;
use bench_client::engine::stats::{new_hist, record_ns, Hist, HistSummary};
use bench_client::{RunConfig, RunResult, SelfCheck, Totals};
use proptest::prelude::*;

fn result_of(lat: &Hist, index: u32, count: u32, manifest: &Manifest) -> RunResult {
    let mut config = RunConfig::new("http://127.0.0.1:9").unwrap();
    config.shard = Some(Shard { index, count });
    config.start_at_unix_ms = Some(1_800_000_000_000);
    let empty = HistSummary::of(&new_hist());
    let ok = lat.len();
    RunResult {
        schema_version: 1,
        run_id: "00000000aa".into(),
        started_at_unix_ms: 1_800_000_000_000 - 1000,
        config,
        manifest: manifest.clone(),
        open_loop: false,
        measured_s: 1.0,
        totals: Totals {
            sent: ok + u64::from(index),
            completed: ok,
            ok,
            backpressure: 0,
            errors: 0,
            in_flight_at_end: u64::from(index),
            censored: 0,
            connects: 1,
            connect_errors: 0,
            ok_per_sec: ok as f64,
            completed_per_sec: ok as f64,
            sent_per_sec: ok as f64,
        },
        latency: HistSummary::of(lat),
        latency_uncorrected: None,
        connect_latency: empty.clone(),
        errors: vec![],
        http_status: BTreeMap::from([(200, ok)]),
        timeline: vec![],
        stalls: vec![],
        server_accept_queue: None,
        self_check: SelfCheck {
            threads: 1,
            cpu_seconds: 0.1,
            cpu_util: 0.1,
            schedule_lag: None,
            runtime_lag: empty.clone(),
            rate_achieved: None,
            generator_bound: false,
            reasons: vec![],
        },
        latency_backpressure: Some(empty),
        little_in_flight: 1.0,
        window: Some(16),
        target_cost: None,
        broker_cost: None,
        cpu_busy: BTreeMap::new(),
        binding: Binding {
            bound: Bound::Concurrency,
            reasons: vec![],
        },
        acked: 0,
        measured_start_unix_ms: 1_800_000_000_000.0,
        acked_ids: vec![],
        intervals: vec![],
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn merged_files_equal_one_histogram(
        shards in prop::collection::vec(
            prop::collection::vec(1u64..20_000_000_000, 0..300), 1..6)
    ) {
        static MANIFEST: std::sync::OnceLock<Manifest> = std::sync::OnceLock::new();
        let manifest = MANIFEST.get_or_init(Manifest::collect);
        let k = shards.len() as u32;
        let mut all = new_hist();
        let mut inputs = Vec::new();
        for (i, samples) in shards.iter().enumerate() {
            let mut h = new_hist();
            for &s in samples {
                record_ns(&mut h, s);
                record_ns(&mut all, s);
            }
            // Through the file format: JSON out and back, as `merge` reads it.
            let json = serde_json::to_string(&result_of(&h, i as u32, k, manifest)).unwrap();
            let back: RunResult = serde_json::from_str(&json).unwrap();
            inputs.push((format!("shard-{i}.json"), back));
        }
        let m = merge(&inputs).unwrap();
        prop_assert!(m.warnings.is_empty(), "{:?}", m.warnings);
        let got = m.result.latency.histogram().unwrap();
        prop_assert_eq!(got.len(), all.len());
        prop_assert_eq!(m.result.totals.ok, all.len());
        if !all.is_empty() {
            prop_assert_eq!(got.min(), all.min());
            prop_assert_eq!(got.max(), all.max());
            let qs = (0..=100).map(|q| f64::from(q) / 100.0).chain([0.999, 0.9999, 0.99999]);
            for q in qs {
                prop_assert_eq!(got.value_at_quantile(q), all.value_at_quantile(q), "quantile {}", q);
            }
        }
        // The summary figures are those of the one histogram.
        let want = HistSummary::of(&all);
        prop_assert_eq!(&m.result.latency.p50_us, &want.p50_us);
        prop_assert_eq!(&m.result.latency.p9999_us, &want.p9999_us);
        prop_assert_eq!(&m.result.latency.count, &want.count);
        prop_assert_eq!(m.result.manifest.shards.len(), shards.len());
        prop_assert_eq!(m.result.totals.sent, shards.iter().map(|s| s.len() as u64).sum::<u64>() + (0..u64::from(k)).sum::<u64>());
        prop_assert_eq!(m.result.http_status.get(&200).copied().unwrap_or(0), all.len());
    }
}

#[test]
fn refuses_other_scenarios_and_the_same_shard_twice() {
    let manifest = Manifest::collect();
    let mut h = new_hist();
    record_ns(&mut h, 1000);
    let a = result_of(&h, 0, 2, &manifest);
    let mut b = result_of(&h, 1, 2, &manifest);
    b.config.ack = bench_client::Ack::None;
    let e = merge(&[("a".into(), a.clone()), ("b".into(), b)]).unwrap_err();
    assert!(format!("{e:#}").contains("ack kafka vs none"), "{e:#}");
    let mut b = result_of(&h, 1, 2, &manifest);
    b.config.payload.max = 200;
    let e = merge(&[("a".into(), a.clone()), ("b".into(), b)]).unwrap_err();
    assert!(format!("{e:#}").contains("payload"), "{e:#}");
    let e = merge(&[("a".into(), a.clone()), ("a again".into(), a.clone())]).unwrap_err();
    assert!(format!("{e:#}").contains("same shard"), "{e:#}");

    // Windows 1.5 s apart and a client-bound shard are warnings, a missing shard too.
    let mut b = result_of(&h, 1, 3, &manifest);
    let mut a3 = result_of(&h, 0, 3, &manifest);
    a3.config.shard = Some(Shard { index: 0, count: 3 });
    b.measured_start_unix_ms += 1500.0;
    b.binding.bound = Bound::Client;
    b.self_check.generator_bound = true;
    let m = merge(&[("a".into(), a3), ("b".into(), b)]).unwrap();
    let w = m.warnings.join(" | ");
    assert!(w.contains("windows differ"), "{w}");
    assert!(w.contains("client-bound"), "{w}");
    assert!(w.contains("missing shard(s): 2/3"), "{w}");
    assert_eq!(m.result.binding.bound, Bound::Client);
}
