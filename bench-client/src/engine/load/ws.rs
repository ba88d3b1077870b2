//! WebSocket traffic (tokio-tungstenite): each connection keeps up to `--window` messages
//! unresolved. The gateway numbers messages 1, 2, 3 … per connection and answers
//! `{"ack":N}` (everything up to N resolved, cumulative) or `{"nack":K,"error":…}`
//! (message K failed: backpressure). Latency runs from a message's send (or intended
//! send) to the ack that covers it. Over TLS (`wss://`) the same code runs on the TLS
//! stream (generic over the stream: the plaintext path has no TLS layer).
//!
//! Entry point: the connection tasks the runner spawns for `ws`. Part of the
//! [engine](crate::engine): must not depend on anything outside it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::sleep_until;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

use crate::engine::analysis::errors::{errno_name, ErrorKey, Phase};
use crate::engine::config::Ack;
use crate::engine::load::conn::{establish, secure, Open, RETRY_BACKOFF};
use crate::engine::load::http::ConnEnd;
use crate::engine::load::recorder::{InFlight, Outcome};
use crate::engine::load::shared::Shared;

/// What a WebSocket connection runs on: a TCP stream, or a TLS stream over one.
trait Stream: AsyncRead + AsyncWrite + Unpin {}
impl<S: AsyncRead + AsyncWrite + Unpin> Stream for S {}

/// A message on its way: its number on the connection and the request it carries.
#[derive(Debug, Clone, Copy)]
struct Msg {
    no: u64,
    req: InFlight,
}

#[derive(Deserialize, Debug, PartialEq)]
struct Reply {
    ack: Option<u64>,
    nack: Option<u64>,
    #[allow(dead_code)]
    error: Option<String>,
}

fn ws_error_kind(e: &tungstenite::Error) -> String {
    match e {
        tungstenite::Error::Io(e) => errno_name(e),
        tungstenite::Error::Http(r) => format!("HTTP {}", r.status().as_u16()),
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => "closed".into(),
        tungstenite::Error::Protocol(_) => "protocol".into(),
        tungstenite::Error::Capacity(_) => "capacity".into(),
        _ => "other".into(),
    }
}

/// The upgrade request of every connection: `/ws/TOPIC?ack=A[&key=K]` with the `-H`
/// headers (validated by `config::parse_header`, so none is dropped in practice).
fn upgrade_request(
    cfg: &crate::engine::config::RunConfig,
) -> tungstenite::handshake::client::Request {
    use tungstenite::client::IntoClientRequest as _;
    use tungstenite::http::{HeaderName, HeaderValue};
    let url = format!(
        "{}://{}/ws/{}?{}",
        if cfg.tls.is_some() { "wss" } else { "ws" },
        cfg.authority,
        cfg.topic,
        crate::engine::load::request::query(cfg)
    );
    let mut req = url
        .into_client_request()
        .unwrap_or_else(|_| tungstenite::handshake::client::Request::default());
    for (n, v) in &cfg.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(n.as_bytes()),
            HeaderValue::from_bytes(v.as_bytes()),
        ) {
            req.headers_mut().append(n, v);
        }
    }
    req
}

/// The client's WebSocket settings. tungstenite zero-fills its read buffer up to
/// `read_buffer_size` on every read (128 KiB by default): at 20,000 small ack frames a
/// second over 10,000 connections that memset was a third of the client's CPU and made the
/// client the bottleneck of compare's ws-many. The gateway's frames are small acks; a
/// larger frame still arrives whole (tungstenite grows the buffer to the frame).
fn ws_config() -> tungstenite::protocol::WebSocketConfig {
    tungstenite::protocol::WebSocketConfig::default().read_buffer_size(WS_READ_BUFFER)
}

/// See [`ws_config`].
const WS_READ_BUFFER: usize = 4096;

pub(crate) async fn ws_task(sh: Arc<Shared>, idx: u64) {
    let mut rng = fastrand::Rng::with_seed(idx.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 3);
    let request = upgrade_request(&sh.cfg);
    loop {
        let stream = establish(&sh).await;
        let open = Open::new(&sh);
        // The upgrade request (or the ClientHello) goes out at once: the connection waits
        // for the server now.
        open.sent();
        let backoff = match &sh.tls {
            None => ws_session(&sh, stream, &request, &open, &mut rng).await,
            Some(tls) => match secure(&sh, tls, stream, &open).await {
                Ok(s) => ws_session(&sh, s, &request, &open, &mut rng).await,
                Err(k) => {
                    sh.rec.on_conn_error(Instant::now(), k);
                    Some(RETRY_BACKOFF)
                }
            },
        };
        drop(open);
        if let Some(pause) = backoff {
            tokio::time::sleep(pause).await;
        }
    }
}

