//! Integration tests through real sockets: a small keep-alive HTTP server written here
//! (it can freeze all responses for a while), and the real `gateway-tokio` binary with its
//! embedded Kafka.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bench_client::lab::strip_ansi;
use bench_client::{run_blocking, RunConfig, RunResult, StallClass};

/// Answers `POST /topics/...` with `200 {"partition":0,"offset":N}`, keep-alive, pipelined
/// requests in order. While a freeze window is set, no response leaves before it ends.
struct TestServer {
    addr: SocketAddr,
    freeze: Arc<Mutex<Option<(Instant, Instant)>>>,
}

impl TestServer {
    fn start() -> Self {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let freeze: Arc<Mutex<Option<(Instant, Instant)>>> = Arc::default();
        let offset = Arc::new(AtomicU64::new(0));
        let f = freeze.clone();
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(c) = c else { continue };
                let (f, offset) = (f.clone(), offset.clone());
                std::thread::spawn(move || serve(c, &f, &offset));
            }
        });
        TestServer { addr, freeze }
    }

    fn target(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Freeze every response from `after` from now, for `len`.
    fn freeze_in(&self, after: Duration, len: Duration) {
        let from = Instant::now() + after;
        *self.freeze.lock().unwrap() = Some((from, from + len));
    }
}

fn serve(c: TcpStream, freeze: &Mutex<Option<(Instant, Instant)>>, offset: &AtomicU64) {
    support::serve_http(c, |c, req, out| {
        assert!(req.path.starts_with("/topics/"));
        let window = *freeze.lock().unwrap();
        if let Some((from, to)) = window {
            let now = Instant::now();
            if now >= from && now < to {
                // Flush what was answered before the freeze, then hold the rest.
                let _ = c.write_all(out);
                out.clear();
                std::thread::sleep(to - now);
            }
        }
        let body = format!(
            "{{\"partition\":0,\"offset\":{}}}",
            offset.fetch_add(1, Ordering::Relaxed)
        );
        out.extend_from_slice(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
    });
}

fn cfg(target: &str, f: impl FnOnce(&mut RunConfig)) -> RunConfig {
    let mut c = RunConfig::new(target).unwrap();
    c.progress = false;
    c.threads = 2;
    c.connections = 4;
    c.pipeline = 2;
    c.warmup_s = 0.5;
    f(&mut c);
    c
}

fn show(r: &RunResult) {
    eprintln!("{}", bench_client::engine::printer::summary(r));
}

#[test]
fn two_second_freeze_is_one_service_stall() {
    let srv = TestServer::start();
    // Measurement starts at 0.5 s; the freeze covers 2.0..4.0 s of the run.
    srv.freeze_in(Duration::from_secs(2), Duration::from_secs(2));
    let r = run_blocking(cfg(&srv.target(), |c| c.duration_s = Some(4.5))).unwrap();
    show(&r);
    assert_eq!(r.totals.errors, 0);
    assert!(r.totals.ok > 100);
    assert_eq!(r.stalls.len(), 1, "{:#?}", r.stalls);
    let s = &r.stalls[0];
    eprintln!(
        "measured stall: start {:.1} ms, length {:.1} ms",
        s.start_ms, s.length_ms
    );
    assert_eq!(s.class, StallClass::Service);
    assert!((s.length_ms - 2000.0).abs() <= 200.0, "{s:?}");
    assert!((s.start_ms - 1500.0).abs() <= 200.0, "{s:?}");
    assert_eq!(s.outstanding, 8, "4 connections x pipeline 2 were waiting");
    assert_eq!(s.pending_connects, 0);
    assert!(!s.ongoing_at_end);
    // The per-second series shows the hole with explicit zero seconds.
    let zeros = r.timeline.iter().filter(|t| t.completed == 0).count();
    assert!(zeros >= 1, "{:?}", r.timeline);
    assert_eq!(r.timeline.len(), 5);
}

#[test]
fn open_loop_corrected_latency_shows_the_freeze() {
    let srv = TestServer::start();
    srv.freeze_in(Duration::from_secs(2), Duration::from_secs(2));
    let r = run_blocking(cfg(&srv.target(), |c| {
        c.duration_s = Some(4.5);
        c.rate = Some(1000.0);
        c.connections = 2;
        c.pipeline = 1;
    }))
    .unwrap();
    show(&r);
    let corrected = &r.latency;
    let uncorrected = r.latency_uncorrected.as_ref().unwrap();
    eprintln!(
        "p99 corrected {:.1} ms, uncorrected {:.1} ms",
        corrected.p99_us / 1e3,
        uncorrected.p99_us / 1e3
    );
    assert!(r.open_loop);
    assert_eq!(r.totals.errors, 0);
    // ~2000 of ~4500 measured requests were scheduled into the freeze.
    assert!(corrected.p99_us >= 1_000_000.0, "{corrected:?}");
    // Only the 2 requests in flight when it began saw it from their actual send.
    assert!(uncorrected.p99_us < 50_000.0, "{uncorrected:?}");
    assert!(uncorrected.max_us >= 1_500_000.0);
    assert_eq!(r.stalls.len(), 1, "{:#?}", r.stalls);
    assert_eq!(r.stalls[0].class, StallClass::Service);
    assert!((r.stalls[0].length_ms - 2000.0).abs() <= 200.0);
    // The schedule kept going: the rate was met over the run.
    let achieved = r.self_check.rate_achieved.unwrap();
    assert!(achieved > 0.9, "{achieved}");
}

#[test]
fn requests_mode_stops_after_the_count() {
    let srv = TestServer::start();
    let r = run_blocking(cfg(&srv.target(), |c| {
        c.duration_s = None;
        c.requests = Some(3000);
        c.warmup_s = 0.2;
    }))
    .unwrap();
    show(&r);
    // Requests claimed after warmup are exactly 3000; the few (<= connections x pipeline)
    // warmup requests answered after warmup are counted in the measured phase too.
    assert!(r.totals.ok.abs_diff(3000) <= 8, "{}", r.totals.ok);
    assert_eq!(r.totals.in_flight_at_end, 0);
    assert_eq!(r.totals.errors, 0);
    assert!(r.stalls.is_empty());
}

/// A server that accepts only its first `accept` connections (the listener stays open, the
/// rest wait in its accept queue) and serves only its first `serve` accepted ones (the
/// others it holds open and never reads).
fn partial_server(accept: usize, serve: usize) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let (freeze, offset) = (Arc::new(Mutex::new(None)), Arc::new(AtomicU64::new(0)));
        let mut held = Vec::new();
        for i in 0..accept {
            let Ok((c, _)) = l.accept() else { return };
            if i < serve {
                let (f, o) = (freeze.clone(), offset.clone());
                std::thread::spawn(move || serve_conn(c, &f, &o));
            } else {
                held.push(c);
            }
        }
        // Never accept again, keep the listener and the held connections open.
        std::thread::sleep(Duration::from_secs(30));
        drop((l, held));
    });
    format!("http://{addr}")
}

