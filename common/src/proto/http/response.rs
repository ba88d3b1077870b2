//! HTTP/1.1 response encoding: every answer the gateway writes, raw or REST, goes through
//! `write_response`; errors through `write_error` (one shape, one header rule).

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

/// Encodes one response. `extra` headers are written verbatim.
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
