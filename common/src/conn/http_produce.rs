//! Produce requests over HTTP, raw (`/topics/T`, `/topics/T/batch`) and REST Proxy v2: the
//! records go to the sink, the request's answer follows the ack rule (`policy::ack`), now
//! or once its records' delivery reports are in (`on_delivery`, also here: the answer to a
//! delivery is written next to the request that waits for it).

use std::time::Instant;

use super::http_slots::{
    push_slot, push_slot_wide, ready_json, rest_error, HttpState, RawAwait, RestAwait, SlotState,
};
use super::shared::Link;
use crate::observe::metrics::Metrics;
use crate::policy::ack::{self, AckMode, Answer, Fate, KAFKA_UNAVAILABLE, SETTLED, STORED};
use crate::proto::http::{self, Request};
use crate::proto::rest::{self, Outcome, RestError};
use crate::publish::token::expand_seq;
use crate::publish::{Delivery, Record};

/// A produce request in either dialect, as the session hands it over.
pub(super) struct Produce<'a> {
    pub(super) req: &'a Request,
    pub(super) topic: &'a str,
    pub(super) body: &'a [u8],
    pub(super) ack: AckMode,
    pub(super) keep_alive: bool,
    pub(super) now: Instant,
}

/// A REST Proxy v2 produce request: one outcome per record, every record sent.
pub(super) fn rest_produce(h: &mut HttpState, link: &mut Link, p: &Produce<'_>) {
    let shared = link.shared.clone();
    let metrics = &shared.metrics;
    let records = match rest::parse(p.req.dialect, p.body, shared.config.limits.max_records) {
        Ok(r) => r,
        Err(e) => return rest_error(h, metrics, &e, p.keep_alive),
    };
    if !shared.sink.ready() {
        let e = RestError::from_code(503, KAFKA_UNAVAILABLE);
        return rest_error(h, metrics, &e, p.keep_alive);
    }
    let base = h.next_seq;
    let query = &p.req.query;
    let fates: Vec<Fate> = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let record = Record {
                topic: p.topic,
                key: r.key.as_deref().or(query.key.as_deref()),
                value: r.value.as_deref().unwrap_or_default(),
                partition: r.partition.or(query.partition),
                headers: &p.req.headers,
            };
            link.send(&record, p.ack, base + i as u64, p.now)
        })
        .collect();
    link.after_send();
    let answer = ack::answer(p.ack, &fates);
    let mut pending = 0;
    let outcomes: Vec<Outcome> = fates
        .into_iter()
        .map(|f| match f {
            Fate::Awaiting => {
                pending += 1;
                Outcome::Pending
            }
            Fate::Settled => Outcome::Accepted,
            Fate::Refused(e) => Outcome::Failed(e),
        })
        .collect();
    if answer == Answer::Wait {
        let width = outcomes.len() as u64;
        let state = SlotState::AwaitingRest(Box::new(RestAwait { outcomes, pending }));
        push_slot_wide(h, p.keep_alive, state, width);
    } else {
        // Per record, failures in place: the dialect answers every record's fate itself.
        let mut out = Vec::new();
        let status = rest::write_offsets(&mut out, &outcomes, SETTLED, p.keep_alive);
        metrics.request(status);
        push_slot(h, p.keep_alive, SlotState::Ready(out));
    }
}

