//! The WebSocket session of a connection: messages in, records out, cumulative acks and
//! nacks per the ack rule (`policy::ack`), the in-flight window and the close handshake.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tungstenite::protocol::frame::coding::CloseCode;

use super::shared::{Link, MAX_PENDING_OUTPUT};
use crate::policy::ack::{self, AckMode, Answer, KAFKA_UNAVAILABLE};
use crate::proto::ws::{WsRead, WsSession};
use crate::publish::token::expand_seq;
use crate::publish::{Delivery, Record};

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

impl WsState {
    pub(super) fn new(
        session: WsSession,
        topic: String,
        key: Option<Vec<u8>>,
        ack: AckMode,
    ) -> WsState {
        WsState {
            session,
            topic,
            key,
            ack,
            received: 0,
            resolved: 0,
            acked: 0,
            pending: VecDeque::new(),
            ping_sent: false,
            close_code: None,
        }
    }
}

fn count(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Reads messages while the in-flight window allows, publishes them, and queues acks.
/// Returns true when the connection is finished.
pub(super) fn process_ws(
    w: &mut WsState,
    link: &mut Link,
    shutting_down: bool,
    now: Instant,
) -> bool {
    let max_inflight = link.shared.config.limits.ws_max_inflight;
    let mut finished = false;
    advance_resolved(w);
    while !shutting_down
        && !w.session.is_closing()
        && ((w.received - w.resolved) as usize) < max_inflight
        && w.session.pending_output() <= MAX_PENDING_OUTPUT
    {
        match w.session.read() {
            WsRead::Message(value) => on_message(w, link, &value, now),
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

/// One message: one record, resolved now (acked or nacked) or once its report is in.
fn on_message(w: &mut WsState, link: &mut Link, value: &[u8], now: Instant) {
    let metrics = link.shared.metrics.clone();
    w.received += 1;
    count(&metrics.ws_messages);
    let seq = w.received;
    let record = Record {
        topic: &w.topic,
        key: w.key.as_deref(),
        value,
        partition: None,
        headers: &[],
    };
    let resolved_now = if link.shared.sink.ready() {
        let fate = link.send(&record, w.ack, seq, now);
        link.after_send();
        match ack::answer(w.ack, [&fate]) {
            Answer::Wait => false,
            Answer::Settled(_) => {
                count(&metrics.ws_acked);
                true
            }
            Answer::Refused(e) => {
                count(&metrics.ws_nacked);
                send_nack(w, seq, e.code());
                true
            }
        }
    } else {
        link.after_send();
        count(&metrics.ws_nacked);
        send_nack(w, seq, KAFKA_UNAVAILABLE);
        true
    };
    w.pending.push_back(resolved_now);
    advance_resolved(w);
}

/// A delivery report for message `d.seq`: acked with the next cumulative ack, or nacked.
pub(super) fn on_delivery(w: &mut WsState, link: &Link, d: Delivery) {
    let seq = expand_seq(d.seq, w.resolved + 1);
    let Some(i) = seq.checked_sub(w.resolved + 1) else {
        return;
    };
    if let Some(flag) = w.pending.get_mut(i as usize) {
        *flag = true;
        let metrics = &link.shared.metrics;
        count(match &d.result {
            Ok(_) => &metrics.ws_acked,
            Err(_) => &metrics.ws_nacked,
        });
        if let Err(e) = d.result {
            send_nack(w, seq, e.code());
        }
    }
}

/// The timer fired: ping an idle peer once, then close. Returns true when closing.
pub(super) fn on_idle(w: &mut WsState, now: Instant, last_activity: Instant, link: &Link) -> bool {
    if !w.ping_sent && now < last_activity + link.shared.config.idle_timeout {
        w.session.ping();
        w.ping_sent = true;
        return false;
    }
    flush_acks(w);
    w.close_code.get_or_insert(1001);
    w.session.close(CloseCode::Away, "idle timeout");
    true
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
fn send_nack(w: &mut WsState, seq: u64, code: &str) {
    w.session
        .send_text(format!("{{\"nack\":{seq},\"error\":\"{code}\"}}"));
}
