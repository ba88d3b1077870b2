//! The HTTP codec, tested without sockets.

#[test]
fn int_object_writes_json() {
    let mut buf = [0; 128];
    assert_eq!(
        super::int_object(&mut buf, &[("count", 3)]),
        br#"{"count":3}"#
    );
    let body = super::int_object(&mut buf, &[("partition", -1), ("offset", i64::MAX)]);
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(v["partition"], -1);
    assert_eq!(v["offset"], i64::MAX);
}

use super::*;
use crate::policy::ack::AckMode;
use crate::policy::config::Limits;

fn limits() -> Limits {
    Limits {
        max_head: 1024,
        max_headers: 16,
        max_body: 64,
        ..Limits::default()
    }
}

fn decode_all(input: &[u8]) -> Result<Vec<Request>, HttpError> {
    let mut d = Decoder::new(limits());
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let (n, req) = d.decode(&input[pos..])?;
        pos += n;
        match req {
            Some(r) => out.push(r),
            None => return Ok(out),
        }
    }
}

fn one(input: &[u8]) -> Result<Request, HttpError> {
    let mut v = decode_all(input)?;
    assert_eq!(v.len(), 1, "expected one request");
    Ok(v.remove(0))
}

#[test]
fn publish_with_everything() {
    let r = one(b"POST /topics/t1?key=a%20b&partition=2&ack=enqueue HTTP/1.1\r\nHost: x\r\nKafka-Header-Trace: abc\r\nContent-Length: 5\r\n\r\nhello").unwrap();
    assert_eq!(
        r.route,
        Ok(Route::Publish {
            topic: "t1".into(),
            batch: false
        })
    );
    assert_eq!(r.query.key.as_deref(), Some(&b"a b"[..]));
    assert_eq!(r.query.partition, Some(2));
    assert_eq!(r.query.ack, Some(AckMode::Enqueue));
    assert_eq!(r.headers, vec![("Trace".to_string(), b"abc".to_vec())]);
    assert_eq!(r.body, b"hello");
    assert!(r.keep_alive);
}

#[test]
fn chunked_body_and_trailers() {
    let r = one(b"POST /topics/t/batch HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nX-T: 1\r\n\r\n").unwrap();
    assert_eq!(r.body, b"abcde");
    assert!(matches!(r.route, Ok(Route::Publish { batch: true, .. })));
}

