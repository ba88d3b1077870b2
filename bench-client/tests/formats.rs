//! bench-client against any HTTP producer endpoint (issue 16): a server answering with
//! chunked responses, the Kafka REST Proxy v2 formats (`--format rest-v2-json|binary`,
//! `--batch`) against gateway-tokio, and the Node.js reference peer
//! (`peers/node-kafkajs`, skipped with a message when node or its install is absent).

mod support;

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bench_client::engine::config::Format;
use bench_client::{run_blocking, RunConfig, RunResult};

/// A keep-alive server that answers every request `200 {"partition":0,"offset":N}` with
/// `Transfer-Encoding: chunked`, the body split over two chunks (as Node.js answers
/// unless told a length). Returns its address and the count of requests it answered.
fn chunked_server() -> (String, Arc<AtomicU64>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let served = Arc::new(AtomicU64::new(0));
    let counter = served.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(c) = c else { continue };
            let counter = counter.clone();
            std::thread::spawn(move || serve_chunked(c, &counter));
        }
    });
    (format!("http://{addr}"), served)
}

fn serve_chunked(c: TcpStream, served: &AtomicU64) {
    support::serve_http(c, |_, _, out| {
        let n = served.fetch_add(1, Ordering::Relaxed);
        let body = format!("{{\"partition\":0,\"offset\":{n}}}");
        let (a, b) = body.split_at(5);
        out.extend_from_slice(
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
                a.len(),
                b.len()
            )
            .as_bytes(),
        );
    });
}

fn cfg(target: &str, f: impl FnOnce(&mut RunConfig)) -> RunConfig {
    let mut c = RunConfig::new(target).unwrap();
    c.progress = false;
    c.threads = 1;
    c.connections = 2;
    c.pipeline = 2;
    c.warmup_s = 0.2;
    c.server_probe = false;
    c.count_syscalls = false;
    f(&mut c);
    c
}

fn show(r: &RunResult) {
    eprintln!("{}", bench_client::engine::printer::summary(r));
}

#[test]
fn chunked_responses_count_as_successes() {
    let (target, served) = chunked_server();
    let r = run_blocking(cfg(&target, |c| {
        c.requests = Some(300);
        c.duration_s = None;
    }))
    .unwrap();
    show(&r);
    assert_eq!(r.errors, vec![], "chunked answers must not be errors");
    // 300 claimed after warmup, plus the few (<= connections x pipeline) warmup requests
    // answered after it.
    assert!(r.totals.ok.abs_diff(300) <= 4, "{}", r.totals.ok);
    assert_eq!(r.totals.completed, r.totals.ok);
    assert_eq!(r.http_status.get(&200).copied(), Some(r.totals.ok));
    assert!(served.load(Ordering::Relaxed) >= 300);
}

// ---- against the real gateway and the Node.js peer -----------------------------------------

/// A child process (the shared `harness`), its output quoted when a test fails; SIGTERM
/// and up to 15 s for the exit on drop.
struct Proc(harness::Proc);

impl Proc {
    fn spawn(cmd: Command) -> Proc {
        let name = cmd.get_program().to_string_lossy().into_owned();
        Proc(
            harness::Proc::spawn(cmd, harness::Options::new(name))
                .unwrap_or_else(|e| panic!("{e}")),
        )
    }

    /// The first word after `needle` in the first line containing it.
    fn word_after(&self, needle: &str) -> String {
        let line = self
            .0
            .wait_for_line(needle, Instant::now() + Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("{e}"));
        let i = line.find(needle).expect("the line contains the needle");
        line[i + needle.len()..]
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .trim_matches('"')
            .to_string()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{} output:\n{}", self.0.name(), self.0.log_text());
        }
        self.0.shut_down(Duration::from_secs(15));
    }
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("bench-formats-{}-{name}", std::process::id()))
}

