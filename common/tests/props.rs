// long-file: one binary on purpose: its counting global allocator and request generators serve every section (decoder, HTTP, WebSocket, bounded memory)
//! Property tests of the codecs and the connection state machine: a valid stream split at
//! any byte offsets means the same as the stream fed whole, arbitrary bytes never panic,
//! and a connection's memory stays bounded however much a peer sends.
//!
//! Memory is measured with a counting global allocator that keeps, per thread, the bytes
//! currently allocated and their peak. A `Conn` lives and allocates on the test thread
//! only, so the per-thread figure is exactly what feeding it costs, whatever the other
//! test threads do; process RSS (`/proc/self/statm`) would mix in every parallel test and
//! the allocator's caching, and could only catch gross leaks.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::conn::Conn;
use common::policy::ack::AckMode;
use common::policy::config::{Config, Limits};
use common::proto::http::{Decoder, HttpError, Request, Route};
use common::publish::token::ReplyTo;
use proptest::prelude::*;
use proptest::sample::Index;
use support::*;

// ---------------------------------------------------------------------------------------
// Per-thread allocation accounting
// ---------------------------------------------------------------------------------------

struct ThreadCounting;

thread_local! {
    static LIVE: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
}

fn track(delta: i64) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call is forwarded to `System` unchanged; the bookkeeping only touches
// const-initialised thread-locals without destructors, which never allocate.
unsafe impl GlobalAlloc for ThreadCounting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            track(layout.size() as i64);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            track(layout.size() as i64);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        track(-(layout.size() as i64));
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            track(new_size as i64 - layout.size() as i64);
        }
        p
    }
}

#[global_allocator]
static ALLOC: ThreadCounting = ThreadCounting;

/// Measures from now: `peak()` is the most this thread held above the baseline since.
struct Meter {
    base: i64,
}

impl Meter {
    fn start() -> Meter {
        let base = LIVE.with(Cell::get);
        PEAK.with(|p| p.set(base));
        Meter { base }
    }
    fn peak(&self) -> i64 {
        PEAK.with(Cell::get) - self.base
    }
    /// What this thread holds now above the baseline.
    fn live(&self) -> i64 {
        LIVE.with(Cell::get) - self.base
    }
}

// ---------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------

/// 256 cases a property (`PROPTEST_CASES=N` for a longer hunt).
fn cfg() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// One request of a valid keep-alive stream, and what it must become.
#[derive(Debug, Clone)]
enum Req {
    Publish {
        topic: String,
        key: Option<String>,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        /// `Some(sizes)`: chunked, chunk sizes cycled through; else Content-Length.
        chunks: Option<Vec<usize>>,
        trailer: bool,
    },
    Healthz,
    NotFound,
}

impl Req {
    fn encode(&self) -> Vec<u8> {
        match self {
            Req::Healthz => b"GET /healthz HTTP/1.1\r\nhost: gw\r\n\r\n".to_vec(),
            Req::NotFound => b"GET /nowhere?x=1 HTTP/1.1\r\n\r\n".to_vec(),
            Req::Publish {
                topic,
                key,
                headers,
                body,
                chunks,
                trailer,
            } => {
                let mut target = format!("/topics/{topic}");
                if let Some(k) = key {
                    target.push_str(&format!("?key={k}"));
                }
                let mut r = format!("POST {target} HTTP/1.1\r\nHost: gw\r\n");
                for (k, v) in headers {
                    r.push_str(&format!("kafka-header-{k}: {v}\r\n"));
                }
                let mut r = match chunks {
                    None => {
                        r.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
                        let mut r = r.into_bytes();
                        r.extend_from_slice(body);
                        r
                    }
                    Some(sizes) => {
                        r.push_str("Transfer-Encoding: chunked\r\n\r\n");
                        let mut r = r.into_bytes();
                        let mut rest = &body[..];
                        for &size in sizes.iter().cycle() {
                            if rest.is_empty() {
                                break;
                            }
                            let n = size.min(rest.len());
                            r.extend_from_slice(format!("{n:X}\r\n").as_bytes());
                            r.extend_from_slice(&rest[..n]);
                            r.extend_from_slice(b"\r\n");
                            rest = &rest[n..];
                        }
                        r.extend_from_slice(b"0\r\n");
                        if *trailer {
                            r.extend_from_slice(b"x-checksum: 0\r\n");
                        }
                        r.extend_from_slice(b"\r\n");
                        r
                    }
                };
                r.shrink_to_fit();
                r
            }
        }
    }

