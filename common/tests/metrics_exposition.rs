//! `/metrics` as an operator's tools read it: the registry rendered and parsed with a real
//! Prometheus text parser (`prometheus-parse`), checked against docs/wire-contract.md's
//! metrics table (every documented series exported, nothing undocumented), the label names
//! of every family, and the buckets of every histogram (50 µs … 30 s).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::observe::kafka_stats::{BrokerStats, KafkaStats};
use common::observe::metrics::{FailReason, Metrics};
use prometheus_parse::{Scrape, Value};

const BOUNDS: [f64; 18] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0, 30.0,
];

fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("parses")
}

/// Family name -> the label names its samples carry (histograms without `le`; the parser
/// gives a histogram's `_sum` and `_count` as samples of their own).
fn families(scrape: &Scrape) -> BTreeMap<String, BTreeSet<String>> {
    let histograms: BTreeSet<&str> = scrape
        .samples
        .iter()
        .filter(|s| matches!(s.value, Value::Histogram(_)))
        .map(|s| s.metric.as_str())
        .collect();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in &scrape.samples {
        let family = ["_sum", "_count"]
            .iter()
            .find_map(|suf| s.metric.strip_suffix(suf))
            .filter(|base| histograms.contains(base))
            .unwrap_or(&s.metric);
        let names = out.entry(family.to_string()).or_default();
        names.extend(s.labels.keys().cloned());
    }
    out
}

/// The series names of docs/wire-contract.md's metrics tables: (always there, optional).
fn documented() -> (BTreeSet<String>, BTreeSet<String>) {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/wire-contract.md"
    ))
    .unwrap();
    let section = doc.split("## Metrics\n").nth(1).expect("a Metrics section");
    let section = section.split("\n## ").next().unwrap();
    let (mut always, mut optional) = (BTreeSet::new(), BTreeSet::new());
    let mut in_optional = false;
    for line in section.lines() {
        if line.starts_with("**") {
            in_optional = true;
        }
        let Some(first) = line.strip_prefix("| `").and_then(|l| l.split(" |").next()) else {
            continue;
        };
        for name in first
            .split('`')
            .filter(|n| n.starts_with("gateway_") || n.starts_with("process_"))
        {
            let set = if in_optional {
                &mut optional
            } else {
                &mut always
            };
            set.insert(name.to_string());
        }
    }
    (always, optional)
}

fn busy_registry() -> Metrics {
    let m = Metrics::default();
    m.request(200);
    m.request_duration("publish", 200, Duration::from_micros(80));
    m.request_duration("ws", 101, Duration::from_micros(10));
    m.delivery_latency(Duration::from_millis(2));
    m.records_failed(FailReason::NotEnoughReplicas, 3);
    m.ws_close(1000);
    m
}

fn render(m: &Metrics) -> String {
    m.render(&[("runtime".into(), "test".into())], 0, true)
}

fn expected_labels(name: &str) -> &'static [&'static str] {
    match name {
        "gateway_info" => &["runtime"],
        "gateway_http_requests_total" => &["code"],
        "gateway_http_request_duration_seconds" => &["route", "class"],
        "gateway_accept_errors_total" => &["errno"],
        "gateway_records_failed_total" => &["reason"],
        "gateway_ws_closes_total" => &["close_code"],
        n if n.starts_with("gateway_kafka_broker_") => &["broker"],
        "gateway_uring_rings" => &[],
        n if n.starts_with("gateway_uring_") => &["ring"],
        _ => &[],
    }
}

fn check_labels(fams: &BTreeMap<String, BTreeSet<String>>) {
    for (name, labels) in fams {
        let want: BTreeSet<String> = expected_labels(name)
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(labels, &want, "label names of {name}");
    }
}

/// Every histogram sample: the 18 bounds from 50 µs to 30 s, then +Inf.
fn check_buckets(scrape: &Scrape) -> usize {
    let mut histograms = 0;
    for s in &scrape.samples {
        if let Value::Histogram(buckets) = &s.value {
            histograms += 1;
            let bounds: Vec<f64> = buckets.iter().map(|b| b.less_than).collect();
            assert_eq!(&bounds[..BOUNDS.len()], &BOUNDS, "{}", s.metric);
            assert_eq!(bounds.len(), BOUNDS.len() + 1, "{}", s.metric);
            assert!(bounds[BOUNDS.len()].is_infinite(), "{}", s.metric);
        }
    }
    histograms
}

#[test]
fn the_documented_series_from_the_first_scrape() {
    let (always, optional) = documented();
    assert!(
        always.contains("gateway_records_failed_total"),
        "{always:?}"
    );
    assert!(
        optional.contains("gateway_uring_cq_overflow_pending"),
        "{optional:?}"
    );
    // An idle registry: every documented series already there, nothing optional.
    let idle = parse(&render(&Metrics::default()));
    let fams = families(&idle);
    let names: BTreeSet<String> = fams.keys().cloned().collect();
    assert_eq!(
        names, always,
        "exported vs documented (always-there) series"
    );
    check_labels(&fams);
    // Every route x class of the request histogram, and every failure reason, at zero.
    let durations = idle
        .samples
        .iter()
        .filter(|s| s.metric == "gateway_http_request_duration_seconds")
        .count();
    assert_eq!(durations, 7 * 4);
    let reasons: BTreeSet<&str> = idle
        .samples
        .iter()
        .filter(|s| s.metric == "gateway_records_failed_total")
        .filter_map(|s| s.labels.get("reason"))
        .collect();
    assert_eq!(
        reasons,
        FailReason::ALL.iter().map(|r| r.label()).collect(),
        "reason label values"
    );
    assert_eq!(check_buckets(&idle), 7 * 4 + 1);
}

