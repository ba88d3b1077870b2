//! Plain-HTTP probes of a gateway over blocking `std::net` sockets: `GET` on a fresh
//! connection ([`http_get`], used for `/readyz` and `/metrics`), the Prometheus text
//! format ([`parse_metrics`]), a response status read off a kept-alive connection
//! ([`read_http_status`]) and priming a producer ([`prime`]).
//!
//! Each has an `_over` form that speaks TLS to a gateway serving it ([`super::tls_probe`]).
//!
//! Depends only on the engine's error naming ([`crate::engine::analysis::errors`]) and
//! the lab's TLS probe client.

use std::collections::BTreeMap;
use std::io::{Read, Write as _};
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::bail;

use super::tls_probe::{connect, ProbeTls};
use crate::engine::analysis::errors::errno_name;

/// Prometheus text format: every sample line as `name{labels}` -> value.
pub fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.trim().rsplit_once(' ')?;
            Some((k.trim().to_string(), v.parse().ok()?))
        })
        .collect()
}

/// A blocking `GET` on a fresh connection (Connection: close): status and body.
pub fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> anyhow::Result<(u16, Vec<u8>)> {
    http_get_over(addr, None, path, timeout)
}

/// [`http_get`], over TLS when `tls` is given.
pub fn http_get_over(
    addr: SocketAddr,
    tls: Option<&ProbeTls>,
    path: &str,
    timeout: Duration,
) -> anyhow::Result<(u16, Vec<u8>)> {
    let mut s = connect(addr, tls, timeout)?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    loop {
        let n = s.read(&mut chunk)?;
        let eof = n == 0;
        buf.extend_from_slice(&chunk[..n]);
        let mut hs = [httparse::EMPTY_HEADER; 32];
        let mut r = httparse::Response::new(&mut hs);
        if let httparse::Status::Complete(head) = r.parse(&buf)? {
            let len = r
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| {
                    std::str::from_utf8(h.value)
                        .ok()?
                        .trim()
                        .parse::<usize>()
                        .ok()
                });
            let code = r.code.unwrap_or(0);
            match len {
                Some(len) if buf.len() >= head + len => {
                    return Ok((code, buf[head..head + len].to_vec()))
                }
                // No length: the body ends with the connection.
                None if eof => return Ok((code, buf[head..].to_vec())),
                _ => {}
            }
        }
        if eof {
            bail!("connection closed before the response to GET {path} was complete");
        }
    }
}

/// Produce `n` records (distinct keys, so every partition is touched) one after the
/// other and wait for each answer: the producer has then fetched metadata, got its
/// producer id and connected to every leader, which a fresh process otherwise does
/// during the first ~0.5 s of load.
pub fn prime(addr: SocketAddr, topic: &str, n: usize) -> anyhow::Result<()> {
    prime_over(addr, None, topic, n)
}

/// [`prime`], over TLS when `tls` is given.
pub fn prime_over(
    addr: SocketAddr,
    tls: Option<&ProbeTls>,
    topic: &str,
    n: usize,
) -> anyhow::Result<()> {
    let mut s = connect(addr, tls, Duration::from_secs(10))?;
    for i in 0..n {
        let body = "prime";
        write!(
            s,
            "POST /topics/{topic}?key=prime-{i} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
        read_http_status(&mut s).map_err(|e| anyhow::anyhow!("priming request {i} failed: {e}"))?;
    }
    Ok(())
}

/// Read one HTTP response head (+ body) and require a 2xx.
pub fn read_http_status(s: &mut impl Read) -> Result<(), String> {
    let mut buf = Vec::with_capacity(256);
    let mut tmp = [0u8; 1024];
    loop {
        let n = s.read(&mut tmp).map_err(|e| errno_name(&e))?;
        if n == 0 {
            return Err("EOF".into());
        }
        buf.extend_from_slice(&tmp[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&buf) {
            Ok(httparse::Status::Complete(head)) => {
                let len: usize = resp
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                    .unwrap_or(0);
                let code = resp.code.unwrap_or(0);
                if buf.len() < head + len {
                    continue;
                }
                return if (200..300).contains(&code) {
                    Ok(())
                } else {
                    Err(format!("status-{code}"))
                };
            }
            Ok(httparse::Status::Partial) => continue,
            Err(_) => return Err("bad-response".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics() {
        let m = parse_metrics(
            "# HELP x\ngateway_connections_open 3\ngateway_http_requests_total{code=\"200\"} 17\n",
        );
        assert_eq!(m["gateway_connections_open"], 3.0);
        assert_eq!(m["gateway_http_requests_total{code=\"200\"}"], 17.0);
    }
}