/// The upgrade on a connection, then its traffic until it breaks; the pause before the
/// next connection, if any (after a refused upgrade).
async fn ws_session<S: Stream>(
    sh: &Shared,
    stream: S,
    request: &tungstenite::handshake::client::Request,
    open: &Open<'_>,
    rng: &mut fastrand::Rng,
) -> Option<Duration> {
    let hs = tokio::time::timeout(
        sh.cfg.timeout(),
        tokio_tungstenite::client_async_with_config(request.clone(), stream, Some(ws_config())),
    )
    .await;
    let ws = match hs {
        Ok(Ok((ws, _))) => {
            open.answered();
            ws
        }
        Ok(Err(e)) => {
            sh.rec.on_conn_error(
                Instant::now(),
                ErrorKey::new(Phase::Handshake, ws_error_kind(&e)),
            );
            return Some(Duration::from_millis(50));
        }
        Err(_) => {
            sh.rec
                .on_conn_error(Instant::now(), ErrorKey::new(Phase::Handshake, "ETIMEDOUT"));
            return None;
        }
    };
    ws_conn(sh, ws, rng).await;
    None
}

async fn ws_conn<S: Stream>(sh: &Shared, ws: WebSocketStream<S>, rng: &mut fastrand::Rng) {
    let (mut sink, mut stream) = ws.split();
    let permits = Semaphore::new(sh.cfg.window);
    let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
    let mut pending: VecDeque<Msg> = VecDeque::new();
    let end = tokio::select! {
        e = writer(sh, &mut sink, &permits, &tx, rng) => e,
        e = reader(sh, &mut stream, &permits, &mut rx, &mut pending) => e,
    };
    let mut lost: Vec<u64> = pending.iter().map(|m| m.req.seq).collect();
    while let Ok(m) = rx.try_recv() {
        lost.push(m.req.seq);
    }
    let key = match end {
        ConnEnd::Error(k) => k,
        ConnEnd::Closed => ErrorKey::new(Phase::Read, "closed"),
    };
    sh.rec.on_aborted(Instant::now(), &lost, key);
}

async fn writer<S: Stream>(
    sh: &Shared,
    sink: &mut SplitSink<WebSocketStream<S>, Message>,
    permits: &Semaphore,
    tx: &mpsc::UnboundedSender<Msg>,
    rng: &mut fastrand::Rng,
) -> ConnEnd {
    let mut no = 0u64;
    loop {
        let Ok(p) = permits.acquire().await else {
            return std::future::pending().await;
        };
        p.forget();
        let Some(c) = sh.next_send(Instant::now()).await else {
            return std::future::pending().await;
        };
        let now = Instant::now();
        let mut batch = vec![c];
        if !sh.open_loop() {
            while let Ok(p) = permits.try_acquire() {
                let Some(c) = sh.claim() else { break };
                p.forget();
                batch.push(c);
            }
        }
        for c in &batch {
            no += 1;
            let mut payload = Vec::with_capacity(sh.cfg.payload.max + 32);
            sh.encoder.payload_into(c.seq, rng, &mut payload);
            let _ = tx.send(Msg {
                no,
                req: InFlight {
                    seq: c.seq,
                    intended: c.intended,
                    start: now,
                },
            });
            if let Err(e) = sink.feed(Message::Binary(payload.into())).await {
                sh.rec.on_sent(now, batch.len() as u64);
                return ConnEnd::Error(ErrorKey::new(Phase::Write, ws_error_kind(&e)));
            }
        }
        sh.rec.on_sent(now, batch.len() as u64);
        if let Err(e) = sink.flush().await {
            return ConnEnd::Error(ErrorKey::new(Phase::Write, ws_error_kind(&e)));
        }
    }
}