    /// The record it must publish, if any.
    fn record(&self) -> Option<Sent> {
        match self {
            Req::Publish {
                topic,
                key,
                headers,
                body,
                ..
            } => Some(Sent {
                topic: topic.clone(),
                key: key.as_ref().map(|k| k.as_bytes().to_vec()),
                value: body.clone(),
                partition: None,
                headers: headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
                    .collect(),
            }),
            _ => None,
        }
    }

    fn status(&self) -> u16 {
        match self {
            Req::Publish { .. } => 202,
            Req::Healthz => 200,
            Req::NotFound => 404,
        }
    }
}

fn publish() -> impl Strategy<Value = Req> {
    (
        "[a-z]{1,8}",
        proptest::option::of("[a-z0-9]{0,6}"),
        prop::collection::vec(("[a-z]{1,6}", "[!-~]{0,10}"), 0..3),
        prop::collection::vec(prop_oneof![any::<u8>(), Just(b'\r'), Just(b'\n')], 0..80),
        proptest::option::of(prop::collection::vec(1usize..16, 1..4)),
        any::<bool>(),
    )
        .prop_map(
            |(topic, key, headers, body, chunks, trailer)| Req::Publish {
                topic,
                key,
                headers,
                body,
                chunks,
                trailer,
            },
        )
}

fn request() -> impl Strategy<Value = Req> {
    prop_oneof![
        6 => publish(),
        1 => Just(Req::Healthz),
        1 => Just(Req::NotFound),
    ]
}

/// Cuts `len` bytes at the given offsets: every piece non-empty, together the whole.
fn cut(len: usize, at: &[Index]) -> Vec<std::ops::Range<usize>> {
    let mut points: Vec<usize> = at.iter().map(|i| i.index(len + 1)).collect();
    points.push(0);
    points.push(len);
    points.sort_unstable();
    points.dedup();
    points.windows(2).map(|w| w[0]..w[1]).collect()
}

fn cuts() -> impl Strategy<Value = Vec<Index>> {
    prop::collection::vec(any::<Index>(), 0..24)
}

/// Small limits, so bounds are reached with small inputs.
fn small_limits() -> Limits {
    Limits {
        max_head: 1024,
        max_headers: 16,
        max_body: 4096,
        max_pipeline: 8,
        ws_max_inflight: 8,
        max_records: 8,
    }
}

// ---------------------------------------------------------------------------------------
// The HTTP decoder alone
// ---------------------------------------------------------------------------------------

