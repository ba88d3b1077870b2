//! The HTTP session's state: the decoder, the input, and the ordered answer slots of
//! pipelined requests (a slot is ready, or waits for its records' delivery reports), with
//! the ways to queue an answer.

use std::collections::VecDeque;
use std::time::Instant;

use crate::observe::metrics::Metrics;
use crate::proto::http::{self, Decoder, HttpError};
use crate::proto::rest::{self, Outcome, RestError};
use crate::publish::DeliveryError;

pub(super) struct HttpState {
    pub(super) decoder: Decoder,
    pub(super) input: Vec<u8>,
    /// First byte of the request being received, for the 408 deadline.
    pub(super) request_started: Option<Instant>,
    /// Answers in request order, with increasing `seq`.
    pub(super) slots: VecDeque<Slot>,
    /// The first sequence number of the next slot.
    pub(super) next_seq: u64,
    /// A response that closes the connection is queued: parse nothing more.
    pub(super) close_after: bool,
    /// Route label and completion time of the request being answered (for the slots it
    /// pushes: the request-duration histogram).
    pub(super) current: (&'static str, Instant),
}

impl HttpState {
    pub(super) fn new(decoder: Decoder, now: Instant) -> HttpState {
        HttpState {
            decoder,
            input: Vec::new(),
            request_started: None,
            slots: VecDeque::new(),
            next_seq: 0,
            close_after: false,
            current: ("other", now),
        }
    }
}

pub(super) struct Slot {
    /// Its first sequence number: one per slot, but one per record for a REST request
    /// (its records' delivery reports say which record they are).
    pub(super) seq: u64,
    pub(super) route: &'static str,
    pub(super) started: Instant,
    pub(super) keep_alive: bool,
    /// The answer of an HTTP/1.0 keep-alive request, which must say so.
    pub(super) announce_keep_alive: bool,
    pub(super) state: SlotState,
}

pub(super) enum SlotState {
    Ready(Vec<u8>),
    /// A raw produce request waiting for its records' reports.
    Awaiting(RawAwait),
    /// A REST v2 produce request: one outcome per record, answered when none is pending.
    AwaitingRest(Box<RestAwait>),
}

pub(super) struct RawAwait {
    pub(super) batch: bool,
    pub(super) expected: usize,
    pub(super) delivered: usize,
    pub(super) first: Option<(i32, i64)>,
    pub(super) error: Option<DeliveryError>,
}

pub(super) struct RestAwait {
    pub(super) outcomes: Vec<Outcome>,
    pub(super) pending: usize,
}

pub(super) fn push_slot(h: &mut HttpState, keep_alive: bool, state: SlotState) -> u64 {
    push_slot_wide(h, keep_alive, state, 1)
}

/// Pushes a slot that owns `width` sequence numbers (one per record of a REST request).
pub(super) fn push_slot_wide(
    h: &mut HttpState,
    keep_alive: bool,
    state: SlotState,
    width: u64,
) -> u64 {
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

pub(super) fn push_error(h: &mut HttpState, e: &HttpError, keep_alive: bool) {
    let mut out = Vec::new();
    let allow;
    let extra: &[(&str, &str)] = match e {
        HttpError::MethodNotAllowed(methods) => {
            allow = [("allow", *methods)];
            &allow
        }
        _ => &[],
    };
    http::write_error_with(&mut out, e.status(), e.code(), keep_alive, extra);
    push_slot(h, keep_alive, SlotState::Ready(out));
}

pub(super) fn ready_json(
    h: &mut HttpState,
    metrics: &Metrics,
    status: u16,
    body: &str,
    keep_alive: bool,
) {
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

pub(super) fn rest_error(h: &mut HttpState, metrics: &Metrics, e: &RestError, keep_alive: bool) {
    let mut out = Vec::new();
    rest::write_error(&mut out, e, keep_alive);
    metrics.request(e.status);
    push_slot(h, keep_alive, SlotState::Ready(out));
}
