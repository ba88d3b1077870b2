//! HTTP/1.1 request decoding: httparse for the head, our own body framing for
//! Content-Length and chunked.
//!
//! The decoder is incremental: `Decoder::decode` takes whatever bytes have arrived and
//! either returns a complete request, asks for more (`Ok(None)`), or fails with an
//! `HttpError` that maps to exactly one status code in one place (`HttpError::status`).
//! Memory is bounded by `Limits`: a head is never buffered past `max_head`, a body never
//! past `max_body`.

use super::request::{parse_query, route, route_label, HttpError, Request, Route, RouteKind};
use crate::policy::config::Limits;
use crate::proto::dialect::Dialect;

/// Header lines a request head may have without the parser's slots going to the heap.
const STACK_HEADERS: usize = 64;

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
        let mut dialect = Dialect::Raw;
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
                dialect = Dialect::from_content_type(h.value);
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
