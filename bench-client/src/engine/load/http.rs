//! HTTP/1.1 traffic: keep-alive connections with `--pipeline` requests in flight, and the
//! connection-per-request mode. Responses are parsed with httparse; a connection that
//! fails (reset, EOF, timeout, garbage) aborts its in-flight requests, which are counted as
//! errors of that kind, and the task reconnects.
//!
//! Over TLS (`https://`) the same code runs on the TLS stream: generic over the stream, so
//! the plaintext path stays the socket's own split halves, with no TLS layer in it.
//!
//! Entry point: the connection tasks the runner spawns for `http` and `http-close`. Part of
//! the [engine](crate::engine): must not depend on anything outside it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Semaphore;
use tokio::time::sleep_until;

use crate::engine::analysis::errors::{ErrorKey, Phase};
use crate::engine::config::{Ack, RunConfig};
use crate::engine::load::conn::{establish, secure, Open, RETRY_BACKOFF};
use crate::engine::load::recorder::{lock, InFlight, Outcome};
use crate::engine::load::shared::Shared;

/// Largest response head accepted before the connection is declared broken.
const MAX_HEAD: usize = 64 * 1024;

/// How a connection ended.
pub(crate) enum ConnEnd {
    /// The server closed (EOF or `Connection: close`).
    Closed,
    Error(ErrorKey),
}

/// A complete response at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Resp {
    pub status: u16,
    /// Offset of the body.
    pub body: usize,
    /// Length of head + body (as framed on the wire).
    pub len: usize,
    /// The server will close after this response.
    pub close: bool,
    /// A chunked body, decoded; `None` for a Content-Length body (`body..len`).
    pub decoded: Option<Vec<u8>>,
}

impl Resp {
    /// The body of this response, which starts `buf`.
    pub fn body_of<'a>(&'a self, buf: &'a [u8]) -> &'a [u8] {
        self.decoded
            .as_deref()
            .unwrap_or_else(|| &buf[self.body..self.len])
    }
}

/// Largest (decoded) chunked response body accepted.
const MAX_CHUNKED_BODY: usize = 16 * 1024 * 1024;
/// Longest chunk-size line or trailer line.
const MAX_CHUNK_LINE: usize = 4096;

/// Parse one response from the start of `b`: `Ok(None)` means more bytes are needed.
/// The head is httparse's; a body is framed by Content-Length or chunked.
pub(crate) fn parse_response(b: &[u8]) -> Result<Option<Resp>, &'static str> {
    if b.is_empty() {
        return Ok(None);
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut r = httparse::Response::new(&mut headers);
    let head = match r.parse(b) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if b.len() > MAX_HEAD => {
            return Err("response-head-too-large")
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err("bad-response"),
    };
    let status = r.code.unwrap_or(0);
    let mut close = r.version == Some(0);
    let mut length = None;
    let mut chunked = false;
    for h in r.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or("bad-content-length")?;
            length = Some(v);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Only `chunked` as the final coding frames a body we can read.
            let last = h.value.rsplit(|&c| c == b',').next().unwrap_or_default();
            if !last.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                return Err("unsupported-transfer-encoding");
            }
            chunked = true;
        } else if h.name.eq_ignore_ascii_case("connection") {
            let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
            if v.contains("close") {
                close = true;
            } else if v.contains("keep-alive") {
                close = false;
            }
        }
    }
    let no_body = status == 204 || status == 304 || (100..200).contains(&status);
    if chunked && !no_body {
        // Transfer-Encoding wins over Content-Length (RFC 9112 6.3).
        return Ok(decode_chunked(&b[head..])?.map(|(n, body)| Resp {
            status,
            body: head,
            len: head + n,
            close,
            decoded: Some(body),
        }));
    }
    let length = match length {
        Some(n) => n,
        None if no_body => 0,
        None => return Err("no-content-length"),
    };
    if b.len() < head + length {
        return Ok(None);
    }
    Ok(Some(Resp {
        status,
        body: head,
        len: head + length,
        close,
        decoded: None,
    }))
}

