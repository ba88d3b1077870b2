//! `bench-client compare` end to end on a tiny matrix, against the debug gateways and
//! kafka-mock, then `bench-client report` re-rendering from summary.json alone.

use std::path::PathBuf;
use std::process::Command;

use bench_client::compare::Summary;

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

#[test]
fn tiny_compare_fills_every_cell_and_report_rerenders() {
    let out = std::env::temp_dir().join(format!("bench-client-compare-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run = Command::new(env!("CARGO_BIN_EXE_bench-client"))
        .args(["compare", "--quick", "--gateways", "tokio-multi,compio"])
        .args(["--scenarios", "http-max,http-50,ws-max,idle-http"])
        .args(["--sinks", "kafka,null", "--repeats", "1"])
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
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    eprintln!("{stderr}");
    assert!(run.status.success(), "compare failed");
    // The plan and one progress line per run.
    assert!(stderr.contains("= 12 runs, estimated"), "{stderr}");
    assert_eq!(stderr.lines().filter(|l| l.starts_with('[')).count(), 12);

    let s = Summary::read(&out).unwrap();
    assert_eq!(s.runs.len(), 12);
    for r in &s.runs {
        assert!(
            r.error.is_none(),
            "{} {}: {:?}",
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
            }
        }
        assert!(r
            .gateway_info
            .as_deref()
            .unwrap()
            .starts_with("gateway_info{"));
        assert!(r.gateway.as_ref().unwrap().cpu_s.is_some());
    }
    // Open loop at 50% of tokio-multi's http-max, for both gateways.
    let open: Vec<_> = s.runs.iter().filter(|r| r.scenario == "http-50").collect();
    assert_eq!(open.len(), 2);
    assert!(open
        .iter()
        .all(|r| r.rate.is_some() && r.rate == open[0].rate));
    // The manifest has the whole --version text and the producer config.
    let m = &s.manifest;
    assert!(m.gateways["compio"].version.lines().count() > 1);
    assert!(m.gateways["compio/null"]
        .info
        .as_deref()
        .unwrap()
        .contains("sink=\"null\""));
    assert!(m.producer_config.as_deref().unwrap().contains("acks"));
    assert!(m.machine.cpu_count > 0);

    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    for v in ["tokio-multi", "compio", "tokio-multi/null", "compio/null"] {
        assert!(
            md.contains(&format!("| {v} |")),
            "{v} missing from report.md"
        );
    }
    assert!(!md.contains("FAILED"), "{md}");
    let svgs = [
        "throughput-http-max.svg",
        "latency-http-max.svg",
        "throughput-http-50.svg",
        "latency-http-50.svg",
        "throughput-ws-max.svg",
        "latency-ws-max.svg",
        "memory.svg",
    ];
    for f in svgs {
        let t = std::fs::read_to_string(out.join(f)).unwrap();
        assert!(
            t.starts_with("<svg") && t.trim_end().ends_with("</svg>"),
            "{f}"
        );
    }

    // `report` rebuilds everything from summary.json alone.
    for f in svgs.iter().chain(&["report.md"]) {
        std::fs::remove_file(out.join(f)).unwrap();
    }
    let rep = Command::new(env!("CARGO_BIN_EXE_bench-client"))
        .arg("report")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        rep.status.success(),
        "{}",
        String::from_utf8_lossy(&rep.stderr)
    );
    assert_eq!(std::fs::read_to_string(out.join("report.md")).unwrap(), md);
    for f in svgs {
        assert!(out.join(f).exists(), "{f} not re-rendered");
    }
    let _ = std::fs::remove_dir_all(&out);
}
