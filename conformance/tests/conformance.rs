//! The conformance suite: every case runs against every gateway variant (tokio multi,
//! tokio per-core, tokio-uring, compio) through real sockets. A behaviour that differs
//! between runtimes is a failing test here.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use conformance::{
    consume, encode_request, kafka_control, pipelined_answers_are_their_records, start_kafka_mock,
    ws_frame, Client, Gateway, Variant,
};

conformance::suite!(
    post_record_roundtrip,
    ack_modes,
    pipelined_answers_in_order,
    chunked_body,
    batch_records,
    error_statuses,
    request_timeout_408,
    health_ready_metrics,
    websocket_1000_messages,
    websocket_bad_frames,
    websocket_ping_pong,
    sigterm_drains_acknowledged,
    max_connections,
    survives_emfile,
    idle_timeout_closes,
    version_names_runtime,
    broker_outage_no_false_acks,
    leader_changes_no_false_acks,
    produce_errors_no_false_acks,
    sigkill_loses_only_unacknowledged,
    slowloris_gets_408,
    endless_chunks_get_413,
    pipelining_flood_bounded,
    thousands_of_idle_connections,
    websocket_inflight_backpressure,
    websocket_ping_flood_bounded,
    websocket_silent_peer_closed,
);

const SECS: fn(u64) -> Duration = Duration::from_secs;

fn post(c: &mut Client, path: &str, body: &[u8]) -> conformance::Response {
    c.request("POST", path, &[], body).expect("request")
}

fn post_record_roundtrip(v: &Variant) {
    let gw = Gateway::start(v, &[]);
    let mut c = gw.connect();
    let value = format!("hello from {}", v.name);
    let r = c
        .request(
            "POST",
            "/topics/roundtrip?key=k%201",
            &[("Kafka-Header-Trace", "abc"), ("kafka-header-n", "1")],
            value.as_bytes(),
        )
        .unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    let j = r.json();
    let (p, o) = (
        j["partition"].as_i64().unwrap(),
        j["offset"].as_i64().unwrap(),
    );
    let records = consume(&gw.brokers, "roundtrip", SECS(20), |rs| {
        rs.iter()
            .any(|x| i64::from(x.partition) == p && x.offset == o)
    });
    let rec = records
        .iter()
        .find(|x| i64::from(x.partition) == p && x.offset == o)
        .expect("the acknowledged record is in Kafka at its partition/offset");
    assert_eq!(rec.value, value.as_bytes());
    assert_eq!(rec.key.as_deref(), Some(&b"k 1"[..]));
    assert_eq!(
        rec.headers,
        vec![
            ("Trace".to_string(), b"abc".to_vec()),
            ("n".to_string(), b"1".to_vec())
        ]
    );
    assert!(gw.metric("gateway_http_requests_total{code=\"200\"}") >= 1.0);
    assert!(gw.metric("gateway_records_delivered_total") >= 1.0);
}

fn ack_modes(v: &Variant) {
    let gw = Gateway::start(v, &[]);
    let mut c = gw.connect();
    assert_eq!(post(&mut c, "/topics/acks?ack=enqueue", b"e").status, 202);
    assert_eq!(post(&mut c, "/topics/acks?ack=none", b"n").status, 202);
    let r = post(&mut c, "/topics/acks?ack=maybe", b"x");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "invalid_ack");
    // The connection survives a well-framed bad request.
    assert_eq!(post(&mut c, "/topics/acks?ack=kafka", b"k").status, 200);
    let gw2 = Gateway::start(v, &["--ack", "enqueue"]);
    assert_eq!(post(&mut gw2.connect(), "/topics/acks", b"d").status, 202);
}

fn pipelined_answers_in_order(v: &Variant) {
    let gw = Gateway::start(v, &[]);
    let mut c = gw.connect();
    let r = pipelined_answers_are_their_records(&mut c, &gw.brokers, "pipe", 5);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "ok");
}

fn chunked_body(v: &Variant) {
    let gw = Gateway::start(v, &[]);
    let mut c = gw.connect();
    c.send_raw(b"POST /topics/chunked HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n1;x=y\r\n \r\n5\r\nworld\r\n0\r\n\r\n")
        .unwrap();
    let r = c.read_response().unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    let records = consume(&gw.brokers, "chunked", SECS(20), |rs| !rs.is_empty());
    assert_eq!(records[0].value, b"hello world");
}

