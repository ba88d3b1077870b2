//! HTTP/1.1 request decoding (httparse for the head, our own body framing for
//! Content-Length and chunked), routing per the wire contract, and response encoding.
//!
//! The decoder is incremental: `Decoder::decode` takes whatever bytes have arrived and
//! either returns a complete request, asks for more (`Ok(None)`), or fails with an
//! `HttpError` that maps to exactly one status code in one place (`HttpError::status`).
//! Memory is bounded by `Limits`: a head is never buffered past `max_head`, a body never
//! past `max_body`.

use percent_encoding::percent_decode;

use crate::config::{AckMode, Limits};

/// Everything that can go wrong with a request, mapped to one status in `status()`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    #[error("not found")]
    NotFound,
    #[error("method not allowed (allowed: {0})")]
    MethodNotAllowed(&'static str),
    #[error("request not complete within the timeout")]
    Timeout,
    #[error("neither Content-Length nor chunked")]
    LengthRequired,
    #[error("body over the limit")]
    PayloadTooLarge,
    #[error("request head over the limit")]
    HeadersTooLarge,
}

impl HttpError {
    pub fn status(&self) -> u16 {
        match self {
            HttpError::BadRequest(_) => 400,
            HttpError::NotFound => 404,
            HttpError::MethodNotAllowed(_) => 405,
            HttpError::Timeout => 408,
            HttpError::LengthRequired => 411,
            HttpError::PayloadTooLarge => 413,
            HttpError::HeadersTooLarge => 431,
        }
    }

    /// The machine-readable code in the `{"error":"<code>"}` body.
    pub fn code(&self) -> &'static str {
        match self {
            HttpError::BadRequest(code) => code,
            HttpError::NotFound => "not_found",
            HttpError::MethodNotAllowed(_) => "method_not_allowed",
            HttpError::Timeout => "request_timeout",
            HttpError::LengthRequired => "length_required",
            HttpError::PayloadTooLarge => "payload_too_large",
            HttpError::HeadersTooLarge => "headers_too_large",
        }
    }
}

/// What the request asks for; decided once the head is parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `POST /topics/{topic}` (one record) or `POST /topics/{topic}/batch` (one per line).
    Publish {
        topic: String,
        batch: bool,
    },
    /// `GET /ws/{topic}` with a valid WebSocket upgrade; `accept` is Sec-WebSocket-Accept.
    WebSocket {
        topic: String,
        accept: String,
    },
    Healthz,
    Readyz,
    Metrics,
}

/// The query parameters the contract knows; others are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub key: Option<Vec<u8>>,
    pub partition: Option<i32>,
    pub ack: Option<AckMode>,
}

/// A complete request. `route` is an error (404/405/400) for a request that was well
/// framed but asks for something we do not serve: its body was consumed, so the
/// connection can go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub route: Result<Route, HttpError>,
    /// The `route` label of this request's metrics, known even when `route` is an error.
    pub route_label: &'static str,
    pub query: Query,
    /// `kafka-header-<name>` request headers, as (`<name>`, value).
    pub headers: Vec<(String, Vec<u8>)>,
    pub keep_alive: bool,
    /// How the body is to be read, from `Content-Type` (raw contract or REST Proxy v2).
    pub dialect: crate::rest::Dialect,
    /// An HTTP/1.0 request: persistence must be announced (`connection: keep-alive`).
    pub http10: bool,
    /// The body, unless `body_at` says where it is instead.
    pub body: Vec<u8>,
    /// With `Decoder::borrow_bodies`: a Content-Length body that was whole in the input
    /// given to the `decode` call that returned the request is not copied; this is its
    /// range in that input (and `body` is empty).
    pub body_at: Option<std::ops::Range<usize>>,
}

#[derive(Debug)]
enum State {
    Head,
    /// Boxed: a connection between requests (`Head`) keeps no room for a request inline.
    Body {
        req: Box<Request>,
        framing: Framing,
    },
}

#[derive(Debug, Clone, Copy)]
enum Framing {
    Length(usize),
    ChunkSize,
    ChunkData(usize),
    ChunkDataEnd,
    Trailers(usize),
}

/// Longest chunk-size line (size, extensions) we accept.
const MAX_CHUNK_LINE: usize = 1024;