/// Decodes a chunked body at the start of `b` (chunk sizes by httparse): the bytes it
/// spans on the wire (trailers included) and the data, or `Ok(None)` if incomplete.
fn decode_chunked(b: &[u8]) -> Result<Option<(usize, Vec<u8>)>, &'static str> {
    let mut pos = 0;
    let mut out = Vec::new();
    loop {
        let rest = &b[pos..];
        let size = match httparse::parse_chunk_size(rest) {
            Ok(httparse::Status::Complete((n, size))) => {
                pos += n;
                size
            }
            Ok(httparse::Status::Partial) if rest.len() > MAX_CHUNK_LINE => {
                return Err("bad-chunk-size")
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err("bad-chunk-size"),
        };
        if size == 0 {
            // Trailer lines, then the empty line that ends the message.
            loop {
                let rest = &b[pos..];
                let Some(nl) = rest.iter().take(MAX_CHUNK_LINE).position(|&c| c == b'\n') else {
                    if rest.len() >= MAX_CHUNK_LINE {
                        return Err("bad-chunk-trailer");
                    }
                    return Ok(None);
                };
                pos += nl + 1;
                if rest[..nl].is_empty() || &rest[..nl] == b"\r" {
                    return Ok(Some((pos, out)));
                }
            }
        }
        let size = usize::try_from(size)
            .ok()
            .filter(|s| out.len() + s <= MAX_CHUNKED_BODY)
            .ok_or("response-body-too-large")?;
        let rest = &b[pos..];
        if rest.len() < size + 2 {
            return Ok(None);
        }
        if &rest[size..size + 2] != b"\r\n" {
            return Err("bad-chunk");
        }
        out.extend_from_slice(&rest[..size]);
        pos += size + 2;
    }
}

#[derive(Deserialize)]
struct AckBody {
    #[allow(dead_code)]
    partition: i32,
    #[allow(dead_code)]
    offset: i64,
}

/// A Kafka REST Proxy v2 produce answer (only what is checked).
#[derive(Deserialize)]
struct RestAck {
    offsets: Vec<RestOffset>,
}

#[derive(Deserialize)]
struct RestOffset {
    #[serde(default)]
    offset: Option<i64>,
    #[serde(default)]
    error_code: Option<i64>,
}

/// What a response means: 2xx success, 503 backpressure, anything else an error.
/// With ack=kafka a 200 must carry offsets: `{"partition":P,"offset":O}` (raw contract)
/// or a REST Proxy v2 `{"offsets":[…]}` with one entry per record of the request, none of
/// them an error (a record's error makes the request an error, `record-error`).
pub(crate) fn outcome(status: u16, body: &[u8], cfg: &RunConfig) -> Outcome {
    let acked = cfg.collect_acks;
    match status {
        200 if cfg.ack == Ack::Kafka => {
            if serde_json::from_slice::<AckBody>(body).is_ok() {
                return Outcome::Ok { acked };
            }
            match serde_json::from_slice::<RestAck>(body) {
                Ok(a) if a.offsets.len() != cfg.batch => {
                    Outcome::Error(ErrorKey::new(Phase::Protocol, "bad-offsets-count"))
                }
                Ok(a) if a.offsets.iter().any(|o| o.error_code.is_some()) => {
                    Outcome::Error(ErrorKey::new(Phase::Protocol, "record-error"))
                }
                Ok(a) => Outcome::Ok {
                    // Null offsets (ack=enqueue/none semantics) prove nothing was stored.
                    acked: acked && a.offsets.iter().all(|o| o.offset.is_some()),
                },
                Err(_) => Outcome::Error(ErrorKey::new(Phase::Protocol, "bad-ack-body")),
            }
        }
        200..=299 => Outcome::Ok { acked: false },
        503 => Outcome::Backpressure,
        s => Outcome::Error(ErrorKey::status(s)),
    }
}