/// Feeds `pieces` the way `Conn` does (append, decode while requests come, drop what was
/// consumed) and returns the requests and the error that ended the stream, if any.
fn decode_pieces<'a>(
    limits: Limits,
    pieces: impl IntoIterator<Item = &'a [u8]>,
) -> (Vec<Request>, Option<HttpError>) {
    let mut d = Decoder::new(limits);
    let mut buf = Vec::new();
    let mut reqs = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match d.decode(&buf) {
                Err(e) => return (reqs, Some(e)),
                Ok((n, req)) => {
                    assert!(n <= buf.len(), "consumed {n} of {} bytes", buf.len());
                    buf.drain(..n);
                    match req {
                        Some(r) => reqs.push(r),
                        None => break,
                    }
                }
            }
        }
        // Bounded: never more than a head's worth (or a chunk line) left undecoded.
        assert!(buf.len() <= limits.max_head + piece.len() + 1024);
    }
    (reqs, None)
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn decoder_valid_stream_split_anywhere_decodes_the_same(
        reqs in prop::collection::vec(request(), 1..6),
        at in cuts(),
    ) {
        let stream: Vec<u8> = reqs.iter().flat_map(Req::encode).collect();
        let (whole, err) = decode_pieces(Limits::default(), [&stream[..]]);
        prop_assert_eq!(err, None);
        prop_assert_eq!(whole.len(), reqs.len());
        for (got, want) in whole.iter().zip(&reqs) {
            prop_assert!(got.keep_alive);
            match want.record() {
                Some(rec) => {
                    prop_assert_eq!(
                        &got.route,
                        &Ok(Route::Publish { topic: rec.topic.clone(), batch: false })
                    );
                    prop_assert_eq!(&got.body, &rec.value);
                    prop_assert_eq!(&got.query.key, &rec.key);
                    prop_assert_eq!(&got.headers, &rec.headers);
                }
                None => prop_assert_eq!(got.route.is_ok(), want.status() == 200),
            }
        }
        let pieces: Vec<&[u8]> = cut(stream.len(), &at).into_iter().map(|r| &stream[r]).collect();
        let (split, err) = decode_pieces(Limits::default(), pieces);
        prop_assert_eq!(err, None);
        prop_assert_eq!(split, whole);
    }

    #[test]
    fn decoder_arbitrary_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..4096),
        at in cuts(),
    ) {
        let pieces: Vec<&[u8]> = cut(bytes.len(), &at).into_iter().map(|r| &bytes[r]).collect();
        let (split, err) = decode_pieces(small_limits(), pieces);
        // Whole or in pieces, the same requests come out before any error.
        let (whole, whole_err) = decode_pieces(small_limits(), [&bytes[..]]);
        prop_assert_eq!(split, whole);
        prop_assert_eq!(err.is_some(), whole_err.is_some());
    }

    #[test]
    fn decoder_token_soup_never_panics(soup in soup(), at in cuts()) {
        let pieces: Vec<&[u8]> = cut(soup.len(), &at).into_iter().map(|r| &soup[r]).collect();
        let (split, err) = decode_pieces(small_limits(), pieces);
        let (whole, whole_err) = decode_pieces(small_limits(), [&soup[..]]);
        prop_assert_eq!(split, whole);
        prop_assert_eq!(err.is_some(), whole_err.is_some());
    }
}