#[test]
fn counts_land_in_their_series_and_buckets() {
    let text = render(&busy_registry());
    let scrape = parse(&text);
    check_labels(&families(&scrape));
    check_buckets(&scrape);
    let find = |name: &str, label: (&str, &str)| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && s.labels.get(label.0) == Some(label.1))
            .unwrap_or_else(|| panic!("{name}{{{}={}}}", label.0, label.1))
    };
    let failed = find(
        "gateway_records_failed_total",
        ("reason", "not_enough_replicas"),
    );
    assert!(
        matches!(failed.value, Value::Counter(v) if v == 3.0),
        "{failed:?}"
    );
    let publish = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == "gateway_http_request_duration_seconds"
                && s.labels.get("route") == Some("publish")
                && s.labels.get("class") == Some("2xx")
        })
        .unwrap();
    let Value::Histogram(b) = &publish.value else {
        panic!("{publish:?}")
    };
    // 80 µs: above the 50 µs bucket, inside the 100 µs one.
    assert_eq!((b[0].count, b[1].count), (0.0, 1.0), "{b:?}");
    assert!(text
        .contains("gateway_http_request_duration_seconds_count{route=\"ws\",class=\"1xx\"} 1\n"));
}

#[test]
fn librdkafka_statistics_only_once_reported() {
    let (_, optional) = documented();
    let m = busy_registry();
    assert!(
        !render(&m).contains("gateway_kafka_"),
        "statistics off: no series"
    );
    m.set_kafka_stats(KafkaStats {
        brokers: vec![BrokerStats {
            name: "127.0.0.1:9092/1".into(),
            rtt_avg_seconds: Some(0.000_4),
            rtt_p99_seconds: None,
            outbuf_requests: 2,
            tx_requests: 17,
            ..BrokerStats::default()
        }],
        tx_messages: 1000,
        batch_bytes_avg: Some(2048.0),
        batch_messages_avg: Some(10.0),
    });
    let text = render(&m);
    let scrape = parse(&text);
    let fams = families(&scrape);
    check_labels(&fams);
    let kafka: BTreeSet<String> = fams
        .keys()
        .filter(|n| n.starts_with("gateway_kafka_"))
        .cloned()
        .collect();
    let documented: BTreeSet<String> = optional
        .iter()
        .filter(|n| n.starts_with("gateway_kafka_"))
        .cloned()
        .collect();
    assert_eq!(kafka, documented);
    assert!(
        text.contains("gateway_kafka_broker_rtt_avg_seconds{broker=\"127.0.0.1:9092/1\"} 0.0004\n")
    );
    assert!(
        text.contains("gateway_kafka_broker_rtt_p99_seconds{broker=\"127.0.0.1:9092/1\"} NaN\n")
    );
    assert!(text.contains("gateway_kafka_broker_requests_total{broker=\"127.0.0.1:9092/1\"} 17\n"));
    assert!(text.contains("gateway_kafka_tx_messages_total 1000\n"));
}

/// A real ring (io_uring_setup), watched the way gateway-uring and gateway-compio do.
#[test]
fn io_uring_rings_read_from_fdinfo() {
    let (_, optional) = documented();
    let m = Metrics::default();
    assert!(
        !render(&m).contains("gateway_uring_"),
        "no watch: no series"
    );
    let mut params = [0u32; 30]; // struct io_uring_params (120 bytes), zeroed
                                 // SAFETY: io_uring_setup reads and writes `params`, which outlives the call.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 8u32, params.as_mut_ptr()) };
    if fd < 0 {
        let err = std::io::Error::last_os_error();
        eprintln!("io_uring unavailable here ({err}): only the no-ring rendering checked");
        m.watch_uring_rings(1);
        assert!(render(&m).contains("gateway_uring_rings 0\n"));
        return;
    }
    m.watch_uring_rings(1);
    let text = render(&m);
    // SAFETY: our own fd, closed once.
    unsafe { libc::close(fd as i32) };
    let scrape = parse(&text);
    let fams = families(&scrape);
    check_labels(&fams);
    let uring: BTreeSet<String> = fams
        .keys()
        .filter(|n| n.starts_with("gateway_uring_"))
        .cloned()
        .collect();
    let documented: BTreeSet<String> = optional
        .iter()
        .filter(|n| n.starts_with("gateway_uring_"))
        .cloned()
        .collect();
    assert_eq!(uring, documented);
    // Other tests of this binary may hold rings of their own at this moment: at least ours.
    let rings = scrape
        .samples
        .iter()
        .find(|s| s.metric == "gateway_uring_rings")
        .unwrap();
    assert!(
        matches!(rings.value, Value::Gauge(n) if n >= 1.0),
        "{rings:?}"
    );
    assert!(
        text.contains("gateway_uring_sq_entries{ring=\"0\"} 8\n"),
        "{text}"
    );
    assert!(
        text.contains("gateway_uring_cq_entries{ring=\"0\"} 16\n"),
        "{text}"
    );
    assert!(
        text.contains("gateway_uring_cq_overflow_pending{ring=\"0\"} 0\n"),
        "{text}"
    );
}