/// One keep-alive connection slot: connect, pipeline until the connection breaks, repeat.
pub(crate) async fn keepalive_task(sh: Arc<Shared>, idx: u64) {
    let mut rng = fastrand::Rng::with_seed(idx.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 1);
    let mut budget = first_churn_budget(sh.cfg.reconnect_after, &mut rng);
    loop {
        let mut stream = establish(&sh).await;
        let open = Open::new(&sh);
        match &sh.tls {
            None => {
                let (rd, wr) = stream.split();
                keepalive_conn(&sh, rd, wr, &mut rng, &open, budget).await;
            }
            Some(tls) => match secure(&sh, tls, stream, &open).await {
                Ok(s) => {
                    let (rd, wr) = tokio::io::split(s);
                    keepalive_conn(&sh, rd, wr, &mut rng, &open, budget).await;
                }
                Err(k) => {
                    sh.rec.on_conn_error(Instant::now(), k);
                    drop(open);
                    tokio::time::sleep(RETRY_BACKOFF).await;
                    continue;
                }
            },
        }
        drop(open);
        budget = sh.cfg.reconnect_after.unwrap_or(u64::MAX);
    }
}

/// Connection churn (`--reconnect-after N`): after its budget of requests a connection stops
/// writing, waits for their answers and closes (the client closes first); the task then
/// reconnects with a budget of N. The first budget is drawn from 1..=N, so connections
/// opened together do not all reconnect together: churn is continuous, not a storm of
/// every connection every N requests (with 10,000 connections such a storm overflows any
/// listen backlog and stalls on SYN retransmits).
fn first_churn_budget(reconnect_after: Option<u64>, rng: &mut fastrand::Rng) -> u64 {
    match reconnect_after {
        Some(n) => rng.u64(1..=n.max(1)),
        None => u64::MAX,
    }
}

async fn keepalive_conn<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    sh: &Shared,
    mut rd: R,
    mut wr: W,
    rng: &mut fastrand::Rng,
    open: &Open<'_>,
    budget: u64,
) {
    let permits = Semaphore::new(sh.cfg.pipeline);
    // The requests on the wire, oldest first: the writer and the reader run in this one
    // task, so a queue behind an uncontended lock does (no channel, no wake-up between
    // them); the lock is never held across an await.
    let queue = Mutex::new(VecDeque::with_capacity(sh.cfg.pipeline.min(1024)));
    let mut buf = Vec::with_capacity(16 * 1024);
    let end = tokio::select! {
        e = writer(sh, &mut wr, &permits, &queue, rng, open, budget) => Some(e),
        e = reader(sh, &mut rd, &permits, &queue, &mut buf, open, budget) => e,
    };
    let Some(end) = end else {
        // Every request of the connection was answered: a planned close, not an error.
        return;
    };
    let lost: Vec<u64> = lock(&queue).iter().map(|f| f.seq).collect();
    let key = match end {
        ConnEnd::Error(k) => k,
        ConnEnd::Closed => ErrorKey::new(Phase::Read, "EOF"),
    };
    sh.rec.on_aborted(Instant::now(), &lost, key);
}

async fn writer<W: AsyncWrite + Unpin>(
    sh: &Shared,
    wr: &mut W,
    permits: &Semaphore,
    queue: &Mutex<VecDeque<InFlight>>,
    rng: &mut fastrand::Rng,
    open: &Open<'_>,
    budget: u64,
) -> ConnEnd {
    let mut buf = Vec::with_capacity(sh.cfg.payload.max + 256);
    let mut written = 0u64;
    loop {
        if written >= budget {
            // The reader ends the connection once the last answer is in.
            return std::future::pending().await;
        }
        let Ok(p) = permits.acquire().await else {
            return std::future::pending().await;
        };
        p.forget();
        let Some(c) = sh.next_send(Instant::now()).await else {
            return std::future::pending().await;
        };
        let now = Instant::now();
        buf.clear();
        sh.encoder.http_request_into(c.seq, rng, &mut buf);
        lock(queue).push_back(InFlight {
            seq: c.seq,
            intended: c.intended,
            start: now,
        });
        let mut n = 1;
        if !sh.open_loop() {
            // Closed loop: fill every free pipeline slot with one write.
            while written + n < budget {
                let Ok(p) = permits.try_acquire() else { break };
                let Some(c) = sh.claim() else { break };
                p.forget();
                sh.encoder.http_request_into(c.seq, rng, &mut buf);
                lock(queue).push_back(InFlight {
                    seq: c.seq,
                    intended: None,
                    start: now,
                });
                n += 1;
            }
        }
        sh.rec.on_sent(now, n);
        open.sent();
        written += n;
        // The flush is what sends the TLS records a write left buffered (a no-op on a
        // plain socket).
        if let Err(e) = wr.write_all(&buf).await {
            return ConnEnd::Error(ErrorKey::io(Phase::Write, &e));
        }
        if let Err(e) = wr.flush().await {
            return ConnEnd::Error(ErrorKey::io(Phase::Write, &e));
        }
    }
}

