//! The soak's verdict and report on synthetic gateways (a flat one, a leaking one).

use std::collections::BTreeMap;
use std::time::Duration;

use super::report::{fmt_verify, soak_charts, soak_markdown, write_soak};
use super::run::{judge, Limits};
use super::summary::{GatewaySoak, SoakReport, SOAK_SCHEMA_VERSION};
use crate::engine::probes::manifest::Manifest;
use crate::experiments::test_fixtures::synthetic_run;
use crate::experiments::verify::VerifyResult;
use crate::lab::{ExitInfo, ProcSample};

fn synthetic_gateway(name: &str, leak_kib_per_s: u64) -> GatewaySoak {
    let samples: Vec<ProcSample> = (0..=240)
        .map(|t| ProcSample {
            t_s: t as f64,
            rss_kib: 20_000 + t * leak_kib_per_s + (t % 7) * 30,
            fds: 40 + t % 3,
            threads: 8,
            cpu_s: t as f64 * 0.5,
            connections_open: Some(17.0),
            records_inflight: Some(3.0),
        })
        .collect();
    let mut g = GatewaySoak {
        gateway: name.into(),
        version: Some(format!("{name} 0.1.0")),
        probe_ok_per_sec: Some(1250.0),
        probe_latency: None,
        rate: 1000.0,
        samples,
        rss_mib: None,
        fds: None,
        run: synthetic_run(239, |i| 1000 - (i % 5)),
        metrics_end: BTreeMap::new(),
        exit: Some(ExitInfo {
            clean: true,
            code: Some(0),
            after_s: 0.2,
        }),
        verify: None,
        failures: vec![],
    };
    g.compute_growth(120.0);
    judge(
        &mut g,
        Limits {
            growth_mib: Some(5.0),
            growth_pct: Some(5.0),
        },
        Duration::from_secs(1),
    );
    g
}

#[test]
fn growth_in_percent_and_lost_acks_fail_a_soak() {
    // 40 KiB/s on a 20 MiB base: ~7 MiB between the first and last minute, ~35%.
    let leaky = synthetic_gateway("uring", 40);
    assert!(
        leaky.failures.iter().any(|f| f.contains("%")),
        "{:?}",
        leaky.failures
    );
    let mut lost = synthetic_gateway("compio", 0);
    assert!(lost.failures.is_empty(), "{:?}", lost.failures);
    lost.verify = Some(VerifyResult {
        topic: "soak".into(),
        acked: 1000,
        found: 997,
        missing: 3,
        duplicates: 0,
        scanned: 997,
        unacked_same_run: 0,
        partitions: vec![],
        complete: true,
        retention_trimmed: false,
        missing_sample: vec![],
        duplicate_sample: vec![],
    });
    judge(&mut lost, Limits::default(), Duration::from_secs(1));
    assert_eq!(
        lost.failures,
        vec!["3 acknowledged record(s) missing from Kafka".to_string()]
    );
    assert_eq!(fmt_verify(&lost.verify), "1000 / 3");
}

#[test]
fn renders_a_report_from_synthetic_samples() {
    let flat = synthetic_gateway("tokio-multi", 0);
    assert!(flat.failures.is_empty(), "{:?}", flat.failures);
    // 40 KiB/s for 4 minutes: about 7 MiB between the first and the last minute.
    let leaky = synthetic_gateway("uring", 40);
    let g = leaky.rss_mib.as_ref().unwrap();
    assert!(
        (g.slope_per_hour - 40.0 * 3600.0 / 1024.0).abs() < 1.0,
        "{g:?}"
    );
    assert!(
        leaky.failures.iter().any(|f| f.contains("RSS grew")),
        "{:?}",
        leaky.failures
    );
    let r = SoakReport {
        schema_version: SOAK_SCHEMA_VERSION,
        started_at_unix_ms: 0,
        duration_s: 239.0,
        fraction: 0.8,
        reconnect_after: 100,
        fail_on_growth_mib: Some(5.0),
        fail_on_growth_pct: Some(5.0),
        settle_s: 120.0,
        manifest: Manifest::collect(),
        gateways: vec![flat, leaky],
        not_run: vec![("compio".into(), "binary missing".into())],
        passed: false,
    };
    let charts = soak_charts(&r).unwrap();
    assert_eq!(charts.len(), 3);
    for (name, svg) in &charts {
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{name}"
        );
        assert!(
            svg.contains("tokio-multi") && svg.contains("uring"),
            "{name}: legend"
        );
        assert!(
            svg.contains("<polyline") || svg.contains("<path"),
            "{name}: no line"
        );
    }
    let md = soak_markdown(&r);
    assert!(
        md.contains("| tokio-multi |") && md.contains("FAIL: RSS grew"),
        "{md}"
    );
    assert!(md.contains("compio was not soaked"));
    assert!(md.contains("soak-rss.svg"));
    // Minute buckets: a 4-minute run has rows for minutes 0..=4.
    assert!(md.contains("| 180 |"), "{md}");
    // The JSON round-trips.
    let back: SoakReport = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
    assert_eq!(back.gateways.len(), 2);
    let dir = std::env::temp_dir().join(format!("soak-render-{}", std::process::id()));
    let files = write_soak(&r, &dir).unwrap();
    assert_eq!(files.len(), 5);
    let _ = std::fs::remove_dir_all(&dir);
}