/// Incremental request decoder for one connection.
#[derive(Debug)]
pub struct Decoder {
    limits: DecodeLimits,
    state: State,
    /// How far the input has been searched for the end of the head (avoids rescanning a
    /// slowly arriving head: linear, not quadratic, in its length).
    scanned: usize,
    expect_continue: bool,
    borrow_bodies: bool,
}

/// The limits the decoder applies, kept in 16 bytes rather than a copy of `Limits` (48): a
/// decoder is part of every connection, idle ones included.
#[derive(Debug, Clone, Copy)]
struct DecodeLimits {
    max_head: usize,
    max_headers: u32,
    /// `Limits::max_body`, saturated at u32::MAX (4 GiB: past any configurable body limit).
    max_body: u32,
}

impl Decoder {
    pub fn new(limits: Limits) -> Decoder {
        Decoder {
            limits: DecodeLimits {
                max_head: limits.max_head,
                max_headers: u32::try_from(limits.max_headers).unwrap_or(u32::MAX),
                max_body: u32::try_from(limits.max_body).unwrap_or(u32::MAX),
            },
            state: State::Head,
            scanned: 0,
            expect_continue: false,
            borrow_bodies: false,
        }
    }

    /// Bodies that arrive whole are left in the input (`Request::body_at`), not copied.
    pub fn borrow_bodies(mut self) -> Decoder {
        self.borrow_bodies = true;
        self
    }

    /// True while a request has been started but not finished (a body is being read).
    pub fn in_body(&self) -> bool {
        matches!(self.state, State::Body { .. })
    }

    /// Heap bytes held for a request being received (a body copied in chunks); 0 between
    /// requests.
    pub fn held_bytes(&self) -> usize {
        match &self.state {
            State::Head => 0,
            State::Body { req, .. } => req.body.capacity(),
        }
    }

    /// True once, right after a head with `Expect: 100-continue` was accepted.
    pub fn take_expect_continue(&mut self) -> bool {
        std::mem::take(&mut self.expect_continue)
    }

    /// Decodes from `input`. Returns the bytes consumed and, if one completed, a request.
    /// Call again with the rest of the input while it returns a request.
    pub fn decode(&mut self, input: &[u8]) -> Result<(usize, Option<Request>), HttpError> {
        let mut consumed = 0;
        if let State::Head = self.state {
            match self.decode_head(input)? {
                None => return Ok((0, None)),
                Some((n, req, framing)) => {
                    consumed = n;
                    self.state = State::Body {
                        req: Box::new(req),
                        framing,
                    };
                }
            }
        }
        let n = self.decode_body(input, consumed)?;
        consumed += n;
        let done = matches!(
            self.state,
            State::Body {
                framing: Framing::Length(0),
                ..
            }
        );
        if done {
            let State::Body { req, .. } = std::mem::replace(&mut self.state, State::Head) else {
                unreachable!("checked above")
            };
            self.scanned = 0;
            // The body is complete: a pending 100-continue is moot.
            self.expect_continue = false;
            return Ok((consumed, Some(*req)));
        }
        Ok((consumed, None))
    }