fn serve_conn(c: TcpStream, f: &Mutex<Option<(Instant, Instant)>>, o: &AtomicU64) {
    serve(c, f, o)
}

/// Two connections, one served: the other is unanswered while the server answers its
/// sibling. Whether the process ever accepted it decides the class, and the client reads
/// that from the listener's accept queue (the server is on this host).
fn one_of_two_served(target: &str, probe: bool) -> RunResult {
    let r = run_blocking(cfg(target, |c| {
        c.connections = 2;
        c.pipeline = 1;
        c.warmup_s = 0.2;
        c.duration_s = Some(2.0);
        c.server_probe = probe;
    }))
    .unwrap();
    show(&r);
    assert!(r.totals.ok > 100, "the served connection kept going");
    assert_eq!(r.stalls.len(), 1, "{:#?}", r.stalls);
    r
}

#[test]
fn connection_left_in_the_accept_queue_is_an_accept_stall() {
    let r = one_of_two_served(&partial_server(1, 1), true);
    assert_eq!(r.stalls[0].class, StallClass::Accept);
    assert_eq!(r.stalls[0].server_accept_queue, Some(1));
    assert_eq!(r.server_accept_queue, Some(1));
}

#[test]
fn accepted_but_never_served_connection_is_a_service_stall() {
    let r = one_of_two_served(&partial_server(2, 1), true);
    assert_eq!(r.stalls[0].class, StallClass::Service);
    assert_eq!(r.stalls[0].server_accept_queue, Some(0));
    // Without the server-side view the client alone cannot tell it from a connection
    // never accepted, and says accept.
    let r = one_of_two_served(&partial_server(2, 1), false);
    assert_eq!(r.stalls[0].class, StallClass::Accept);
    assert_eq!(r.stalls[0].server_accept_queue, None);
    assert_eq!(r.server_accept_queue, None);
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("bench-client-it-{}-{name}", std::process::id()))
}

