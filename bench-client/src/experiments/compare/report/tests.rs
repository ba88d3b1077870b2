//! The report on a synthetic comparison (every slot of the quick matrix filled) and its
//! parts: peers, accept styles, the scale tables, cells over repeats, every chart.

use std::collections::BTreeMap;

use super::super::cell::cells;
use super::super::plan::{self, Offer, Plan, Selection, Shape, Sink, Slot, Step};
use super::super::summary::{
    CompareManifest, GatewayDesc, GatewayStats, Phase, RunRecord, Summary, SUMMARY_VERSION,
};
use super::{accept_style, info_label, markdown, net_per_conn};
use crate::engine::analysis::self_check::SelfCheck;
use crate::engine::analysis::stats::record_ns;
use crate::engine::analysis::stats::{new_hist, HistSummary};
use crate::engine::analysis::timeline::Timeline;
use crate::engine::probes::manifest::Manifest;
use crate::engine::result::{RunResult, Totals};
use crate::engine::RunConfig;
use crate::experiments::idle::IdleResult;
use crate::lab::GatewayKind;
use crate::lab::Pinning;

fn result(ok_per_sec: f64, lat_ms: u64) -> RunResult {
    let mut h = new_hist();
    for i in 0..1000 {
        record_ns(&mut h, lat_ms * 1_000_000 + i * 1000);
    }
    let mut timeline = Timeline::default().per_second(0, 2_000_000_000, 1);
    for t in &mut timeline {
        t.ok = ok_per_sec as u64;
    }
    RunResult {
        schema_version: 1,
        run_id: "0123456789".into(),
        started_at_unix_ms: 0,
        config: RunConfig::new("http://127.0.0.1:1").unwrap(),
        manifest: Manifest::collect(),
        open_loop: false,
        interrupted: false,
        measured_s: 2.0,
        totals: Totals {
            sent: 2 * ok_per_sec as u64,
            completed: 2 * ok_per_sec as u64,
            ok: 2 * ok_per_sec as u64,
            backpressure: 0,
            errors: 0,
            in_flight_at_end: 0,
            censored: 0,
            connects: 4,
            connect_errors: 0,
            ok_per_sec,
            ok_bytes_per_sec: 0.0,
            completed_per_sec: ok_per_sec,
            sent_per_sec: ok_per_sec,
        },
        latency: HistSummary::of(&h),
        latency_uncorrected: None,
        connect_latency: HistSummary::of(&new_hist()),
        tls: None,
        errors: vec![],
        http_status: BTreeMap::new(),
        timeline,
        stalls: vec![],
        server_accept_queue: None,
        self_check: SelfCheck {
            threads: 1,
            cpu_seconds: 0.5,
            cpu_util: 0.25,
            schedule_lag: None,
            runtime_lag: HistSummary::of(&new_hist()),
            rate_achieved: None,
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

/// Every slot of the quick matrix filled, except compio/null http-max (failed).
pub(crate) fn synthetic() -> Summary {
    let plan = plan::plan(&Selection {
        gateways: GatewayKind::ALL.to_vec(),
        sinks: vec![Sink::Kafka, Sink::Null],
        scenarios: vec![],
        quick: true,
        repeats: Some(3),
        warmup_s: None,
        duration_s: None,
        idle_conns: 100,
        seed: 7,
        tls: false,
    })
    .unwrap();
    let mut runs = search_runs(&plan);
    runs.extend(plan.slots().into_iter().map(|sl| round_run(&plan, sl)));
    Summary {
        summary_version: SUMMARY_VERSION,
        manifest: manifest(&plan),
        plan,
        runs,
        producer: vec![],
        peers: vec![],
    }
}

/// The search: two steps per ladder, the second better (and the maximum).
fn search_runs(plan: &Plan) -> Vec<RunRecord> {
    let mut runs = Vec::new();
    for (si, vi) in plan.search_slots() {
        let v = plan.variants[vi];
        let sc = &plan.scenarios[si];
        let k = (vi + 1) as f64;
        for (i, conns) in [64usize, 256].into_iter().enumerate() {
            runs.push(RunRecord {
                phase: Phase::Search,
                round: 0,
                scenario: sc.id.clone(),
                variant: v.name(),
                step: Some(Step {
                    connections: conns,
                    depth: 1,
                }),
                rate: None,
                rate_from: None,
                result: Some(result(10_000.0 * k * (i + 1) as f64, k as u64)),
                idle: None,
                memory: None,
                gateway: None,
                gateway_info: None,
                gateway_version: None,
                error: None,
                wall_s: 1.0,
                attempts: 1,
            });
        }
    }
    runs
}

/// A rounds-phase run of slot `sl`: figures growing with the variant's index, memory for
/// the idle scenarios, compio/null http-max failed.
fn round_run(plan: &Plan, sl: Slot) -> RunRecord {
    let v = plan.variants[sl.variant];
    let sc = &plan.scenarios[sl.scenario];
    let mut r = RunRecord {
        phase: Phase::Round,
        step: None,
        round: sl.round,
        scenario: sc.id.clone(),
        variant: v.name(),
        rate: None,
        rate_from: None,
        result: None,
        idle: None,
        memory: None,
        gateway: Some(GatewayStats {
            pid: 1,
            cpu_s: Some(1.0),
            rss_kib: Some(10_000),
            hwm_kib: Some(12_000),
            wall_s: 2.0,
        }),
        gateway_info: Some("gateway_info{runtime=\"x\"} 1".into()),
        gateway_version: Some("gateway-x 0.1.0".into()),
        error: None,
        wall_s: 3.0,
        attempts: 1,
    };
    let k = (sl.variant + 1) as f64;
    match sc.shape {
        Shape::Load { .. } => {
            if v.gateway == GatewayKind::Compio && v.sink == Sink::Null && sc.id == "http-max" {
                r.error = Some("gateway exited with exit status: 1 after SIGTERM".into());
            } else {
                let mut res = result(10_000.0 * k + sl.round as f64 * 100.0, k as u64);
                res.binding.bound = crate::engine::analysis::bound::Bound::Gateway;
                res.target_cost = Some(crate::engine::probes::cost::ProcessCost {
                    pid: 1,
                    wall_s: 2.0,
                    cpu_s: 1.0,
                    voluntary_cs: 100,
                    involuntary_cs: 10,
                    syscalls: Some(1000),
                    by_class: BTreeMap::new(),
                    rss_kib: Some(20_000),
                });
                r.result = Some(res);
                if !matches!(
                    sc.shape,
                    Shape::Load {
                        offer: Offer::Search { .. },
                        ..
                    }
                ) {
                    r.rate = Some(5000.0);
                }
                r.step = Some(Step {
                    connections: 256,
                    depth: 1,
                });
            }
        }
        Shape::Idle { ws, connections } => {
            r.idle = Some(IdleResult {
                ws,
                requested: connections,
                open: connections,
                answered: connections,
                rss_before_kib: 10_000,
                rss_after_kib: 10_000 + 10 * connections as u64 * k as u64,
                bytes_per_conn: 10.0 * 1024.0 * k,
                setup_s: 0.1,
                errors: BTreeMap::new(),
            })
        }
    }
    r
}

/// The manifest: a fixed start, this machine, each variant's binary and version.
fn manifest(plan: &Plan) -> CompareManifest {
    let gateways = plan
        .variants
        .iter()
        .map(|v| {
            (
                v.name(),
                GatewayDesc {
                    binary: v.gateway.bin().into(),
                    version: format!("{} 0.1.0\nasymmetries: test", v.gateway.bin()),
                    info: Some("gateway_info{runtime=\"x\"} 1".into()),
                    command: vec![v.gateway.bin().into()],
                },
            )
        })
        .collect();
    CompareManifest {
        started_at: "2026-01-01 00:00:00 UTC".into(),
        finished_at: None,
        wall_s: 1.0,
        machine: Manifest::collect(),
        pinning: Pinning::parse("auto", 2).unwrap(),
        gateway_threads: 1,
        client_threads: 1,
        client_procs: 1,
        syscalls_missing: None,
        retries: None,
        gateway_args: vec!["--threads".into(), "1".into()],
        kafka: "kafka-mock".into(),
        bootstrap: "127.0.0.1:9092".into(),
        producer_overrides: vec![],
        producer_config: Some("producer configuration conf=[]".into()),
        topic: "bench".into(),
        gateways,
        client_nofile: 1024,
    }
}

#[test]
fn external_peers_get_their_own_labelled_rows() {
    let mut s = synthetic();
    let peer = super::super::summary::PeerDesc {
        name: "node".into(),
        url: "http://127.0.0.1:8090".into(),
        pid: None,
        format: crate::engine::config::Format::RestV2Json,
    };
    let mut extra: Vec<_> = s
        .runs
        .iter()
        .filter(|r| {
            r.phase == Phase::Round && r.variant == "tokio-multi" && r.scenario == "http-max"
        })
        .cloned()
        .collect();
    assert!(!extra.is_empty());
    for r in &mut extra {
        r.variant = peer.variant();
    }
    s.runs.extend(extra);
    s.peers.push(peer);
    let md = markdown(&s);
    let at = md.find("## External peers").expect("a peers section");
    let section = &md[at..];
    assert!(
        section.contains("| http-max | node (external) |"),
        "{section}"
    );
    assert!(section.contains("not measured"), "{section}");
    // Peers never enter the gateways' own cells.
    assert!(!cells(&s).keys().any(|(_, v)| v.contains("external")));
}

#[test]
fn accept_style_from_gateway_info() {
    let tokio = "gateway_info{runtime=\"tokio\",version=\"0.1.0\",threads=\"1\",flavor=\"multi\",driver=\"epoll\"} 1";
    let uring = "gateway_info{runtime=\"tokio-uring\",driver=\"io_uring\",accept=\"oneshot x16\",reads=\"owned 4 KiB per connection\"} 1";
    let compio = "gateway_info{runtime=\"compio\",driver=\"io_uring\",accept=\"multishot\",asymmetries=\"multishot-accept(io_uring>=5.19;single-shot on polling/older kernels),x\"} 1";
    assert_eq!(info_label(uring, "accept").as_deref(), Some("oneshot x16"));
    assert_eq!(
        info_label(uring, "reads").as_deref(),
        Some("owned 4 KiB per connection")
    );
    assert_eq!(info_label(tokio, "accept"), None);
    assert_eq!(info_label("garbage", "accept"), None);
    assert_eq!(accept_style(Some(tokio)), "epoll accept loop");
    assert_eq!(
        accept_style(Some(uring)),
        "io_uring one-shot accepts (oneshot x16)"
    );
    assert_eq!(accept_style(Some(compio)), "io_uring multishot accept");
    assert_eq!(
        accept_style(Some(
            "gateway_info{runtime=\"compio\",driver=\"polling\",accept=\"single\"} 1"
        )),
        "single-shot accept"
    );
    assert_eq!(accept_style(None), "–");
}

#[test]
fn scale_tables_show_memory_per_connection_and_accept_rate() {
    let mut s = synthetic();
    // http-many at 256 connections holds 4 MiB more than its twin at 64.
    for r in s.runs.iter_mut().filter(|r| r.phase == Phase::Round) {
        let (conns, rss) = match r.scenario.as_str() {
            "http-many" => (256, 14_096),
            "http-many-64" => (64, 10_000),
            _ => continue,
        };
        r.step = Some(Step {
            connections: conns,
            depth: 1,
        });
        r.memory = super::super::summary::LoadMemory::of(Some(9_000), Some(rss), conns);
    }
    let c = cells(&s);
    let get = |id: &str| c.get(&(id.to_string(), "tokio-multi".to_string()));
    let net = net_per_conn(get("http-many"), get("http-many-64")).unwrap();
    assert!((net - 4096.0 * 1024.0 / 192.0).abs() < 1e-6, "{net}");
    let md = markdown(&s);
    let many = md
        .split("## http-many: ")
        .nth(1)
        .unwrap()
        .split("\n## ")
        .next()
        .unwrap();
    // (14096 - 9000) KiB over 256 connections.
    assert!(many.contains("| 13.8 MiB | 19.9 KiB |"), "{many}");
    assert!(many.contains("| tokio-multi | 21.3 KiB |"), "{many}");
    let storm = md
        .split("## accept-storm: ")
        .nth(1)
        .unwrap()
        .split("\n## ")
        .next()
        .unwrap();
    assert!(
        storm.contains("connections/s accepted and served"),
        "{storm}"
    );
    assert!(
        storm.contains("| tokio-multi | not labelled | 10."),
        "{storm}"
    );
    // Memory lands in summary.json.
    let json = serde_json::to_string(&s).unwrap();
    assert!(
        json.contains("\"bytes_per_conn\":20384.0"),
        "memory in summary.json"
    );
}

#[test]
fn cells_aggregate_repeats() {
    let s = synthetic();
    let c = cells(&s);
    let v = s.plan.variants[1].name();
    let cell = &c[&("http-max".to_string(), v)];
    assert_eq!(cell.measured, 3);
    let t = cell.throughput.unwrap();
    assert_eq!((t.min, t.median, t.max), (20_000.0, 20_100.0, 20_200.0));
    // Merged, not averaged: all 3000 samples.
    assert_eq!(cell.latency.as_ref().unwrap().count, 3000);
    let failed = &c[&("http-max".to_string(), "compio/null".to_string())];
    assert!(failed.empty_reason().unwrap().contains("exit status: 1"));
}

#[test]
fn report_has_every_cell_and_valid_charts() {
    let s = synthetic();
    let md = markdown(&s);
    for sc in &s.plan.scenarios {
        let section = md
            .split(&format!("## {}: ", sc.id))
            .nth(1)
            .unwrap_or_else(|| panic!("no section for {}", sc.id));
        let section = section.split("\n## ").next().unwrap();
        for &vi in &s.plan.variants_for(sc) {
            let name = s.plan.variants[vi].name();
            let row = section
                .lines()
                .find(|l| l.starts_with(&format!("| {name} |")))
                .unwrap_or_else(|| panic!("no row {name} in {}", sc.id));
            // Filled: a figure, or the error that emptied it.
            let first = row.split('|').nth(2).unwrap().trim();
            assert!(!first.is_empty() && first != "–", "{row}");
            let cols = row.matches(" |").count();
            let header = section
                .lines()
                .find(|l| l.starts_with("| gateway |"))
                .unwrap();
            assert_eq!(cols, header.matches(" |").count(), "{row}");
        }
    }
    assert!(md.contains("**FAILED**: round 1: gateway exited with exit status: 1"));
    assert!(md.contains("asymmetries: test"));
    // (2 × 10000 + 100) / (10000 + 100) of tokio-multi's throughput, labelled.
    assert!(
        md.contains("20.1k [20.0k–20.2k] (1.99×) *(gateway)*"),
        "{md}"
    );
    // The search is reported step by step with its maximum.
    assert!(
        md.contains("- **tokio-per-core**: 64x1: 20.0k (unknown, p99 2.99 ms) → 256x1: 40.0k"),
        "{md}"
    );

    let dir = std::env::temp_dir().join(format!("compare-report-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    s.write(&dir).unwrap();
    super::super::report_dir(&dir).unwrap();
    assert_eq!(Summary::read(&dir).unwrap(), s);
    assert!(std::fs::read_to_string(dir.join("report.md")).unwrap() == md);
    let mut svgs = vec!["memory.svg".to_string()];
    for sc in &s.plan.scenarios {
        if matches!(sc.shape, Shape::Load { .. }) {
            svgs.push(format!("throughput-{}.svg", sc.id));
            svgs.push(format!("latency-{}.svg", sc.id));
        }
        if sc.search().is_some() {
            svgs.push(format!("saturation-{}.svg", sc.id));
        }
    }
    svgs.push("latency-vs-load.svg".into());
    for f in svgs {
        let t = std::fs::read_to_string(dir.join(&f)).unwrap();
        assert!(
            t.starts_with("<svg") && t.trim_end().ends_with("</svg>"),
            "{f}"
        );
        assert!(t.contains("tokio-multi"), "{f} has no legend");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_system_calls_are_said_in_the_machine_section() {
    let mut s = synthetic();
    let md = markdown(&s);
    assert!(
        !md.contains("not measured in this run"),
        "said without cause"
    );
    s.manifest.syscalls_missing =
        Some("tracefs is not mounted and bench-client is not root".into());
    let md = markdown(&s);
    let machine = &md[md.find("## Machine and method").unwrap()..];
    assert!(machine.contains("**system calls per request were not measured in this run**"));
    assert!(machine.contains("tracefs is not mounted and bench-client is not root"));
    assert!(machine.contains("`mount -t tracefs nodev /sys/kernel/tracing`"));
}

#[test]
fn the_verdict_opens_the_report() {
    let s = synthetic();
    let md = markdown(&s);
    let lines: Vec<&str> = md.lines().collect();
    assert!(lines[0].starts_with("# Gateway comparison"));
    assert!(lines[2].starts_with("**Verdict.**"), "{}", lines[2]);
    // Rounds 10k·k + 100·round: ranges apart, reference tokio-per-core (k = 2).
    assert!(
        lines[2].contains("uring established, 1.50×"),
        "{}",
        lines[2]
    );
    assert!(lines[2].contains("tokio-multi established, 0.50×"));
    assert!(!lines[2].contains("re-run"), "no --retries recorded");
}

#[test]
fn the_verdict_says_stolen_figures_are_not_the_gateways() {
    let mut s = synthetic();
    for r in s.runs.iter_mut().filter(|r| r.phase == Phase::Round) {
        if let Some(res) = r.result.as_mut() {
            res.cpu_steal = BTreeMap::from([(0, 0.02), (1, 0.30)]);
            res.binding.bound = crate::engine::analysis::bound::Bound::Unknown;
        }
    }
    s.manifest.retries = Some(2);
    if let Some(r) = s.runs.iter_mut().find(|r| r.phase == Phase::Round) {
        r.attempts = 3;
    }
    let md = markdown(&s);
    let v = md.lines().nth(2).unwrap();
    assert!(!v.contains("established,"), "{v}");
    assert!(v.contains("(hypervisor steal)"), "{v}");
    assert!(v.contains("not the gateways'"), "{v}");
    assert!(v.contains("1 run(s) were re-run"), "{v}");
    assert!(v.contains("cells still carry one"), "{v}");
    let machine = &md[md.find("## Machine and method").unwrap()..];
    assert!(machine.contains("- cells that kept a round run with steal ≥ 15%"));
    assert!(!markdown(&synthetic()).contains("cells that kept a round run with steal"));
}

#[test]
fn tls_section_only_when_the_plan_has_tls_cells() {
    let s = synthetic();
    assert!(
        !markdown(&s).contains("## TLS"),
        "plaintext reports stay as they were"
    );
    let mut s = synthetic();
    let mut twin = s.plan.scenarios[s.plan.scenario_index("http-max").unwrap()].clone();
    twin.id = "http-max-tls".into();
    twin.null_sink = false;
    twin.tls = Some(plan::TlsHandshakes::Resumed);
    s.plan.scenarios.push(twin);
    let md = markdown(&s);
    assert!(md.contains("## TLS: HTTPS and WSS"), "{md}");
    // A TLS cell without runs says so; the plaintext maximum is still shown beside it.
    assert!(md.contains("| tokio-multi |"), "{md}");
    assert!(md.contains("no run recorded"), "{md}");
}
