//! A decoded request and what it asks for: `Request`, its `Route` (URL routing per the wire
//! contract), its `Query`, and `HttpError`, every failure mapped to one status.

use percent_encoding::percent_decode;

use crate::policy::ack::AckMode;
use crate::proto::dialect::Dialect;

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
    pub dialect: Dialect,
    /// An HTTP/1.0 request: persistence must be announced (`connection: keep-alive`).
    pub http10: bool,
    /// The body, unless `body_at` says where it is instead.
    pub body: Vec<u8>,
    /// With `Decoder::borrow_bodies`: a Content-Length body that was whole in the input
    /// given to the `decode` call that returned the request is not copied; this is its
    /// range in that input (and `body` is empty).
    pub body_at: Option<std::ops::Range<usize>>,
}

pub(super) enum RouteKind {
    Plain(Route),
    WebSocket(String),
}

pub(super) fn route(method: &str, path: &str) -> Result<RouteKind, HttpError> {
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

pub(super) fn parse_query(q: &str) -> Result<Query, HttpError> {
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
