//! The WebSocket session of a connection: messages in, records out, cumulative acks,
//! the in-flight window and the close handshake.

use super::*;

pub(super) struct WsState {
    pub(super) session: WsSession,
    pub(super) topic: String,
    pub(super) key: Option<Vec<u8>>,
    pub(super) ack: AckMode,
    /// Messages received so far (message numbers are 1-based).
    pub(super) received: u64,
    /// Every message up to this one is resolved.
    pub(super) resolved: u64,
    /// The highest `{"ack":N}` sent.
    pub(super) acked: u64,
    /// Resolution flags of messages `resolved+1 ..= received`.
    pub(super) pending: VecDeque<bool>,
    pub(super) ping_sent: bool,
    /// The close code this connection ends with (ours or the peer's), for metrics.
    pub(super) close_code: Option<u16>,
}

/// Reads messages while the in-flight window allows, publishes them, and queues acks.
/// Returns true when the connection is finished.
pub(super) fn process_ws(
    w: &mut WsState,
    shared: &Shared,
    reply: ReplyTo,
    routed: &mut u64,
    shutting_down: bool,
) -> bool {
    let cfg = &shared.config;
    let mut finished = false;
    advance_resolved(w);
    while !shutting_down
        && !w.session.is_closing()
        && ((w.received - w.resolved) as usize) < cfg.limits.ws_max_inflight
        && w.session.pending_output() <= MAX_PENDING_OUTPUT
    {
        match w.session.read() {
            WsRead::Message(value) => {
                w.received += 1;
                shared
                    .metrics
                    .ws_messages
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let seq = w.received;
                let record = Record {
                    topic: &w.topic,
                    key: w.key.as_deref(),
                    value: &value,
                    partition: None,
                    headers: &[],
                };
                // Ok(resolved now) or Err(the nack's code).
                let outcome = if shared.sink.ready() {
                    match ack::send(shared, &record, w.ack, reply, seq, Instant::now(), routed) {
                        Fate::Awaiting => Ok(false),
                        Fate::Settled => Ok(true),
                        Fate::Refused(e) => Err(e.code()),
                    }
                } else {
                    Err(KAFKA_UNAVAILABLE)
                };
                ack::after_send(shared);
                let counter = |c: &std::sync::atomic::AtomicU64| {
                    c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                };
                let resolved_now = match outcome {
                    Ok(resolved) => {
                        if resolved {
                            counter(&shared.metrics.ws_acked);
                        }
                        resolved
                    }
                    Err(code) => {
                        counter(&shared.metrics.ws_nacked);
                        send_nack(w, seq, code);
                        true
                    }
                };
                w.pending.push_back(resolved_now);
                advance_resolved(w);
            }
            WsRead::Control => {}
            WsRead::NeedMore => break,
            WsRead::PeerClosed | WsRead::Closed => {
                // Acks for what arrived before the close still go out, ahead of the reply.
                if let Some(code) = w.session.peer_close_code() {
                    w.close_code.get_or_insert(code);
                }
                flush_acks(w);
                finished = true;
                break;
            }
            WsRead::Failed(code) => {
                w.close_code.get_or_insert(u16::from(code));
                flush_acks(w);
                w.session.close(code, "");
                finished = true;
                break;
            }
        }
    }
    if shutting_down && !finished {
        advance_resolved(w);
        if w.resolved == w.received {
            flush_acks(w);
            w.close_code.get_or_insert(1001);
            w.session.close(CloseCode::Away, "shutting down");
            finished = true;
        }
    }
    finished
}

pub(super) fn advance_resolved(w: &mut WsState) {
    while w.pending.front() == Some(&true) {
        w.pending.pop_front();
        w.resolved += 1;
    }
}

/// Queues one cumulative `{"ack":N}` if anything was resolved since the last one.
pub(super) fn flush_acks(w: &mut WsState) {
    advance_resolved(w);
    if w.resolved > w.acked {
        w.acked = w.resolved;
        w.session.send_text(format!("{{\"ack\":{}}}", w.acked));
    }
}

/// `{"nack":SEQ,"error":"CODE"}`: message SEQ was not stored.
pub(super) fn send_nack(w: &mut WsState, seq: u64, code: &str) {
    w.session
        .send_text(format!("{{\"nack\":{seq},\"error\":\"{code}\"}}"));
}
