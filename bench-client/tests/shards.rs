//! Sharded runs (issue 15): three `bench-client run` processes with a common `--start-at`
//! against one gateway (gateway-tokio, null sink, loopback), merged with
//! `bench-client merge`; `report` renders the merged file.

mod support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bench_client::lab::strip_ansi;

fn bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bench-client"))
}

struct Gateway {
    child: Child,
    listen: String,
}

impl Gateway {
    fn start() -> Self {
        let mut child = Command::new(support::workspace_bin("gateway-tokio"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--threads",
                "1",
                "--sink",
                "null",
            ])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                let _ = child.kill();
                let _ = child.wait();
                panic!("gateway did not log `listening on` within 30 s");
            };
            let line = strip_ansi(&line);
            if let Some(i) = line.find("listening on ") {
                let listen = line[i + "listening on ".len()..]
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .trim_matches('"')
                    .to_string();
                return Gateway { child, listen };
            }
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("bc-shards-{}-{name}", std::process::id()))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn json(p: &PathBuf) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn three_shards_merge_to_sums() {
    let gw = Gateway::start();
    let target = format!("http://{}", gw.listen);
    let start_at = now_ms() + 1500;
    let files: Vec<PathBuf> = (0..3).map(|k| tmp(&format!("shard-{k}.json"))).collect();
    let children: Vec<Child> = (0..3)
        .map(|k| {
            bench()
                .args([
                    "run",
                    "--target",
                    &target,
                    "--ack",
                    "kafka",
                    "--connections",
                    "2",
                ])
                .args([
                    "--threads",
                    "1",
                    "--duration",
                    "1s",
                    "--warmup",
                    "300ms",
                    "--quiet",
                ])
                .args(["--start-at", &start_at.to_string()])
                .args(["--shard", &format!("{k}/3")])
                .arg("--json")
                .arg(&files[k])
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let merged = tmp("merged.json");
    let out = bench()
        .arg("merge")
        .args(&files)
        .arg("--json")
        .arg(&merged)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}{stderr}");
    assert!(out.status.success());
    assert!(!stderr.contains("windows differ"), "{stderr}");

    let shards: Vec<serde_json::Value> = files.iter().map(json).collect();
    let m = json(&merged);
    let sum = |f: &dyn Fn(&serde_json::Value) -> u64| shards.iter().map(f).sum::<u64>();
    for s in &shards {
        assert!(
            s["totals"]["ok"].as_u64().unwrap() > 0,
            "a shard did no work"
        );
        assert_eq!(s["totals"]["errors"].as_u64().unwrap(), 0);
    }
    let ok = sum(&|s| s["totals"]["ok"].as_u64().unwrap());
    assert_eq!(m["totals"]["ok"].as_u64().unwrap(), ok);
    let count = sum(&|s| s["latency"]["count"].as_u64().unwrap());
    assert_eq!(m["latency"]["count"].as_u64().unwrap(), count);
    let p50s: Vec<f64> = shards
        .iter()
        .map(|s| s["latency"]["p50_us"].as_f64().unwrap())
        .collect();
    let p50 = m["latency"]["p50_us"].as_f64().unwrap();
    let (lo, hi) = p50s
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    assert!(lo <= p50 && p50 <= hi, "merged p50 {p50} outside {p50s:?}");
    // One window: the measured phases started within a few ms of each other and of --start-at.
    for s in &shards {
        let st = s["measured_start_unix_ms"].as_f64().unwrap();
        assert!(
            (st - start_at as f64).abs() < 50.0,
            "a shard started measuring at {st}, --start-at {start_at}"
        );
    }
    // One run id, interleaved sequence numbers: the shards' ids never collide.
    let ids: Vec<&str> = shards
        .iter()
        .map(|s| s["run_id"].as_str().unwrap())
        .collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");
    assert_eq!(m["manifest"]["shards"].as_array().unwrap().len(), 3);
    // The timeline: per wall-clock second, the sum of the shards' rows.
    let tl_ok: u64 = m["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["ok"].as_u64().unwrap())
        .sum();
    assert_eq!(tl_ok, ok);

    // `report` renders the merged file like any result.
    let rep = bench().arg("report").arg(&merged).output().unwrap();
    let text = String::from_utf8_lossy(&rep.stdout);
    assert!(
        rep.status.success(),
        "{}",
        String::from_utf8_lossy(&rep.stderr)
    );
    assert!(text.contains(&format!("({ok} ok,")), "{text}");
    assert!(text.contains("merged from 3 shard(s)"), "{text}");
    for f in files.iter().chain([&merged]) {
        let _ = std::fs::remove_file(f);
    }
}

#[test]
fn start_at_in_the_past_is_a_clear_error() {
    let out = bench()
        .args([
            "run",
            "--target",
            "http://127.0.0.1:9",
            "--quiet",
            "--duration",
            "1s",
        ])
        .args(["--start-at", &(now_ms() - 5000).to_string()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("already") && err.contains("in the past"),
        "{err}"
    );
    let out = bench()
        .args(["run", "--target", "http://127.0.0.1:9", "--shard", "3/3"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("0-based"));
}