    fn decode_head(
        &mut self,
        input: &[u8],
    ) -> Result<Option<(usize, Request, Framing)>, HttpError> {
        // Find the blank line that ends the head before asking httparse, so a head that
        // arrives a byte at a time is scanned once.
        let from = self.scanned.saturating_sub(3);
        let end = find_head_end(&input[from..]).map(|i| from + i);
        self.scanned = input.len();
        let Some(end) = end else {
            if input.len() > self.limits.max_head {
                return Err(HttpError::HeadersTooLarge);
            }
            return Ok(None);
        };
        if end > self.limits.max_head {
            return Err(HttpError::HeadersTooLarge);
        }
        // The usual limit fits on the stack: no allocation per request.
        let mut stack = [httparse::EMPTY_HEADER; STACK_HEADERS];
        let mut heap = Vec::new();
        let max_headers = self.limits.max_headers as usize;
        let slots: &mut [httparse::Header] = if max_headers <= STACK_HEADERS {
            &mut stack[..max_headers]
        } else {
            heap.resize(max_headers, httparse::EMPTY_HEADER);
            &mut heap
        };
        let mut parsed = httparse::Request::new(slots);
        let head_len = match parsed.parse(&input[..end]) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                return Err(HttpError::BadRequest("malformed_request"))
            }
            Err(httparse::Error::TooManyHeaders) => return Err(HttpError::HeadersTooLarge),
            Err(_) => return Err(HttpError::BadRequest("malformed_request")),
        };
        let method = parsed.method.unwrap_or("");
        let path = parsed.path.unwrap_or("");
        let version = parsed.version.unwrap_or(1);

        let mut content_length: Option<usize> = None;
        let mut chunked = false;
        let mut conn_close = false;
        let mut conn_keep_alive = false;
        let mut conn_upgrade = false;
        let mut upgrade_ws = false;
        let mut ws_key: Option<&[u8]> = None;
        let mut ws_version_ok = false;
        let mut kafka_headers = Vec::new();
        let mut dialect = crate::rest::Dialect::Raw;
        for h in parsed.headers.iter() {
            let name = h.name;
            if name.eq_ignore_ascii_case("content-length") {
                let v = parse_content_length(h.value)?;
                if content_length.is_some_and(|prev| prev != v) {
                    return Err(HttpError::BadRequest("invalid_content_length"));
                }
                content_length = Some(v);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                if chunked || !trim(h.value).eq_ignore_ascii_case(b"chunked") {
                    return Err(HttpError::BadRequest("unsupported_transfer_encoding"));
                }
                chunked = true;
            } else if name.eq_ignore_ascii_case("content-type") {
                dialect = crate::rest::Dialect::from_content_type(h.value);
            } else if name.eq_ignore_ascii_case("connection") {
                for token in h.value.split(|&b| b == b',') {
                    let token = trim(token);
                    conn_close |= token.eq_ignore_ascii_case(b"close");
                    conn_keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
                    conn_upgrade |= token.eq_ignore_ascii_case(b"upgrade");
                }
            } else if name.eq_ignore_ascii_case("upgrade") {
                upgrade_ws = trim(h.value).eq_ignore_ascii_case(b"websocket");
            } else if name.eq_ignore_ascii_case("sec-websocket-key") {
                ws_key = Some(trim(h.value));
            } else if name.eq_ignore_ascii_case("sec-websocket-version") {
                ws_version_ok = trim(h.value) == b"13";
            } else if name.eq_ignore_ascii_case("expect") {
                if trim(h.value).eq_ignore_ascii_case(b"100-continue") {
                    self.expect_continue = true;
                }
            } else if name.len() > KAFKA_HEADER_PREFIX.len()
                && name.as_bytes()[..KAFKA_HEADER_PREFIX.len()]
                    .eq_ignore_ascii_case(KAFKA_HEADER_PREFIX.as_bytes())
            {
                kafka_headers.push((
                    name[KAFKA_HEADER_PREFIX.len()..].to_string(),
                    h.value.to_vec(),
                ));
            }
        }
        if chunked && content_length.is_some() {
            // Both framings at once is how requests get smuggled: refuse.
            return Err(HttpError::BadRequest("conflicting_length"));
        }
        let framing = if chunked {
            Framing::ChunkSize
        } else {
            match content_length {
                Some(n) if n > self.limits.max_body as usize => {
                    return Err(HttpError::PayloadTooLarge)
                }
                Some(n) => Framing::Length(n),
                None if method == "POST" || method == "PUT" => {
                    return Err(HttpError::LengthRequired)
                }
                None => Framing::Length(0),
            }
        };
        let keep_alive = if version == 0 {
            conn_keep_alive && !conn_close
        } else {
            !conn_close
        };
        let (path, query_str) = match path.split_once('?') {
            Some((p, q)) => (p, q),
            None => (path, ""),
        };
        let query = parse_query(query_str);
        let route = match &query {
            Err(e) => Err(e.clone()),
            Ok(_) => route(method, path).and_then(|r| match r {
                RouteKind::WebSocket(topic) => {
                    let key = match ws_key {
                        Some(k) if upgrade_ws && conn_upgrade && ws_version_ok => k,
                        _ => return Err(HttpError::BadRequest("websocket_upgrade_required")),
                    };
                    Ok(Route::WebSocket {
                        topic,
                        accept: tungstenite::handshake::derive_accept_key(key),
                    })
                }
                RouteKind::Plain(r) => Ok(r),
            }),
        };
        // Expect only matters when there is a body the client holds back.
        if matches!(framing, Framing::Length(0)) {
            self.expect_continue = false;
        }
        let req = Request {
            route,
            route_label: route_label(path),
            query: query.unwrap_or_default(),
            headers: kafka_headers,
            keep_alive,
            dialect,
            http10: version == 0,
            body: Vec::new(),
            body_at: None,
        };
        Ok(Some((head_len, req, framing)))
    }

    /// Decodes body bytes from `input[base..]`; returns how many it consumed.
    fn decode_body(&mut self, input: &[u8], base: usize) -> Result<usize, HttpError> {
        let borrow = self.borrow_bodies;
        let input = &input[base..];
        let max_body = self.limits.max_body as usize;
        let max_head = self.limits.max_head;
        let State::Body { req, framing } = &mut self.state else {
            return Ok(0);
        };
        let mut pos = 0;
        loop {
            let rest = &input[pos..];
            match *framing {
                Framing::Length(0) => return Ok(pos),
                Framing::Length(n) | Framing::ChunkData(n) => {
                    let take = n.min(rest.len());
                    if take == 0 {
                        return Ok(pos);
                    }
                    if borrow
                        && take == n
                        && req.body.is_empty()
                        && matches!(*framing, Framing::Length(_))
                    {
                        // All of it is here: the caller reads it from its own buffer.
                        req.body_at = Some(base + pos..base + pos + take);
                    } else {
                        req.body.extend_from_slice(&rest[..take]);
                    }
                    pos += take;
                    *framing = match *framing {
                        Framing::Length(_) => Framing::Length(n - take),
                        _ if take == n => Framing::ChunkDataEnd,
                        _ => Framing::ChunkData(n - take),
                    };
                }
                Framing::ChunkSize => {
                    let Some(nl) = rest.iter().take(MAX_CHUNK_LINE).position(|&b| b == b'\n')
                    else {
                        if rest.len() >= MAX_CHUNK_LINE {
                            return Err(HttpError::BadRequest("invalid_chunk_size"));
                        }
                        return Ok(pos);
                    };
                    let size = match httparse::parse_chunk_size(&rest[..=nl]) {
                        Ok(httparse::Status::Complete((_, size))) => size,
                        _ => return Err(HttpError::BadRequest("invalid_chunk_size")),
                    };
                    pos += nl + 1;
                    if size == 0 {
                        *framing = Framing::Trailers(0);
                    } else {
                        let size = usize::try_from(size).unwrap_or(usize::MAX);
                        if size > max_body.saturating_sub(req.body.len()) {
                            return Err(HttpError::PayloadTooLarge);
                        }
                        req.body.reserve(size);
                        *framing = Framing::ChunkData(size);
                    }
                }
                Framing::ChunkDataEnd => {
                    if rest.len() < 2 {
                        if rest.first().is_some_and(|&b| b != b'\r') {
                            return Err(HttpError::BadRequest("invalid_chunk"));
                        }
                        return Ok(pos);
                    }
                    if &rest[..2] != b"\r\n" {
                        return Err(HttpError::BadRequest("invalid_chunk"));
                    }
                    pos += 2;
                    *framing = Framing::ChunkSize;
                }
                Framing::Trailers(seen) => {
                    let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                        if seen + rest.len() > max_head {
                            return Err(HttpError::HeadersTooLarge);
                        }
                        return Ok(pos);
                    };
                    pos += nl + 1;
                    let line = &rest[..nl];
                    if line.is_empty() || line == b"\r" {
                        *framing = Framing::Length(0);
                    } else if seen + nl + 1 > max_head {
                        return Err(HttpError::HeadersTooLarge);
                    } else {
                        *framing = Framing::Trailers(seen + nl + 1);
                    }
                }
            }
        }
    }
}

