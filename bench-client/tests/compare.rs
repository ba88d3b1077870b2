//! `bench-client compare` end to end on a tiny matrix, against the debug gateways and
//! kafka-mock, then `bench-client report` re-rendering from summary.json alone.

use std::path::PathBuf;
use std::process::Command;

use bench_client::experiments::compare::{Phase, Summary};

/// `<target-dir>/debug`: the test exe is `<target-dir>/debug/deps/compare-…`.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap().to_path_buf();
    for b in ["gateway-tokio", "gateway-compio", "kafka-mock"] {
        assert!(
            dir.join(b).exists(),
            "{} not found: build the workspace binaries first: cargo build --workspace --bins",
            dir.join(b).display()
        );
    }
    dir
}

/// The SVG charts the tiny matrix must produce.
const SVGS: [&str; 8] = [
    "saturation-http-max.svg",
    "saturation-ws-max.svg",
    "throughput-http-max.svg",
    "latency-http-max.svg",
    "latency-http-load-50.svg",
    "latency-vs-load.svg",
    "throughput-cost-low.svg",
    "memory.svg",
];

#[test]
fn tiny_compare_fills_every_cell_and_report_rerenders() {
    let out = std::env::temp_dir().join(format!("bench-client-compare-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let unmounted = unmount_tracefs();
    let stderr = run_tiny_compare(&out);
    let s = Summary::read(&out).unwrap();
    assert_eq!(s.plan.seed, 7);
    check_runs(&s);
    check_rates(&s);
    check_manifest(&s);
    check_syscalls(&s, &stderr, unmounted);
    let md = check_report(&out);
    assert_eq!(
        md.contains("system calls per request were not measured"),
        s.manifest.syscalls_missing.is_some()
    );
    check_rerender(&out, &md);
    let _ = std::fs::remove_dir_all(&out);
}

/// `compare --quick` on two gateways and five scenarios into `out`: 8 search ladders,
/// then 16 cells in one round, as its progress lines say.
fn run_tiny_compare(out: &std::path::Path) -> String {
    let run = Command::new(env!("CARGO_BIN_EXE_bench-client"))
        .args(["compare", "--quick", "--gateways", "tokio-multi,compio"])
        .args([
            "--scenarios",
            "http-max,ws-max,http-load-50,cost-low,idle-http",
        ])
        .args(["--sinks", "kafka,null", "--repeats", "1", "--seed", "7"])
        .args([
            "--duration",
            "1s",
            "--warmup",
            "500ms",
            "--idle-conns",
            "200",
        ])
        .arg("--bin-dir")
        .arg(bin_dir())
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    eprintln!("{stderr}");
    assert!(run.status.success(), "compare failed");
    // The plan: 8 search ladders, then 4 + 4 + 2 + 4 + 2 cells in one round.
    assert!(stderr.contains("search: 8 ladders"), "{stderr}");
    assert!(stderr.contains("= 16 runs"), "{stderr}");
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.starts_with("[") && l.contains(" runs") && l.contains("] search "))
            .count(),
        8
    );
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.starts_with("[")
                && l.contains("] round 1/1 ")
                && !l.contains("(attempt "))
            .count(),
        16
    );
    stderr.into_owned()
}

/// As root (CI is), unmounts tracefs first, as a fresh machine has it, so that the run
/// must mount it itself or say what is missing. True if it was unmounted here.
fn unmount_tracefs() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return false;
    }
    let target = std::ffi::CString::new("/sys/kernel/tracing").unwrap();
    // SAFETY: a valid NUL-terminated path that outlives the call. Failing (not mounted)
    // is fine: then it is unmounted already.
    unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) == 0 }
}

/// Nothing silently missing: either every cost cell counted system calls, or compare said
/// in one line at start which figures would be missing and how to get them, and the
/// summary and report say so too.
fn check_syscalls(s: &Summary, stderr: &str, unmounted: bool) {
    let counted = s
        .runs
        .iter()
        .filter(|r| r.phase == Phase::Round && r.scenario == "cost-low")
        .all(|r| {
            let res = r.result.as_ref().unwrap();
            res.target_cost.as_ref().unwrap().syscalls.is_some()
        });
    let warned: Vec<_> = stderr
        .lines()
        .filter(|l| l.starts_with("compare: warning: system calls per request will be missing"))
        .collect();
    if counted {
        assert!(warned.is_empty(), "counted, yet warned: {warned:?}");
        assert!(s.manifest.syscalls_missing.is_none());
        if unmounted {
            assert!(
                stderr.contains("compare: mounted tracefs at /sys/kernel/tracing"),
                "{stderr}"
            );
        }
    } else {
        assert_eq!(
            warned.len(),
            1,
            "missing system calls without the warning: {stderr}"
        );
        assert!(warned[0].contains("mount -t tracefs nodev /sys/kernel/tracing"));
        assert!(s.manifest.syscalls_missing.is_some());
    }
}

