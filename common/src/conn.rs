//! One client connection as a state machine: bytes in, bytes out, records to the sink.
//!
//! The runtime adapter calls `on_data`, `on_eof`, `on_delivery`, `on_timer` and
//! `on_shutdown`, writes whatever `take_output` returns, reads only while `wants_read`,
//! sleeps until `deadline`, and closes the socket once `is_finished`. Every protocol
//! decision (HTTP routing, pipelining order, WebSocket acks, limits, timeouts) is made
//! here, once, for every runtime, and tested without sockets.

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

/// Stop reading a connection whose unwritten output grew past this (slow reader).
const MAX_PENDING_OUTPUT: usize = 256 * 1024;

/// Buffer capacity a connection may keep between exchanges, per buffer (output, WebSocket
/// stream buffers): enough for a typical answer, so a busy connection does not allocate per
/// response, and little enough that an idle one costs almost nothing. Larger buffers are
/// released once they are empty.
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

struct HttpState {
    decoder: Decoder,
    input: Vec<u8>,
    /// First byte of the request being received, for the 408 deadline.
    request_started: Option<Instant>,
    /// Answers in request order, with increasing `seq`.
    slots: VecDeque<Slot>,
    /// The first sequence number of the next slot.
    next_seq: u64,
    /// A response that closes the connection is queued: parse nothing more.
    close_after: bool,
    /// Route label and completion time of the request being answered (for the slots it
    /// pushes: the request-duration histogram).
    current: (&'static str, Instant),
}

struct Slot {
    /// Its first sequence number: one per slot, but one per record for a REST request
    /// (its records' delivery reports say which record they are).
    seq: u64,
    route: &'static str,
    started: Instant,
    keep_alive: bool,
    /// The answer of an HTTP/1.0 keep-alive request, which must say so.
    announce_keep_alive: bool,
    state: SlotState,
}

enum SlotState {
    Ready(Vec<u8>),
    Awaiting {
        batch: bool,
        expected: usize,
        delivered: usize,
        first: Option<(i32, i64)>,
        error: Option<DeliveryError>,
    },
    /// A REST v2 produce request: one outcome per record, answered when none is pending.
    AwaitingRest(Box<RestAwait>),
}

struct RestAwait {
    outcomes: Vec<Outcome>,
    pending: usize,
}

struct WsState {
    session: WsSession,
    topic: String,
    key: Option<Vec<u8>>,
    ack: AckMode,
    /// Messages received so far (message numbers are 1-based).
    received: u64,
    /// Every message up to this one is resolved.
    resolved: u64,
    /// The highest `{"ack":N}` sent.
    acked: u64,
    /// Resolution flags of messages `resolved+1 ..= received`.
    pending: VecDeque<bool>,
    ping_sent: bool,
    /// The close code this connection ends with (ours or the peer's), for metrics.
    close_code: Option<u16>,
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
                                let body = format!("{{\"count\":{expected}}}");
                                http::write_response(
                                    &mut out,
                                    200,
                                    "application/json",
                                    body.as_bytes(),
                                    slot.keep_alive,
                                    &[],
                                );
                                200
                            }
                            (None, false) => {
                                let (p, o) = first.unwrap_or((-1, -1));
                                let body = format!("{{\"partition\":{p},\"offset\":{o}}}");
                                http::write_response(
                                    &mut out,
                                    200,
                                    "application/json",
                                    body.as_bytes(),
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
                        w.session.send_text(format!(
                            "{{\"nack\":{},\"error\":\"{}\"}}",
                            seq,
                            e.code()
                        ));
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

    /// Decodes and handles pipelined requests. Returns an accepted WebSocket upgrade.
    fn process_http(&mut self, now: Instant, fresh: &[u8]) -> Option<(String, Request, Vec<u8>)> {
        let Mode::Http(h) = &mut self.mode else {
            return None;
        };
        // Nothing buffered (the usual case): parse straight from the bytes just read, so a
        // request that arrived whole is never copied into `input`; only a tail that does
        // not complete a request is kept.
        let direct = h.input.is_empty();
        // Out of `h` while parsing, so request bodies can be borrowed from it.
        let mut buffered = std::mem::take(&mut h.input);
        if !direct {
            buffered.extend_from_slice(fresh);
        }
        let src: &[u8] = if direct { fresh } else { &buffered };
        let src_len = src.len();
        let shared = &self.shared;
        let max_pipeline = shared.config.limits.max_pipeline;
        let mut pos = 0;
        let mut upgrade = None;
        let mut completed = false;
        while !h.close_after && !self.done && h.slots.len() < max_pipeline {
            let at = pos;
            match h.decoder.decode(&src[at..]) {
                Err(e) => {
                    h.current = ("other", now);
                    shared.metrics.request(e.status());
                    push_error(h, &e, false);
                    h.close_after = true;
                    pos = src_len;
                }
                Ok((n, None)) => {
                    pos += n;
                    if h.decoder.take_expect_continue() {
                        // An interim answer, in order behind the answers still pending.
                        push_slot(
                            h,
                            true,
                            SlotState::Ready(b"HTTP/1.1 100 Continue\r\n\r\n".to_vec()),
                        );
                    }
                    break;
                }
                Ok((n, Some(req))) => {
                    pos += n;
                    completed = true;
                    h.current = (req.route_label, now);
                    if let Ok(Route::WebSocket { accept, .. }) = &req.route {
                        if h.slots.is_empty() && !self.shutting_down {
                            let accept = accept.clone();
                            let leftover = src[pos..].to_vec();
                            pos = src_len;
                            upgrade = Some((accept, req, leftover));
                            break;
                        }
                        let e = HttpError::BadRequest("upgrade_while_pipelining");
                        shared.metrics.request(e.status());
                        push_error(h, &e, false);
                        h.close_after = true;
                        continue;
                    }
                    let input = &src[at..];
                    handle_request(h, shared, self.reply, &mut self.routed, req, input, now);
                }
            }
        }
        if direct {
            buffered.extend_from_slice(&fresh[pos..]);
        } else {
            buffered.drain(..pos);
        }
        h.input = buffered;
        let held_back = h.slots.len() >= max_pipeline;
        if self.peer_eof && !held_back && upgrade.is_none() {
            // Everything complete was parsed; the rest is a request that will never finish.
            h.input.clear();
            h.close_after = true;
        }
        let in_progress = h.decoder.in_body() || !h.input.is_empty();
        h.request_started = if held_back || !in_progress || h.close_after {
            // Requests the gateway itself holds back (full pipeline) are not timed out.
            None
        } else if completed || h.request_started.is_none() {
            // The partial request began in this read, after the last complete one.
            Some(now)
        } else {
            h.request_started
        };
        upgrade
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

fn push_slot(h: &mut HttpState, keep_alive: bool, state: SlotState) -> u64 {
    push_slot_wide(h, keep_alive, state, 1)
}

/// Pushes a slot that owns `width` sequence numbers (one per record of a REST request).
fn push_slot_wide(h: &mut HttpState, keep_alive: bool, state: SlotState, width: u64) -> u64 {
    let seq = h.next_seq;
    h.next_seq += width.max(1);
    h.slots.push_back(Slot {
        seq,
        route: h.current.0,
        started: h.current.1,
        keep_alive,
        announce_keep_alive: false,
        state,
    });
    seq
}

fn push_error(h: &mut HttpState, e: &HttpError, keep_alive: bool) {
    let mut out = Vec::new();
    let mut body_extra: Vec<(&str, &str)> = Vec::new();
    if let HttpError::MethodNotAllowed(allow) = e {
        body_extra.push(("allow", allow));
    }
    let body = format!("{{\"error\":\"{}\"}}", e.code());
    http::write_response(
        &mut out,
        e.status(),
        "application/json",
        body.as_bytes(),
        keep_alive,
        &body_extra,
    );
    push_slot(h, keep_alive, SlotState::Ready(out));
}

fn ready_json(h: &mut HttpState, metrics: &Metrics, status: u16, body: &str, keep_alive: bool) {
    let mut out = Vec::new();
    if status >= 400 {
        http::write_error(&mut out, status, body, keep_alive);
    } else {
        http::write_response(
            &mut out,
            status,
            "application/json",
            body.as_bytes(),
            keep_alive,
            &[],
        );
    }
    metrics.request(status);
    push_slot(h, keep_alive, SlotState::Ready(out));
}

fn rest_error(h: &mut HttpState, shared: &Shared, e: &RestError, keep_alive: bool) {
    let mut out = Vec::new();
    rest::write_error(&mut out, e, keep_alive);
    shared.metrics.request(e.status);
    push_slot(h, keep_alive, SlotState::Ready(out));
}

fn handle_request(
    h: &mut HttpState,
    shared: &Shared,
    reply: ReplyTo,
    routed: &mut u64,
    req: Request,
    input: &[u8],
    now: Instant,
) {
    let first = h.slots.len();
    let http10 = req.http10;
    answer_request(h, shared, reply, routed, req, input, now);
    if http10 {
        for slot in h.slots.iter_mut().skip(first) {
            slot.announce_keep_alive = true;
        }
    }
}

fn answer_request(
    h: &mut HttpState,
    shared: &Shared,
    reply: ReplyTo,
    routed: &mut u64,
    req: Request,
    input: &[u8],
    now: Instant,
) {
    let cfg = &shared.config;
    // The body as decoded: in `input` (the read buffer) when it arrived whole.
    let body: &[u8] = match &req.body_at {
        Some(r) => &input[r.clone()],
        None => &req.body,
    };
    let keep_alive = req.keep_alive && !cfg.has_fault(Fault::OneRequestPerConnection);
    if !keep_alive {
        h.close_after = true;
    }
    let route = match req.route {
        Ok(r) => r,
        Err(e) if req.dialect.is_rest() && !matches!(e, HttpError::MethodNotAllowed(_)) => {
            rest_error(
                h,
                shared,
                &RestError::from_code(e.status(), e.code()),
                keep_alive,
            );
            return;
        }
        Err(e) => {
            shared.metrics.request(e.status());
            push_error(h, &e, keep_alive);
            return;
        }
    };
    match route {
        Route::Healthz => ready_json(h, &shared.metrics, 200, "{\"status\":\"ok\"}", keep_alive),
        Route::Readyz => {
            if shared.sink.ready() {
                ready_json(
                    h,
                    &shared.metrics,
                    200,
                    "{\"status\":\"ready\"}",
                    keep_alive,
                )
            } else {
                ready_json(h, &shared.metrics, 503, "kafka_unreachable", keep_alive)
            }
        }
        Route::Metrics => {
            let text = shared.render_metrics();
            let mut out = Vec::new();
            http::write_response(
                &mut out,
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                text.as_bytes(),
                keep_alive,
                &[],
            );
            shared.metrics.request(200);
            push_slot(h, keep_alive, SlotState::Ready(out));
        }
        Route::WebSocket { .. } => unreachable!("upgrades are handled by the caller"),
        Route::Publish { topic, .. } if req.dialect.is_rest() => {
            let records = match rest::parse(req.dialect, body, cfg.limits.max_records) {
                Ok(r) => r,
                Err(e) => return rest_error(h, shared, &e, keep_alive),
            };
            if !shared.sink.ready() {
                let e = RestError::from_code(503, KAFKA_UNAVAILABLE);
                return rest_error(h, shared, &e, keep_alive);
            }
            let ack = req.query.ack.unwrap_or(cfg.default_ack);
            let base = h.next_seq;
            let mut outcomes = Vec::with_capacity(records.len());
            let mut pending = 0;
            for (i, r) in records.iter().enumerate() {
                let record = Record {
                    topic: &topic,
                    key: r.key.as_deref().or(req.query.key.as_deref()),
                    value: r.value.as_deref().unwrap_or_default(),
                    partition: r.partition.or(req.query.partition),
                    headers: &req.headers,
                };
                let ticket = Ticket {
                    reply: (ack == AckMode::Kafka).then_some(reply),
                    seq: base + i as u64,
                    start: now,
                };
                outcomes.push(match (shared.sink.send(&record, ticket), ack) {
                    (Ok(()), AckMode::Kafka) => {
                        *routed += 1;
                        pending += 1;
                        Outcome::Pending
                    }
                    // Fire-and-forget: a refusal is only counted, as in the raw contract.
                    (Ok(()), _) | (Err(_), AckMode::None) => Outcome::Accepted,
                    (Err(e), _) => Outcome::Failed(e),
                });
            }
            if cfg.has_fault(Fault::BlockingProduce) {
                let _ = shared.sink.flush(std::time::Duration::from_secs(30));
            }
            if pending > 0 {
                let width = outcomes.len() as u64;
                let state = SlotState::AwaitingRest(Box::new(RestAwait { outcomes, pending }));
                push_slot_wide(h, keep_alive, state, width);
            } else {
                // Nothing to wait for (ack=none|enqueue, or every record refused at once).
                let status = if ack == AckMode::Kafka { 200 } else { 202 };
                let mut out = Vec::new();
                let status = rest::write_offsets(&mut out, &outcomes, status, keep_alive);
                shared.metrics.request(status);
                push_slot(h, keep_alive, SlotState::Ready(out));
            }
        }
        Route::Publish { .. } if !shared.sink.ready() => {
            // No metadata: answer now rather than after message.timeout.ms in the queue.
            ready_json(h, &shared.metrics, 503, KAFKA_UNAVAILABLE, keep_alive)
        }
        Route::Publish { topic, batch } => {
            let ack = req.query.ack.unwrap_or(cfg.default_ack);
            let lines: Vec<&[u8]>;
            let values: &[&[u8]] = if batch {
                lines = body
                    .split(|&b| b == b'\n')
                    .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
                    .filter(|l| !l.is_empty())
                    .collect();
                &lines
            } else {
                // One record: no allocation for the list.
                std::slice::from_ref(&body)
            };
            if values.is_empty() {
                ready_json(h, &shared.metrics, 400, "empty_batch", keep_alive);
                return;
            }
            let seq = h.next_seq;
            let mut sent = 0;
            let mut error = None;
            for value in values {
                let record = Record {
                    topic: &topic,
                    key: req.query.key.as_deref(),
                    value,
                    partition: req.query.partition,
                    headers: &req.headers,
                };
                let ticket = Ticket {
                    reply: (ack == AckMode::Kafka).then_some(reply),
                    seq,
                    start: now,
                };
                match shared.sink.send(&record, ticket) {
                    Ok(()) => {
                        sent += 1;
                        if ticket.reply.is_some() {
                            *routed += 1;
                        }
                    }
                    Err(e) => {
                        error = Some(e);
                        break;
                    }
                }
            }
            if cfg.has_fault(Fault::BlockingProduce) {
                // Reproduction of a classic mistake: waiting for Kafka on the I/O thread.
                let _ = shared.sink.flush(std::time::Duration::from_secs(30));
            }
            match (ack, error) {
                (AckMode::None, _) => ready_json(
                    h,
                    &shared.metrics,
                    202,
                    "{\"status\":\"accepted\"}",
                    keep_alive,
                ),
                (AckMode::Enqueue, None) => ready_json(
                    h,
                    &shared.metrics,
                    202,
                    "{\"status\":\"enqueued\"}",
                    keep_alive,
                ),
                (_, Some(e)) if sent == 0 => {
                    ready_json(h, &shared.metrics, e.status(), e.code(), keep_alive)
                }
                (AckMode::Enqueue, Some(e)) => {
                    ready_json(h, &shared.metrics, e.status(), e.code(), keep_alive)
                }
                (AckMode::Kafka, error) => {
                    push_slot(
                        h,
                        keep_alive,
                        SlotState::Awaiting {
                            batch,
                            expected: sent,
                            delivered: 0,
                            first: None,
                            error,
                        },
                    );
                }
            }
        }
    }
}

/// Reads messages while the in-flight window allows, publishes them, and queues acks.
/// Returns true when the connection is finished.
fn process_ws(
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
                let ticket = Ticket {
                    reply: (w.ack == AckMode::Kafka).then_some(reply),
                    seq,
                    start: Instant::now(),
                };
                let result = if shared.sink.ready() {
                    shared.sink.send(&record, ticket).map_err(|e| e.code())
                } else {
                    Err(KAFKA_UNAVAILABLE)
                };
                if result.is_ok() && ticket.reply.is_some() {
                    *routed += 1;
                }
                if cfg.has_fault(Fault::BlockingProduce) {
                    let _ = shared.sink.flush(std::time::Duration::from_secs(30));
                }
                let counter = |c: &std::sync::atomic::AtomicU64| {
                    c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                };
                let resolved_now = match (w.ack, result) {
                    // Fire-and-forget: a refusal is only counted, unless Kafka is unreachable.
                    (AckMode::None, Err(code)) if code != KAFKA_UNAVAILABLE => {
                        counter(&shared.metrics.ws_acked);
                        true
                    }
                    (_, Err(code)) => {
                        counter(&shared.metrics.ws_nacked);
                        w.session
                            .send_text(format!("{{\"nack\":{seq},\"error\":\"{code}\"}}"));
                        true
                    }
                    (AckMode::None | AckMode::Enqueue, Ok(())) => {
                        counter(&shared.metrics.ws_acked);
                        true
                    }
                    (AckMode::Kafka, Ok(())) => false,
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

fn advance_resolved(w: &mut WsState) {
    while w.pending.front() == Some(&true) {
        w.pending.pop_front();
        w.resolved += 1;
    }
}

/// Queues one cumulative `{"ack":N}` if anything was resolved since the last one.
fn flush_acks(w: &mut WsState) {
    advance_resolved(w);
    if w.resolved > w.acked {
        w.acked = w.resolved;
        w.session.send_text(format!("{{\"ack\":{}}}", w.acked));
    }
}
