//! One client connection as a state machine: bytes in, bytes out, records to the sink.
//!
//! The runtime adapter calls `on_data`, `on_eof`, `on_delivery`, `on_timer` and
//! `on_shutdown`, writes whatever `take_output` returns, reads only while `wants_read`,
//! sleeps until `deadline`, and closes the socket once `is_finished`. Every protocol
//! decision (HTTP routing, pipelining order, WebSocket acks, limits, timeouts) is made
//! here, once, for every runtime, and tested without sockets.
//!
//! This module holds the connection's life (data, EOF, deliveries, timers, shutdown, idle
//! buffers); the two protocols are sessions of their own: `http_session` (decoding,
//! pipelined answer slots, raw and REST produce) and `ws_session` (messages, acks, window).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use tungstenite::protocol::frame::coding::CloseCode;

use crate::config::{AckMode, Config, Fault};
use crate::http::{self, Decoder, HttpError, Request, Route};
use crate::metrics::Metrics;
use crate::publish::{Delivery, DeliveryError, Record, Sink, Ticket};
use crate::rest::{self, Outcome, RestError};
use crate::route::{expand_seq, ReplyTo};
use crate::ws::{WsRead, WsSession};

mod ack;
mod http_session;
mod ws_session;

use self::ack::Fate;
use self::http_session::*;
use self::ws_session::*;

/// Stop reading a connection whose unwritten output grew past this (slow reader).
const MAX_PENDING_OUTPUT: usize = 256 * 1024;

/// Buffer capacity a connection may keep between exchanges, per buffer (the written output
/// buffer handed back for the next answers, WebSocket stream buffers): enough for a typical
/// answer, so a busy connection does not allocate per response, and little enough that an
/// idle one costs almost nothing. Larger buffers are released once they are empty; the
/// output buffer is released whenever there is nothing to write (`take_output`).
pub const IDLE_BUFFER_FLOOR: usize = 512;

/// Everything a connection needs from its process, shared read-only.
pub struct Shared {
    pub config: Config,
    pub sink: Arc<dyn Sink>,
    pub metrics: Arc<Metrics>,
    /// Labels of `gateway_info` in /metrics (runtime, flavour, ring size, asymmetries).
    pub info: Vec<(String, String)>,
}

impl Shared {
    pub fn render_metrics(&self) -> String {
        self.metrics
            .render(&self.info, self.sink.queue_depth(), self.sink.ready())
    }
}

/// A connection's buffer memory (`Conn::held_bytes`), by capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// Received bytes not yet consumed: the HTTP input and decoder, the WebSocket stream's
    /// read side.
    pub input: usize,
    /// Bytes to send and the buffers kept for them: the output, the WebSocket stream's
    /// write side.
    pub output: usize,
    /// Queues of answers and acks, a WebSocket's topic and key.
    pub other: usize,
}

impl Held {
    pub fn total(&self) -> usize {
        self.input + self.output + self.other
    }
}

pub struct Conn {
    shared: Arc<Shared>,
    /// Where this connection's delivery reports go (`route`).
    reply: ReplyTo,
    /// Records handed to the sink with `reply` (each gets exactly one report).
    routed: u64,
    mode: Mode,
    output: Vec<u8>,
    last_activity: Instant,
    shutting_down: bool,
    peer_eof: bool,
    /// Close once `output` is written.
    done: bool,
}

// The HTTP state is every connection's first state: kept inline (no allocation per
// connection); the rarer WebSocket state is boxed.
#[allow(clippy::large_enum_variant)]
enum Mode {
    Http(HttpState),
    Ws(Box<WsState>),
}

impl Conn {
    /// A new connection whose records' reports go to `reply` (its slot in the I/O thread's
    /// mailbox, see `route`); the driver passes each report that arrives to `on_delivery`.
    pub fn new(shared: Arc<Shared>, reply: ReplyTo, now: Instant) -> Conn {
        let decoder = Decoder::new(shared.config.limits).borrow_bodies();
        Conn {
            shared,
            reply,
            routed: 0,
            mode: Mode::Http(HttpState {
                decoder,
                input: Vec::new(),
                request_started: None,
                slots: VecDeque::new(),
                next_seq: 0,
                close_after: false,
                current: ("other", now),
            }),
            output: Vec::new(),
            last_activity: now,
            shutting_down: false,
            peer_eof: false,
            done: false,
        }
    }

    /// Records handed to the sink that will be reported to this connection.
    pub fn routed(&self) -> u64 {
        self.routed
    }