fn batch_records(v: &Variant) {
    let gw = Gateway::start(v, &[]);
    let mut c = gw.connect();
    let r = post(
        &mut c,
        "/topics/batch/batch?key=b",
        b"one\ntwo\r\n\nthree\n",
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["count"], 3);
    let records = consume(&gw.brokers, "batch", SECS(20), |rs| rs.len() >= 3);
    let mut values: Vec<_> = records.iter().map(|r| r.value.clone()).collect();
    values.sort();
    assert_eq!(
        values,
        vec![b"one".to_vec(), b"three".to_vec(), b"two".to_vec()]
    );
    assert!(records.iter().all(|r| r.key.as_deref() == Some(&b"b"[..])));
}

fn expect_error(c: &mut Client, raw: &[u8], status: u16, code: &str, closes: bool) {
    c.send_raw(raw).unwrap();
    let r = c.read_response().unwrap();
    assert_eq!(r.status, status, "{}: {r:?}", String::from_utf8_lossy(raw));
    assert_eq!(r.json()["error"], code);
    if closes {
        assert_eq!(r.header("connection"), Some("close"));
        assert!(c.closed_within(SECS(3)), "connection closed after {status}");
    }
}

fn error_statuses(v: &Variant) {
    let gw = Gateway::start(v, &["--max-body", "1024", "--max-head", "2048"]);
    expect_error(
        &mut gw.connect(),
        b"GARBAGE\r\n\r\n",
        400,
        "malformed_request",
        true,
    );
    let mut c = gw.connect();
    expect_error(
        &mut c,
        b"GET /nope HTTP/1.1\r\n\r\n",
        404,
        "not_found",
        false,
    );
    c.send_raw(b"GET /topics/x HTTP/1.1\r\n\r\n").unwrap();
    let r = c.read_response().unwrap();
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
    assert_eq!(c.request("GET", "/healthz", &[], b"").unwrap().status, 200);
    expect_error(
        &mut gw.connect(),
        b"POST /topics/x HTTP/1.1\r\n\r\n",
        411,
        "length_required",
        true,
    );
    expect_error(
        &mut gw.connect(),
        b"POST /topics/x HTTP/1.1\r\ncontent-length: 2000\r\n\r\n",
        413,
        "payload_too_large",
        true,
    );
    let mut big = b"GET /healthz HTTP/1.1\r\nx-big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 3000));
    big.extend_from_slice(b"\r\n\r\n");
    expect_error(&mut gw.connect(), &big, 431, "headers_too_large", true);
    expect_error(
        &mut gw.connect(),
        b"POST /topics/x HTTP/1.1\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n",
        400,
        "conflicting_length",
        true,
    );
    expect_error(
        &mut gw.connect(),
        b"POST /topics/bad%20topic HTTP/1.1\r\ncontent-length: 0\r\n\r\n",
        400,
        "invalid_topic",
        false,
    );
}

fn request_timeout_408(v: &Variant) {
    let gw = Gateway::start(v, &["--request-timeout", "1s"]);
    let mut c = gw.connect();
    let start = Instant::now();
    c.send_raw(b"POST /topics/slow HTTP/1.1\r\ncontent-le")
        .unwrap();
    let r = c.read_response().unwrap();
    assert_eq!(r.status, 408);
    assert_eq!(r.json()["error"], "request_timeout");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < SECS(5),
        "408 after {took:?}"
    );
    assert!(c.closed_within(SECS(3)));
}

