//! Shared test kit for the `Conn` tests: a hand-driven sink, a harness that drives one
//! connection with a fake clock, an HTTP response splitter and a WebSocket frame codec
//! (masked client frames out, unmasked server frames in).
//!
//! Not every test binary uses every helper.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::conn::{Conn, Shared};
use common::observe::metrics::Metrics;
use common::policy::ack::AckMode;
use common::policy::config::{Config, Limits, SinkKind};
use common::publish::token::ReplyTo;
use common::publish::{Delivery, DeliveryError, Record, Sink, Ticket};

/// One record as the sink saw it (owned copy of `Record`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub partition: Option<i32>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Sent {
    fn from_record(r: &Record<'_>) -> Sent {
        Sent {
            topic: r.topic.to_string(),
            key: r.key.map(<[u8]>::to_vec),
            value: r.value.to_vec(),
            partition: r.partition,
            headers: r.headers.to_vec(),
        }
    }
}

/// A sink the test completes by hand: it keeps every record with its ticket, and can be
/// told to refuse (`send` returns the error, as a full producer queue does).
#[derive(Default)]
pub struct ManualSink {
    sent: Mutex<Vec<(Sent, Ticket)>>,
    refuse: Mutex<Option<DeliveryError>>,
    not_ready: AtomicBool,
}

impl ManualSink {
    pub fn refuse(&self, err: Option<DeliveryError>) {
        *self.refuse.lock().unwrap() = err;
    }

    pub fn set_ready(&self, ready: bool) {
        self.not_ready.store(!ready, Ordering::Relaxed);
    }

    pub fn len(&self) -> usize {
        self.sent.lock().unwrap().len()
    }

    pub fn records(&self) -> Vec<Sent> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .map(|(s, _)| s.clone())
            .collect()
    }

    pub fn values(&self) -> Vec<Vec<u8>> {
        self.records().into_iter().map(|s| s.value).collect()
    }

    /// `(ticket.seq, ticket.reply.is_some())` of every record, in send order.
    pub fn tickets(&self) -> Vec<(u64, bool)> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .map(|(_, t)| (t.seq, t.reply.is_some()))
            .collect()
    }

    pub fn seq(&self, i: usize) -> u64 {
        self.sent.lock().unwrap()[i].1.seq
    }
}

impl Sink for ManualSink {
    fn send(&self, record: &Record<'_>, ticket: Ticket) -> Result<(), DeliveryError> {
        if let Some(e) = self.refuse.lock().unwrap().clone() {
            return Err(e);
        }
        self.sent
            .lock()
            .unwrap()
            .push((Sent::from_record(record), ticket));
        Ok(())
    }
    fn queue_depth(&self) -> u64 {
        self.len() as u64
    }
    fn ready(&self) -> bool {
        !self.not_ready.load(Ordering::Relaxed)
    }
    fn flush(&self, _timeout: Duration) -> Result<(), String> {
        Ok(())
    }
}

/// Counts records and drops them (and their tickets) at once: nothing is ever delivered,
/// and the sink itself holds no memory. For the memory-bound tests.
#[derive(Default)]
pub struct CountingSink {
    pub count: AtomicU64,
}

impl Sink for CountingSink {
    fn send(&self, _record: &Record<'_>, _ticket: Ticket) -> Result<(), DeliveryError> {
        self.count.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    fn queue_depth(&self) -> u64 {
        0
    }
    fn ready(&self) -> bool {
        true
    }
    fn flush(&self, _timeout: Duration) -> Result<(), String> {
        Ok(())
    }
}

pub const IDLE: Duration = Duration::from_secs(60);
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A `Config` literal with the contract's defaults and the given default ack mode.
pub fn config(ack: AckMode) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        threads: 1,
        default_ack: ack,
        sink: SinkKind::Null,
        limits: Limits::default(),
        backlog: 4096,
        max_connections: 1000,
        idle_timeout: IDLE,
        request_timeout: REQUEST_TIMEOUT,
        shutdown_timeout: Duration::from_secs(30),
        faults: Vec::new(),
    }
}