const KAFKA_HEADER_PREFIX: &str = "kafka-header-";

fn find_head_end(buf: &[u8]) -> Option<usize> {
    // Returns the index just past "\r\n\r\n" (or the lenient "\n\n").
    let mut i = 0;
    while let Some(off) = buf[i..].iter().position(|&b| b == b'\n') {
        let nl = i + off;
        if buf.get(nl + 1) == Some(&b'\n') {
            return Some(nl + 2);
        }
        if buf.get(nl + 1) == Some(&b'\r') && buf.get(nl + 2) == Some(&b'\n') {
            return Some(nl + 3);
        }
        i = nl + 1;
    }
    None
}

fn trim(v: &[u8]) -> &[u8] {
    v.trim_ascii()
}

fn parse_content_length(v: &[u8]) -> Result<usize, HttpError> {
    let v = trim(v);
    if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
        return Err(HttpError::BadRequest("invalid_content_length"));
    }
    Ok(v.iter()
        .fold(0usize, |acc, &d| acc * 10 + usize::from(d - b'0')))
}

enum RouteKind {
    Plain(Route),
    WebSocket(String),
}

fn route(method: &str, path: &str) -> Result<RouteKind, HttpError> {
    let get = |r: Route| {
        if method == "GET" {
            Ok(RouteKind::Plain(r))
        } else {
            Err(HttpError::MethodNotAllowed("GET"))
        }
    };
    match path {
        "/healthz" => return get(Route::Healthz),
        "/readyz" => return get(Route::Readyz),
        "/metrics" => return get(Route::Metrics),
        _ => {}
    }
    if let Some(rest) = path.strip_prefix("/topics/") {
        let (topic, batch) = match rest.strip_suffix("/batch") {
            Some(t) => (t, true),
            None => (rest, false),
        };
        if topic.contains('/') {
            return Err(HttpError::NotFound);
        }
        let topic = parse_topic(topic)?;
        if method != "POST" {
            return Err(HttpError::MethodNotAllowed("POST"));
        }
        return Ok(RouteKind::Plain(Route::Publish { topic, batch }));
    }
    if let Some(topic) = path.strip_prefix("/ws/") {
        if topic.contains('/') {
            return Err(HttpError::NotFound);
        }
        let topic = parse_topic(topic)?;
        if method != "GET" {
            return Err(HttpError::MethodNotAllowed("GET"));
        }
        return Ok(RouteKind::WebSocket(topic));
    }
    Err(HttpError::NotFound)
}