#[test]
fn clean_run_through_the_binary_has_no_stall_and_writes_its_files() {
    let srv = TestServer::start();
    let (json, hlog, acked) = (tmp("clean.json"), tmp("clean.hlog"), tmp("clean.acked"));
    let out = Command::new(env!("CARGO_BIN_EXE_bench-client"))
        .args([
            "run",
            "--target",
            &srv.target(),
            "--duration",
            "2s",
            "--warmup",
            "300ms",
        ])
        .args([
            "--connections",
            "4",
            "--pipeline",
            "4",
            "--threads",
            "2",
            "--payload",
            "50..300",
        ])
        .arg("--json")
        .arg(&json)
        .arg("--hdr-log")
        .arg(&hlog)
        .arg("--acked-file")
        .arg(&acked)
        .arg("--fail-on-stall")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success());
    assert!(stdout.contains("no stalls"));
    let text = std::fs::read_to_string(&json).unwrap();
    let r: RunResult = serde_json::from_str(&text).unwrap();
    assert!(r.stalls.is_empty());
    assert_eq!(r.totals.errors, 0);
    assert!(r.totals.ok > 100);
    // Every field the file has is documented in SCHEMA.md.
    let schema =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/SCHEMA.md")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut objects = vec![
        &v,
        &v["config"],
        &v["manifest"],
        &v["totals"],
        &v["latency"],
    ];
    objects.extend([&v["self_check"], &v["timeline"][0]]);
    for o in objects {
        for k in o.as_object().unwrap().keys() {
            assert!(
                schema.contains(&format!("`{k}`")),
                "field {k} is not in SCHEMA.md"
            );
        }
    }
    assert_eq!(r.latency.count, r.totals.ok);
    assert_eq!(r.timeline.len(), 2);
    assert!(r
        .timeline
        .iter()
        .all(|s| s.completed > 0 && s.open_connections == 4));
    assert_eq!(r.timeline.iter().map(|s| s.ok).sum::<u64>(), r.totals.ok);
    assert_eq!(r.http_status.get(&200), Some(&r.totals.ok));
    // The histogram in the JSON is the real one.
    assert_eq!(r.latency.histogram().unwrap().len(), r.totals.ok);
    let manifest = &r.manifest;
    assert!(manifest.cpu_count > 0 && manifest.kernel.is_some());
    assert!(manifest.args.iter().any(|a| a == "--fail-on-stall"));
    // Every acked id is unique and carries the run id.
    let ids = std::fs::read_to_string(&acked).unwrap();
    let ids: Vec<&str> = ids.lines().collect();
    // Warmup acks are kept too (for verify), so there are more ids than measured successes.
    assert_eq!(ids.len() as u64, r.acked);
    assert!(r.acked > r.totals.ok);
    let uniq: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(uniq.len(), ids.len());
    assert!(ids.iter().all(|i| i.starts_with(&format!("{}-", r.run_id))));
    // The HDR log has one interval per measured second with all the successes.
    let log = std::fs::read(&hlog).unwrap();
    let mut total = 0;
    let mut intervals = 0;
    for e in hdrhistogram::serialization::interval_log::IntervalLogIterator::new(&log) {
        if let hdrhistogram::serialization::interval_log::LogEntry::Interval(h) = e.unwrap() {
            let bytes = base64_decode(h.encoded_histogram());
            let hist: hdrhistogram::Histogram<u64> =
                hdrhistogram::serialization::Deserializer::new()
                    .deserialize(&mut &bytes[..])
                    .unwrap();
            total += hist.len();
            intervals += 1;
        }
    }
    assert_eq!(intervals, 2);
    assert_eq!(total, r.totals.ok);
    for p in [json, hlog, acked] {
        let _ = std::fs::remove_file(p);
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    // Tiny decoder so the test does not need the base64 crate.
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("bad base64"),
    };
    let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=').map(val).collect();
    let mut out = Vec::new();
    for ch in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &v) in ch.iter().enumerate() {
            n |= u32::from(v) << (18 - 6 * i);
        }
        for i in 0..ch.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

