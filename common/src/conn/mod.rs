//! One client connection as a state machine: bytes in, bytes out, records to the sink.
//!
//! The runtime adapter calls `on_data`, `on_eof`, `on_delivery`, `on_timer` and
//! `on_shutdown`, writes whatever `take_output` returns, reads only while `wants_read`,
//! sleeps until `deadline`, and closes the socket once `is_finished`. Every protocol
//! decision (HTTP routing, pipelining order, WebSocket acks, limits, timeouts) is made
//! here, once, for every runtime, and tested without sockets.
//!
//! This module holds the connection's life (data, EOF, deliveries, timers, shutdown, idle
//! buffers); the two protocols are sessions of their own, over the codecs of `proto`:
//! `http_session` (decoding, routing, pipelined answers) with its state in `http_slots` and
//! its produce requests and their answers in `http_produce`, and `ws_session` (messages,
//! acks, window). Every session sends through `shared::Link` and answers by the ack rule
//! of `policy::ack`. The clock is an input: every entry point takes `now`.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use crate::policy::config::IDLE_BUFFER_FLOOR;
use crate::proto::http::{self, Decoder, Route};
use crate::proto::ws::WsSession;
use crate::publish::token::ReplyTo;
use crate::publish::Delivery;

mod http_produce;
mod http_session;
mod http_slots;
mod shared;
mod ws_session;

pub use self::shared::{Held, Shared};

use self::http_session::{ConnFlags, Upgrade};
use self::http_slots::{HttpState, Slot, SlotState};
use self::shared::{Link, MAX_PENDING_OUTPUT};
use self::ws_session::{flush_acks, WsState};

pub struct Conn {
    link: Link,
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
    /// mailbox, see `publish::dispatch`); the driver passes each report that arrives to
    /// `on_delivery`.
    pub fn new(shared: Arc<Shared>, reply: ReplyTo, now: Instant) -> Conn {
        let decoder = Decoder::new(shared.config.limits).borrow_bodies();
        Conn {
            link: Link {
                shared,
                reply,
                routed: 0,
            },
            mode: Mode::Http(HttpState::new(decoder, now)),
            output: Vec::new(),
            last_activity: now,
            shutting_down: false,
            peer_eof: false,
            done: false,
        }
    }

    /// Records handed to the sink that will be reported to this connection.
    pub fn routed(&self) -> u64 {
        self.link.routed
    }

    fn flags(&self) -> ConnFlags {
        ConnFlags {
            done: self.done,
            shutting_down: self.shutting_down,
            peer_eof: self.peer_eof,
        }
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
        let limits = &self.link.shared.config.limits;
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
        self.link
            .shared
            .metrics
            .bytes_out
            .fetch_add(out.len() as u64, Relaxed);
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
    /// expose (its read buffer is sized by `proto::ws::WS_READ_BUFFER`).
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
        let cfg = &self.link.shared.config;
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
        self.link
            .shared
            .metrics
            .bytes_in
            .fetch_add(data.len() as u64, Relaxed);
        if self.done {
            return;
        }
        self.last_activity = now;
        match &mut self.mode {
            // Parsed straight from `data` (see `http_session::process_http`).
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
            Mode::Http(h) => http_produce::on_delivery(h, &self.link.shared.metrics, d),
            Mode::Ws(w) => ws_session::on_delivery(w, &self.link, d),
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
        let closing = match &mut self.mode {
            // An idle keep-alive connection (no request under way) closes quietly.
            Mode::Http(h) => !http_session::on_request_timeout(h, &self.link),
            Mode::Ws(w) => ws_session::on_idle(w, now, self.last_activity, &self.link),
        };
        self.done |= closing;
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
            let flags = self.flags();
            if let Mode::Http(h) = &mut self.mode {
                let fresh = std::mem::take(&mut fresh);
                let upgrade = http_session::process_http(h, &mut self.link, flags, now, fresh);
                if let Some(upgrade) = upgrade {
                    self.upgrade(upgrade);
                }
            }
            match &mut self.mode {
                Mode::Http(h) => {
                    let (released, done) =
                        http_session::flush_ready(h, &self.link, &mut self.output, now);
                    if released {
                        // Idle time counts from the last answer, not the last byte received.
                        self.last_activity = now;
                    }
                    self.done |= done;
                    // Freed pipeline room: requests held back in the buffer can be parsed now.
                    if released && !self.done && !h.close_after && !h.input.is_empty() {
                        continue;
                    }
                }
                Mode::Ws(w) => {
                    if !self.done {
                        self.done |=
                            ws_session::process_ws(w, &mut self.link, self.shutting_down, now);
                    }
                }
            }
            self.release_idle();
            return;
        }
    }

    fn upgrade(&mut self, (accept, req, leftover, ack): Upgrade) {
        let Ok(Route::WebSocket { topic, .. }) = req.route else {
            return;
        };
        let shared = &self.link.shared;
        shared.metrics.ws_upgrades.fetch_add(1, Relaxed);
        http::write_switching_protocols(&mut self.output, &accept);
        let session = WsSession::new(&shared.config.limits, &leftover);
        let state = WsState::new(session, topic, req.query.key, ack);
        self.mode = Mode::Ws(Box::new(state));
        tracing::debug!("upgraded to websocket");
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Mode::Ws(w) = &self.mode {
            // No close frame either way: the peer vanished (1006, as browsers report it).
            self.link
                .shared
                .metrics
                .ws_close(w.close_code.unwrap_or(1006));
        }
    }
}