/// Near-valid HTTP: request lines, headers, framing and chunk pieces in random order, so
/// the decoder gets past the request line far more often than with uniform bytes.
fn soup() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just(b"POST /topics/t HTTP/1.1\r\n".to_vec()),
        Just(b"POST /topics/t/batch?key=a%20b&ack=none HTTP/1.1\r\n".to_vec()),
        Just(b"GET /ws/t HTTP/1.1\r\n".to_vec()),
        Just(b"GET /healthz HTTP/1.0\r\n".to_vec()),
        Just(b"Content-Length: 5\r\n".to_vec()),
        Just(b"Content-Length: 99999999999999999999\r\n".to_vec()),
        Just(b"Transfer-Encoding: chunked\r\n".to_vec()),
        Just(b"Connection: keep-alive, Upgrade\r\n".to_vec()),
        Just(b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n".to_vec()),
        Just(b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n".to_vec()),
        Just(b"Expect: 100-continue\r\n".to_vec()),
        Just(b"kafka-header-a: b\r\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"5\r\nhello\r\n".to_vec()),
        Just(b"ffffffffffffffffff\r\n".to_vec()),
        Just(b"3;ext=1\r\n".to_vec()),
        Just(b"0\r\n\r\n".to_vec()),
        Just(b"0\r\nx: y\r\n".to_vec()),
        prop::collection::vec(any::<u8>(), 1..8),
    ];
    prop::collection::vec(token, 0..40).prop_map(|t| t.concat())
}

// ---------------------------------------------------------------------------------------
// Conn over HTTP
// ---------------------------------------------------------------------------------------

/// Feeds `pieces` into a fresh connection (draining the output after each, as the writer
/// does) and returns (all output, records published).
fn run_http(
    config: Config,
    stream: &[u8],
    pieces: &[std::ops::Range<usize>],
) -> (Vec<u8>, Vec<Sent>) {
    let mut h = Harness::new(config);
    let mut out = Vec::new();
    for r in pieces {
        h.feed(&stream[r.clone()]);
        out.extend(h.out());
    }
    (out, h.sink.records())
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn http_stream_split_anywhere_gives_the_same_records_and_bytes(
        reqs in prop::collection::vec(request(), 1..6),
        at in cuts(),
    ) {
        let stream: Vec<u8> = reqs.iter().flat_map(Req::encode).collect();
        let (whole_out, whole_recs) =
            run_http(config(AckMode::Enqueue), &stream, &cut(stream.len(), &[]));
        let want: Vec<Sent> = reqs.iter().filter_map(Req::record).collect();
        prop_assert_eq!(&whole_recs, &want);
        let rs = parse_responses(&whole_out);
        prop_assert_eq!(statuses(&rs), reqs.iter().map(Req::status).collect::<Vec<_>>());

        let (split_out, split_recs) = run_http(config(AckMode::Enqueue), &stream, &cut(stream.len(), &at));
        prop_assert_eq!(split_recs, whole_recs);
        prop_assert!(split_out == whole_out, "output differs:\n{}\n---\n{}",
            String::from_utf8_lossy(&split_out), String::from_utf8_lossy(&whole_out));
    }

    #[test]
    fn http_stream_with_kafka_acks_completed_out_of_order_answers_in_order(
        reqs in prop::collection::vec(publish(), 1..6),
        at in cuts(),
        order in any::<u64>(),
    ) {
        let stream: Vec<u8> = reqs.iter().flat_map(Req::encode).collect();
        let mut h = Harness::with_ack(AckMode::Kafka);
        let mut out = Vec::new();
        for r in cut(stream.len(), &at) {
            h.feed(&stream[r]);
            out.extend(h.out());
        }
        prop_assert!(out.is_empty(), "nothing before Kafka acknowledged");
        prop_assert_eq!(h.sink.records(), reqs.iter().filter_map(Req::record).collect::<Vec<_>>());
        // Complete in a scrambled order; offset i for request i.
        let mut seqs: Vec<(usize, u64)> = h.sink.tickets().iter().map(|t| t.0).enumerate().collect();
        let mut x = order | 1;
        for i in (1..seqs.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            seqs.swap(i, (x % (i as u64 + 1)) as usize);
        }
        for (i, seq) in seqs {
            h.deliver(seq, Ok((0, i as i64)));
            out.extend(h.out());
        }
        let rs = parse_responses(&out);
        let bodies: Vec<String> = rs.iter().map(|r| r.body_str().to_string()).collect();
        let want: Vec<String> = (0..reqs.len())
            .map(|i| format!("{{\"partition\":0,\"offset\":{i}}}"))
            .collect();
        prop_assert_eq!(bodies, want);
    }

    #[test]
    fn http_arbitrary_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..4096),
        at in cuts(),
        ack in prop_oneof![Just(AckMode::Kafka), Just(AckMode::Enqueue), Just(AckMode::None)],
    ) {
        let mut c = config(ack);
        c.limits = small_limits();
        let mut h = Harness::new(c);
        let pieces = cut(bytes.len(), &at);
        for (i, r) in pieces.iter().enumerate() {
            // Deliberately ignores wants_read(): extra calls must be harmless too.
            h.feed_at(&bytes[r.clone()], Duration::from_millis(i as u64));
            let _ = h.out();
        }
        prop_assert!(h.sink.len() <= bytes.len());
        for i in 0..h.sink.len() {
            h.deliver(h.sink.seq(i), Ok((0, 0)));
        }
        h.timer(Duration::from_secs(3600));
        h.conn.on_eof(h.at(Duration::from_secs(3600)));
        let _ = h.out();
        h.conn.on_shutdown(h.at(Duration::from_secs(3601)));
        let _ = h.out();
        prop_assert!(h.conn.is_finished() || h.conn.is_websocket());
    }

    #[test]
    fn http_token_soup_never_panics(soup in soup(), at in cuts()) {
        let mut c = config(AckMode::Kafka);
        c.limits = small_limits();
        let mut h = Harness::new(c);
        for r in cut(soup.len(), &at) {
            h.feed(&soup[r]);
            let _ = h.out();
            for i in 0..h.sink.len() {
                h.deliver(h.sink.seq(i), Err(common::publish::DeliveryError::Timeout));
            }
        }
        h.timer(Duration::from_secs(3600));
        let _ = h.out();
    }
}