/// The `route` label of a request path in /metrics: one of a fixed, small set.
pub fn route_label(path: &str) -> &'static str {
    match path {
        "/healthz" => "healthz",
        "/readyz" => "readyz",
        "/metrics" => "metrics",
        p if p.starts_with("/topics/") && p.ends_with("/batch") => "publish_batch",
        p if p.starts_with("/topics/") => "publish",
        p if p.starts_with("/ws/") => "ws",
        _ => "other",
    }
}

/// Percent-decodes strictly: every `%` must start a `%XX` escape of two hex digits, else
/// `400 invalid_percent_encoding` (lenient decoders pass `%zz` through as text, which would
/// become a key or a topic nobody sent).
pub fn percent_decode_strict(raw: &str) -> Result<Vec<u8>, HttpError> {
    let b = raw.as_bytes();
    let mut i = 0;
    while let Some(off) = b[i..].iter().position(|&c| c == b'%') {
        let at = i + off;
        let hex = |j: usize| b.get(j).is_some_and(u8::is_ascii_hexdigit);
        if !(hex(at + 1) && hex(at + 2)) {
            return Err(HttpError::BadRequest("invalid_percent_encoding"));
        }
        i = at + 3;
    }
    Ok(percent_decode(b).collect())
}

/// Kafka topic names: 1..=249 of `[A-Za-z0-9._-]`; percent-encoded names must decode to
/// UTF-8 (else `invalid_topic`) through valid escapes (else `invalid_percent_encoding`).
fn parse_topic(raw: &str) -> Result<String, HttpError> {
    let bytes = percent_decode_strict(raw)?;
    let topic = String::from_utf8(bytes).map_err(|_| HttpError::BadRequest("invalid_topic"))?;
    let valid = !topic.is_empty()
        && topic.len() <= 249
        && topic != "."
        && topic != ".."
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if !valid {
        return Err(HttpError::BadRequest("invalid_topic"));
    }
    Ok(topic)
}

fn parse_query(q: &str) -> Result<Query, HttpError> {
    let mut query = Query::default();
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        // Unknown parameters are ignored, but not when malformed: strict for every pair.
        let k = percent_decode_strict(k)?;
        let value = percent_decode_strict(v)?;
        match k.as_slice() {
            b"key" => query.key = Some(value),
            b"partition" => {
                let p = std::str::from_utf8(&value)
                    .ok()
                    .and_then(|s| s.parse::<i32>().ok())
                    .filter(|p| *p >= 0)
                    .ok_or(HttpError::BadRequest("invalid_partition"))?;
                query.partition = Some(p);
            }
            b"ack" => {
                query.ack =
                    Some(AckMode::parse(&value).ok_or(HttpError::BadRequest("invalid_ack"))?);
            }
            _ => {}
        }
    }
    Ok(query)
}