#[test]
fn pipelined() {
    let v = decode_all(b"GET /healthz HTTP/1.1\r\n\r\nPOST /topics/a HTTP/1.1\r\ncontent-length: 1\r\n\r\nxGET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
    assert_eq!(v.len(), 3);
    assert_eq!(v[0].route, Ok(Route::Healthz));
    assert_eq!(v[1].body, b"x");
    assert!(!v[2].keep_alive);
}

#[test]
fn errors_map_to_statuses() {
    let cases: &[(&[u8], u16)] = &[
        (b"GARBAGE\r\n\r\n", 400),
        (b"POST /topics/a HTTP/1.1\r\n\r\n", 411),
        (
            b"POST /topics/a HTTP/1.1\r\ncontent-length: 65\r\n\r\n",
            413,
        ),
        (
            b"POST /topics/a HTTP/1.1\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
            400,
        ),
        (
            b"POST /topics/a HTTP/1.1\r\ncontent-length: -1\r\n\r\n",
            400,
        ),
        (
            b"POST /topics/a HTTP/1.1\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n",
            400,
        ),
        (
            b"POST /topics/a HTTP/1.1\r\ntransfer-encoding: gzip\r\n\r\n",
            400,
        ),
        (
            b"POST /topics/a HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
            400,
        ),
        (
            b"POST /topics/a HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n41\r\n",
            413,
        ),
        (
            b"POST /topics/a HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n1\r\naXX",
            400,
        ),
    ];
    for (input, status) in cases {
        let got = decode_all(input).map(|_| ()).unwrap_err();
        assert_eq!(got.status(), *status, "{}", String::from_utf8_lossy(input));
    }
}

#[test]
fn route_errors_keep_the_connection() {
    let cases: &[(&[u8], u16)] = &[
        (b"GET /nope HTTP/1.1\r\n\r\n", 404),
        (b"GET /topics/a HTTP/1.1\r\n\r\n", 405),
        (b"POST /healthz HTTP/1.1\r\ncontent-length: 0\r\n\r\n", 405),
        (
            b"POST /topics/b%2Fc HTTP/1.1\r\ncontent-length: 0\r\n\r\n",
            400,
        ),
        (
            b"POST /topics/a?ack=maybe HTTP/1.1\r\ncontent-length: 0\r\n\r\n",
            400,
        ),
        (
            b"POST /topics/a?partition=-1 HTTP/1.1\r\ncontent-length: 0\r\n\r\n",
            400,
        ),
        (b"GET /ws/a HTTP/1.1\r\n\r\n", 400),
    ];
    for (input, status) in cases {
        let r = one(input).unwrap();
        assert_eq!(r.route.unwrap_err().status(), *status);
    }
}

#[test]
fn strict_percent_encoding() {
    let code = |target: &str| {
        let input = format!("POST {target} HTTP/1.1\r\ncontent-length: 0\r\n\r\n");
        let r = one(input.as_bytes()).unwrap();
        r.route.map(|_| r.query).map_err(|e| (e.status(), e.code()))
    };
    let bad_pct = Err((400, "invalid_percent_encoding"));
    assert_eq!(code("/topics/a?key=%zz"), bad_pct);
    assert_eq!(code("/topics/a?key=%4"), bad_pct);
    assert_eq!(code("/topics/a?key=abc%"), bad_pct);
    assert_eq!(code("/topics/a?other=%g0&key=x"), bad_pct);
    assert_eq!(code("/topics/a?%zz=1"), bad_pct);
    assert_eq!(code("/topics/a%zz"), bad_pct);
    assert_eq!(code("/topics/a%2"), bad_pct);
    assert_eq!(code("/topics/%zz/batch"), bad_pct);
    // Well-formed escapes that decode to bytes a topic may not hold.
    assert_eq!(code("/topics/%ff%fe"), Err((400, "invalid_topic")));
    assert_eq!(code("/topics/caf%C3%A9"), Err((400, "invalid_topic")));
    assert_eq!(code("/topics/a%20b"), Err((400, "invalid_topic")));
    // Valid escapes still decode, in keys (any bytes) and topics.
    let q = code("/topics/t%2Dx?key=%00%ff%41%2b&ack=%6Bafka").unwrap();
    assert_eq!(q.key.as_deref(), Some(&[0u8, 0xff, b'A', b'+'][..]));
    assert_eq!(q.ack, Some(AckMode::Kafka));
    let r = one(b"POST /topics/t%2Dx HTTP/1.1\r\ncontent-length: 0\r\n\r\n").unwrap();
    assert_eq!(
        r.route,
        Ok(Route::Publish {
            topic: "t-x".into(),
            batch: false
        })
    );
    // The WebSocket route is as strict.
    let r = one(b"GET /ws/t?key=%zz HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(r.route.unwrap_err().code(), "invalid_percent_encoding");
    let r = one(b"GET /ws/%e2%28 HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(r.route.unwrap_err().code(), "invalid_topic");
}

#[test]
fn route_labels() {
    for (path, label) in [
        ("/topics/a", "publish"),
        ("/topics/a/batch", "publish_batch"),
        ("/ws/a", "ws"),
        ("/healthz", "healthz"),
        ("/readyz", "readyz"),
        ("/metrics", "metrics"),
        ("/", "other"),
        ("/metrics/x", "other"),
    ] {
        assert_eq!(route_label(path), label, "{path}");
    }
}

#[test]
fn head_limit() {
    let mut big = b"GET /healthz HTTP/1.1\r\nx: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 2000));
    assert_eq!(decode_all(&big).unwrap_err().status(), 431);
    let mut many = b"GET /healthz HTTP/1.1\r\n".to_vec();
    for i in 0..20 {
        many.extend_from_slice(format!("h{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert_eq!(decode_all(&many).unwrap_err().status(), 431);
}

#[test]
fn websocket_upgrade() {
    let r = one(b"GET /ws/t?ack=none HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").unwrap();
    assert_eq!(
        r.route,
        Ok(Route::WebSocket {
            topic: "t".into(),
            accept: "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".into()
        })
    );
    assert_eq!(r.query.ack, Some(AckMode::None));
}

#[test]
fn http10_closes_by_default() {
    let r = one(b"GET /healthz HTTP/1.0\r\n\r\n").unwrap();
    assert!(!r.keep_alive);
}

#[test]
fn expect_continue() {
    let mut d = Decoder::new(limits());
    let input = b"POST /topics/a HTTP/1.1\r\nExpect: 100-continue\r\ncontent-length: 2\r\n\r\n";
    let (n, r) = d.decode(input).unwrap();
    assert_eq!(n, input.len());
    assert!(r.is_none());
    assert!(d.take_expect_continue());
    assert!(!d.take_expect_continue());
    let (_, r) = d.decode(b"hi").unwrap();
    assert_eq!(r.unwrap().body, b"hi");
}

#[test]
fn borrowed_bodies_are_not_copied_when_whole() {
    let mut d = Decoder::new(limits()).borrow_bodies();
    let input = b"xxPOST /topics/a HTTP/1.1\r\ncontent-length: 5\r\n\r\nhelloPOST";
    let (n, r) = d.decode(&input[2..]).unwrap();
    let r = r.unwrap();
    assert!(r.body.is_empty());
    let at = r.body_at.clone().unwrap();
    assert_eq!(&input[2..][at], b"hello");
    assert_eq!(n, input.len() - 2 - 4);
    // A body that arrives in pieces is collected as before.
    let (n, r) = d
        .decode(b"POST /topics/a HTTP/1.1\r\ncontent-length: 5\r\n\r\nhel")
        .unwrap();
    assert!(r.is_none() && n > 0);
    let (_, r) = d.decode(b"lo").unwrap();
    let r = r.unwrap();
    assert_eq!((r.body.as_slice(), r.body_at), (&b"hello"[..], None));
    // A body whose head came earlier but which arrives whole is borrowed too.
    let (_, r) = d
        .decode(b"POST /topics/a HTTP/1.1\r\ncontent-length: 2\r\n\r\n")
        .unwrap();
    assert!(r.is_none());
    let (_, r) = d.decode(b"hi").unwrap();
    assert_eq!(r.unwrap().body_at, Some(0..2));
}