// ---------------------------------------------------------------------------------------
// Conn over WebSocket
// ---------------------------------------------------------------------------------------

/// One client message: text or binary, sent whole or in fragments, maybe with a ping
/// between fragments (control frames may interleave).
#[derive(Debug, Clone)]
struct WsMsg {
    text: bool,
    payload: Vec<u8>,
    fragments: usize,
    ping_inside: bool,
    mask: [u8; 4],
}

impl WsMsg {
    fn encode(&self, out: &mut Vec<u8>) {
        let op = if self.text { OP_TEXT } else { OP_BINARY };
        let n = self.fragments.max(1);
        let size = self.payload.len().div_ceil(n).max(1);
        let parts: Vec<&[u8]> = if self.payload.is_empty() {
            vec![&[]]
        } else {
            self.payload.chunks(size).collect()
        };
        for (i, part) in parts.iter().enumerate() {
            let opcode = if i == 0 { op } else { OP_CONT };
            out.extend(client_frame_with_mask(
                i + 1 == parts.len(),
                opcode,
                part,
                self.mask,
            ));
            if self.ping_inside && i == 0 {
                out.extend(client_frame_with_mask(true, OP_PING, b"hb", self.mask));
            }
        }
    }
}

fn ws_msg() -> impl Strategy<Value = WsMsg> {
    (
        any::<bool>(),
        prop::collection::vec(any::<u8>(), 0..300),
        ".{0,60}",
        1usize..4,
        any::<bool>(),
        any::<[u8; 4]>(),
    )
        .prop_map(|(text, bytes, s, fragments, ping_inside, mask)| WsMsg {
            text,
            payload: if text { s.into_bytes() } else { bytes },
            fragments,
            ping_inside,
            mask,
        })
}

