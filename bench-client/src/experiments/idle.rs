//! Memory per connection: open N connections to a fresh gateway, use each once (one
//! HTTP request, or one WebSocket message), leave them idle, and read the gateway's
//! VmRSS before and after. Blocking sockets on one thread: this measures the gateway's
//! footprint, not anybody's speed.
//!
//! Entry point: [`hold_idle`]. Depends on the engine and the lab only; `compare` uses it.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tungstenite::Message;

use crate::engine::analysis::errors::errno_name;
use crate::lab::{proc_status_kib, read_http_status};

/// What an idle-connections run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdleResult {
    pub ws: bool,
    pub requested: usize,
    /// Connections established (WebSocket: upgraded).
    pub open: usize,
    /// Connections whose one request / message was acknowledged.
    pub answered: usize,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    /// (after - before) / open, in bytes.
    pub bytes_per_conn: f64,
    /// Seconds to open and use all of them.
    pub setup_s: f64,
    /// Failures by `phase kind` (e.g. `connect EMFILE`).
    pub errors: BTreeMap<String, u64>,
}

/// Raise this process's open-file limit to its hard limit; returns the new soft limit.
pub fn raise_nofile() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024)
}

/// The default N: up to `cap`, leaving headroom under the client's fd limit (the
/// gateway raises its own limit to the same hard limit at start).
pub fn default_idle_conns(nofile: u64, cap: usize) -> usize {
    (nofile.saturating_sub(256) as usize).clamp(16, cap)
}

enum Conn {
    Http(TcpStream),
    Ws(Box<tungstenite::WebSocket<TcpStream>>),
}

/// Hold `n` idle connections on the gateway `pid` listening on `addr`.
pub fn hold_idle(
    addr: SocketAddr,
    pid: u32,
    n: usize,
    ws: bool,
    topic: &str,
    payload: &[u8],
) -> anyhow::Result<IdleResult> {
    let rss_before_kib = proc_status_kib(pid, "VmRSS")
        .ok_or_else(|| anyhow::anyhow!("cannot read VmRSS of gateway pid {pid}"))?;
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut err = |k: String| *errors.entry(k).or_default() += 1;
    let t0 = Instant::now();
    let timeout = Duration::from_secs(10);
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let s = match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => s,
            Err(e) => {
                err(format!("connect {}", errno_name(&e)));
                continue;
            }
        };
        let _ = s.set_nodelay(true);
        let _ = s.set_read_timeout(Some(timeout));
        let _ = s.set_write_timeout(Some(timeout));
        if ws {
            let url = format!("ws://{addr}/ws/{topic}");
            match tungstenite::client::client(url.as_str(), s) {
                Ok((w, _)) => conns.push(Conn::Ws(Box::new(w))),
                Err(e) => err(format!("handshake {}", short(&e.to_string()))),
            }
        } else {
            conns.push(Conn::Http(s));
        }
    }
    let open = conns.len();
    // Every request first, then every answer: the Kafka round trips overlap.
    let request = {
        let mut r = format!(
            "POST /topics/{topic} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n",
            payload.len()
        )
        .into_bytes();
        r.extend_from_slice(payload);
        r
    };
    let mut sent = vec![false; conns.len()];
    for (i, c) in conns.iter_mut().enumerate() {
        let r = match c {
            Conn::Http(s) => s.write_all(&request).map_err(|e| errno_name(&e)),
            Conn::Ws(w) => w
                .send(Message::Binary(payload.to_vec().into()))
                .map_err(|e| short(&e.to_string())),
        };
        match r {
            Ok(()) => sent[i] = true,
            Err(k) => err(format!("write {k}")),
        }
    }
    let mut answered = 0;
    for (i, c) in conns.iter_mut().enumerate() {
        if !sent[i] {
            continue;
        }
        let r = match c {
            Conn::Http(s) => read_http_status(s),
            Conn::Ws(w) => read_ws_ack(w),
        };
        match r {
            Ok(()) => answered += 1,
            Err(k) => err(format!("read {k}")),
        }
    }
    let setup_s = t0.elapsed().as_secs_f64();
    // Let the gateway's threads finish whatever the last answers started.
    std::thread::sleep(Duration::from_millis(200));
    let rss_after_kib = proc_status_kib(pid, "VmRSS")
        .ok_or_else(|| anyhow::anyhow!("cannot read VmRSS of gateway pid {pid}"))?;
    drop(conns);
    if open == 0 {
        anyhow::bail!("no connection could be opened: {errors:?}");
    }
    Ok(IdleResult {
        ws,
        requested: n,
        open,
        answered,
        rss_before_kib,
        rss_after_kib,
        bytes_per_conn: (rss_after_kib as f64 - rss_before_kib as f64) * 1024.0 / open as f64,
        setup_s,
        errors,
    })
}

fn short(s: &str) -> String {
    s.chars().take(60).collect()
}

/// Read frames until the `{"ack":1}` (or a nack) arrives.
fn read_ws_ack(w: &mut tungstenite::WebSocket<TcpStream>) -> Result<(), String> {
    loop {
        match w.read() {
            Ok(Message::Text(t)) => {
                let t = t.as_str();
                if t.contains("\"nack\"") {
                    return Err("nack".into());
                }
                if t.contains("\"ack\"") {
                    return Ok(());
                }
            }
            Ok(Message::Close(_)) => return Err("closed".into()),
            Ok(_) => {}
            Err(e) => return Err(short(&e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_n_respects_the_fd_limit() {
        assert_eq!(default_idle_conns(20_000, 5000), 5000);
        assert_eq!(default_idle_conns(1024, 5000), 768);
        assert_eq!(default_idle_conns(100, 5000), 16);
    }
}