/// Reason phrase for the statuses this gateway sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// Encodes one response. `extra` headers are written verbatim.
/// A JSON object of integer fields (`{"partition":0,"offset":42}`), written into `buf`
/// without formatting machinery or allocation; the names are the caller's literals. What
/// does not fit in `buf` is cut (names and numbers are short: 128 bytes hold six fields).
pub fn int_object<'a>(buf: &'a mut [u8; 128], fields: &[(&str, i64)]) -> &'a [u8] {
    use std::io::Write;
    let mut w = std::io::Cursor::new(&mut buf[..]);
    let mut num = itoa::Buffer::new();
    let _ = w.write_all(b"{");
    for (i, (k, v)) in fields.iter().enumerate() {
        let sep: &[u8] = if i > 0 { b",\"" } else { b"\"" };
        let _ = w.write_all(sep);
        let _ = w.write_all(k.as_bytes());
        let _ = w.write_all(b"\":");
        let _ = w.write_all(num.format(*v).as_bytes());
    }
    let _ = w.write_all(b"}");
    let n = w.position() as usize;
    &buf[..n]
}

/// Header lines a request head may have without the parser's slots going to the heap.
const STACK_HEADERS: usize = 64;

pub fn write_response(
    out: &mut Vec<u8>,
    status: u16,
    content_type: &str,
    body: &[u8],
    keep_alive: bool,
    extra: &[(&str, &str)],
) {
    let reason = reason(status);
    let extra_len: usize = extra.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
    out.reserve(64 + reason.len() + content_type.len() + extra_len + 19 + body.len());
    let mut num = itoa::Buffer::new();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(num.format(status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\ncontent-type: ");
    out.extend_from_slice(content_type.as_bytes());
    out.extend_from_slice(b"\r\ncontent-length: ");
    out.extend_from_slice(num.format(body.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for (k, v) in extra {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// Adds `header` (a whole `name: value` line without its CRLF) to a response encoded by
/// this module, just before the blank line that ends its head.
pub fn add_header(response: &mut Vec<u8>, header: &[u8]) {
    if let Some(p) = response.windows(4).position(|w| w == b"\r\n\r\n") {
        let at = p + 2;
        response.splice(at..at, header.iter().copied().chain(*b"\r\n"));
    }
}

/// The headers an error answer with `status` carries: `Retry-After: 1` on every 503
/// (backpressure, Kafka unavailable), whatever the dialect.
pub fn error_headers(status: u16) -> &'static [(&'static str, &'static str)] {
    if status == 503 {
        &[("retry-after", "1")]
    } else {
        &[]
    }
}

/// Encodes `{"error":"<code>"}` with `status` (and the headers every such status carries,
/// see [`error_headers`]): the one encoder of the raw dialect's error answers.
pub fn write_error(out: &mut Vec<u8>, status: u16, code: &str, keep_alive: bool) {
    write_error_with(out, status, code, keep_alive, &[]);
}

/// [`write_error`] with headers of its own, e.g. `allow` on a 405.
pub fn write_error_with(
    out: &mut Vec<u8>,
    status: u16,
    code: &str,
    keep_alive: bool,
    extra: &[(&str, &str)],
) {
    let body = format!("{{\"error\":\"{code}\"}}");
    let mut headers = error_headers(status).to_vec();
    headers.extend_from_slice(extra);
    write_response(
        out,
        status,
        "application/json",
        body.as_bytes(),
        keep_alive,
        &headers,
    );
}

/// The 101 answer to an accepted WebSocket upgrade.
pub fn write_switching_protocols(out: &mut Vec<u8>, accept: &str) {
    use std::io::Write;
    let _ = write!(
        out,
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: {accept}\r\n\r\n"
    );
}

#[cfg(test)]
mod tests {
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
            (b"POST /topics/a HTTP/1.1\r\ncontent-length: 65\r\n\r\n", 413),
            (b"POST /topics/a HTTP/1.1\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n", 400),
            (b"POST /topics/a HTTP/1.1\r\ncontent-length: -1\r\n\r\n", 400),
            (b"POST /topics/a HTTP/1.1\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n", 400),
            (b"POST /topics/a HTTP/1.1\r\ntransfer-encoding: gzip\r\n\r\n", 400),
            (b"POST /topics/a HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n", 400),
            (b"POST /topics/a HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n41\r\n", 413),
            (b"POST /topics/a HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n1\r\naXX", 400),
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
}