/// A raw produce request: one record, or one per line of a batch; sending stops at the
/// first refusal.
pub(super) fn raw_produce(h: &mut HttpState, link: &mut Link, p: &Produce<'_>, batch: bool) {
    let shared = link.shared.clone();
    let metrics = &shared.metrics;
    if !shared.sink.ready() {
        // No metadata: answer now rather than after message.timeout.ms in the queue.
        return ready_json(h, metrics, 503, KAFKA_UNAVAILABLE, p.keep_alive);
    }
    let lines: Vec<&[u8]>;
    let values: &[&[u8]] = if batch {
        lines = p
            .body
            .split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .filter(|l| !l.is_empty())
            .collect();
        &lines
    } else {
        // One record: no allocation for the list.
        std::slice::from_ref(&p.body)
    };
    if values.is_empty() {
        return ready_json(h, metrics, 400, "empty_batch", p.keep_alive);
    }
    let seq = h.next_seq;
    let mut sent = 0;
    let mut refused = None;
    let mut awaiting = false;
    for value in values {
        let record = Record {
            topic: p.topic,
            key: p.req.query.key.as_deref(),
            value,
            partition: p.req.query.partition,
            headers: &p.req.headers,
        };
        match link.send(&record, p.ack, seq, p.now) {
            Fate::Awaiting => {
                awaiting = true;
                sent += 1;
            }
            Fate::Settled => sent += 1,
            Fate::Refused(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    link.after_send();
    // The request's fates, summed up: whether any awaits, and the first refusal.
    let summary = [
        awaiting.then_some(Fate::Awaiting),
        refused.clone().map(Fate::Refused),
    ];
    match ack::answer(p.ack, summary.iter().flatten()) {
        Answer::Settled(word) => {
            let body = format!("{{\"status\":\"{word}\"}}");
            ready_json(h, metrics, SETTLED, &body, p.keep_alive)
        }
        Answer::Refused(e) => ready_json(h, metrics, e.status(), e.code(), p.keep_alive),
        Answer::Wait => {
            let wait = RawAwait {
                batch,
                expected: sent,
                delivered: 0,
                first: None,
                error: refused,
            };
            push_slot(h, p.keep_alive, SlotState::Awaiting(wait));
        }
    }
}

/// A delivery report for one of this session's waiting slots; the slot becomes ready once
/// its last report is in.
pub(super) fn on_delivery(h: &mut HttpState, metrics: &Metrics, d: Delivery) {
    let front = h.slots.front().map_or(h.next_seq, |s| s.seq);
    // Reports carry the low bits of the sequence number (`publish::token::SEQ_MASK`).
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
    let keep_alive = slot.keep_alive;
    let answer = match &mut slot.state {
        SlotState::AwaitingRest(r) => rest_delivered(r, (seq - slot.seq) as usize, d, keep_alive),
        SlotState::Awaiting(w) => raw_delivered(w, d, keep_alive),
        SlotState::Ready(_) => None,
    };
    if let Some((status, out)) = answer {
        metrics.request(status);
        slot.state = SlotState::Ready(out);
    }
}

/// Records the report of record `index` of a REST request; its answer once none pends.
fn rest_delivered(
    r: &mut RestAwait,
    index: usize,
    d: Delivery,
    keep_alive: bool,
) -> Option<(u16, Vec<u8>)> {
    let Some(o @ Outcome::Pending) = r.outcomes.get_mut(index) else {
        return None;
    };
    *o = match d.result {
        Ok((p, off)) => Outcome::Stored(p, off),
        Err(e) => Outcome::Failed(e),
    };
    r.pending -= 1;
    if r.pending > 0 {
        return None;
    }
    let mut out = Vec::new();
    let status = rest::write_offsets(&mut out, &r.outcomes, STORED, keep_alive);
    Some((status, out))
}

/// Records one report of a raw request; its answer once all are in: the first failure, or
/// `{"count":N}` (batch) / `{"partition":P,"offset":O}`.
fn raw_delivered(w: &mut RawAwait, d: Delivery, keep_alive: bool) -> Option<(u16, Vec<u8>)> {
    w.delivered += 1;
    match d.result {
        Ok(po) => {
            w.first.get_or_insert(po);
        }
        Err(e) => {
            w.error.get_or_insert(e);
        }
    }
    if w.delivered != w.expected {
        return None;
    }
    let mut out = Vec::new();
    if let Some(e) = w.error.take() {
        http::write_error(&mut out, e.status(), e.code(), keep_alive);
        return Some((e.status(), out));
    }
    let mut buf = [0; 128];
    let body = if w.batch {
        http::int_object(&mut buf, &[("count", w.expected as i64)])
    } else {
        let (p, o) = w.first.unwrap_or((-1, -1));
        http::int_object(&mut buf, &[("partition", i64::from(p)), ("offset", o)])
    };
    http::write_response(&mut out, STORED, "application/json", body, keep_alive, &[]);
    Some((STORED, out))
}