/// Upgrades, then feeds the frame stream in `pieces`; returns (server frames, records).
fn run_ws(stream: &[u8], pieces: &[std::ops::Range<usize>]) -> (Vec<Frame>, Vec<Vec<u8>>) {
    let mut h = Harness::with_ack(AckMode::Enqueue);
    h.upgrade("/ws/t");
    let mut frames = Vec::new();
    for r in pieces {
        h.feed(&stream[r.clone()]);
        frames.extend(h.frames());
    }
    (frames, h.sink.values())
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn ws_frames_split_anywhere_give_the_same_records(
        msgs in prop::collection::vec(ws_msg(), 1..8),
        at in cuts(),
    ) {
        let mut stream = Vec::new();
        for m in &msgs {
            m.encode(&mut stream);
        }
        let want: Vec<Vec<u8>> = msgs.iter().map(|m| m.payload.clone()).collect();
        let pings = msgs.iter().filter(|m| m.ping_inside).count();
        for pieces in [cut(stream.len(), &[]), cut(stream.len(), &at)] {
            let (frames, records) = run_ws(&stream, &pieces);
            prop_assert_eq!(&records, &want);
            // Acks: strictly increasing, the last covers every message; one pong per ping;
            // nothing else (acks are coalesced per read, so their number may differ).
            let acks: Vec<u64> = texts(&frames)
                .iter()
                .map(|t| t.strip_prefix("{\"ack\":").and_then(|t| t.strip_suffix('}'))
                    .and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("not an ack: {t}")))
                .collect();
            prop_assert!(acks.windows(2).all(|w| w[0] < w[1]), "{:?}", acks);
            prop_assert_eq!(acks.last().copied(), Some(msgs.len() as u64));
            let pongs: Vec<&Frame> = frames.iter().filter(|f| f.opcode == OP_PONG).collect();
            prop_assert_eq!(pongs.len(), pings);
            prop_assert!(pongs.iter().all(|f| f.payload == b"hb"));
            prop_assert_eq!(frames.len(), acks.len() + pongs.len());
        }
    }

    #[test]
    fn ws_arbitrary_bytes_after_upgrade_never_panic(
        prefix in prop::collection::vec(ws_msg(), 0..3),
        bytes in prop::collection::vec(any::<u8>(), 0..4096),
        at in cuts(),
        ack in prop_oneof![Just(AckMode::Kafka), Just(AckMode::Enqueue), Just(AckMode::None)],
    ) {
        let mut c = config(ack);
        c.limits = small_limits();
        let mut h = Harness::new(c);
        h.upgrade("/ws/t");
        let mut stream = Vec::new();
        for m in &prefix {
            m.encode(&mut stream);
        }
        stream.extend_from_slice(&bytes);
        for (i, r) in cut(stream.len(), &at).into_iter().enumerate() {
            h.feed_at(&stream[r], Duration::from_millis(i as u64));
            let _ = h.out();
            for j in 0..h.sink.len() {
                h.deliver(h.sink.seq(j), Ok((0, 0)));
            }
        }
        prop_assert!(h.sink.len() <= stream.len());
        h.timer(IDLE / 2);
        h.timer(IDLE * 2);
        let _ = h.out();
        prop_assert!(h.conn.is_finished(), "idle close always finishes");
    }
}

// ---------------------------------------------------------------------------------------
// Bounded memory
// ---------------------------------------------------------------------------------------

/// Feeds `stream` (repeated until `total` bytes) in reads of `read` bytes while the
/// connection wants to read, as the driver does; `drain` says whether the writer keeps up.
/// Returns (bytes fed, peak bytes held by this thread above the start).
fn feed_bounded(
    conn: &mut Conn,
    stream: &[u8],
    total: usize,
    read: usize,
    drain: bool,
) -> (usize, i64) {
    let now = Instant::now();
    let meter = Meter::start();
    let mut fed = 0;
    let mut pos = 0;
    while fed < total && conn.wants_read() && !conn.is_finished() && !stream.is_empty() {
        let n = read.min(stream.len() - pos);
        conn.on_data(&stream[pos..pos + n], now);
        fed += n;
        pos = (pos + n) % stream.len();
        if drain {
            drop(conn.take_output());
        }
    }
    (fed, meter.peak())
}

/// What one connection with `small_limits()` may hold at most, whatever it is sent: a
/// head, a body, a read, the pipeline's answers and tungstenite's buffers, with slack. It
/// does not grow with the bytes fed.
const SMALL_BOUND: i64 = 128 * 1024;

fn small_conn(ack: AckMode, sink: Arc<CountingSink>) -> Conn {
    let mut c = config(ack);
    c.limits = small_limits();
    Conn::new(shared_with(c, sink), ReplyTo::detached(), Instant::now())
}

