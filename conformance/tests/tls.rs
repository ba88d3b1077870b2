//! The wire contract's main paths over TLS (HTTPS, WSS) on every gateway variant, and what
//! bad input over TLS costs: garbage instead of a ClientHello, a handshake that stalls, a
//! client with only old versions or ciphers. Real sockets, a test CA made at test time.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use conformance::tls::{old_client_hello, TestPki, TlsGateway};
use conformance::{consume, encode_request, pipelined_answers_are_their_records, Client, Variant};
use rustls::HandshakeKind;

conformance::suite!(
    https_publish_ack_kafka,
    https_pipelining,
    https_chunked_body,
    wss_acks,
    browser_style_wss,
    tls_session_resumption,
    tls_garbage_instead_of_client_hello,
    tls_stalled_handshake_times_out,
    tls_old_versions_and_ciphers_refused,
    tls_flags_are_checked_at_start,
);

const SECS: fn(u64) -> Duration = Duration::from_secs;

fn https_publish_ack_kafka(v: &Variant) {
    let gw = TlsGateway::start(v, &[]);
    let mut c = gw.connect();
    let r = c
        .request(
            "POST",
            "/topics/tlsroundtrip?ack=kafka&key=k",
            &[],
            b"over tls",
        )
        .unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    let j = r.json();
    let (p, o) = (
        j["partition"].as_i64().unwrap(),
        j["offset"].as_i64().unwrap(),
    );
    let records = consume(&gw.gw.brokers, "tlsroundtrip", SECS(20), |rs| {
        !rs.is_empty()
    });
    let rec = records
        .iter()
        .find(|x| i64::from(x.partition) == p && x.offset == o)
        .expect("the acknowledged record is in Kafka");
    assert_eq!(rec.value, b"over tls");
    assert_eq!(rec.key.as_deref(), Some(&b"k"[..]));
    assert!(gw.metric("gateway_tls_handshakes_total{result=\"ok\"}") >= 2.0);
    assert_eq!(
        gw.metric("gateway_tls_handshakes_total{result=\"failed\"}"),
        0.0
    );
}

fn https_pipelining(v: &Variant) {
    let gw = TlsGateway::start(v, &[]);
    let mut c = gw.connect();
    // One write: many requests in few TLS records.
    let r = pipelined_answers_are_their_records(&mut c, &gw.gw.brokers, "tlspipe", 50);
    assert_eq!(r.json()["status"], "ok");
}

fn https_chunked_body(v: &Variant) {
    let gw = TlsGateway::start(v, &[]);
    let mut c = gw.connect();
    c.send_raw(b"POST /topics/tlschunked HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n")
        .unwrap();
    c.stream.flush().unwrap();
    c.send_raw(b"6\r\n world\r\n0\r\n\r\n").unwrap();
    let r = c.read_response().unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    let records = consume(&gw.gw.brokers, "tlschunked", SECS(20), |rs| !rs.is_empty());
    assert_eq!(records[0].value, b"hello world");
}

/// A WebSocket over `c` (a TLS client), upgraded with tungstenite.
fn wss(
    gw: &TlsGateway,
    c: Client<conformance::tls::TlsStream>,
    path: &str,
) -> tungstenite::WebSocket<conformance::tls::TlsStream> {
    let url = format!("wss://localhost:{}{path}", gw.gw.addr.port());
    let (ws, resp) = tungstenite::client(url, c.stream).expect("websocket handshake over TLS");
    assert_eq!(resp.status(), 101);
    ws
}