/// Every run without error, with figures (or idle memory), cost, binding and gateway info;
/// every maximum's round at its search's best step.
fn check_runs(s: &Summary) {
    let rounds: Vec<_> = s.runs.iter().filter(|r| r.phase == Phase::Round).collect();
    assert_eq!(rounds.len(), 16);
    for r in s.runs.iter() {
        assert!(
            r.error.is_none(),
            "{:?} {} {}: {:?}",
            r.phase,
            r.scenario,
            r.variant,
            r.error
        );
        match r.scenario.as_str() {
            "idle-http" => {
                let i = r.idle.as_ref().unwrap();
                assert_eq!((i.open, i.answered), (200, 200));
                assert!(i.rss_after_kib > i.rss_before_kib);
            }
            _ => {
                let res = r.result.as_ref().unwrap();
                assert!(res.totals.ok > 0, "{} {}", r.scenario, r.variant);
                assert_eq!(res.totals.errors, 0);
                // Every load run carries the gateway's cost over the measured phase and
                // the label of what bound it.
                let cost = res.target_cost.as_ref().expect("gateway cost measured");
                assert!(cost.cpu_s > 0.0, "{cost:?}");
                assert!(cost.by_class.contains_key("io"), "{cost:?}");
                assert!(!res.binding.reasons.is_empty());
                assert!(res.little_in_flight > 0.0);
                assert!(r.step.is_some());
            }
        }
        assert!(r
            .gateway_info
            .as_deref()
            .unwrap()
            .starts_with("gateway_info{"));
    }
    // Every maximum came from a search with at least one step per variant, and its
    // round ran at the search's best step.
    for v in ["tokio-multi", "compio", "tokio-multi/null", "compio/null"] {
        for sc in ["http-max", "ws-max"] {
            let best = s.search_max(sc, v).expect("a search maximum");
            let round = rounds
                .iter()
                .find(|r| r.scenario == sc && r.variant == v)
                .unwrap();
            assert_eq!(round.step, Some(best.step), "{sc} {v}");
        }
    }
}

/// Cost points at one common rate; open loop at 50% of each gateway's own maximum.
fn check_rates(s: &Summary) {
    let rounds: Vec<_> = s.runs.iter().filter(|r| r.phase == Phase::Round).collect();
    // Cost points: the same rate for every variant, from the smallest Kafka maximum.
    let cost: Vec<_> = rounds.iter().filter(|r| r.scenario == "cost-low").collect();
    assert_eq!(cost.len(), 4);
    assert!(cost
        .iter()
        .all(|r| r.rate.is_some() && r.rate == cost[0].rate));
    // Open loop at 50% of each gateway's own maximum.
    for r in rounds.iter().filter(|r| r.scenario == "http-load-50") {
        let own = s
            .search_max_unpipelined("http-max", &r.variant)
            .unwrap()
            .ok_per_sec;
        assert!(
            (r.rate.unwrap() - own / 2.0).abs() < 1.0,
            "{:?}",
            r.rate_from
        );
    }
}

/// The manifest has the whole --version text and the producer config.
fn check_manifest(s: &Summary) {
    let m = &s.manifest;
    assert!(m.gateways["compio"].version.lines().count() > 1);
    assert!(m.gateways["compio/null"]
        .info
        .as_deref()
        .unwrap()
        .contains("sink=\"null\""));
    assert!(m.producer_config.as_deref().unwrap().contains("acks"));
    assert!(m.machine.cpu_count > 0);
    // --retries defaults to 2; a run made again keeps its last attempt (at most 3).
    assert_eq!(m.retries, Some(2));
    assert!(s.runs.iter().all(|r| (1..=3).contains(&r.attempts)));
}

/// report.md has every variant and no failure; every chart is an SVG. Returns report.md.
fn check_report(out: &std::path::Path) -> String {
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.lines()
            .nth(2)
            .is_some_and(|l| l.starts_with("**Verdict.**")),
        "{md}"
    );
    for v in ["tokio-multi", "compio", "tokio-multi/null", "compio/null"] {
        assert!(
            md.contains(&format!("| {v} |")),
            "{v} missing from report.md"
        );
    }
    assert!(md.contains("Saturation search"), "{md}");
    assert!(!md.contains("FAILED"), "{md}");
    for f in SVGS {
        let t = std::fs::read_to_string(out.join(f)).unwrap();
        assert!(
            t.starts_with("<svg") && t.trim_end().ends_with("</svg>"),
            "{f}"
        );
    }
    md
}

/// `report` rebuilds everything from summary.json alone, report.md byte for byte.
fn check_rerender(out: &std::path::Path, md: &str) {
    for f in SVGS.iter().chain(&["report.md"]) {
        std::fs::remove_file(out.join(f)).unwrap();
    }
    let rep = Command::new(env!("CARGO_BIN_EXE_bench-client"))
        .arg("report")
        .arg(out)
        .output()
        .unwrap();
    assert!(
        rep.status.success(),
        "{}",
        String::from_utf8_lossy(&rep.stderr)
    );
    assert_eq!(std::fs::read_to_string(out.join("report.md")).unwrap(), md);
    for f in SVGS {
        assert!(out.join(f).exists(), "{f} not re-rendered");
    }
}