fn small_ws_conn(ack: AckMode, sink: Arc<CountingSink>) -> Conn {
    let mut conn = small_conn(ack, sink);
    conn.on_data(&upgrade_request("/ws/t"), Instant::now());
    drop(conn.take_output());
    assert!(conn.is_websocket());
    conn
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cfg().cases / 4, ..cfg() })]

    #[test]
    fn memory_stays_bounded_whatever_is_sent(
        pattern in prop_oneof![
            prop::collection::vec(any::<u8>(), 1..4096),
            soup().prop_filter("non-empty", |s| !s.is_empty()),
            prop::collection::vec(ws_msg(), 1..8).prop_map(|ms| {
                let mut v = Vec::new();
                for m in &ms { m.encode(&mut v); }
                v
            }),
        ],
        websocket in any::<bool>(),
        read in 1usize..8192,
        ack in prop_oneof![Just(AckMode::Kafka), Just(AckMode::Enqueue)],
    ) {
        let sink = Arc::new(CountingSink::default());
        let mut conn = if websocket {
            small_ws_conn(ack, sink.clone())
        } else {
            small_conn(ack, sink.clone())
        };
        // The pattern repeated up to 512 KiB, with the writer keeping up.
        let (fed, peak) = feed_bounded(&mut conn, &pattern, 512 << 10, read, true);
        prop_assert!(peak <= SMALL_BOUND, "held {} bytes after {} fed", peak, fed);
        prop_assert!(sink.count.load(Ordering::Relaxed) as usize <= fed);
    }
}

/// What an idle connection may keep above a fresh one, once every answer is written: no
/// received bytes, no answer queue, output only while answers are due — a small margin for
/// the decoder's and the metrics' bookkeeping (see issue 13: an idle HTTP keep-alive
/// connection's buffers are released, whatever exchange came before).
const IDLE_BOUND: i64 = common::policy::config::IDLE_BUFFER_FLOOR as i64;

proptest! {
    #![proptest_config(ProptestConfig { cases: cfg().cases / 4, ..cfg() })]

    #[test]
    fn an_idle_http_connection_returns_its_buffers(
        bodies in prop::collection::vec(0usize..20_000, 1..24),
        read in 1usize..16_384,
    ) {
        let sink = Arc::new(CountingSink::default());
        let shared = shared_with(config(AckMode::Enqueue), sink);
        // The process-wide state (metrics series) is created by a first exchange elsewhere.
        let mut first = Conn::new(shared.clone(), ReplyTo::detached(), Instant::now());
        first.on_data(&post("/topics/t", b"v"), Instant::now());
        prop_assert!(first.take_output().is_some());
        let mut conn = Conn::new(shared, ReplyTo::detached(), Instant::now());
        let stream: Vec<u8> = bodies
            .iter()
            .flat_map(|&n| post("/topics/t", &vec![b'v'; n]))
            .collect();
        let now = Instant::now();
        // Measured from the connection's first byte: whatever it allocated for the exchange
        // (a partial request, pipelined answers, a large output) must be gone once idle.
        let meter = Meter::start();
        let mut answers = Vec::new();
        for part in stream.chunks(read) {
            conn.on_data(part, now);
            while let Some(out) = conn.take_output() {
                answers.extend_from_slice(&out);
                conn.recycle_output(out);
            }
        }
        let answered = answers.windows(12).filter(|w| w.starts_with(b"HTTP/1.1 202")).count();
        drop(answers);
        let peak = meter.peak();
        let live = meter.live();
        prop_assert_eq!(answered, bodies.len());
        prop_assert!(conn.wants_read() && !conn.is_finished());
        prop_assert_eq!(conn.held_bytes().input, 0);
        prop_assert!(
            live <= IDLE_BOUND,
            "idle after {} requests in {}-byte reads: {} bytes still held (peak {}): {:?}",
            bodies.len(), read, live, peak, conn.held_bytes()
        );
    }
}