    /// True while the adapter should read the socket (false = TCP backpressure).
    pub fn wants_read(&self) -> bool {
        if self.done || self.peer_eof || self.shutting_down {
            return false;
        }
        let queued = match &self.mode {
            Mode::Ws(w) => w.session.pending_output(),
            Mode::Http(_) => 0,
        };
        if self.output.len() + queued > MAX_PENDING_OUTPUT {
            return false;
        }
        let limits = &self.shared.config.limits;
        match &self.mode {
            Mode::Http(h) => {
                !h.close_after
                    && h.slots.len() < limits.max_pipeline
                    && h.input.len() <= limits.max_head
            }
            Mode::Ws(w) => {
                !w.session.is_closing()
                    && ((w.received - w.resolved) as usize) < limits.ws_max_inflight
                    && w.session.buffered() <= limits.max_head
            }
        }
    }

    /// True once everything is written and the socket should be closed.
    pub fn is_finished(&self) -> bool {
        self.done && self.output.is_empty()
    }

    /// True if this is a WebSocket connection (after a successful upgrade).
    pub fn is_websocket(&self) -> bool {
        matches!(self.mode, Mode::Ws(_))
    }

    /// Bytes to write now, if any.
    pub fn take_output(&mut self) -> Option<Vec<u8>> {
        if let Mode::Ws(w) = &mut self.mode {
            // One cumulative ack for everything resolved since the last write.
            flush_acks(w);
            w.session.take_output(&mut self.output);
            w.session.release_idle();
        }
        if self.output.is_empty() {
            // Nothing to write: the connection is about to wait, and a waiting connection
            // keeps no output buffer (answers that come while a write is in flight reuse the
            // written one, `recycle_output`).
            self.output = Vec::new();
            return None;
        }
        let out = std::mem::take(&mut self.output);
        self.shared
            .metrics
            .bytes_out
            .fetch_add(out.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Some(out)
    }

    /// Hands a written buffer back so its allocation is reused (if it is small: a large one
    /// is freed, so a flushed connection keeps at most `IDLE_BUFFER_FLOOR` of output).
    pub fn recycle_output(&mut self, mut buf: Vec<u8>) {
        if self.output.is_empty() && buf.capacity() <= IDLE_BUFFER_FLOOR {
            buf.clear();
            self.output = buf;
        }
    }

    /// Heap bytes this connection's buffers hold now (capacity, not length). The driver's
    /// read buffer is not here: with lent reads (`driver::ConnIo::lends_read_buffers`) a
    /// connection has none. Not counted: tungstenite's own frame buffers, which it does not
    /// expose (its read buffer is sized by `ws::WS_READ_BUFFER`).
    pub fn held_bytes(&self) -> Held {
        match &self.mode {
            Mode::Http(h) => Held {
                input: h.input.capacity() + h.decoder.held_bytes(),
                output: self.output.capacity(),
                other: h.slots.capacity() * std::mem::size_of::<Slot>()
                    + h.slots
                        .iter()
                        .map(|s| match &s.state {
                            SlotState::Ready(b) => b.capacity(),
                            _ => 0,
                        })
                        .sum::<usize>(),
            },
            Mode::Ws(w) => {
                let (rd, wr) = w.session.held_bytes();
                Held {
                    input: rd,
                    output: self.output.capacity() + wr,
                    other: w.pending.capacity()
                        + w.key.as_ref().map_or(0, Vec::capacity)
                        + w.topic.capacity(),
                }
            }
        }
    }

    /// Frees buffer capacity an idle connection does not need: emptied queues and input.
    fn release_idle(&mut self) {
        match &mut self.mode {
            Mode::Http(h) => {
                if h.input.is_empty() {
                    h.input = Vec::new();
                } else if h.input.capacity() > 2 * h.input.len() + IDLE_BUFFER_FLOOR {
                    // Only the unconsumed bytes (a partial request) are kept.
                    h.input.shrink_to_fit();
                }
                if h.slots.is_empty() {
                    h.slots = VecDeque::new();
                }
            }
            Mode::Ws(w) => {
                if w.pending.is_empty() {
                    w.pending = VecDeque::new();
                }
                w.session.release_idle();
            }
        }
    }

    /// The next instant `on_timer` must be called at, if any.
    pub fn deadline(&self) -> Option<Instant> {
        if self.done {
            return None;
        }
        let cfg = &self.shared.config;
        match &self.mode {
            Mode::Http(h) => {
                if let Some(started) = h.request_started {
                    Some(started + cfg.request_timeout)
                } else if h.slots.is_empty() {
                    Some(self.last_activity + cfg.idle_timeout)
                } else {
                    None
                }
            }
            Mode::Ws(w) => {
                if w.ping_sent {
                    Some(self.last_activity + cfg.idle_timeout)
                } else {
                    Some(self.last_activity + cfg.idle_timeout / 2)
                }
            }
        }
    }

    pub fn on_data(&mut self, data: &[u8], now: Instant) {
        self.shared
            .metrics
            .bytes_in
            .fetch_add(data.len() as u64, std::sync::atomic::Ordering::Relaxed);
        if self.done {
            return;
        }
        self.last_activity = now;
        match &mut self.mode {
            // Parsed straight from `data` (see `process_http`).
            Mode::Http(_) => return self.process_with(now, data),
            Mode::Ws(w) => {
                w.ping_sent = false;
                w.session.feed(data);
            }
        }
        self.process(now);
    }

    /// The peer closed its sending side (or the read failed).
    pub fn on_eof(&mut self, now: Instant) {
        // Complete requests already received are still answered (process_http drops only the
        // partial tail once nothing more can be parsed); a WebSocket peer that vanished is done.
        self.peer_eof = true;
        if let Mode::Ws(_) = self.mode {
            self.done = true;
        }
        self.process(now);
    }

    pub fn on_delivery(&mut self, d: Delivery, now: Instant) {
        match &mut self.mode {
            Mode::Http(h) => {
                let front = h.slots.front().map_or(h.next_seq, |s| s.seq);
                // Reports carry the low bits of the sequence number (`route::SEQ_MASK`).
                let seq = expand_seq(d.seq, front);
                if seq >= h.next_seq {
                    return;
                }
                // One sequence number per slot unless REST requests are in the window.
                let i = match h.slots.get((seq - front) as usize) {
                    Some(s) if s.seq == seq => (seq - front) as usize,
                    _ => h.slots.partition_point(|s| s.seq <= seq) - 1,
                };
                let slot = &mut h.slots[i];
                if let SlotState::AwaitingRest(r) = &mut slot.state {
                    let Some(o @ Outcome::Pending) = r.outcomes.get_mut((seq - slot.seq) as usize)
                    else {
                        return;
                    };
                    *o = match d.result {
                        Ok((p, off)) => Outcome::Stored(p, off),
                        Err(e) => Outcome::Failed(e),
                    };
                    r.pending -= 1;
                    if r.pending == 0 {
                        let mut out = Vec::new();
                        let status =
                            rest::write_offsets(&mut out, &r.outcomes, 200, slot.keep_alive);
                        self.shared.metrics.request(status);
                        slot.state = SlotState::Ready(out);
                    }
                } else if let SlotState::Awaiting {
                    batch,
                    expected,
                    delivered,
                    first,
                    error,
                } = &mut slot.state
                {
                    *delivered += 1;
                    match d.result {
                        Ok(po) => {
                            first.get_or_insert(po);
                        }
                        Err(e) => {
                            error.get_or_insert(e);
                        }
                    }
                    if *delivered == *expected {
                        let mut out = Vec::new();
                        let status = match (error.take(), *batch) {
                            (Some(e), _) => {
                                http::write_error(&mut out, e.status(), e.code(), slot.keep_alive);
                                e.status()
                            }
                            (None, true) => {
                                let mut buf = [0; 128];
                                let body =
                                    http::int_object(&mut buf, &[("count", *expected as i64)]);
                                http::write_response(
                                    &mut out,
                                    200,
                                    "application/json",
                                    body,
                                    slot.keep_alive,
                                    &[],
                                );
                                200
                            }
                            (None, false) => {
                                let (p, o) = first.unwrap_or((-1, -1));
                                let mut buf = [0; 128];
                                let body = http::int_object(
                                    &mut buf,
                                    &[("partition", i64::from(p)), ("offset", o)],
                                );
                                http::write_response(
                                    &mut out,
                                    200,
                                    "application/json",
                                    body,
                                    slot.keep_alive,
                                    &[],
                                );
                                200
                            }
                        };
                        self.shared.metrics.request(status);
                        slot.state = SlotState::Ready(out);
                    }
                }
            }
            Mode::Ws(w) => {
                let seq = expand_seq(d.seq, w.resolved + 1);
                let Some(i) = seq.checked_sub(w.resolved + 1) else {
                    return;
                };
                if let Some(flag) = w.pending.get_mut(i as usize) {
                    *flag = true;
                    let counter = match &d.result {
                        Ok(_) => &self.shared.metrics.ws_acked,
                        Err(_) => &self.shared.metrics.ws_nacked,
                    };
                    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if let Err(e) = d.result {
                        send_nack(w, seq, e.code());
                    }
                }
            }
        }
        self.process(now);
    }

    pub fn on_timer(&mut self, now: Instant) {
        let Some(deadline) = self.deadline() else {
            return;
        };
        if now < deadline {
            return;
        }
        let idle_timeout = self.shared.config.idle_timeout;
        match &mut self.mode {
            Mode::Http(h) => {
                if let Some(started) = h.request_started.take() {
                    // Timed from the request's first byte: it never got a last one.
                    h.current = ("other", started);
                    h.input.clear();
                    let e = HttpError::Timeout;
                    self.shared.metrics.request(e.status());
                    push_error(h, &e, false);
                    h.close_after = true;
                } else {
                    // Idle keep-alive connection: close quietly.
                    self.done = true;
                }
            }
            Mode::Ws(w) => {
                if !w.ping_sent && now < self.last_activity + idle_timeout {
                    w.session.ping();
                    w.ping_sent = true;
                } else {
                    flush_acks(w);
                    w.close_code.get_or_insert(1001);
                    w.session.close(CloseCode::Away, "idle timeout");
                    self.done = true;
                }
            }
        }
        self.process(now);
    }

    /// Graceful shutdown: finish what was received, accept nothing new, then close.
    pub fn on_shutdown(&mut self, now: Instant) {
        self.shutting_down = true;
        if let Mode::Http(h) = &mut self.mode {
            h.input.clear();
            h.request_started = None;
            h.close_after = true;
        }
        self.process(now);
    }

    /// Parses what can be parsed, publishes, and moves finished answers to the output.
    fn process(&mut self, now: Instant) {
        self.process_with(now, &[])
    }

    /// `process`, with bytes just read that are not yet in the HTTP input buffer.
    fn process_with(&mut self, now: Instant, mut fresh: &[u8]) {
        loop {
            if let Mode::Http(_) = self.mode {
                let upgrade = self.process_http(now, std::mem::take(&mut fresh));
                if let Some(upgrade) = upgrade {
                    self.upgrade(upgrade);
                }
            }
            match &mut self.mode {
                Mode::Http(h) => {
                    let mut released = false;
                    while let Some(slot) = h.slots.front() {
                        let SlotState::Ready(_) = &slot.state else {
                            break;
                        };
                        let slot = h.slots.pop_front().expect("front exists");
                        let SlotState::Ready(mut bytes) = slot.state else {
                            unreachable!()
                        };
                        // "HTTP/1.1 NNN ...": the status of the answer, whichever path built it.
                        let status = bytes
                            .get(9..12)
                            .and_then(|d| std::str::from_utf8(d).ok()?.parse::<u16>().ok())
                            .unwrap_or(0);
                        if status != 100 {
                            self.shared.metrics.request_duration(
                                slot.route,
                                status,
                                now.saturating_duration_since(slot.started),
                            );
                        }
                        if slot.keep_alive && h.close_after && h.slots.is_empty() {
                            // The last answer before a close the request did not ask for
                            // (shutdown): tell the client not to send more here.
                            http::add_header(&mut bytes, b"connection: close");
                        } else if slot.keep_alive && slot.announce_keep_alive {
                            http::add_header(&mut bytes, b"connection: keep-alive");
                        }
                        self.output.extend_from_slice(&bytes);
                        // Idle time counts from the last answer, not the last byte received.
                        self.last_activity = now;
                        released = true;
                        if !slot.keep_alive {
                            h.slots.clear();
                            self.done = true;
                            break;
                        }
                    }
                    if h.close_after && h.slots.is_empty() {
                        self.done = true;
                    }
                    // Freed pipeline room: requests held back in the buffer can be parsed now.
                    if released && !self.done && !h.close_after && !h.input.is_empty() {
                        continue;
                    }
                }
                Mode::Ws(w) => {
                    if !self.done {
                        self.done |= process_ws(
                            w,
                            &self.shared,
                            self.reply,
                            &mut self.routed,
                            self.shutting_down,
                        );
                    }
                }
            }
            self.release_idle();
            return;
        }
    }

    fn upgrade(&mut self, (accept, req, leftover): (String, Request, Vec<u8>)) {
        let Ok(Route::WebSocket { topic, .. }) = req.route else {
            return;
        };
        self.shared
            .metrics
            .ws_upgrades
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        http::write_switching_protocols(&mut self.output, &accept);
        let session = WsSession::new(&self.shared.config.limits, &leftover);
        self.mode = Mode::Ws(Box::new(WsState {
            session,
            topic,
            key: req.query.key,
            ack: req.query.ack.unwrap_or(self.shared.config.default_ack),
            received: 0,
            resolved: 0,
            acked: 0,
            pending: VecDeque::new(),
            ping_sent: false,
            close_code: None,
        }));
        tracing::debug!("upgraded to websocket");
    }
}

/// The error code of a publish refused because Kafka metadata is unreachable (`/readyz`
/// is 503): an HTTP 503 with Retry-After, or a WebSocket nack.
pub const KAFKA_UNAVAILABLE: &str = "kafka_unavailable";

impl Drop for Conn {
    fn drop(&mut self) {
        if let Mode::Ws(w) = &self.mode {
            // No close frame either way: the peer vanished (1006, as browsers report it).
            self.shared.metrics.ws_close(w.close_code.unwrap_or(1006));
        }
    }
}