/// `bench-client run --format F --batch B` with an acked file, then `verify`: every acked
/// record id is in Kafka. Returns the run.
fn run_and_verify(
    target: &str,
    brokers: &str,
    topic: &str,
    format: &str,
    batch: usize,
) -> RunResult {
    let (json, acked) = (
        tmp(&format!("{topic}.json")),
        tmp(&format!("{topic}.acked")),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_bench-client"))
        .args([
            "run",
            "--target",
            target,
            "--duration",
            "1500ms",
            "--warmup",
            "300ms",
        ])
        .args(["--ack", "kafka", "--topic", topic, "--format", format])
        .args(["--batch", &batch.to_string()])
        .args(["--connections", "2", "--pipeline", "2", "--threads", "1"])
        .arg("--json")
        .arg(&json)
        .arg("--acked-file")
        .arg(&acked)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success());
    assert!(stdout.contains("records/s ok"), "{stdout}");
    let r: RunResult = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(r.totals.ok > 0, "no successes");
    assert_eq!(r.totals.errors, 0, "{:?}", r.errors);
    assert_eq!(r.config.format, Format::parse(format));
    // One acked id per record: `batch` per acknowledged request (warmup included).
    assert_eq!(r.acked % batch as u64, 0);
    assert!(r.acked >= r.totals.ok * batch as u64, "{} acked", r.acked);
    let out = Command::new(env!("CARGO_BIN_EXE_bench-client"))
        .args([
            "verify",
            "--brokers",
            brokers,
            "--topic",
            topic,
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
    let _ = std::fs::remove_file(json);
    let _ = std::fs::remove_file(acked);
    r
}

trait ParseFormat {
    fn parse(s: &str) -> Format;
}

impl ParseFormat for Format {
    fn parse(s: &str) -> Format {
        <Format as clap::ValueEnum>::from_str(s, false).unwrap()
    }
}

#[test]
fn rest_formats_drive_gateway_tokio_and_every_record_is_in_kafka() {
    let mut cmd = Command::new(support::workspace_bin("gateway-tokio"));
    cmd.args(["--listen", "127.0.0.1:0", "--threads", "1"])
        .env("RUST_LOG", "info");
    let gw = Proc::spawn(cmd);
    let bootstrap = gw.word_after("embedded kafka bootstrap=");
    let listen = gw.word_after("listening on ");
    let target = format!("http://{listen}");
    let pid = std::process::id();
    run_and_verify(
        &target,
        &bootstrap,
        &format!("fmt-json-{pid}"),
        "rest-v2-json",
        3,
    );
    run_and_verify(
        &target,
        &bootstrap,
        &format!("fmt-bin-{pid}"),
        "rest-v2-binary",
        1,
    );
}

/// The reference peer's directory, if node is on the PATH and the peer is installed
/// (`peers/node-kafkajs/install.sh`); else why not.
fn node_peer() -> Result<PathBuf, String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../peers/node-kafkajs");
    match Command::new("node").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => return Err("node is not on the PATH (apt-get install nodejs npm)".into()),
    }
    if !dir.join("node_modules/kafkajs/package.json").exists() {
        return Err(format!(
            "kafkajs is not installed: run {}",
            dir.join("install.sh").display()
        ));
    }
    Ok(dir)
}

#[test]
fn rest_v2_json_drives_the_node_kafkajs_peer() {
    let dir = match node_peer() {
        Ok(d) => d,
        Err(why) => {
            eprintln!("SKIPPED rest_v2_json_drives_the_node_kafkajs_peer: {why}");
            return;
        }
    };
    let mut cmd = Command::new(support::workspace_bin("kafka-mock"));
    cmd.args(["--brokers", "1"]);
    let kafka = Proc::spawn(cmd);
    let bootstrap = kafka.word_after("kafka-mock ready at ");
    let mut cmd = Command::new("node");
    cmd.arg(dir.join("bridge.js"))
        .args(["--listen", "127.0.0.1:0", "--brokers", &bootstrap])
        .env("KAFKAJS_NO_PARTITIONER_WARNING", "1");
    let peer = Proc::spawn(cmd);
    let listen = peer.word_after("listening on ");
    let topic = format!("fmt-node-{}", std::process::id());
    let r = run_and_verify(
        &format!("http://{listen}"),
        &bootstrap,
        &topic,
        "rest-v2-json",
        2,
    );
    // Node answers chunked: each of those answers was read and counted.
    assert!(r.http_status.get(&200).copied().unwrap_or(0) > 0);
    drop(peer);
    drop(kafka);
}
