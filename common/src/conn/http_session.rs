//! The HTTP/1.1 session of a connection: request decoding and routing, the ordered
//! answer slots of pipelined requests, raw and REST v2 produce requests and their answers.

use super::*;

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

pub(super) struct RestAwait {
    pub(super) outcomes: Vec<Outcome>,
    pub(super) pending: usize,
}

impl Conn {
    /// Decodes and handles pipelined requests. Returns an accepted WebSocket upgrade.
    pub(super) fn process_http(
        &mut self,
        now: Instant,
        fresh: &[u8],
    ) -> Option<(String, Request, Vec<u8>)> {
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

pub(super) fn rest_error(h: &mut HttpState, shared: &Shared, e: &RestError, keep_alive: bool) {
    let mut out = Vec::new();
    rest::write_error(&mut out, e, keep_alive);
    shared.metrics.request(e.status);
    push_slot(h, keep_alive, SlotState::Ready(out));
}

pub(super) fn handle_request(
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

pub(super) fn answer_request(
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
                let seq = base + i as u64;
                outcomes.push(
                    match ack::send(shared, &record, ack, reply, seq, now, routed) {
                        Fate::Awaiting => {
                            pending += 1;
                            Outcome::Pending
                        }
                        Fate::Settled => Outcome::Accepted,
                        Fate::Refused(e) => Outcome::Failed(e),
                    },
                );
            }
            ack::after_send(shared);
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
                match ack::send(shared, &record, ack, reply, seq, now, routed) {
                    Fate::Awaiting | Fate::Settled => sent += 1,
                    Fate::Refused(e) => {
                        error = Some(e);
                        break;
                    }
                }
            }
            ack::after_send(shared);
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