fn health_ready_metrics(v: &Variant) {
    let gw = Gateway::start(v, &[]);
    let mut c = gw.connect();
    assert_eq!(c.request("GET", "/healthz", &[], b"").unwrap().status, 200);
    assert_eq!(c.request("GET", "/readyz", &[], b"").unwrap().status, 200);
    let r = c.request("GET", "/metrics", &[], b"").unwrap();
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    let text = String::from_utf8(r.body).unwrap();
    let runtime = match v.bin {
        "gateway-tokio" => "runtime=\"tokio\"",
        "gateway-uring" => "runtime=\"tokio-uring\"",
        _ => "runtime=\"compio\"",
    };
    let info = text
        .lines()
        .find(|l| l.starts_with("gateway_info{"))
        .expect("gateway_info");
    assert!(info.contains(runtime), "{info}");
    for series in [
        "gateway_connections_open",
        "gateway_producer_queue_depth",
        "gateway_records_inflight",
        "gateway_accept_errors_total{errno=\"EMFILE\"}",
        "gateway_delivery_latency_seconds_bucket",
        "gateway_received_bytes_total",
    ] {
        assert!(text.contains(series), "missing {series}");
    }
    // The io_uring gateways export their rings' state (fdinfo); tokio and compio's polling
    // fallback have no ring and no such series.
    let uring = info.contains("driver=\"io_uring\"");
    assert_eq!(
        text.contains("gateway_uring_cq_overflow_pending{ring=\"0\"} "),
        uring,
        "{info}"
    );
    assert!(text.contains("gateway_http_request_duration_seconds_bucket{route=\"publish\",class=\"2xx\",le=\"0.00005\"} "));
    let null = Gateway::start(v, &["--sink", "null"]);
    let mut c = null.connect();
    assert_eq!(c.request("GET", "/readyz", &[], b"").unwrap().status, 200);
    assert_eq!(post(&mut c, "/topics/n", b"x").status, 200);
}

fn ws_connect(gw: &Gateway, path: &str) -> tungstenite::WebSocket<std::net::TcpStream> {
    let stream = std::net::TcpStream::connect(gw.addr).unwrap();
    stream.set_read_timeout(Some(SECS(15))).unwrap();
    let url = format!("ws://{}{}", gw.addr, path);
    let (ws, resp) = tungstenite::client(url, stream).expect("websocket handshake");
    assert_eq!(resp.status(), 101);
    ws
}