async fn reader<S: Stream>(
    sh: &Shared,
    stream: &mut SplitStream<WebSocketStream<S>>,
    permits: &Semaphore,
    rx: &mut mpsc::UnboundedReceiver<Msg>,
    pending: &mut VecDeque<Msg>,
) -> ConnEnd {
    let timeout = sh.cfg.timeout();
    let acked = sh.cfg.collect_acks && sh.cfg.ack == Ack::Kafka;
    // Highest message number ever taken from the writer.
    let mut newest = 0u64;
    loop {
        if pending.is_empty() {
            if let Ok(m) = rx.try_recv() {
                pending.push_back(m);
            }
        }
        let deadline = pending.front().map(|m| m.req.start + timeout);
        let far = Instant::now() + Duration::from_secs(86_400);
        tokio::select! {
            m = stream.next() => match m {
                None | Some(Ok(Message::Close(_))) => return ConnEnd::Closed,
                Some(Err(e)) => return ConnEnd::Error(ErrorKey::new(Phase::Read, ws_error_kind(&e))),
                Some(Ok(Message::Text(t))) => {
                    let Ok(r) = serde_json::from_str::<Reply>(t.as_str()) else {
                        return ConnEnd::Error(ErrorKey::new(Phase::Protocol, "bad-ack-frame"));
                    };
                    if let Err(code) = resolve(sh, r, permits, rx, pending, &mut newest, acked) {
                        return ConnEnd::Error(ErrorKey::new(Phase::Protocol, code));
                    }
                }
                Some(Ok(_)) => {}
            },
            m = rx.recv(), if pending.is_empty() => {
                if let Some(m) = m {
                    pending.push_back(m);
                }
            }
            () = sleep_until(deadline.unwrap_or(far).into()), if deadline.is_some() => {
                return ConnEnd::Error(ErrorKey::timeout());
            }
        }
    }
}

/// Apply one ack/nack frame to the unresolved messages.
fn resolve(
    sh: &Shared,
    r: Reply,
    permits: &Semaphore,
    rx: &mut mpsc::UnboundedReceiver<Msg>,
    pending: &mut VecDeque<Msg>,
    newest: &mut u64,
    acked: bool,
) -> Result<(), &'static str> {
    let now = Instant::now();
    let upto = r.ack.or(r.nack).ok_or("ack-frame-without-number")?;
    while pending.back().is_none_or(|m| m.no < upto) {
        match rx.try_recv() {
            Ok(m) => pending.push_back(m),
            Err(_) => break,
        }
    }
    if upto > pending.back().map_or(0, |m| m.no).max(*newest) {
        return Err("ack-beyond-sent");
    }
    *newest = (*newest).max(pending.back().map_or(0, |m| m.no));
    if let Some(k) = r.nack {
        // Nacked messages are resolved now; the cumulative ack covering them skips them.
        if let Some(i) = pending.iter().position(|m| m.no == k) {
            let m = pending.remove(i).expect("index from position");
            sh.on_response(&m.req, now, None, Outcome::Backpressure);
            permits.add_permits(1);
        }
        return Ok(());
    }
    while pending.front().is_some_and(|m| m.no <= upto) {
        let m = pending.pop_front().expect("front exists");
        sh.on_response(&m.req, now, None, Outcome::Ok { acked });
        permits.add_permits(1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// tungstenite zero-fills up to `read_buffer_size` per read: the client keeps it small
    /// (the default 128 KiB made the client the bottleneck at 10,000 WebSockets).
    #[test]
    fn the_client_reads_websocket_frames_into_a_small_buffer() {
        assert!(ws_config().read_buffer_size <= 4096);
    }

    #[test]
    fn upgrade_request_carries_key_and_headers() {
        let mut cfg = crate::engine::config::RunConfig::new("http://127.0.0.1:9/ws/t").unwrap();
        cfg.key = Some("a/b c".into());
        cfg.headers = vec![
            ("kafka-header-trace".into(), "abc".into()),
            ("X-Two".into(), "1".into()),
        ];
        let r = upgrade_request(&cfg);
        assert_eq!(
            r.uri().to_string(),
            "ws://127.0.0.1:9/ws/t?ack=kafka&key=a%2Fb%20c"
        );
        assert_eq!(r.headers()["kafka-header-trace"], "abc");
        assert_eq!(r.headers()["x-two"], "1");
        // What tungstenite needs for the handshake is still there.
        assert!(r.headers().contains_key("sec-websocket-key"));
    }

    #[test]
    fn reply_frames_parse() {
        let a: Reply = serde_json::from_str(r#"{"ack":12}"#).unwrap();
        assert_eq!(a.ack, Some(12));
        let n: Reply = serde_json::from_str(r#"{"nack":3,"error":"queue_full"}"#).unwrap();
        assert_eq!((n.nack, n.error.as_deref()), (Some(3), Some("queue_full")));
    }
}