async fn reader<R: AsyncRead + Unpin>(
    sh: &Shared,
    rd: &mut R,
    permits: &Semaphore,
    queue: &Mutex<VecDeque<InFlight>>,
    buf: &mut Vec<u8>,
    open: &Open<'_>,
    budget: u64,
) -> Option<ConnEnd> {
    let timeout = sh.cfg.timeout();
    let mut answered = 0u64;
    // The response timeout, armed lazily: its deadline is never later than the oldest
    // request's (`start + timeout`; a request sent after arming has a later one), so it
    // fires early rather than late, and is re-armed then — once per timeout period, not
    // once per read.
    let mut timer = std::pin::pin!(sleep_until((Instant::now() + timeout).into()));
    loop {
        let mut pos = 0;
        let mut closing = false;
        loop {
            match parse_response(&buf[pos..]) {
                Err(code) => return Some(ConnEnd::Error(ErrorKey::new(Phase::Protocol, code))),
                Ok(None) => break,
                Ok(Some(r)) => {
                    let Some(f) = lock(queue).pop_front() else {
                        return Some(ConnEnd::Error(ErrorKey::new(
                            Phase::Protocol,
                            "unsolicited-response",
                        )));
                    };
                    let body = r.body_of(&buf[pos..]);
                    let out = outcome(r.status, body, &sh.cfg);
                    sh.on_response(&f, Instant::now(), Some(r.status), out);
                    open.answered();
                    permits.add_permits(1);
                    pos += r.len;
                    answered += 1;
                    if r.close {
                        closing = true;
                        break;
                    }
                }
            }
        }
        buf.drain(..pos);
        if closing {
            return Some(ConnEnd::Closed);
        }
        if answered >= budget {
            return None;
        }
        buf.reserve(16 * 1024);
        tokio::select! {
            r = rd.read_buf(buf) => match r {
                Ok(0) => return Some(ConnEnd::Closed),
                Ok(_) => {}
                Err(e) => return Some(ConnEnd::Error(ErrorKey::io(Phase::Read, &e))),
            },
            () = &mut timer => {
                let now = Instant::now();
                let oldest = lock(queue).front().map(|f| f.start + timeout);
                match oldest {
                    Some(d) if d <= now => return Some(ConnEnd::Error(ErrorKey::timeout())),
                    Some(d) => timer.as_mut().reset(d.into()),
                    None => timer.as_mut().reset((now + timeout).into()),
                }
            }
        }
    }
}

