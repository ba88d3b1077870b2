//! The conformance suite: every case runs against every gateway variant (tokio multi,
//! tokio per-core, tokio-uring, compio) through real sockets. A behaviour that differs
//! between runtimes is a failing test here.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use conformance::{consume, encode_request, start_kafka_mock, ws_frame, Client, Gateway, Variant};

macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod tokio_multi { $( #[test] fn $case() { super::$case(&conformance::TOKIO_MULTI) } )* }
        mod tokio_per_core { $( #[test] fn $case() { super::$case(&conformance::TOKIO_PER_CORE) } )* }
        mod uring { $( #[test] fn $case() { super::$case(&conformance::URING) } )* }
        mod compio { $( #[test] fn $case() { super::$case(&conformance::COMPIO) } )* }
    };
}

suite!(
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
    let (p, o) = (j["partition"].as_i64().unwrap(), j["offset"].as_i64().unwrap());
    let records = consume(&gw.brokers, "roundtrip", SECS(20), |rs| {
        rs.iter().any(|x| i64::from(x.partition) == p && x.offset == o)
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
    assert!(gw.metric("gateway_http_requests_total{status=\"200\"}") >= 1.0);
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
    let mut bytes = Vec::new();
    for i in 0..5 {
        bytes.extend(encode_request("POST", "/topics/pipe", &[], format!("p{i}").as_bytes()));
    }
    bytes.extend(encode_request("GET", "/healthz", &[], b""));
    c.send_raw(&bytes).unwrap();
    let mut acked = Vec::new();
    for i in 0..5 {
        let r = c.read_response().unwrap();
        assert_eq!(r.status, 200);
        let j = r.json();
        acked.push((i, j["partition"].as_i64().unwrap(), j["offset"].as_i64().unwrap()));
    }
    let r = c.read_response().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "ok");
    let records = consume(&gw.brokers, "pipe", SECS(20), |rs| rs.len() >= 5);
    for (i, p, o) in acked {
        let rec = records
            .iter()
            .find(|x| i64::from(x.partition) == p && x.offset == o)
            .expect("record present");
        assert_eq!(rec.value, format!("p{i}").as_bytes(), "answer {i} belongs to request {i}");
    }
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
    let r = post(&mut c, "/topics/batch/batch?key=b", b"one\ntwo\r\n\nthree\n");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["count"], 3);
    let records = consume(&gw.brokers, "batch", SECS(20), |rs| rs.len() >= 3);
    let mut values: Vec<_> = records.iter().map(|r| r.value.clone()).collect();
    values.sort();
    assert_eq!(values, vec![b"one".to_vec(), b"three".to_vec(), b"two".to_vec()]);
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
    expect_error(&mut gw.connect(), b"GARBAGE\r\n\r\n", 400, "malformed_request", true);
    let mut c = gw.connect();
    expect_error(&mut c, b"GET /nope HTTP/1.1\r\n\r\n", 404, "not_found", false);
    c.send_raw(b"GET /topics/x HTTP/1.1\r\n\r\n").unwrap();
    let r = c.read_response().unwrap();
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
    assert_eq!(c.request("GET", "/healthz", &[], b"").unwrap().status, 200);
    expect_error(&mut gw.connect(), b"POST /topics/x HTTP/1.1\r\n\r\n", 411, "length_required", true);
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
    expect_error(&mut gw.connect(), b"POST /topics/bad%20topic HTTP/1.1\r\ncontent-length: 0\r\n\r\n", 400, "invalid_topic", false);
}

fn request_timeout_408(v: &Variant) {
    let gw = Gateway::start(v, &["--request-timeout", "1s"]);
    let mut c = gw.connect();
    let start = Instant::now();
    c.send_raw(b"POST /topics/slow HTTP/1.1\r\ncontent-le").unwrap();
    let r = c.read_response().unwrap();
    assert_eq!(r.status, 408);
    assert_eq!(r.json()["error"], "request_timeout");
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(900) && took < SECS(5), "408 after {took:?}");
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
    let info = text.lines().find(|l| l.starts_with("gateway_info{")).expect("gateway_info");
    assert!(info.contains(runtime), "{info}");
    for series in [
        "gateway_connections_open",
        "gateway_producer_queue_depth",
        "gateway_records_inflight",
        "gateway_accept_errors_total{errno=\"EMFILE\"}",
        "gateway_delivery_latency_seconds_bucket",
        "gateway_bytes_received_total",
    ] {
        assert!(text.contains(series), "missing {series}");
    }
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
        ws.write(tungstenite::Message::text(format!("m-{i}"))).unwrap();
    }
    ws.flush().unwrap();
    let mut last = 0;
    let mut frames = 0;
    while last < 1000 {
        match ws.read().expect("ack frame") {
            tungstenite::Message::Text(t) => {
                let j: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                let n = j["ack"].as_u64().unwrap_or_else(|| panic!("unexpected frame {t}"));
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
        assert!(values.contains(format!("m-{i}").as_bytes()), "m-{i} missing");
    }
    let _ = ws.close(None);
}

fn raw_ws(gw: &Gateway) -> Client {
    let mut c = gw.connect();
    c.send_raw(b"GET /ws/raw HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n").unwrap();
    let r = c.read_response().unwrap();
    assert_eq!(r.status, 101);
    assert_eq!(r.header("sec-websocket-accept"), Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
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
        assert!(n > 0, "connection closed without a close frame; got {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn websocket_bad_frames(v: &Variant) {
    let gw = Gateway::start(v, &["--max-body", "1024"]);
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("unmasked", ws_frame(true, 2, b"x", false), 1002),
        ("reserved opcode", ws_frame(true, 3, b"x", true), 1002),
        ("fragmented ping", ws_frame(false, 9, b"x", true), 1002),
        ("invalid utf-8", ws_frame(true, 1, &[0xc3, 0x28], true), 1007),
        ("oversized", ws_frame(true, 2, &[7u8; 2000], true), 1009),
    ];
    for (name, frame, code) in cases {
        let mut c = raw_ws(&gw);
        c.send_raw(&frame).unwrap();
        assert_eq!(read_close_code(&mut c), code, "{name}");
        assert!(c.closed_within(SECS(5)), "{name}: TCP closed after the close frame");
    }
    // The gateway still serves.
    assert_eq!(gw.connect().request("GET", "/healthz", &[], b"").unwrap().status, 200);
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
    c.send_raw(&ws_frame(true, 8, &1000u16.to_be_bytes(), true)).unwrap();
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
    let acked: Vec<String> = clients.into_iter().flat_map(|h| h.join().unwrap()).collect();
    assert!(status.success(), "exit status {status:?}; log:\n{}", gw.proc.log_text());
    eprintln!("{}: {} records acknowledged before/while draining", v.name, acked.len());
    assert!(acked.len() > 20, "load too small: {} acks", acked.len());
    let want: HashSet<Vec<u8>> = acked.iter().map(|s| s.as_bytes().to_vec()).collect();
    let records = consume(&brokers, "drain", SECS(30), |rs| {
        let have: HashSet<&Vec<u8>> = rs.iter().map(|r| &r.value).collect();
        want.iter().all(|w| have.contains(w))
    });
    let have: HashSet<Vec<u8>> = records.into_iter().map(|r| r.value).collect();
    let missing: Vec<_> = want.iter().filter(|w| !have.contains(*w)).collect();
    assert!(missing.is_empty(), "{} of {} acknowledged records missing", missing.len(), want.len());
}

fn max_connections(v: &Variant) {
    let gw = Gateway::start(v, &["--max-connections", "2", "--sink", "null"]);
    // wait_ready's probe connection may still be closing: give it a moment.
    std::thread::sleep(Duration::from_millis(200));
    let mut a = gw.connect();
    let mut b = gw.connect();
    assert_eq!(a.request("GET", "/healthz", &[], b"").unwrap().status, 200);
    assert_eq!(b.request("GET", "/healthz", &[], b"").unwrap().status, 200);
    let mut over = gw.connect();
    let _ = over.send_raw(b"GET /healthz HTTP/1.1\r\n\r\n");
    assert!(over.closed_within(SECS(3)), "connection over the limit is closed at once");
    assert_eq!(a.request("GET", "/healthz", &[], b"").unwrap().status, 200);
    assert_eq!(b.request("GET", "/healthz", &[], b"").unwrap().status, 200);
    drop(a);
    assert!(gw.metric("gateway_connections_rejected_total") >= 1.0 || {
        // the metric scrape itself needs a slot: retry once the dropped one is gone
        std::thread::sleep(Duration::from_millis(300));
        gw.metric("gateway_connections_rejected_total") >= 1.0
    });
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
        assert!(Instant::now() < deadline, "gateway did not recover; log:\n{}", gw.proc.log_text());
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
