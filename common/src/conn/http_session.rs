//! The HTTP/1.1 session of a connection: request decoding and routing, the answers of
//! pipelined requests in order, timeouts. Produce requests go to `http_produce`.

use std::time::Instant;

use super::http_produce::{self, Produce};
use super::http_slots::{push_error, push_slot, ready_json, rest_error, HttpState, SlotState};
use super::shared::Link;
use crate::policy::ack::AckMode;
use crate::policy::config::Fault;
use crate::proto::http::{self, HttpError, Request, Route};
use crate::proto::rest::RestError;

/// An accepted WebSocket upgrade: the `Sec-WebSocket-Accept` value, the request, the bytes
/// after its head (the first frames), and its ack mode.
pub(super) type Upgrade = (String, Request, Vec<u8>, AckMode);

/// What the connection's own state says about parsing more.
#[derive(Clone, Copy)]
pub(super) struct ConnFlags {
    pub(super) done: bool,
    pub(super) shutting_down: bool,
    pub(super) peer_eof: bool,
}

/// Decodes and handles pipelined requests, from the buffered input and the bytes just read
/// (`fresh`). Returns an accepted WebSocket upgrade.
pub(super) fn process_http(
    h: &mut HttpState,
    link: &mut Link,
    flags: ConnFlags,
    now: Instant,
    fresh: &[u8],
) -> Option<Upgrade> {
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
    let (pos, completed, upgrade) = decode_requests(h, link, flags, now, src);
    if direct {
        buffered.extend_from_slice(&fresh[pos..]);
    } else {
        buffered.drain(..pos);
    }
    h.input = buffered;
    let max_pipeline = link.shared.config.limits.max_pipeline;
    let held_back = h.slots.len() >= max_pipeline;
    if flags.peer_eof && !held_back && upgrade.is_none() {
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

/// The decoding loop over `src`: returns the bytes consumed, whether a request completed,
/// and an accepted upgrade.
fn decode_requests(
    h: &mut HttpState,
    link: &mut Link,
    flags: ConnFlags,
    now: Instant,
    src: &[u8],
) -> (usize, bool, Option<Upgrade>) {
    let shared = link.shared.clone();
    let max_pipeline = shared.config.limits.max_pipeline;
    let mut pos = 0;
    let mut completed = false;
    while !h.close_after && !flags.done && h.slots.len() < max_pipeline {
        let at = pos;
        match h.decoder.decode(&src[at..]) {
            Err(e) => {
                h.current = ("other", now);
                shared.metrics.request(e.status());
                push_error(h, &e, false);
                h.close_after = true;
                pos = src.len();
            }
            Ok((n, None)) => {
                pos += n;
                if h.decoder.take_expect_continue() {
                    // An interim answer, in order behind the answers still pending.
                    let interim = b"HTTP/1.1 100 Continue\r\n\r\n".to_vec();
                    push_slot(h, true, SlotState::Ready(interim));
                }
                break;
            }
            Ok((n, Some(req))) => {
                pos += n;
                completed = true;
                h.current = (req.route_label, now);
                // The one place a request's ack mode is settled: asked for, or the default.
                let ack = req.query.ack.unwrap_or(shared.config.default_ack);
                if let Ok(Route::WebSocket { accept, .. }) = &req.route {
                    if h.slots.is_empty() && !flags.shutting_down {
                        let accept = accept.clone();
                        let leftover = src[pos..].to_vec();
                        return (src.len(), completed, Some((accept, req, leftover, ack)));
                    }
                    let e = HttpError::BadRequest("upgrade_while_pipelining");
                    shared.metrics.request(e.status());
                    push_error(h, &e, false);
                    h.close_after = true;
                    continue;
                }
                handle_request(h, link, req, ack, &src[at..], now);
            }
        }
    }
    (pos, completed, None)
}

fn handle_request(
    h: &mut HttpState,
    link: &mut Link,
    req: Request,
    ack: AckMode,
    input: &[u8],
    now: Instant,
) {
    let first = h.slots.len();
    let http10 = req.http10;
    answer_request(h, link, req, ack, input, now);
    if http10 {
        for slot in h.slots.iter_mut().skip(first) {
            slot.announce_keep_alive = true;
        }
    }
}

fn answer_request(
    h: &mut HttpState,
    link: &mut Link,
    req: Request,
    ack: AckMode,
    input: &[u8],
    now: Instant,
) {
    let shared = link.shared.clone();
    let metrics = &shared.metrics;
    // The body as decoded: in `input` (the read buffer) when it arrived whole.
    let body: &[u8] = match &req.body_at {
        Some(r) => &input[r.clone()],
        None => &req.body,
    };
    let keep_alive = req.keep_alive && !shared.config.has_fault(Fault::OneRequestPerConnection);
    if !keep_alive {
        h.close_after = true;
    }
    let route = match &req.route {
        Ok(r) => r,
        Err(e) if req.dialect.is_rest() && !matches!(e, HttpError::MethodNotAllowed(_)) => {
            let e = RestError::from_code(e.status(), e.code());
            return rest_error(h, metrics, &e, keep_alive);
        }
        Err(e) => {
            metrics.request(e.status());
            return push_error(h, e, keep_alive);
        }
    };
    match route {
        Route::Healthz => ready_json(h, metrics, 200, "{\"status\":\"ok\"}", keep_alive),
        Route::Readyz if shared.sink.ready() => {
            ready_json(h, metrics, 200, "{\"status\":\"ready\"}", keep_alive)
        }
        Route::Readyz => ready_json(h, metrics, 503, "kafka_unreachable", keep_alive),
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
            metrics.request(200);
            push_slot(h, keep_alive, SlotState::Ready(out));
        }
        Route::WebSocket { .. } => unreachable!("upgrades are handled by the caller"),
        Route::Publish { topic, batch } => {
            let p = Produce {
                req: &req,
                topic,
                body,
                ack,
                keep_alive,
                now,
            };
            if req.dialect.is_rest() {
                http_produce::rest_produce(h, link, &p);
            } else {
                http_produce::raw_produce(h, link, &p, *batch);
            }
        }
    }
}

/// Moves the ready answers at the front of the pipeline to `output`, in order. Returns
/// (whether any was moved, whether the connection is done).
pub(super) fn flush_ready(
    h: &mut HttpState,
    link: &Link,
    output: &mut Vec<u8>,
    now: Instant,
) -> (bool, bool) {
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
            link.shared.metrics.request_duration(
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
        output.extend_from_slice(&bytes);
        released = true;
        if !slot.keep_alive {
            h.slots.clear();
            return (released, true);
        }
    }
    (released, h.close_after && h.slots.is_empty())
}

/// The request timer fired: a request that never got its last byte is answered 408.
/// Returns false when there was none (an idle keep-alive connection: close quietly).
pub(super) fn on_request_timeout(h: &mut HttpState, link: &Link) -> bool {
    let Some(started) = h.request_started.take() else {
        return false;
    };
    // Timed from the request's first byte: it never got a last one.
    h.current = ("other", started);
    h.input.clear();
    let e = HttpError::Timeout;
    link.shared.metrics.request(e.status());
    push_error(h, &e, false);
    h.close_after = true;
    true
}