/// One connection-per-request slot: connect, one request, read the response, close first.
/// Latency runs from the start of the connect (closed loop) or the intended send time
/// (open loop), so it includes the connect (and the TLS handshake: a handshake per request
/// is the churn case); the connect alone is in its own histogram, the handshake in its own.
pub(crate) async fn close_task(sh: Arc<Shared>, idx: u64) {
    let mut rng = fastrand::Rng::with_seed(idx.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 2);
    let mut req = Vec::with_capacity(sh.cfg.payload.max + 256);
    let mut rbuf = Vec::with_capacity(4096);
    loop {
        let Some(c) = sh.next_send(Instant::now()).await else {
            return std::future::pending().await;
        };
        let start = Instant::now();
        let stream = establish(&sh).await;
        let open = Open::new(&sh);
        let f = InFlight {
            seq: c.seq,
            intended: c.intended,
            start,
        };
        req.clear();
        rbuf.clear();
        sh.encoder.http_request_into(c.seq, &mut rng, &mut req);
        let sent = Instant::now();
        sh.rec.on_sent(sent, 1);
        open.sent();
        // The exchange drops the connection when done: the client closes first, so the
        // TIME_WAIT lands on the client, as with a naive client.
        let deadline = (sent + sh.cfg.timeout()).into();
        let res = match &sh.tls {
            None => tokio::time::timeout_at(deadline, exchange(stream, &req, &mut rbuf)).await,
            Some(tls) => {
                let secured = async {
                    let s = secure(&sh, tls, stream, &open).await?;
                    exchange(s, &req, &mut rbuf).await
                };
                tokio::time::timeout_at(deadline, secured).await
            }
        };
        let now = Instant::now();
        match res {
            Err(_) => sh.rec.on_aborted(now, &[c.seq], ErrorKey::timeout()),
            Ok(Err(k)) => {
                let tls_failed = k.phase == Phase::Tls;
                sh.rec.on_aborted(now, &[c.seq], k);
                if tls_failed {
                    // As after a failed connect: no busy loop of doomed handshakes.
                    tokio::time::sleep(RETRY_BACKOFF).await;
                }
            }
            Ok(Ok(r)) => {
                let out = outcome(r.status, r.body_of(&rbuf), &sh.cfg);
                sh.on_response(&f, now, Some(r.status), out);
                open.answered();
            }
        }
        drop(open);
    }
}