pub fn shared_with(config: Config, sink: Arc<dyn Sink>) -> Arc<Shared> {
    Arc::new(Shared {
        config,
        sink,
        metrics: Arc::new(Metrics::default()),
        info: vec![("runtime".into(), "test".into())],
    })
}

/// One connection driven by hand, with a fake clock (`start + t`).
pub struct Harness {
    pub conn: Conn,
    pub sink: Arc<ManualSink>,
    pub shared: Arc<Shared>,
    pub start: Instant,
}

impl Harness {
    pub fn new(config: Config) -> Harness {
        let sink = Arc::new(ManualSink::default());
        let shared = shared_with(config, sink.clone());
        let start = Instant::now();
        let conn = Conn::new(shared.clone(), ReplyTo::detached(), start);
        Harness {
            conn,
            sink,
            shared,
            start,
        }
    }

    pub fn with_ack(ack: AckMode) -> Harness {
        Harness::new(config(ack))
    }

    pub fn at(&self, t: Duration) -> Instant {
        self.start + t
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        self.feed_at(bytes, Duration::ZERO);
    }

    pub fn feed_at(&mut self, bytes: &[u8], t: Duration) {
        let now = self.at(t);
        self.conn.on_data(bytes, now);
    }

    pub fn deliver(&mut self, seq: u64, result: Result<(i32, i64), DeliveryError>) {
        let now = self.start;
        self.conn.on_delivery(Delivery { seq, result }, now);
    }

    pub fn timer(&mut self, t: Duration) {
        let now = self.at(t);
        self.conn.on_timer(now);
    }

    /// Everything the connection wants written now (empty if nothing). Each written buffer
    /// is handed back, as the driver does.
    pub fn out(&mut self) -> Vec<u8> {
        let mut all = Vec::new();
        while let Some(chunk) = self.conn.take_output() {
            all.extend_from_slice(&chunk);
            self.conn.recycle_output(chunk);
        }
        all
    }

    pub fn responses(&mut self) -> Vec<Resp> {
        let out = self.out();
        parse_responses(&out)
    }

    pub fn frames(&mut self) -> Vec<Frame> {
        let out = self.out();
        parse_frames(&out)
    }

    /// Sends the upgrade request for `target` and checks the 101.
    pub fn upgrade(&mut self, target: &str) {
        self.feed(&upgrade_request(target));
        let out = self.out();
        let (resp, rest) = parse_one_response(&out).expect("a 101 response");
        assert_eq!(resp.status, 101, "{}", String::from_utf8_lossy(&out));
        assert!(rest.is_empty(), "bytes after the 101: {rest:?}");
        assert!(self.conn.is_websocket());
    }
}

/// One parsed HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resp {
    pub status: u16,
    /// Names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }

    pub fn body_str(&self) -> &str {
        std::str::from_utf8(&self.body).expect("utf-8 body")
    }
}

/// Parses one response (head by httparse, body by content-length) off the front of `buf`.
pub fn parse_one_response(buf: &[u8]) -> Option<(Resp, &[u8])> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut r = httparse::Response::new(&mut headers);
    let head = match r.parse(buf).expect("well-formed response head") {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return None,
    };
    let status = r.code.expect("status");
    let headers: Vec<(String, String)> = r
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8(h.value.to_vec()).expect("ascii header"),
            )
        })
        .collect();
    let len = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map_or(0, |(_, v)| {
            v.parse::<usize>().expect("numeric content-length")
        });
    if buf.len() < head + len {
        return None;
    }
    let resp = Resp {
        status,
        headers,
        body: buf[head..head + len].to_vec(),
    };
    Some((resp, &buf[head + len..]))
}

/// Splits `buf` into whole responses; panics on trailing garbage.
pub fn parse_responses(mut buf: &[u8]) -> Vec<Resp> {
    let mut v = Vec::new();
    while !buf.is_empty() {
        let (r, rest) = parse_one_response(buf)
            .unwrap_or_else(|| panic!("incomplete response: {}", String::from_utf8_lossy(buf)));
        v.push(r);
        buf = rest;
    }
    v
}

pub fn statuses(rs: &[Resp]) -> Vec<u16> {
    rs.iter().map(|r| r.status).collect()
}

