//! Property: merging K result files gives the same histogram as recording all their
//! samples into one (count, min, max, every percentile), and the totals are sums.

use std::collections::BTreeMap;

use bench_client::engine::analysis::bound::{Binding, Bound};
use bench_client::engine::analysis::merge::merge;
use bench_client::engine::analysis::stats::{new_hist, record_ns, Hist, HistSummary};
use bench_client::engine::config::Shard;
use bench_client::engine::probes::manifest::Manifest;
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
            ok_bytes_per_sec: ok as f64 * 100.0,
        },
        latency: HistSummary::of(lat),
        latency_uncorrected: None,
        connect_latency: empty.clone(),
        tls: None,
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
        cpu_steal: BTreeMap::new(),
        binding: Binding {
            bound: Bound::Concurrency,
            reasons: vec![],
        },
        acked: 0,
        measured_start_unix_ms: 1_800_000_000_000.0,
        acked_ids: vec![],
        intervals: vec![],
        interrupted: false,
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

fn row(second: u64, ok: u64) -> bench_client::engine::analysis::timeline::SecondStats {
    bench_client::engine::analysis::timeline::SecondStats {
        second,
        sent: ok,
        completed: ok,
        ok,
        errors: 0,
        backpressure: 0,
        connects: 0,
        connect_errors: 0,
        open_connections: 2,
        cpu_util: 0.5,
    }
}

#[test]
fn timeline_on_wall_clock_seconds_and_stalls_keep_their_shard() {
    let manifest = Manifest::collect();
    let mut h = new_hist();
    record_ns(&mut h, 1000);
    let mut a = result_of(&h, 0, 2, &manifest);
    let mut b = result_of(&h, 1, 2, &manifest);
    a.timeline = vec![row(0, 10), row(1, 20), row(2, 30)];
    // b started measuring 2 s (minus 10 ms) later: its second 0 is a's second 2.
    b.measured_start_unix_ms = a.measured_start_unix_ms + 1990.0;
    b.timeline = vec![row(0, 1), row(1, 2)];
    let stall_json = serde_json::json!({
        "start_ms": 500.0, "length_ms": 700.0, "class": "service", "outstanding": 3,
        "pending_connects": 0, "connect_refused": 0, "connect_timeouts": 0,
        "connect_exhaustion": 0, "max_client_lag_ms": 0.0, "client_cpu_util": 0.1,
        "ongoing_at_end": false, "server_accept_queue": null
    });
    b.stalls = vec![serde_json::from_value(stall_json).unwrap()];
    let m = merge(&[("a".into(), a), ("b".into(), b)]).unwrap();
    let oks: Vec<u64> = m.result.timeline.iter().map(|r| r.ok).collect();
    assert_eq!(oks, vec![10, 20, 31, 2]);
    let secs: Vec<u64> = m.result.timeline.iter().map(|r| r.second).collect();
    assert_eq!(secs, vec![0, 1, 2, 3]);
    assert_eq!(m.result.timeline[2].open_connections, 4);
    assert_eq!(m.result.timeline[3].open_connections, 2);
    assert_eq!(m.result.stalls.len(), 1);
    assert_eq!(m.result.stalls[0].shard.as_deref(), Some("1/2"));
    assert!((m.result.stalls[0].start_ms - 2490.0).abs() < 1e-6);
    // 1.99 s apart: more than the 1 s tolerance.
    assert!(m.warnings.iter().any(|w| w.contains("windows differ")));
}

#[test]
fn start_at_and_shard_parse() {
    use bench_client::engine::config::parse_start_at;
    assert_eq!(
        parse_start_at("2026-12-02T18:00:00Z").unwrap(),
        1_796_234_400_000
    );
    assert_eq!(
        parse_start_at("2026-12-02T19:00:00.250+01:00").unwrap(),
        1_796_234_400_250
    );
    assert_eq!(parse_start_at("1796234400000").unwrap(), 1_796_234_400_000);
    assert!(parse_start_at("1796234400")
        .unwrap_err()
        .contains("seconds"));
    assert!(parse_start_at("tomorrow").is_err());
    let s: Shard = "2/3".parse().unwrap();
    assert_eq!((s.index, s.count), (2, 3));
    assert!("3/3".parse::<Shard>().is_err());
    assert!("1/0".parse::<Shard>().is_err());
    assert!("x".parse::<Shard>().is_err());
}
