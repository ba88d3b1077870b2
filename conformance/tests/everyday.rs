//! Everyday use of a gateway (issue 14), against every variant through real sockets:
//! Prometheus-conventional /metrics, strict request targets, the producer properties file
//! and environment variables, `503 kafka_unavailable` at once while Kafka is unreachable,
//! quiet librdkafka logs, the second signal that forces the exit, and a clean shutdown after
//! whatever read the gateway's log has gone away.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use conformance::{bin_path, consume, kafka_control, start_kafka_mock, Gateway, Proc, Variant};
use prometheus_parse::{LineInfo, Scrape, Value};

conformance::suite!(
    metrics_in_prometheus_conventions,
    strict_request_targets,
    help_names_producer_config,
    producer_config_file_and_environment,
    kafka_unavailable_answers_at_once,
    second_signal_forces_exit,
    shuts_down_after_its_log_reader_is_gone,
    uring_only_faults_refused_elsewhere,
);

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// Starts a gateway that need not become ready (Gateway::start waits for /readyz 200),
/// with extra environment variables.
fn spawn_gateway(v: &Variant, args: &[&str], env: &[(&str, &str)]) -> Gateway {
    let mut cmd = Command::new(bin_path(v.bin));
    cmd.args(v.args)
        .args(["--listen", "127.0.0.1:0", "--threads", "2"])
        .args(args);
    for (k, val) in env {
        cmd.env(k, val);
    }
    let proc = Proc::spawn(cmd);
    let line = proc.wait_for_line("listening on ", SECS(30));
    let addr: SocketAddr = line
        .split("listening on ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("cannot parse the address in {line:?}"));
    Gateway {
        proc,
        addr,
        brokers: String::new(),
    }
}

/// A one-thread null-sink gateway as a plain child with piped stdout and stderr (for tests
/// that must own the pipes or see a start that fails), plus `extra` arguments.
fn null_sink_child(v: &Variant, extra: &[&str]) -> std::process::Child {
    Command::new(bin_path(v.bin))
        .args(v.args)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--threads",
            "1",
            "--sink",
            "null",
        ])
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// The child's exit status if it exits within `timeout` (it is left running otherwise).
fn exit_within(
    child: &mut std::process::Child,
    timeout: Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return Some(st);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_ready(gw: &Gateway) {
    let deadline = Instant::now() + SECS(20);
    while gw
        .connect()
        .request("GET", "/readyz", &[], b"")
        .unwrap()
        .status
        != 200
    {
        assert!(
            Instant::now() < deadline,
            "never ready:\n{}",
            gw.proc.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn ws_connect(gw: &Gateway, path: &str) -> tungstenite::WebSocket<std::net::TcpStream> {
    let stream = std::net::TcpStream::connect(gw.addr).unwrap();
    stream.set_read_timeout(Some(SECS(15))).unwrap();
    let url = format!("ws://{}{}", gw.addr, path);
    let (ws, resp) = tungstenite::client(url, stream).expect("websocket handshake");
    assert_eq!(resp.status(), 101);
    ws
}

fn ws_text(ws: &mut tungstenite::WebSocket<std::net::TcpStream>) -> serde_json::Value {
    loop {
        match ws.read().expect("websocket read") {
            tungstenite::Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn scrape(gw: &Gateway) -> (conformance::Response, String) {
    let r = gw.connect().request("GET", "/metrics", &[], b"").unwrap();
    let text = String::from_utf8(r.body.clone()).expect("UTF-8 exposition");
    (r, text)
}

fn metrics_in_prometheus_conventions(v: &Variant) {
    let gw = Gateway::start(v, &[]);
    let mut c = gw.connect();
    let r = c.request("POST", "/topics/m", &[], b"x").unwrap();
    assert_eq!(r.status, 200);
    let mut ws = ws_connect(&gw, "/ws/m");
    ws.send(tungstenite::Message::text("hello")).unwrap();
    assert_eq!(ws_text(&mut ws)["ack"], 1);
    ws.close(None).unwrap();
    while ws.read().is_ok() {}
    // The closed WebSocket is counted once its connection is gone.
    let deadline = Instant::now() + SECS(5);
    while gw.metric("gateway_ws_closes_total{close_code=\"1005\"}") < 1.0 {
        assert!(Instant::now() < deadline, "{}", scrape(&gw).1);
        std::thread::sleep(Duration::from_millis(20));
    }

    let (r, text) = scrape(&gw);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    // Every line is a HELP, a TYPE or a sample a Prometheus parser reads.
    for line in text.lines() {
        let info = LineInfo::parse(line);
        assert!(
            !matches!(info, LineInfo::Ignored | LineInfo::Empty),
            "not Prometheus text: {line:?}"
        );
        if let LineInfo::Sample { value, .. } = info {
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let find = |name: &str, labels: &[(&str, &str)]| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
            .unwrap_or_else(|| panic!("no {name}{labels:?} in\n{text}"))
    };
    let gauge = |name: &str| match find(name, &[]).value {
        Value::Gauge(g) => g,
        ref other => panic!("{name} is not a gauge: {other:?}"),
    };
    let counter = |name: &str, labels: &[(&str, &str)]| match find(name, labels).value {
        Value::Counter(c) => c,
        ref other => panic!("{name} is not a counter: {other:?}"),
    };
    assert!(gauge("process_resident_memory_bytes") > 1e6);
    assert!(gauge("process_open_fds") >= 3.0);
    assert!(gauge("process_max_fds") >= gauge("process_open_fds"));
    assert!(gauge("process_start_time_seconds") > 1.6e9);
    // Clock ticks are 10 ms: a young, idle process may show 0.
    assert!(counter("process_cpu_seconds_total", &[]) >= 0.0);
    let Value::Histogram(buckets) = &find(
        "gateway_http_request_duration_seconds",
        &[("route", "publish"), ("class", "2xx")],
    )
    .value
    else {
        panic!("request duration is not a histogram")
    };
    assert_eq!(buckets.last().unwrap().count, 1.0, "{buckets:?}");
    assert!(text.contains("gateway_http_request_duration_seconds_bucket{route=\"publish\",class=\"2xx\",le=\"+Inf\"} 1"));
    // /readyz, the POST and the scrapes so far.
    assert!(counter("gateway_http_requests_total", &[("code", "200")]) >= 3.0);
    assert!(
        !text.contains("code=\"101\""),
        "an upgrade is not a request"
    );
    assert_eq!(counter("gateway_ws_upgrades_total", &[]), 1.0);
    assert_eq!(counter("gateway_ws_messages_acked_total", &[]), 1.0);
    assert_eq!(counter("gateway_ws_messages_nacked_total", &[]), 0.0);
    assert_eq!(
        counter("gateway_ws_closes_total", &[("close_code", "1005")]),
        1.0
    );
    assert!(counter("gateway_received_bytes_total", &[]) > 0.0);
    assert!(counter("gateway_sent_bytes_total", &[]) > 0.0);
    assert!(!text.contains("status=\""), "the label is `code`");
}

fn strict_request_targets(v: &Variant) {
    let gw = Gateway::start(v, &["--sink", "null"]);
    let mut c = gw.connect();
    for (target, code) in [
        ("/topics/t?key=%zz", "invalid_percent_encoding"),
        ("/topics/t?key=ab%4", "invalid_percent_encoding"),
        ("/topics/t%zz", "invalid_percent_encoding"),
        ("/topics/t%zz/batch", "invalid_percent_encoding"),
        ("/topics/%ff%fe", "invalid_topic"),
        ("/topics/caf%C3%A9", "invalid_topic"),
    ] {
        let r = c.request("POST", target, &[], b"x").unwrap();
        assert_eq!(r.status, 400, "{target}");
        assert_eq!(r.json()["error"], code, "{target}");
    }
    // The connection stays usable, and well-formed escapes still work.
    let r = c
        .request("POST", "/topics/t%2Dx?key=a%20b", &[], b"x")
        .unwrap();
    assert_eq!(r.status, 200);
    let r = c.request("GET", "/ws/t?key=%zz", &[], b"").unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "invalid_percent_encoding");
    assert!(gw.metric("gateway_http_requests_total{code=\"400\"}") >= 7.0);
}

fn help_names_producer_config(v: &Variant) {
    let out = Command::new(bin_path(v.bin))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "--producer-config <FILE>",
        "GATEWAY_PRODUCER_CONFIG",
        "GATEWAY_BROKERS",
        "GATEWAY_X_",
        "1h30m",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
    let bad = Command::new(bin_path(v.bin))
        .args(["--idle-timeout", "5 parsecs"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
}

fn producer_config_file_and_environment(v: &Variant) {
    let (_kafka, brokers) = start_kafka_mock(&["cfg"]);
    let dir = std::env::temp_dir().join(format!("everyday-{}-{}", v.name, std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("producer.properties");
    std::fs::write(
        &file,
        format!(
            "# kcat -F style\nbootstrap.servers={brokers}\n\nlinger.ms = 1\nsasl.password=hunter2-file\n"
        ),
    )
    .unwrap();
    let gw = spawn_gateway(
        v,
        &["--producer-config", file.to_str().unwrap()],
        &[
            ("GATEWAY_X_CLIENT_ID", "everyday-env"),
            ("GATEWAY_X_SASL_USERNAME", "ingest"),
        ],
    );
    wait_ready(&gw);
    let conf = gw.proc.wait_for_line("producer configuration", SECS(5));
    let log = gw.proc.log_text();
    assert!(!log.contains("embedded kafka"), "{log}");
    assert!(!log.contains("hunter2"), "a secret reached the log:\n{log}");
    assert!(conf.contains("\"sasl.password\", \"[redacted]\""), "{conf}");
    assert!(conf.contains("\"client.id\", \"everyday-env\""), "{conf}");
    assert!(conf.contains("\"linger.ms\", \"1\""), "{conf}");
    assert!(conf.contains(&brokers), "{conf}");
    let r = gw
        .connect()
        .request("POST", "/topics/cfg?key=k", &[], b"via-file")
        .unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    let got = consume(&brokers, "cfg", SECS(20), |rs| {
        rs.iter().any(|r| r.value == b"via-file")
    });
    assert!(got.iter().any(|r| r.value == b"via-file"));
    drop(gw);

    // GATEWAY_BROKERS instead of --brokers.
    let gw = spawn_gateway(v, &[], &[("GATEWAY_BROKERS", &brokers)]);
    wait_ready(&gw);
    assert!(!gw.proc.log_text().contains("embedded kafka"));
    let _ = std::fs::remove_dir_all(&dir);
}

fn kafka_unavailable_answers_at_once(v: &Variant) {
    // Nothing listens on port 1: every connection is refused.
    let mut gw = spawn_gateway(v, &["--brokers", "127.0.0.1:1"], &[]);
    let started = Instant::now();
    let mut c = gw.connect();
    assert_eq!(c.request("GET", "/readyz", &[], b"").unwrap().status, 503);
    for ack in ["kafka", "enqueue", "none"] {
        let t = Instant::now();
        let r = c
            .request("POST", &format!("/topics/u?ack={ack}"), &[], b"x")
            .unwrap();
        assert!(t.elapsed() < SECS(1), "took {:?}", t.elapsed());
        assert_eq!(r.status, 503);
        assert_eq!(r.json()["error"], "kafka_unavailable");
        assert_eq!(r.header("retry-after"), Some("1"));
    }
    let mut ws = ws_connect(&gw, "/ws/u");
    ws.send(tungstenite::Message::text("x")).unwrap();
    let nack = ws_text(&mut ws);
    assert_eq!(nack["nack"], 1, "{nack}");
    assert_eq!(nack["error"], "kafka_unavailable");
    assert_eq!(ws_text(&mut ws)["ack"], 1);
    drop(ws);
    assert!(gw.metric("gateway_ws_messages_nacked_total") >= 1.0);
    assert_eq!(gw.metric("gateway_ready"), 0.0);

    // librdkafka's errors: each once, not ~30 lines a second.
    std::thread::sleep(SECS(4).saturating_sub(started.elapsed()));
    let log = gw.proc.log_text();
    let noisy: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect();
    assert!(
        noisy.len() <= 6,
        "{} WARN/ERROR lines in 4 s:\n{}",
        noisy.len(),
        noisy.join("\n")
    );
    assert!(!noisy.is_empty(), "an unreachable broker is worth a line");

    gw.proc.signal(libc::SIGTERM);
    gw.proc
        .wait_for_line("a second SIGTERM/SIGINT exits at once", SECS(5));
    let st = gw.proc.wait_exit(SECS(10)).expect("exit after SIGTERM");
    assert!(st.success(), "{st:?}");
}

fn second_signal_forces_exit(v: &Variant) {
    let (mut kafka, brokers) = start_kafka_mock(&["slow"]);
    let mut gw = Gateway::start(v, &["--brokers", &brokers, "--shutdown-timeout", "1m"]);
    // Warm the topic's metadata, then make every broker answer after 30 s.
    let mut c = gw.connect();
    assert_eq!(
        c.request("POST", "/topics/slow", &[], b"warm")
            .unwrap()
            .status,
        200
    );
    for b in 1..=3 {
        kafka_control(&mut kafka, &format!("rtt {b} 30000"));
    }
    // A record queued in the producer that cannot be delivered keeps the final flush busy.
    let r = c
        .request("POST", "/topics/slow?ack=enqueue", &[], b"stuck")
        .unwrap();
    assert_eq!(r.status, 202, "{r:?}");
    gw.proc.signal(libc::SIGTERM);
    gw.proc
        .wait_for_line("a second SIGTERM/SIGINT exits at once", SECS(5));
    assert!(
        gw.proc.wait_exit(SECS(2)).is_none(),
        "exited before the flush could finish: the test proves nothing"
    );
    let t = Instant::now();
    gw.proc.signal(libc::SIGINT);
    let st = gw.proc.wait_exit(SECS(5)).unwrap_or_else(|| {
        panic!(
            "second signal did not force the exit:\n{}",
            gw.proc.log_text()
        )
    });
    assert!(t.elapsed() < SECS(3));
    assert!(!st.success(), "a forced exit is not a clean one: {st:?}");
    gw.proc
        .wait_for_line("second signal: exiting at once", SECS(1));
    drop(c);
}

/// A gateway whose stderr reader has gone (a closed pipe: a log collector that died, a
/// parent that stopped reading) must still shut down on SIGTERM. Every log line then fails
/// to write; that must cost the line, not the thread that logged it (the signal thread
/// logs the signal before it starts the shutdown).
fn shuts_down_after_its_log_reader_is_gone(v: &Variant) {
    use std::io::BufRead;
    let mut child = null_sink_child(v, &["--shutdown-timeout", "2s"]);
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let listening = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.contains("listening on "));
    assert!(listening, "{}: no `listening on` line", v.name);
    // Close both pipes: from now on every write to stdout or stderr fails (EPIPE).
    drop(lines);
    drop(child.stdout.take());
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let Some(status) = exit_within(&mut child, SECS(15)) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "{}: still running 15 s after SIGTERM with its log pipe closed",
            v.name
        );
    };
    assert!(status.success(), "{}: {status:?}", v.name);
}

/// The io_uring stall reproductions (`--fault uring-*`) exist on gateway-uring only; the
/// other gateways refuse them at start with a clear error instead of running their default
/// configuration under a reproduction's name.
fn uring_only_faults_refused_elsewhere(v: &Variant) {
    for fault in ["uring-cancel-accept", "uring-tiny-ring", "uring-sq-full"] {
        let mut child = null_sink_child(v, &["--shutdown-timeout", "1s", "--fault", fault]);
        // Refusing is immediate; gateway-uring, which runs it, needs only to stay up a moment.
        let wait = SECS(if v.bin == "gateway-uring" { 1 } else { 10 });
        let status = exit_within(&mut child, wait);
        if v.bin == "gateway-uring" {
            // It runs the reproduction: still up, or failed for a reason of its own.
            assert!(
                status.is_none(),
                "{} --fault {fault} exited: {status:?}",
                v.name
            );
            let _ = child.kill();
            let _ = child.wait();
            continue;
        }
        let Some(status) = status else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{} started with --fault {fault} instead of refusing it",
                v.name
            );
        };
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!status.success(), "{} --fault {fault}: {status:?}", v.name);
        assert!(
            stderr.contains(&format!("--fault {fault}")) && stderr.contains("io_uring"),
            "{} --fault {fault} did not say why:\n{stderr}",
            v.name
        );
    }
}