/// Sends `n` messages and reads cumulative acks up to `n`.
fn send_and_ack(ws: &mut tungstenite::WebSocket<conformance::tls::TlsStream>, n: u64) {
    for i in 1..=n {
        ws.write(tungstenite::Message::text(format!("m-{i}")))
            .unwrap();
    }
    ws.flush().unwrap();
    let mut last = 0;
    while last < n {
        match ws.read().expect("ack frame") {
            tungstenite::Message::Text(t) => {
                let j: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                let a = j["ack"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("unexpected frame {t}"));
                assert!(a > last, "acks are cumulative and increasing");
                last = a;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn wss_acks(v: &Variant) {
    let gw = TlsGateway::start(v, &[]);
    let mut ws = wss(&gw, gw.connect(), "/ws/tlsws?key=w");
    send_and_ack(&mut ws, 500);
    let records = consume(&gw.gw.brokers, "tlsws", SECS(30), |rs| rs.len() >= 500);
    assert!(records.len() >= 500);
    let _ = ws.close(None);
}

/// A browser's way in: a fresh client (no session to resume) with rustls's default
/// versions and cipher suites and ALPN `http/1.1`, opening a WSS socket.
fn browser_style_wss(v: &Variant) {
    let gw = TlsGateway::start(v, &[]);
    let browser = gw.pki.client_config();
    let c = gw.connect_with(&browser).unwrap();
    assert_eq!(c.stream.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(
        c.stream.conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    assert_eq!(c.stream.conn.handshake_kind(), Some(HandshakeKind::Full));
    let mut ws = wss(&gw, c, "/ws/browser");
    send_and_ack(&mut ws, 10);
    ws.close(None).unwrap();
    // The close handshake completes over TLS.
    loop {
        match ws.read() {
            Ok(tungstenite::Message::Close(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

fn tls_session_resumption(v: &Variant) {
    let gw = TlsGateway::start(v, &[]);
    let resumed_before = gw.metric("gateway_tls_resumed_total");
    for versions in [
        &[&rustls::version::TLS13][..],
        &[&rustls::version::TLS12][..],
    ] {
        let config = gw.pki.client_config_with(versions);
        for expected in [HandshakeKind::Full, HandshakeKind::Resumed] {
            let mut c = gw.connect_with(&config).unwrap();
            // The answer also carries TLS 1.3's session tickets.
            assert_eq!(c.request("GET", "/healthz", &[], b"").unwrap().status, 200);
            assert_eq!(
                c.stream.conn.handshake_kind(),
                Some(expected),
                "{versions:?}"
            );
        }
    }
    // The two resumed connections above, and no more than the connections made since.
    let resumed = gw.metric("gateway_tls_resumed_total") - resumed_before;
    assert!((2.0..=3.0).contains(&resumed), "{resumed}");
}

/// Reads until EOF (or reset) within 10 s; returns what came. Bounded: the server must
/// close.
fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(SECS(10))).unwrap();
    let mut got = Vec::new();
    let mut b = [0u8; 4096];
    loop {
        match s.read(&mut b) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&b[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("the server did not close ({e}); got {got:?}"),
        }
        assert!(got.len() < 64 * 1024, "the server keeps talking");
    }
}

fn tls_garbage_instead_of_client_hello(v: &Variant) {
    let gw = TlsGateway::start(v, &[]);
    let rss_before = gw.gw.proc.rss_kib();
    // Plaintext HTTP on the TLS port: an alert (or nothing), then a close.
    let mut s = TcpStream::connect(gw.gw.addr).unwrap();
    s.write_all(&encode_request("GET", "/healthz", &[], b""))
        .unwrap();
    let got = read_until_closed(&mut s);
    assert!(got.is_empty() || got[0] == 0x15, "{got:?}");
    // A megabyte of noise from each of 20 clients: closed on the first bad record.
    let noise: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for _ in 0..20 {
        let mut s = TcpStream::connect(gw.gw.addr).unwrap();
        let _ = s.write_all(&noise);
        read_until_closed(&mut s);
    }
    assert!(gw.metric("gateway_tls_handshake_failures_total{reason=\"bad_record\"}") >= 21.0);
    let grown = gw.gw.proc.rss_kib().saturating_sub(rss_before);
    assert!(grown < 16 * 1024, "RSS grew by {grown} KiB");
    // The gateway serves on.
    assert_eq!(
        gw.connect()
            .request("GET", "/healthz", &[], b"")
            .unwrap()
            .status,
        200
    );
}

fn tls_stalled_handshake_times_out(v: &Variant) {
    let gw = TlsGateway::start(v, &["--tls-handshake-timeout", "1s"]);
    // Connected, nothing sent; and half a ClientHello.
    let silent = TcpStream::connect(gw.gw.addr).unwrap();
    let mut half = TcpStream::connect(gw.gw.addr).unwrap();
    let hello = old_client_hello(0x0303, 0x1301);
    half.write_all(&hello[..hello.len() / 2]).unwrap();
    let mut silent = Client::from_stream(silent);
    let mut half = Client::from_stream(half);
    assert!(silent.closed_within(SECS(10)), "a silent client is closed");
    assert!(
        half.closed_within(SECS(10)),
        "a stalled handshake is closed"
    );
    assert!(gw.metric("gateway_tls_handshake_failures_total{reason=\"timeout\"}") >= 2.0);
    // A client that goes away mid-handshake.
    let mut gone = TcpStream::connect(gw.gw.addr).unwrap();
    gone.write_all(&hello[..10]).unwrap();
    gone.shutdown(std::net::Shutdown::Both).unwrap();
    drop(gone);
    let deadline = std::time::Instant::now() + SECS(10);
    while gw.metric("gateway_tls_handshake_failures_total{reason=\"peer_closed\"}") < 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "peer_closed never counted"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn tls_old_versions_and_ciphers_refused(v: &Variant) {
    let gw = TlsGateway::start(v, &[]);
    // TLS 1.0 and 1.1 only; TLS 1.2 with 3DES only.
    for (version, suite) in [(0x0301, 0x002f), (0x0302, 0x002f), (0x0303, 0x000a)] {
        let mut s = TcpStream::connect(gw.gw.addr).unwrap();
        s.write_all(&old_client_hello(version, suite)).unwrap();
        let got = read_until_closed(&mut s);
        assert_eq!(
            got.first(),
            Some(&0x15),
            "an alert for {version:#x}/{suite:#x}: {got:?}"
        );
    }
    assert_eq!(
        gw.metric("gateway_tls_handshake_failures_total{reason=\"no_shared_cipher_or_version\"}"),
        3.0
    );
}

/// Exits with `message` in its output, without serving.
fn refuses_to_start(v: &Variant, args: &[&str], message: &str) {
    let out = std::process::Command::new(conformance::bin_path(v.bin))
        .args(v.args)
        .args(["--listen", "127.0.0.1:0", "--sink", "null"])
        .args(args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{args:?} started: {text}");
    assert!(text.contains(message), "{args:?}: {text}");
    assert!(!text.contains("listening on"), "{text}");
}

fn tls_flags_are_checked_at_start(v: &Variant) {
    let pki = TestPki::new();
    let (cert, key) = (
        pki.cert().display().to_string(),
        pki.key().display().to_string(),
    );
    refuses_to_start(v, &["--tls-cert", &cert], "--tls-cert needs --tls-key");
    refuses_to_start(v, &["--tls-key", &key], "--tls-key needs --tls-cert");
    let missing = pki.dir.join("nope.pem").display().to_string();
    refuses_to_start(v, &["--tls-cert", &missing, "--tls-key", &key], "nope.pem");
    let garbage = pki.dir.join("garbage.pem");
    std::fs::write(&garbage, "garbage\n").unwrap();
    let garbage = garbage.display().to_string();
    refuses_to_start(
        v,
        &["--tls-cert", &cert, "--tls-key", &garbage],
        "--tls-key",
    );
}