/// `POST /topics/{target}` with a Content-Length body.
pub fn post(target: &str, body: &[u8]) -> Vec<u8> {
    post_with(target, &[], body)
}

pub fn post_with(target: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut r = format!("POST {target} HTTP/1.1\r\nhost: gw\r\n");
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    let mut r = r.into_bytes();
    r.extend_from_slice(body);
    r
}

pub fn get(target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nhost: gw\r\n\r\n").into_bytes()
}

/// The RFC 6455 sample key, whose accept value is `s3pPLMBiTxaQ9kYGzzhZRbK+xOo=`.
pub const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const WS_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

pub fn upgrade_request(target: &str) -> Vec<u8> {
    format!(
        "GET {target} HTTP/1.1\r\nHost: gw\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

pub const OP_CONT: u8 = 0;
pub const OP_TEXT: u8 = 1;
pub const OP_BINARY: u8 = 2;
pub const OP_CLOSE: u8 = 8;
pub const OP_PING: u8 = 9;
pub const OP_PONG: u8 = 10;

/// A masked client frame.
pub fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    client_frame_with_mask(fin, opcode, payload, [0x37, 0xfa, 0x21, 0x3d])
}

pub fn client_frame_with_mask(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut f = vec![(u8::from(fin) << 7) | opcode];
    push_len(&mut f, 0x80, payload.len());
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// An unmasked frame (what a server sends; a protocol error from a client).
pub fn unmasked_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![(u8::from(fin) << 7) | opcode];
    push_len(&mut f, 0, payload.len());
    f.extend_from_slice(payload);
    f
}

fn push_len(f: &mut Vec<u8>, mask_bit: u8, n: usize) {
    if n < 126 {
        f.push(mask_bit | n as u8);
    } else if n < 65536 {
        f.push(mask_bit | 126);
        f.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        f.push(mask_bit | 127);
        f.extend_from_slice(&(n as u64).to_be_bytes());
    }
}

pub fn binary(payload: &[u8]) -> Vec<u8> {
    client_frame(true, OP_BINARY, payload)
}

pub fn text(payload: &str) -> Vec<u8> {
    client_frame(true, OP_TEXT, payload.as_bytes())
}

/// One server frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl Frame {
    pub fn text(&self) -> &str {
        assert_eq!(self.opcode, OP_TEXT, "text frame expected: {self:?}");
        std::str::from_utf8(&self.payload).expect("utf-8 text frame")
    }

    pub fn close_code(&self) -> u16 {
        assert_eq!(self.opcode, OP_CLOSE, "close frame expected: {self:?}");
        u16::from_be_bytes([self.payload[0], self.payload[1]])
    }
}

/// Splits server output into frames; server frames must not be masked.
pub fn parse_frames(mut buf: &[u8]) -> Vec<Frame> {
    let mut v = Vec::new();
    while !buf.is_empty() {
        assert!(buf.len() >= 2, "truncated frame: {buf:?}");
        let fin = buf[0] & 0x80 != 0;
        let opcode = buf[0] & 0x0f;
        assert_eq!(buf[1] & 0x80, 0, "server frames are never masked");
        let (len, head) = match buf[1] & 0x7f {
            126 => (usize::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
            127 => (
                usize::try_from(u64::from_be_bytes(buf[2..10].try_into().unwrap())).unwrap(),
                10,
            ),
            n => (usize::from(n), 2),
        };
        assert!(buf.len() >= head + len, "truncated frame payload");
        v.push(Frame {
            fin,
            opcode,
            payload: buf[head..head + len].to_vec(),
        });
        buf = &buf[head + len..];
    }
    v
}

/// The texts of all text frames, in order.
pub fn texts(frames: &[Frame]) -> Vec<String> {
    frames
        .iter()
        .filter(|f| f.opcode == OP_TEXT)
        .map(|f| f.text().to_string())
        .collect()
}

/// The highest `{"ack":N}` among `frames`.
pub fn last_ack(frames: &[Frame]) -> Option<u64> {
    texts(frames)
        .iter()
        .filter_map(|t| t.strip_prefix("{\"ack\":")?.strip_suffix('}')?.parse().ok())
        .max()
}