/// One request and its response on a fresh connection, which is dropped (closed) at the end.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    req: &[u8],
    rbuf: &mut Vec<u8>,
) -> Result<Resp, ErrorKey> {
    stream
        .write_all(req)
        .await
        .map_err(|e| ErrorKey::io(Phase::Write, &e))?;
    stream
        .flush()
        .await
        .map_err(|e| ErrorKey::io(Phase::Write, &e))?;
    loop {
        match parse_response(rbuf) {
            Err(code) => return Err(ErrorKey::new(Phase::Protocol, code)),
            Ok(Some(r)) => return Ok(r),
            Ok(None) => {}
        }
        rbuf.reserve(4096);
        match stream.read_buf(rbuf).await {
            Ok(0) => return Err(ErrorKey::new(Phase::Read, "EOF")),
            Ok(_) => {}
            Err(e) => return Err(ErrorKey::io(Phase::Read, &e)),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn churn_starts_staggered_so_connections_do_not_reconnect_together() {
        assert_eq!(
            super::first_churn_budget(None, &mut fastrand::Rng::with_seed(1)),
            u64::MAX
        );
        // 10,000 connections with --reconnect-after 100: their first reconnects spread over
        // the whole period (each of 1..=100 drawn ~100 times), not all at request 100.
        let mut counts = [0u32; 101];
        for idx in 0..10_000u64 {
            let mut rng = fastrand::Rng::with_seed(idx.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 1);
            let b = super::first_churn_budget(Some(100), &mut rng);
            assert!((1..=100).contains(&b), "{b}");
            counts[b as usize] += 1;
        }
        let busiest = *counts.iter().max().unwrap();
        assert!(
            busiest < 200,
            "the busiest request number has {busiest} of 10000 reconnects"
        );
        assert_eq!(
            super::first_churn_budget(Some(1), &mut fastrand::Rng::with_seed(7)),
            1
        );
    }

    use super::*;
    use crate::engine::config::Format;

    fn cfg(ack: Ack, collect_acks: bool) -> RunConfig {
        let mut c = RunConfig::new("http://127.0.0.1:9").unwrap();
        c.ack = ack;
        c.collect_acks = collect_acks;
        c
    }

    #[test]
    fn parses_pipelined_responses() {
        let two = b"HTTP/1.1 200 OK\r\nContent-Length: 27\r\n\r\n{\"partition\":0,\"offset\":41}HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 17\r\nConnection: close\r\n\r\n{\"error\":\"full\"}";
        let a = parse_response(two).unwrap().unwrap();
        assert_eq!(a.status, 200);
        assert!(!a.close);
        let body = a.body_of(two);
        assert!(matches!(
            outcome(200, body, &cfg(Ack::Kafka, true)),
            Outcome::Ok { acked: true }
        ));
        let rest = &two[a.len..];
        // Any prefix of the second response needs more bytes.
        for cut in 0..rest.len() - 1 {
            assert_eq!(parse_response(&rest[..cut]).unwrap(), None, "cut {cut}");
        }
        let b = parse_response(rest).unwrap();
        // Content-Length 17 is one byte longer than the body: still incomplete.
        assert_eq!(b, None);
        let mut fixed = rest.to_vec();
        fixed.push(b'\n');
        let b = parse_response(&fixed).unwrap().unwrap();
        assert_eq!(b.status, 503);
        assert!(b.close);
        assert!(matches!(
            outcome(503, b"", &cfg(Ack::Kafka, true)),
            Outcome::Backpressure
        ));
    }

    #[test]
    fn classifies_statuses() {
        assert!(matches!(
            outcome(202, b"", &cfg(Ack::Enqueue, true)),
            Outcome::Ok { acked: false }
        ));
        assert!(matches!(
            outcome(201, b"", &cfg(Ack::Kafka, true)),
            Outcome::Ok { acked: false }
        ));
        match outcome(413, b"", &cfg(Ack::Kafka, false)) {
            Outcome::Error(k) => assert_eq!(k.to_string(), "http 413"),
            o => panic!("{o:?}"),
        }
        match outcome(200, b"not json", &cfg(Ack::Kafka, false)) {
            Outcome::Error(k) => assert_eq!(k.phase, Phase::Protocol),
            o => panic!("{o:?}"),
        }
        assert!(parse_response(b"garbage\r\n\r\n").is_err());
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"),
            Err("unsupported-transfer-encoding")
        );
    }

    #[test]
    fn reads_chunked_responses_in_any_cut() {
        let one = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"par\r\n16;ext=1\r\ntition\":3,\"offset\":77}\r\n0\r\nx-trailer: 1\r\n\r\n";
        let mut two = one.to_vec();
        two.extend_from_slice(b"HTTP/1.1 204 No Content\r\n\r\n");
        let r = parse_response(&two).unwrap().unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(
            r.len,
            one.len(),
            "the trailer and final CRLF belong to the first"
        );
        assert_eq!(r.body_of(&two), br#"{"partition":3,"offset":77}"#);
        assert!(matches!(
            outcome(200, r.body_of(&two), &cfg(Ack::Kafka, true)),
            Outcome::Ok { acked: true }
        ));
        let next = parse_response(&two[r.len..]).unwrap().unwrap();
        assert_eq!(next.status, 204);
        for cut in 0..one.len() {
            assert_eq!(parse_response(&one[..cut]).unwrap(), None, "cut {cut}");
        }
        // Broken framing is an error, not a hang.
        for bad in [
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n",
        ] {
            assert!(
                parse_response(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn rest_answers_need_one_offset_per_record_and_no_record_error() {
        let mut c = cfg(Ack::Kafka, true);
        c.format = Format::RestV2Json;
        c.batch = 2;
        let ok = br#"{"offsets":[{"partition":0,"offset":1,"error_code":null,"error":null},{"partition":1,"offset":9,"error_code":null,"error":null}],"key_schema_id":null,"value_schema_id":null}"#;
        assert!(matches!(outcome(200, ok, &c), Outcome::Ok { acked: true }));
        let one = br#"{"offsets":[{"partition":0,"offset":1}]}"#;
        match outcome(200, one, &c) {
            Outcome::Error(k) => assert_eq!(k.kind, "bad-offsets-count"),
            o => panic!("{o:?}"),
        }
        let failed = br#"{"offsets":[{"partition":0,"offset":1},{"partition":null,"offset":null,"error_code":50003,"error":"queue_full"}]}"#;
        match outcome(200, failed, &c) {
            Outcome::Error(k) => assert_eq!(k.kind, "record-error"),
            o => panic!("{o:?}"),
        }
        let nulls =
            br#"{"offsets":[{"partition":null,"offset":null},{"partition":null,"offset":null}]}"#;
        assert!(matches!(
            outcome(200, nulls, &c),
            Outcome::Ok { acked: false }
        ));
    }
}