/// Endless well-formed traffic against default limits, 16 KiB reads (the driver's), up to
/// 8 MiB each. Every case must stop reading or stay within a bound set by the limits, not
/// by the bytes sent.
fn endless(name: &str, websocket: bool, ack: AckMode, stream: &[u8], drain: bool) -> (usize, i64) {
    let sink = Arc::new(CountingSink::default());
    let shared = shared_with(config(ack), sink);
    let mut conn = Conn::new(shared, ReplyTo::detached(), Instant::now());
    if websocket {
        conn.on_data(&upgrade_request("/ws/t"), Instant::now());
        drop(conn.take_output());
    }
    let (fed, peak) = feed_bounded(&mut conn, stream, 8 << 20, 16 * 1024, drain);
    // Default limits: 1 MiB body / message, 16 KiB head, 256 pipelined answers, 256 KiB
    // of unwritten output, 1024 WebSocket messages in flight.
    let bound = 4 << 20;
    eprintln!("{name}: fed {fed} bytes, held at most {peak}");
    assert!(peak <= bound, "{name}: held {peak} bytes after {fed} fed");
    (fed, peak)
}

#[test]
fn endless_http_is_bounded() {
    let healthz = get("/healthz");
    // A reader that never reads: answers pile up until the output cap stops reading.
    let (fed, _) = endless("slow reader", false, AckMode::Enqueue, &healthz, false);
    assert!(fed < 8 << 20, "stopped reading");
    // Kafka never answers: stops at max_pipeline.
    let (fed, _) = endless(
        "kafka stuck",
        false,
        AckMode::Kafka,
        &post("/topics/t", b"v"),
        true,
    );
    assert!(fed < 8 << 20, "stopped reading");
    // Endless chunked body: 413 at max_body.
    let mut chunked = b"POST /topics/t HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    chunked.extend(
        b"400\r\n"
            .iter()
            .chain(&[b'x'; 1024])
            .chain(b"\r\n")
            .copied()
            .cycle()
            .take(4 << 20),
    );
    endless("endless chunks", false, AckMode::Kafka, &chunked, true);
    // Endless trailers and endless head: 431.
    let mut trailers =
        b"POST /topics/t HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n0\r\n".to_vec();
    trailers.extend(b"x: y\r\n".repeat(1 << 20));
    endless("endless trailers", false, AckMode::Kafka, &trailers, true);
    let mut head = b"GET /healthz HTTP/1.1\r\n".to_vec();
    head.extend(b"x: y\r\n".repeat(1 << 20));
    endless("endless head", false, AckMode::Kafka, &head, true);
    // Megabyte garbage.
    let garbage: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    endless("garbage", false, AckMode::Kafka, &garbage, true);
}

#[test]
fn endless_websocket_is_bounded() {
    let msgs: Vec<u8> = (0..1000).flat_map(|_| binary(&[b'm'; 100])).collect();
    // Kafka never answers: stops at ws_max_inflight.
    let (fed, _) = endless("ws kafka stuck", true, AckMode::Kafka, &msgs, true);
    assert!(fed < 8 << 20, "stopped reading");
    // The writer keeps up with acks: reads on, memory flat.
    endless("ws enqueue", true, AckMode::Enqueue, &msgs, true);
    // One endless fragmented message: 1009 at max_body.
    let mut frag = client_frame(false, OP_BINARY, &[b'f'; 1000]);
    frag.extend(client_frame(false, OP_CONT, &[b'f'; 60_000]).repeat(200));
    endless("ws endless message", true, AckMode::Kafka, &frag, true);
    let garbage: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    endless("ws garbage", true, AckMode::Kafka, &garbage, true);
}

#[test]
fn endless_websocket_to_a_reader_that_never_reads_is_bounded() {
    let pings = client_frame(true, OP_PING, &[b'p'; 125]).repeat(1000);
    endless("ws ping flood, unread", true, AckMode::Kafka, &pings, false);
    let msgs: Vec<u8> = (0..1000).flat_map(|_| binary(b"m")).collect();
    endless("ws acks, unread", true, AckMode::Enqueue, &msgs, false);
}
