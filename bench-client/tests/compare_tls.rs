//! `bench-client compare` with TLS cells on a tiny matrix: the gateways serve the test
//! certificate compare makes, the client speaks HTTPS to them, every TLS cell has
//! figures and handshakes, and the report has its TLS section (re-rendered byte for byte).

use std::path::PathBuf;
use std::process::Command;

use bench_client::experiments::compare::{Phase, Summary};

/// `<target-dir>/debug`: the test exe is `<target-dir>/debug/deps/compare_tls-…`.
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
fn tiny_tls_compare_fills_every_tls_cell() {
    let out = std::env::temp_dir().join(format!("bench-client-compare-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run = Command::new(env!("CARGO_BIN_EXE_bench-client"))
        .args(["compare", "--quick", "--gateways", "tokio-multi,compio"])
        .args([
            "--scenarios",
            "http-max,http-max-tls,cost-low-tls,accept-storm-tls",
        ])
        .args(["--sinks", "kafka", "--repeats", "1", "--seed", "7"])
        // Debug builds on a shared machine: 256 TLS handshakes need the warmup to finish.
        .args(["--duration", "1s", "--warmup", "2s"])
        .arg("--bin-dir")
        .arg(bin_dir())
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    eprintln!("{stderr}");
    assert!(run.status.success(), "compare failed");
    let s = Summary::read(&out).unwrap();
    let tls_ids = ["http-max-tls", "cost-low-tls", "accept-storm-tls"];
    // Every TLS cell of every gateway ran, over TLS, with successes and handshakes.
    let mut tls_rounds = 0;
    for r in s.runs.iter().filter(|r| r.phase == Phase::Round) {
        assert!(
            r.error.is_none(),
            "{} {}: {:?}",
            r.scenario,
            r.variant,
            r.error
        );
        let res = r.result.as_ref().expect("a load result");
        assert!(res.totals.ok > 0, "{} {}", r.scenario, r.variant);
        if tls_ids.contains(&r.scenario.as_str()) {
            tls_rounds += 1;
            assert!(
                res.config.target.starts_with("https://"),
                "{}",
                res.config.target
            );
            let t = res.tls.as_ref().expect("TLS figures");
            assert_eq!(t.failed, 0, "{} {}: {t:?}", r.scenario, r.variant);
            // Keep-alive cells do their handshakes in the warmup; the storm does one full
            // handshake per request in the measured phase.
            if r.scenario == "accept-storm-tls" {
                assert!(!t.resume);
                assert!(t.full > 0 && t.resumed == 0, "{t:?}");
                assert_eq!(t.handshake_latency.count, t.full);
            }
            assert!(r.gateway.is_some());
        } else {
            assert!(res.tls.is_none(), "plaintext cells stay plaintext");
        }
    }
    assert_eq!(tls_rounds, 6);
    // cost-low-tls runs at the common rate derived from the plaintext http-max.
    let rate = |id: &str| {
        s.runs
            .iter()
            .filter(|r| r.phase == Phase::Round && r.scenario == id)
            .map(|r| r.rate)
            .collect::<Vec<_>>()
    };
    let cl = rate("cost-low-tls");
    assert!(cl.iter().all(|r| r.is_some() && *r == cl[0]), "{cl:?}");
    // The gateways served the certificate compare made (the TLS cells above have ok > 0),
    // and the throwaway key went with the run: nothing of it in the output folder.
    assert!(
        !out.join("tls").exists(),
        "compare left its test PKI behind"
    );
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("## TLS: HTTPS and WSS"), "{md}");
    assert!(md.contains("| accept-storm-tls | compio |"), "{md}");
    assert!(!md.contains("FAILED"), "{md}");
    // `report` re-renders it byte for byte from summary.json.
    std::fs::remove_file(out.join("report.md")).unwrap();
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
    let _ = std::fs::remove_dir_all(&out);
}