fn websocket_1000_messages(v: &Variant) {
    let gw = Gateway::start(v, &[]);
    let mut ws = ws_connect(&gw, "/ws/wsload?key=w");
    for i in 1..=1000 {
        ws.write(tungstenite::Message::text(format!("m-{i}")))
            .unwrap();
    }
    ws.flush().unwrap();
    let mut last = 0;
    let mut frames = 0;
    while last < 1000 {
        match ws.read().expect("ack frame") {
            tungstenite::Message::Text(t) => {
                let j: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                let n = j["ack"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("unexpected frame {t}"));
                assert!(n > last, "acks are cumulative and increasing");
                last = n;
                frames += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(last, 1000);
    assert!(frames <= 1000);
    let records = consume(&gw.brokers, "wsload", SECS(30), |rs| rs.len() >= 1000);
    let values: HashSet<_> = records.iter().map(|r| r.value.clone()).collect();
    for i in 1..=1000 {
        assert!(
            values.contains(format!("m-{i}").as_bytes()),
            "m-{i} missing"
        );
    }
    let _ = ws.close(None);
}

fn raw_ws(gw: &Gateway) -> Client {
    let mut c = gw.connect();
    c.send_raw(b"GET /ws/raw HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n").unwrap();
    let r = c.read_response().unwrap();
    assert_eq!(r.status, 101);
    assert_eq!(
        r.header("sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    c
}

/// Reads server frames until a close frame; returns its code.
fn read_close_code(c: &mut Client) -> u16 {
    let mut buf = c.take_buffered();
    let deadline = Instant::now() + SECS(5);
    loop {
        // Skip whole non-close frames (server frames are unmasked, short here).
        while buf.len() >= 2 && buf[0] != 0x88 {
            let len = usize::from(buf[1] & 0x7f);
            assert!(len < 126, "unexpected long frame");
            if buf.len() < 2 + len {
                break;
            }
            buf.drain(..2 + len);
        }
        if buf.len() >= 4 && buf[0] == 0x88 {
            return u16::from_be_bytes([buf[2], buf[3]]);
        }
        assert!(Instant::now() < deadline, "no close frame; got {buf:?}");
        let mut chunk = [0u8; 4096];
        let n = c.stream.read(&mut chunk).expect("read");
        assert!(
            n > 0,
            "connection closed without a close frame; got {buf:?}"
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn websocket_bad_frames(v: &Variant) {
    let gw = Gateway::start(v, &["--max-body", "1024"]);
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("unmasked", ws_frame(true, 2, b"x", false), 1002),
        ("reserved opcode", ws_frame(true, 3, b"x", true), 1002),
        ("fragmented ping", ws_frame(false, 9, b"x", true), 1002),
        (
            "invalid utf-8",
            ws_frame(true, 1, &[0xc3, 0x28], true),
            1007,
        ),
        ("oversized", ws_frame(true, 2, &[7u8; 2000], true), 1009),
    ];
    for (name, frame, code) in cases {
        let mut c = raw_ws(&gw);
        c.send_raw(&frame).unwrap();
        assert_eq!(read_close_code(&mut c), code, "{name}");
        assert!(
            c.closed_within(SECS(5)),
            "{name}: TCP closed after the close frame"
        );
    }
    // The gateway still serves.
    assert_eq!(
        gw.connect()
            .request("GET", "/healthz", &[], b"")
            .unwrap()
            .status,
        200
    );
}

fn websocket_ping_pong(v: &Variant) {
    let gw = Gateway::start(v, &[]);
    let mut c = raw_ws(&gw);
    c.send_raw(&ws_frame(true, 9, b"hi", true)).unwrap();
    let mut buf = c.take_buffered();
    while buf.len() < 4 {
        let mut chunk = [0u8; 64];
        let n = c.stream.read(&mut chunk).unwrap();
        assert!(n > 0);
        buf.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(&buf[..4], &[0x8a, 2, b'h', b'i']);
    c.send_raw(&ws_frame(true, 8, &1000u16.to_be_bytes(), true))
        .unwrap();
    assert_eq!(read_close_code(&mut c), 1000);
}

fn sigterm_drains_acknowledged(v: &Variant) {
    let (_kafka, brokers) = start_kafka_mock(&["drain"]);
    let mut gw = Gateway::start(v, &["--brokers", &brokers, "--shutdown-timeout", "15s"]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for t in 0..4 {
        let mut c = gw.connect();
        let stop = stop.clone();
        clients.push(std::thread::spawn(move || {
            let mut acked = Vec::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let value = format!("c{t}-{i}");
                i += 1;
                match c.request("POST", "/topics/drain?ack=kafka", &[], value.as_bytes()) {
                    Ok(r) if r.status == 200 => acked.push(value),
                    Ok(r) if r.status == 503 => {}
                    Ok(r) => panic!("unexpected {r:?}"),
                    Err(_) => break, // the gateway closed the connection while draining
                }
            }
            acked
        }));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let status = gw.terminate(SECS(30));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acked: Vec<String> = clients
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        gw.proc.log_text()
    );
    eprintln!(
        "{}: {} records acknowledged before/while draining",
        v.name,
        acked.len()
    );
    assert!(acked.len() > 20, "load too small: {} acks", acked.len());
    let want: HashSet<Vec<u8>> = acked.iter().map(|s| s.as_bytes().to_vec()).collect();
    let records = consume(&brokers, "drain", SECS(30), |rs| {
        let have: HashSet<&Vec<u8>> = rs.iter().map(|r| &r.value).collect();
        want.iter().all(|w| have.contains(w))
    });
    let have: HashSet<Vec<u8>> = records.into_iter().map(|r| r.value).collect();
    let missing: Vec<_> = want.iter().filter(|w| !have.contains(*w)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged records missing",
        missing.len(),
        want.len()
    );
}

fn max_connections(v: &Variant) {
    let gw = Gateway::start(v, &["--max-connections", "2", "--sink", "null"]);
    // wait_ready's probe connection may still be closing: give it a moment.
    std::thread::sleep(Duration::from_millis(200));
    let mut a = gw.connect();
    let mut b = gw.connect();
    assert_eq!(a.request("GET", "/healthz", &[], b"").unwrap().status, 200);
    assert_eq!(b.request("GET", "/healthz", &[], b"").unwrap().status, 200);
    // Over the limit: reset at once (possibly before we even finish setting the socket up).
    let over_closed = match gw.connect_checked() {
        Err(_) => true,
        Ok(mut over) => {
            let _ = over.send_raw(b"GET /healthz HTTP/1.1\r\n\r\n");
            over.closed_within(SECS(3))
        }
    };
    assert!(over_closed, "connection over the limit is closed at once");
    assert_eq!(a.request("GET", "/healthz", &[], b"").unwrap().status, 200);
    assert_eq!(b.request("GET", "/healthz", &[], b"").unwrap().status, 200);
    // The scrape needs a free slot: free one and wait until the gateway has seen it go.
    drop(a);
    let deadline = Instant::now() + SECS(5);
    let scraped = loop {
        let r = gw
            .connect_checked()
            .and_then(|mut c| c.request("GET", "/metrics", &[], b""));
        if let Ok(r) = r {
            break String::from_utf8_lossy(&r.body).to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no free slot after closing a connection"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        scraped
            .lines()
            .any(|l| l.starts_with("gateway_connections_rejected_total ") && !l.ends_with(" 0")),
        "rejected connections are counted"
    );
}

fn survives_emfile(v: &Variant) {
    let gw = Gateway::start(v, &["--fd-limit", "64", "--sink", "null"]);
    let mut held = Vec::new();
    for _ in 0..120 {
        if let Ok(s) = std::net::TcpStream::connect_timeout(&gw.addr, SECS(2)) {
            held.push(s);
        }
    }
    // Let the gateway hit EMFILE on its accept loop.
    for s in held.iter_mut() {
        let _ = s.write_all(b"GET /healthz HTTP/1.1\r\n\r\n");
    }
    std::thread::sleep(Duration::from_millis(1000));
    drop(held);
    // Once the fds are back the gateway accepts and serves again.
    let deadline = Instant::now() + SECS(15);
    loop {
        let ok = gw
            .connect_checked()
            .and_then(|mut c| c.request("GET", "/healthz", &[], b""))
            .is_ok_and(|r| r.status == 200);
        if ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "gateway did not recover; log:\n{}",
            gw.proc.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        gw.metric("gateway_accept_errors_total{errno=\"EMFILE\"}") >= 1.0,
        "the accept loop never saw EMFILE: the test did not exercise it"
    );
}

fn idle_timeout_closes(v: &Variant) {
    let gw = Gateway::start(v, &["--idle-timeout", "1s", "--sink", "null"]);
    let mut c = gw.connect();
    assert_eq!(c.request("GET", "/healthz", &[], b"").unwrap().status, 200);
    let start = Instant::now();
    assert!(c.closed_within(SECS(5)), "idle connection closed");
    assert!(start.elapsed() >= Duration::from_millis(800));
}

fn version_names_runtime(v: &Variant) {
    let out = std::process::Command::new(conformance::bin_path(v.bin))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let runtime = match v.bin {
        "gateway-tokio" => "tokio",
        "gateway-uring" => "tokio-uring",
        _ => "compio",
    };
    assert!(text.contains(runtime), "{text}");
}

// ---- reliability: nothing acknowledged is lost, bad input costs nothing ----

struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    clients: Vec<std::thread::JoinHandle<LoadResult>>,
}

#[derive(Default)]
struct LoadResult {
    /// (value, time of the 200 since the load started)
    acked: Vec<(String, Duration)>,
    unavailable: usize,
}

/// `clients` keep-alive connections posting ack=kafka records until stopped; reconnects
/// after a closed connection.
fn start_load(gw: &Gateway, topic: &str, clients: usize) -> Load {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let start = Instant::now();
    let handles = (0..clients)
        .map(|t| {
            let stop = stop.clone();
            let addr = gw.addr;
            let path = format!("/topics/{topic}?ack=kafka");
            std::thread::spawn(move || {
                let mut res = LoadResult::default();
                let mut i = 0;
                let mut client: Option<Client> = None;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if client.is_none() {
                        let Ok(s) = std::net::TcpStream::connect(addr) else {
                            std::thread::sleep(Duration::from_millis(50));
                            continue;
                        };
                        s.set_read_timeout(Some(SECS(40))).unwrap();
                        client = Some(conformance::Client::from_stream(s));
                    }
                    let value = format!("l{t}-{i}");
                    i += 1;
                    match client
                        .as_mut()
                        .unwrap()
                        .request("POST", &path, &[], value.as_bytes())
                    {
                        Ok(r) if r.status == 200 => res.acked.push((value, start.elapsed())),
                        Ok(r) if r.status == 503 => {
                            assert!(r.header("retry-after").is_some());
                            res.unavailable += 1;
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        Ok(r) => panic!("unexpected {r:?}"),
                        Err(_) => client = None,
                    }
                }
                res
            })
        })
        .collect();
    Load {
        stop,
        clients: handles,
    }
}

impl Load {
    fn finish(self) -> LoadResult {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut all = LoadResult::default();
        for h in self.clients {
            let r = h.join().unwrap();
            all.acked.extend(r.acked);
            all.unavailable += r.unavailable;
        }
        all
    }
}

/// Every acknowledged value is in `topic`.
fn assert_all_in_kafka(brokers: &str, topic: &str, acked: &[(String, Duration)]) {
    let want: HashSet<Vec<u8>> = acked.iter().map(|(v, _)| v.as_bytes().to_vec()).collect();
    let records = consume(brokers, topic, SECS(40), |rs| {
        let have: HashSet<&Vec<u8>> = rs.iter().map(|r| &r.value).collect();
        want.iter().all(|w| have.contains(w))
    });
    let have: HashSet<Vec<u8>> = records.into_iter().map(|r| r.value).collect();
    let missing = want.iter().filter(|w| !have.contains(*w)).count();
    assert_eq!(
        missing,
        0,
        "{missing} of {} acknowledged records missing from Kafka",
        want.len()
    );
}

fn broker_outage_no_false_acks(v: &Variant) {
    let (mut kafka, brokers) = start_kafka_mock(&["outage"]);
    let gw = Gateway::start(v, &["--brokers", &brokers, "-X", "message.timeout.ms=4000"]);
    let load = start_load(&gw, "outage", 4);
    std::thread::sleep(Duration::from_millis(800));
    for b in 1..=3 {
        kafka_control(&mut kafka, &format!("broker-down {b}"));
    }
    let down_at = Instant::now();
    std::thread::sleep(SECS(5));
    for b in 1..=3 {
        kafka_control(&mut kafka, &format!("broker-up {b}"));
    }
    // Acks are timed from the load's start, which was 0.8 s before the outage.
    let up_after = down_at.elapsed() + Duration::from_millis(800);
    std::thread::sleep(SECS(6));
    let res = load.finish();
    eprintln!(
        "{}: {} acked, {} answered 503 during a 5 s outage of every broker",
        v.name,
        res.acked.len(),
        res.unavailable
    );
    assert!(
        res.unavailable > 0,
        "an outage longer than message.timeout.ms must surface as 503"
    );
    // Throughput returns after recovery: 200s in the last two seconds.
    let last = res.acked.iter().map(|(_, t)| *t).max().unwrap_or_default();
    assert!(
        last > up_after + Duration::from_millis(500),
        "no acknowledgement after the brokers came back"
    );
    assert_all_in_kafka(&brokers, "outage", &res.acked);
}

fn leader_changes_no_false_acks(v: &Variant) {
    let (mut kafka, brokers) = start_kafka_mock(&["leaders"]);
    let gw = Gateway::start(v, &["--brokers", &brokers, "-X", "message.timeout.ms=5000"]);
    let load = start_load(&gw, "leaders", 4);
    std::thread::sleep(Duration::from_millis(500));
    // Move every partition's leadership around the three brokers, three times.
    for round in 0..3 {
        for p in 0..4 {
            kafka_control(
                &mut kafka,
                &format!("leader leaders {p} {}", (p + round) % 3 + 1),
            );
        }
        std::thread::sleep(Duration::from_millis(700));
    }
    std::thread::sleep(SECS(1));
    let res = load.finish();
    eprintln!(
        "{}: {} acked across leader changes",
        v.name,
        res.acked.len()
    );
    assert!(res.acked.len() > 10, "too few acks: {}", res.acked.len());
    assert_all_in_kafka(&brokers, "leaders", &res.acked);
}

fn produce_errors_no_false_acks(v: &Variant) {
    let (mut kafka, brokers) = start_kafka_mock(&["perr"]);
    let gw = Gateway::start(v, &["--brokers", &brokers, "-X", "message.timeout.ms=5000"]);
    let load = start_load(&gw, "perr", 4);
    std::thread::sleep(Duration::from_millis(500));
    kafka_control(&mut kafka, "produce-errors 30 not-enough-replicas");
    kafka_control(&mut kafka, "rtt 1 200");
    std::thread::sleep(SECS(2));
    kafka_control(&mut kafka, "produce-errors 10 transport");
    std::thread::sleep(SECS(2));
    kafka_control(&mut kafka, "rtt 1 0");
    // Then a healthy phase, so the run also proves acks resume (and the count below is
    // not at the mercy of how the injected errors fell on a loaded machine).
    kafka_control(&mut kafka, "clear-errors");
    std::thread::sleep(SECS(3));
    let res = load.finish();
    eprintln!(
        "{}: {} acked, {} answered 503 with produce errors injected",
        v.name,
        res.acked.len(),
        res.unavailable
    );
    // The point is that no 200 is false; the count only proves the test exercised the path.
    assert!(res.acked.len() > 10, "too few acks: {}", res.acked.len());
    assert_all_in_kafka(&brokers, "perr", &res.acked);
}

fn sigkill_loses_only_unacknowledged(v: &Variant) {
    let (_kafka, brokers) = start_kafka_mock(&["kill9"]);
    let mut gw = Gateway::start(v, &["--brokers", &brokers]);
    let load = start_load(&gw, "kill9", 4);
    std::thread::sleep(Duration::from_millis(1500));
    gw.proc.signal(libc::SIGKILL);
    assert!(gw.proc.wait_exit(SECS(10)).is_some());
    let res = load.finish();
    assert!(res.acked.len() > 20);
    assert_all_in_kafka(&brokers, "kill9", &res.acked);
}

fn slowloris_gets_408(v: &Variant) {
    let gw = Gateway::start(v, &["--request-timeout", "1s", "--sink", "null"]);
    let mut c = gw.connect();
    let start = Instant::now();
    let req = b"POST /topics/slow HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello";
    // A byte every 50 ms: each one arrives well within any per-read timeout, so only a
    // deadline on the whole request stops it. Keep trickling until the gateway hangs up.
    for b in req.iter().cycle().take(60) {
        if c.send_raw(&[*b]).is_err() || start.elapsed() > Duration::from_millis(1500) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = c.read_response().expect("a response");
    assert_eq!(
        r.status, 408,
        "a trickled request is cut at the request timeout: {r:?}"
    );
    assert!(c.closed_within(SECS(3)));
}

fn endless_chunks_get_413(v: &Variant) {
    let gw = Gateway::start(v, &["--max-body", "4096", "--sink", "null"]);
    let mut c = gw.connect();
    c.send_raw(b"POST /topics/x HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n")
        .unwrap();
    let chunk = b"100\r\n"
        .iter()
        .chain([b'z'; 256].iter())
        .chain(b"\r\n".iter())
        .copied()
        .collect::<Vec<u8>>();
    for _ in 0..64 {
        if c.send_raw(&chunk).is_err() {
            break;
        }
    }
    let r = c.read_response().unwrap();
    assert_eq!(r.status, 413);
    assert!(c.closed_within(SECS(3)));
}

fn pipelining_flood_bounded(v: &Variant) {
    let gw = Gateway::start(v, &["--sink", "null"]);
    let rss_before = gw.proc.rss_kib();
    let mut c = gw.connect();
    let writer_stream = c.stream.try_clone().unwrap();
    const N: usize = 20_000;
    let writer = std::thread::spawn(move || {
        let mut w = writer_stream;
        let one = encode_request("POST", "/topics/flood?ack=none", &[], b"x");
        let batch: Vec<u8> = one.iter().copied().cycle().take(one.len() * 1000).collect();
        for _ in 0..N / 1000 {
            w.write_all(&batch).unwrap();
        }
    });
    // Read slowly at first: the gateway must stop reading, not buffer without bound.
    std::thread::sleep(Duration::from_millis(500));
    let rss_mid = gw.proc.rss_kib();
    for i in 0..N {
        let r = c
            .read_response()
            .unwrap_or_else(|e| panic!("response {i}: {e}"));
        assert_eq!(r.status, 202);
    }
    writer.join().unwrap();
    eprintln!(
        "{}: RSS {rss_before} KiB before, {rss_mid} KiB while flooded",
        v.name
    );
    assert!(
        rss_mid < rss_before + 64 * 1024,
        "RSS grew from {rss_before} to {rss_mid} KiB under a pipelining flood"
    );
}

fn thousands_of_idle_connections(v: &Variant) {
    let gw = Gateway::start(v, &["--sink", "null"]);
    let mut held = Vec::new();
    for _ in 0..2000 {
        held.push(std::net::TcpStream::connect(gw.addr).expect("connect"));
    }
    let deadline = Instant::now() + SECS(10);
    while gw.metric("gateway_connections_open") < 2000.0 {
        assert!(
            Instant::now() < deadline,
            "not all idle connections accepted"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut c = gw.connect();
    assert_eq!(post(&mut c, "/topics/idle", b"x").status, 200);
    drop(held);
    let deadline = Instant::now() + SECS(10);
    while gw.metric("gateway_connections_open") > 5.0 {
        assert!(Instant::now() < deadline, "closed connections not released");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// With a window of 8, a client that sends 100 messages without reading gets no more than
/// 8 published until acks are read... the gateway stops reading; then everything resolves.
fn websocket_inflight_backpressure(v: &Variant) {
    let gw = Gateway::start(v, &["--ws-max-inflight", "8"]);
    let mut ws = ws_connect(&gw, "/ws/wsbp");
    for i in 1..=200 {
        ws.write(tungstenite::Message::binary(format!("b-{i}").into_bytes()))
            .unwrap();
    }
    ws.flush().unwrap();
    let mut last = 0;
    while last < 200 {
        if let tungstenite::Message::Text(t) = ws.read().unwrap() {
            let j: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
            last = j["ack"].as_u64().unwrap();
        }
    }
    assert!(gw.metric("gateway_records_inflight") <= 8.0);
    let records = consume(&gw.brokers, "wsbp", SECS(30), |rs| rs.len() >= 200);
    assert!(records.len() >= 200);
}

fn websocket_ping_flood_bounded(v: &Variant) {
    let gw = Gateway::start(v, &["--sink", "null"]);
    let rss_before = gw.proc.rss_kib();
    let mut c = raw_ws(&gw);
    c.stream.set_write_timeout(Some(SECS(2))).unwrap();
    let ping = ws_frame(true, 9, &[b'p'; 100], true);
    let burst: Vec<u8> = ping
        .iter()
        .copied()
        .cycle()
        .take(ping.len() * 1000)
        .collect();
    // Never read: the gateway must push back instead of queueing pongs without bound.
    for _ in 0..200 {
        if c.send_raw(&burst).is_err() {
            break; // write timed out: TCP backpressure reached us
        }
    }
    let rss_after = gw.proc.rss_kib();
    eprintln!(
        "{}: RSS {rss_before} KiB before, {rss_after} KiB after the ping flood",
        v.name
    );
    assert!(
        rss_after < rss_before + 64 * 1024,
        "RSS grew {rss_before} -> {rss_after} KiB"
    );
    assert_eq!(
        gw.connect()
            .request("GET", "/healthz", &[], b"")
            .unwrap()
            .status,
        200
    );
}

fn websocket_silent_peer_closed(v: &Variant) {
    let gw = Gateway::start(v, &["--idle-timeout", "1s", "--sink", "null"]);
    let mut c = raw_ws(&gw);
    let start = Instant::now();
    // We answer neither the ping nor the close: the gateway closes anyway.
    assert_eq!(read_close_code(&mut c), 1001);
    assert!(
        c.closed_within(SECS(3)),
        "TCP closed without our close reply"
    );
    assert!(start.elapsed() < SECS(4));
}