// ---- against the real gateway ------------------------------------------------------------

struct Gateway {
    child: Child,
    listen: String,
    bootstrap: String,
}

impl Gateway {
    fn start() -> Self {
        let mut child = Command::new(support::workspace_bin("gateway-tokio"))
            .args(["--listen", "127.0.0.1:0", "--threads", "1"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            // Keep draining so the gateway never blocks on a full pipe.
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("gateway: {line}");
                let _ = tx.send(line);
            }
        });
        let (mut listen, mut bootstrap) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(30);
        while listen.is_none() || bootstrap.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(l) => l,
                Err(_) => {
                    let _ = child.kill();
                    panic!("gateway did not log `listening on` and `embedded kafka bootstrap=` within 30 s");
                }
            };
            let line = strip_ansi(&line);
            if let Some(i) = line.find("embedded kafka bootstrap=") {
                let rest = &line[i + "embedded kafka bootstrap=".len()..];
                bootstrap = Some(
                    rest.split_whitespace()
                        .next()
                        .unwrap()
                        .trim_matches('"')
                        .to_string(),
                );
            }
            if let Some(i) = line.find("listening on ") {
                let rest = &line[i + "listening on ".len()..];
                listen = Some(
                    rest.split_whitespace()
                        .next()
                        .unwrap()
                        .trim_matches('"')
                        .to_string(),
                );
            }
        }
        Gateway {
            child,
            listen: listen.unwrap(),
            bootstrap: bootstrap.unwrap(),
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return;
                }
            }
        }
    }
}

#[test]
fn against_gateway_tokio_ack_kafka_then_verify() {
    let gw = Gateway::start();
    let (json, acked) = (tmp("gw.json"), tmp("gw.acked"));
    let topic = format!("bench-it-{}", std::process::id());
    let out = Command::new(env!("CARGO_BIN_EXE_bench-client"))
        .args([
            "run",
            "--target",
            &format!("http://{}", gw.listen),
            "--duration",
            "3s",
        ])
        .args(["--warmup", "500ms", "--ack", "kafka", "--topic", &topic])
        .args(["--connections", "4", "--pipeline", "4", "--threads", "1"])
        .arg("--json")
        .arg(&json)
        .arg("--acked-file")
        .arg(&acked)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success());
    let r: RunResult = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(r.totals.ok > 0, "no successes");
    assert_eq!(r.totals.errors, 0, "{:?}", r.errors);
    assert!(r.stalls.is_empty(), "{:#?}", r.stalls);
    assert!(stdout.contains("no stalls"));

    let out = Command::new(env!("CARGO_BIN_EXE_bench-client"))
        .args([
            "verify",
            "--brokers",
            &gw.bootstrap,
            "--topic",
            &topic,
            "--timeout",
            "30s",
        ])
        .arg("--acked-file")
        .arg(&acked)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "verify failed");
    assert!(stdout.contains(" 0 missing"), "{stdout}");
    assert!(r.acked >= r.totals.ok);

    // WebSocket against the same gateway: window 16, acks cumulative.
    let ws_topic = format!("{topic}-ws");
    let out = Command::new(env!("CARGO_BIN_EXE_bench-client"))
        .args([
            "run",
            "--target",
            &format!("http://{}", gw.listen),
            "--mode",
            "ws",
        ])
        .args([
            "--duration",
            "1500ms",
            "--warmup",
            "300ms",
            "--topic",
            &ws_topic,
        ])
        .args(["--connections", "2", "--window", "16", "--threads", "1"])
        .arg("--json")
        .arg(&json)
        .arg("--acked-file")
        .arg(&acked)
        .output()
        .unwrap();
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(out.status.success());
    let r: RunResult = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(r.totals.ok > 0 && r.totals.errors == 0 && r.stalls.is_empty());
    let out = Command::new(env!("CARGO_BIN_EXE_bench-client"))
        .args([
            "verify",
            "--brokers",
            &gw.bootstrap,
            "--topic",
            &ws_topic,
            "--timeout",
            "30s",
        ])
        .arg("--acked-file")
        .arg(&acked)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    assert!(
        out.status.success() && stdout.contains(" 0 missing"),
        "{stdout}"
    );

    drop(gw);
    for p in [json, acked] {
        let _ = std::fs::remove_file(p);
    }
}
