//! `Conn`, the sans-IO connection state machine, driven by hand: bytes in, a fake clock,
//! deliveries completed by the test, bytes out. No sockets, no runtime.

mod support;

use std::time::Duration;

use common::policy::ack::AckMode;
use common::policy::config::Limits;
use common::publish::DeliveryError;
use support::*;

const MS: Duration = Duration::from_millis(1);
const SEC: Duration = Duration::from_secs(1);

fn one_response(h: &mut Harness) -> Resp {
    let mut rs = h.responses();
    assert_eq!(rs.len(), 1, "expected one response, got {rs:?}");
    rs.remove(0)
}

fn assert_error(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status, status, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.body_str(), format!("{{\"error\":\"{code}\"}}"));
}

// ---------------------------------------------------------------------------------------
// Publishing over HTTP
// ---------------------------------------------------------------------------------------

#[test]
fn post_ack_kafka_answers_only_after_delivery() {
    let mut h = Harness::with_ack(AckMode::Kafka);
    h.feed(&post_with(
        "/topics/orders?key=user%201&partition=3",
        &[("Kafka-Header-Trace", "abc"), ("kafka-header-x", "1")],
        b"line1\r\nline2\n",
    ));
    assert!(
        h.out().is_empty(),
        "no answer before the broker acknowledged"
    );
    assert_eq!(
        h.sink.records(),
        vec![Sent {
            topic: "orders".into(),
            key: Some(b"user 1".to_vec()),
            value: b"line1\r\nline2\n".to_vec(),
            partition: Some(3),
            headers: vec![
                ("Trace".into(), b"abc".to_vec()),
                ("x".into(), b"1".to_vec())
            ],
        }]
    );
    let (seq, has_tx) = h.sink.tickets()[0];
    assert!(has_tx, "ack=kafka tickets carry the reply channel");
    assert!(
        h.conn.deadline().is_none(),
        "no idle timer while a request awaits Kafka"
    );

    h.deliver(seq, Ok((3, 42)));
    let r = one_response(&mut h);
    assert_eq!(r.status, 200);
    assert_eq!(r.body_str(), r#"{"partition":3,"offset":42}"#);
    assert!(!r.closes());
    assert!(!h.conn.is_finished());
    assert!(h.conn.wants_read());
}

#[test]
fn ack_query_overrides_the_default() {
    let mut h = Harness::with_ack(AckMode::Kafka);
    h.feed(&post("/topics/t?ack=enqueue", b"v"));
    assert_eq!(one_response(&mut h).status, 202);
    let mut h = Harness::with_ack(AckMode::Enqueue);
    h.feed(&post("/topics/t?ack=kafka", b"v"));
    assert!(h.out().is_empty());
    assert!(h.sink.tickets()[0].1);
}

#[test]
fn ack_enqueue_answers_202_at_once() {
    let mut h = Harness::with_ack(AckMode::Enqueue);
    h.feed(&post("/topics/t", b"hello"));
    let r = one_response(&mut h);
    assert_eq!(r.status, 202);
    assert!(!r.closes());
    assert_eq!(h.sink.values(), vec![b"hello".to_vec()]);
    assert!(!h.sink.tickets()[0].1, "no reply channel when nobody waits");
}

#[test]
fn ack_none_answers_202_at_once_even_if_the_producer_refuses() {
    let mut h = Harness::with_ack(AckMode::None);
    h.feed(&post("/topics/t", b"a"));
    assert_eq!(one_response(&mut h).status, 202);
    assert_eq!(h.sink.len(), 1);
    assert!(!h.sink.tickets()[0].1);
    // Fire-and-forget: a refusal is only counted, the client already has its 202.
    h.sink.refuse(Some(DeliveryError::QueueFull));
    h.feed(&post("/topics/t", b"b"));
    assert_eq!(one_response(&mut h).status, 202);
}

#[test]
fn queue_full_is_503_with_retry_after() {
    for ack in [AckMode::Kafka, AckMode::Enqueue] {
        let mut h = Harness::with_ack(ack);
        h.sink.refuse(Some(DeliveryError::QueueFull));
        h.feed(&post("/topics/t", b"x"));
        let r = one_response(&mut h);
        assert_error(&r, 503, "queue_full");
        assert!(r.header("retry-after").is_some(), "{ack:?}: {r:?}");
        assert!(!r.closes(), "backpressure keeps the connection");
        // The next request goes through once the queue drains.
        h.sink.refuse(None);
        h.feed(&post("/topics/t?ack=enqueue", b"y"));
        assert_eq!(one_response(&mut h).status, 202);
    }
}

#[test]
fn failed_delivery_is_503_with_retry_after() {
    let mut h = Harness::with_ack(AckMode::Kafka);
    h.feed(&post("/topics/t", b"x"));
    h.deliver(h.sink.seq(0), Err(DeliveryError::Timeout));
    let r = one_response(&mut h);
    assert_error(&r, 503, "delivery_timeout");
    assert!(r.header("retry-after").is_some());
    assert!(!h.conn.is_finished());
}

#[test]
fn chunked_post_is_one_record() {
    let mut h = Harness::with_ack(AckMode::Enqueue);
    h.feed(b"POST /topics/t HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\n\r\n\r\n0\r\n\r\n");
    assert_eq!(one_response(&mut h).status, 202);
    assert_eq!(h.sink.values(), vec![b"abc\r\n".to_vec()]);
}

#[test]
fn expect_100_continue_is_answered_before_the_body() {
    let mut h = Harness::with_ack(AckMode::Enqueue);
    h.feed(b"POST /topics/t HTTP/1.1\r\nExpect: 100-continue\r\ncontent-length: 2\r\n\r\n");
    assert_eq!(h.out(), b"HTTP/1.1 100 Continue\r\n\r\n");
    h.feed(b"hi");
    assert_eq!(one_response(&mut h).status, 202);
    assert_eq!(h.sink.values(), vec![b"hi".to_vec()]);
}

#[test]
fn expect_flag_does_not_leak_into_the_next_request() {
    let mut cfg = config(AckMode::Enqueue);
    cfg.limits.max_pipeline = 1;
    let mut h = Harness::new(cfg);
    // The client did not wait for 100 (allowed): head and body in one read. The pipeline
    // (1) is full after it, so the decoder is not called again in this read.
    h.feed(b"POST /topics/t HTTP/1.1\r\nExpect: 100-continue\r\ncontent-length: 2\r\n\r\nhi");
    assert_eq!(statuses(&h.responses()), [202]);
    // The next request, without Expect, arrives in two reads.
    h.feed(b"POST /topics/t HTTP/1.1\r\ncontent-length: 2\r\n\r\n");
    let out = h.out();
    assert!(
        out.is_empty(),
        "nothing may be written for a request that did not ask for 100: {}",
        String::from_utf8_lossy(&out)
    );
}

#[test]
fn expect_100_behind_a_pending_request_is_answered_in_order() {
    let mut h = Harness::with_ack(AckMode::Kafka);
    let mut input = post("/topics/t", b"first");
    input.extend_from_slice(
        b"POST /topics/t HTTP/1.1\r\nExpect: 100-continue\r\ncontent-length: 2\r\n\r\n",
    );
    h.feed(&input);
    assert!(
        h.out().is_empty(),
        "the 100 must not overtake the first answer"
    );
    h.deliver(h.sink.seq(0), Ok((0, 0)));
    let out = h.out();
    let (first, rest) = parse_one_response(&out).expect("the first answer");
    assert_eq!(first.status, 200);
    // The client holds its body back until it sees the 100.
    assert_eq!(rest, b"HTTP/1.1 100 Continue\r\n\r\n");
}

// ---------------------------------------------------------------------------------------
// Pipelining
// ---------------------------------------------------------------------------------------

#[test]
fn pipelined_answers_keep_request_order() {
    let mut h = Harness::with_ack(AckMode::Kafka);
    let mut input = post("/topics/t", b"r0");
    input.extend(post("/topics/t", b"r1"));
    input.extend(post("/topics/t", b"r2"));
    h.feed(&input);
    assert_eq!(
        h.sink.values(),
        vec![b"r0".to_vec(), b"r1".to_vec(), b"r2".to_vec()]
    );
    let seqs: Vec<u64> = h.sink.tickets().iter().map(|t| t.0).collect();

    h.deliver(seqs[2], Ok((0, 12)));
    assert!(h.out().is_empty(), "r2 is ready but r0, r1 are not");
    h.deliver(seqs[1], Ok((0, 11)));
    assert!(h.out().is_empty(), "r1 is ready but r0 is not");
    h.deliver(seqs[0], Ok((0, 10)));
    let rs = h.responses();
    let bodies: Vec<&str> = rs.iter().map(Resp::body_str).collect();
    assert_eq!(
        bodies,
        [
            r#"{"partition":0,"offset":10}"#,
            r#"{"partition":0,"offset":11}"#,
            r#"{"partition":0,"offset":12}"#
        ]
    );
}

#[test]
fn pipelined_answers_are_released_as_the_front_completes() {
    let mut h = Harness::with_ack(AckMode::Kafka);
    let mut input = post("/topics/t", b"r0");
    input.extend(get("/healthz"));
    input.extend(post("/topics/t", b"r2"));
    input.extend(post("/topics/t?ack=enqueue", b"r3"));
    h.feed(&input);
    assert!(h.out().is_empty(), "everything waits for r0");
    let seqs: Vec<u64> = h.sink.tickets().iter().map(|t| t.0).collect();
    h.deliver(seqs[0], Ok((1, 7)));
    // r0 and the ready /healthz behind it go out; r2 blocks r3.
    assert_eq!(statuses(&h.responses()), [200, 200]);
    h.deliver(seqs[1], Ok((1, 8)));
    let rs = h.responses();
    assert_eq!(statuses(&rs), [200, 202]);
    assert_eq!(rs[0].body_str(), r#"{"partition":1,"offset":8}"#);
}

#[test]
fn batch_publishes_one_record_per_nonempty_line() {
    let mut h = Harness::with_ack(AckMode::Kafka);
    h.feed(&post_with(
        "/topics/logs/batch?key=k&partition=1",
        &[("kafka-header-src", "edge")],
        b"a\n\nb\r\n\r\nc\n",
    ));
    let recs = h.sink.records();
    assert_eq!(recs.len(), 3);
    let values: Vec<&[u8]> = recs.iter().map(|r| r.value.as_slice()).collect();
    assert_eq!(values, [&b"a"[..], b"b", b"c"]);
    for r in &recs {
        assert_eq!(r.topic, "logs");
        assert_eq!(r.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(r.partition, Some(1));
        assert_eq!(r.headers, vec![("src".to_string(), b"edge".to_vec())]);
    }
    let tickets = h.sink.tickets();
    for (i, (seq, has_tx)) in tickets.iter().enumerate() {
        assert!(*has_tx);
        h.deliver(*seq, Ok((1, i as i64)));
        if i < 2 {
            assert!(
                h.out().is_empty(),
                "no answer after {} of 3 deliveries",
                i + 1
            );
        }
    }
    let r = one_response(&mut h);
    assert_eq!(r.status, 200);
    assert_eq!(r.body_str(), r#"{"count":3}"#);
}

#[test]
fn batch_with_one_failed_delivery_is_503() {
    let mut h = Harness::with_ack(AckMode::Kafka);
    h.feed(&post("/topics/t/batch", b"a\nb\nc"));
    let tickets = h.sink.tickets();
    assert_eq!(tickets.len(), 3);
    h.deliver(tickets[0].0, Ok((0, 0)));
    h.deliver(
        tickets[1].0,
        Err(DeliveryError::Failed("broker down".into())),
    );
    assert!(h.out().is_empty(), "still waiting for the third record");
    h.deliver(tickets[2].0, Ok((0, 2)));
    let r = one_response(&mut h);
    assert_error(&r, 503, "delivery_failed");
    assert!(r.header("retry-after").is_some());
}

#[test]
fn empty_batch_is_400() {
    let mut h = Harness::with_ack(AckMode::Kafka);
    h.feed(&post("/topics/t/batch", b"\r\n\n"));
    assert_error(&one_response(&mut h), 400, "empty_batch");
    assert_eq!(h.sink.len(), 0);
    assert!(!h.conn.is_finished());
}

fn pipeline_limited(ack: AckMode, max_pipeline: usize) -> Harness {
    let mut cfg = config(ack);
    cfg.limits.max_pipeline = max_pipeline;
    Harness::new(cfg)
}

fn five_posts() -> Vec<u8> {
    (0..5)
        .flat_map(|i| post("/topics/t", format!("r{i}").as_bytes()))
        .collect()
}

#[test]
fn max_pipeline_stops_reading_then_resumes_from_the_buffer() {
    let mut h = pipeline_limited(AckMode::Kafka, 2);
    h.feed(&five_posts());
    assert_eq!(h.sink.len(), 2, "only max_pipeline requests are taken on");
    assert!(!h.conn.wants_read(), "two requests await: TCP backpressure");
    let mut answered = 0;
    let mut next = 0;
    while answered < 5 {
        assert!(next < h.sink.len(), "request {next} was never published");
        h.deliver(h.sink.seq(next), Ok((0, next as i64)));
        next += 1;
        let rs = h.responses();
        for r in &rs {
            assert_eq!(
                r.body_str(),
                format!("{{\"partition\":0,\"offset\":{answered}}}")
            );
            answered += 1;
        }
        assert!(h.sink.len() - answered <= 2, "never more than 2 awaiting");
    }
    assert_eq!(
        h.sink.values(),
        (0..5)
            .map(|i| format!("r{i}").into_bytes())
            .collect::<Vec<_>>()
    );
    assert!(h.conn.wants_read());
}

#[test]
fn max_pipeline_refills_when_answers_are_immediate() {
    // ack=enqueue answers at once, so the pipeline never holds more than one slot for long.
    let mut h = pipeline_limited(AckMode::Enqueue, 2);
    h.feed(&five_posts());
    let rs = h.responses();
    assert_eq!(
        statuses(&rs),
        [202; 5],
        "all five pipelined requests answered"
    );
    assert_eq!(h.sink.len(), 5);
}

#[test]
fn max_pipeline_refills_after_out_of_order_completion() {
    let mut h = pipeline_limited(AckMode::Kafka, 2);
    h.feed(&five_posts());
    assert_eq!(h.sink.len(), 2);
    h.deliver(h.sink.seq(1), Ok((0, 1)));
    h.deliver(h.sink.seq(0), Ok((0, 0)));
    assert_eq!(statuses(&h.responses()), [200, 200]);
    assert_eq!(
        h.sink.len(),
        4,
        "both free slots are refilled from the buffer"
    );
    // And nobody times out requests that arrived whole long ago.
    h.timer(REQUEST_TIMEOUT + SEC);
    assert!(h.responses().iter().all(|r| r.status != 408));
}

#[test]
fn requests_held_back_by_a_full_pipeline_do_not_time_out() {
    let mut h = pipeline_limited(AckMode::Kafka, 2);
    h.feed(&five_posts());
    assert_eq!(h.sink.len(), 2);
    // Kafka is slow (a delivery may take up to message.timeout.ms, 30 s by default); the
    // client sent all five requests whole at t=0: the gateway is late, not the client.
    h.timer(REQUEST_TIMEOUT + SEC);
    h.deliver(h.sink.seq(0), Ok((0, 0)));
    h.deliver(h.sink.seq(1), Ok((0, 1)));
    let rs = h.responses();
    assert_eq!(
        statuses(&rs),
        [200, 200],
        "no 408 for requests received whole"
    );
    assert!(!h.conn.is_finished());
    // Each answer frees one pipeline slot: requests three and four are taken on.
    assert_eq!(
        h.sink.len(),
        4,
        "held-back requests are taken on as answers go out"
    );
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// A request the decoder rejects: one error answer, `connection: close`, then finished.
fn assert_fatal(input: &[u8], status: u16, code: &str) {
    let mut h = Harness::with_ack(AckMode::Enqueue);
    h.feed(input);
    let r = one_response(&mut h);
    assert_error(&r, status, code);
    assert!(r.closes(), "{status} must close: {r:?}");
    assert!(h.conn.is_finished(), "{status}: finished after the answer");
    assert!(!h.conn.wants_read());
    assert_eq!(h.sink.len(), 0);
}

#[test]
fn malformed_request_is_400_and_closes() {
    assert_fatal(b"GARBAGE\r\n\r\n", 400, "malformed_request");
    assert_fatal(
        b"POST /topics/t HTTP/1.1\r\nbad header\r\n\r\n",
        400,
        "malformed_request",
    );
    assert_fatal(
        b"POST /topics/t HTTP/1.1\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n",
        400,
        "conflicting_length",
    );
    assert_fatal(
        b"POST /topics/t HTTP/1.1\r\ncontent-length: x\r\n\r\n",
        400,
        "invalid_content_length",
    );
    assert_fatal(
        b"POST /topics/t HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
        400,
        "invalid_chunk_size",
    );
}

#[test]
fn missing_length_is_411_and_closes() {
    assert_fatal(b"POST /topics/t HTTP/1.1\r\n\r\n", 411, "length_required");
}

#[test]
fn body_over_max_body_is_413_and_closes() {
    let over = Limits::default().max_body + 1;
    let head = format!("POST /topics/t HTTP/1.1\r\ncontent-length: {over}\r\n\r\n");
    assert_fatal(head.as_bytes(), 413, "payload_too_large");
    // Chunked: detected at the chunk that crosses the limit.
    let chunked = format!(
        "POST /topics/t HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n",
        over
    );
    assert_fatal(chunked.as_bytes(), 413, "payload_too_large");
}

#[test]
fn head_over_the_limit_is_431_and_closes() {
    let mut big = b"GET /healthz HTTP/1.1\r\nx-big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', Limits::default().max_head));
    big.extend_from_slice(b"\r\n\r\n");
    assert_fatal(&big, 431, "headers_too_large");
    // Without the end of the head in sight, too.
    assert_fatal(&big[..big.len() - 4], 431, "headers_too_large");
    let mut many = b"GET /healthz HTTP/1.1\r\n".to_vec();
    for i in 0..=Limits::default().max_headers {
        many.extend_from_slice(format!("h{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert_fatal(&many, 431, "headers_too_large");
}

#[test]
fn not_found_keeps_the_connection() {
    let mut h = Harness::with_ack(AckMode::Enqueue);
    let mut input = get("/nope");
    input.extend(post("/topics/a/b/c", b"body is consumed"));
    input.extend(get("/healthz"));
    h.feed(&input);
    let rs = h.responses();
    assert_eq!(statuses(&rs), [404, 404, 200]);
    assert_error(&rs[0], 404, "not_found");
    assert_error(&rs[1], 404, "not_found");
    assert!(!rs[0].closes() && !rs[1].closes());
    assert!(!h.conn.is_finished());
    assert_eq!(h.sink.len(), 0);
}

#[test]
fn wrong_method_is_405_with_allow_and_keeps_the_connection() {
    let mut h = Harness::with_ack(AckMode::Enqueue);
    let mut input = get("/topics/t");
    input.extend(post("/healthz", b"xyz"));
    input.extend(post("/topics/t", b"ok"));
    h.feed(&input);
    let rs = h.responses();
    assert_eq!(statuses(&rs), [405, 405, 202]);
    assert_error(&rs[0], 405, "method_not_allowed");
    assert_eq!(rs[0].header("allow"), Some("POST"));
    assert_eq!(rs[1].header("allow"), Some("GET"));
    assert!(!rs[0].closes() && !rs[1].closes());
    assert_eq!(h.sink.values(), vec![b"ok".to_vec()]);
}

#[test]
fn bad_query_or_topic_is_400_and_keeps_the_connection() {
    let mut h = Harness::with_ack(AckMode::Enqueue);
    let mut input = post("/topics/t?ack=maybe", b"x");
    input.extend(post("/topics/t?partition=-1", b"x"));
    input.extend(post("/topics/b%2Fc", b"x"));
    input.extend(post("/topics/t", b"ok"));
    h.feed(&input);
    let rs = h.responses();
    assert_eq!(statuses(&rs), [400, 400, 400, 202]);
    assert_error(&rs[0], 400, "invalid_ack");
    assert_error(&rs[1], 400, "invalid_partition");
    assert_error(&rs[2], 400, "invalid_topic");
    assert_eq!(h.sink.len(), 1);
}

#[test]
fn incomplete_request_is_408_after_request_timeout() {
    for partial in [
        &b"POST /topics/t HTTP/1.1\r\ncontent-length: 10\r\n\r\nabc"[..],
        b"POST /topics/t HTTP/1.1\r\nhost",
    ] {
        let mut h = Harness::with_ack(AckMode::Enqueue);
        h.feed(partial);
        assert_eq!(h.conn.deadline(), Some(h.at(REQUEST_TIMEOUT)));
        h.timer(REQUEST_TIMEOUT - MS);
        assert!(h.out().is_empty());
        h.timer(REQUEST_TIMEOUT);
        let r = one_response(&mut h);
        assert_error(&r, 408, "request_timeout");
        assert!(r.closes());
        assert!(h.conn.is_finished());
        assert_eq!(h.sink.len(), 0);
    }
}

#[test]
fn trickling_request_still_times_out_from_its_first_byte() {
    let mut h = Harness::with_ack(AckMode::Enqueue);
    let req = post("/topics/t", &[b'x'; 200]);
    // One byte every 100 ms: always active, never complete within 10 s.
    for (i, b) in req.iter().take(100).enumerate() {
        h.feed_at(&[*b], Duration::from_millis(100 * i as u64));
    }
    assert!(h.out().is_empty());
    h.timer(REQUEST_TIMEOUT);
    assert_eq!(one_response(&mut h).status, 408);
    assert!(h.conn.is_finished());
}

#[test]
fn request_timer_restarts_for_each_request() {
    let mut h = Harness::with_ack(AckMode::Enqueue);
    let r1 = post("/topics/t", b"one");
    let r2 = post("/topics/t", b"two");
    // r1 starts at 0 s; at 9 s its rest arrives with the first half of r2.
    h.feed_at(&r1[..10], Duration::ZERO);
    let mut chunk = r1[10..].to_vec();
    chunk.extend_from_slice(&r2[..10]);
    h.feed_at(&chunk, 9 * SEC);
    assert_eq!(statuses(&h.responses()), [202]);
    // r2 started at 9 s: at 11 s it is 2 s old, far from the 10 s limit.
    assert_eq!(h.conn.deadline(), Some(h.at(9 * SEC + REQUEST_TIMEOUT)));
    h.timer(11 * SEC);
    assert!(h.out().is_empty(), "r2 timed out 2 s after it started");
    h.feed_at(&r2[10..], 12 * SEC);
    assert_eq!(statuses(&h.responses()), [202]);
}

// ---------------------------------------------------------------------------------------
// Connection life
// ---------------------------------------------------------------------------------------

#[test]
fn idle_keep_alive_connection_closes_quietly() {
    let mut h = Harness::with_ack(AckMode::Enqueue);
    // Fresh connection: idle from the start.
    assert_eq!(h.conn.deadline(), Some(h.at(IDLE)));
    h.feed_at(&post("/topics/t", b"x"), 5 * SEC);
    assert_eq!(one_response(&mut h).status, 202);
    assert_eq!(h.conn.deadline(), Some(h.at(5 * SEC + IDLE)));
    h.timer(5 * SEC + IDLE - MS);
    assert!(!h.conn.is_finished());
    h.timer(5 * SEC + IDLE);
    assert!(h.out().is_empty(), "idle close writes nothing");
    assert!(h.conn.is_finished());
    assert!(!h.conn.wants_read());
    assert_eq!(h.conn.deadline(), None);
}

#[test]
fn timer_before_the_deadline_is_a_no_op() {
    let mut h = Harness::with_ack(AckMode::Enqueue);
    h.timer(SEC);
    h.timer(IDLE - MS);
    assert!(h.out().is_empty());
    assert!(!h.conn.is_finished());
    assert!(h.conn.wants_read());
}

#[test]
fn connection_close_request_is_answered_then_closed() {
    let mut h = Harness::with_ack(AckMode::Kafka);
    let mut input = post_with("/topics/t", &[("Connection", "close")], b"last");
    input.extend(get("/healthz")); // after close: never parsed
    h.feed(&input);
    assert!(!h.conn.wants_read());
    assert!(!h.conn.is_finished());
    h.deliver(h.sink.seq(0), Ok((0, 1)));
    let r = one_response(&mut h);
    assert_eq!(r.status, 200);
    assert!(r.closes());
    assert!(h.conn.is_finished());
    assert_eq!(h.sink.len(), 1);
}

#[test]
fn http10_without_keep_alive_closes() {
    let mut h = Harness::with_ack(AckMode::Enqueue);
    h.feed(b"GET /healthz HTTP/1.0\r\n\r\n");
    let r = one_response(&mut h);
    assert_eq!(r.status, 200);
    assert!(r.closes());
    assert!(h.conn.is_finished());
}

#[test]
fn eof_after_answers_finishes_and_drops_a_partial_request() {
    let mut h = Harness::with_ack(AckMode::Kafka);
    let mut input = post("/topics/t", b"a");
    input.extend_from_slice(b"POST /topics/t HTTP/1.1\r\ncontent-le");
    h.feed(&input);
    h.conn.on_eof(h.start);
    assert!(!h.conn.is_finished(), "the answered request is still owed");
    assert!(!h.conn.wants_read());
    h.deliver(h.sink.seq(0), Ok((0, 0)));
    assert_eq!(statuses(&h.responses()), [200]);
    assert!(h.conn.is_finished());
    assert_eq!(h.sink.len(), 1);
}

#[test]
fn shutdown_finishes_the_awaited_request_and_parses_nothing_new() {
    let mut h = Harness::with_ack(AckMode::Kafka);
    h.feed(&post("/topics/t", b"a"));
    h.conn.on_shutdown(h.start);
    assert!(!h.conn.wants_read());
    assert!(!h.conn.is_finished());
    h.feed(&post("/topics/t", b"b"));
    assert_eq!(h.sink.len(), 1, "nothing new after shutdown");
    h.deliver(h.sink.seq(0), Ok((0, 5)));
    let r = one_response(&mut h);
    assert_eq!(r.body_str(), r#"{"partition":0,"offset":5}"#);
    assert!(r.closes(), "the last answer before the close says so");
    assert!(h.conn.is_finished());
}

#[test]
fn shutdown_closes_after_the_last_of_pipelined_answers_only() {
    let mut h = Harness::with_ack(AckMode::Kafka);
    let mut input = post("/topics/t", b"a");
    input.extend(get("/nope"));
    input.extend(post("/topics/t", b"b"));
    h.feed(&input);
    h.conn.on_shutdown(h.start);
    h.deliver(h.sink.seq(0), Ok((0, 1)));
    h.deliver(h.sink.seq(1), Ok((0, 2)));
    let rs = h.responses();
    assert_eq!(statuses(&rs), [200, 404, 200]);
    let closes: Vec<bool> = rs.iter().map(|r| r.closes()).collect();
    assert_eq!(closes, [false, false, true]);
    assert!(h.conn.is_finished());
}

#[test]
fn http10_keep_alive_is_announced_and_kept() {
    let mut h = Harness::with_ack(AckMode::Enqueue);
    let req = b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    for _ in 0..2 {
        h.feed(req);
        let r = one_response(&mut h);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("connection"), Some("keep-alive"));
        assert!(!h.conn.is_finished());
    }
    // An HTTP/1.1 request on the same connection needs no announcement.
    h.feed(&get("/healthz"));
    assert_eq!(one_response(&mut h).header("connection"), None);
}

#[test]
fn shutdown_of_an_idle_connection_finishes_at_once() {
    let mut h = Harness::with_ack(AckMode::Kafka);
    h.conn.on_shutdown(h.start);
    assert!(h.out().is_empty());
    assert!(h.conn.is_finished());
}

#[test]
fn late_or_unknown_deliveries_are_ignored() {
    let mut h = Harness::with_ack(AckMode::Kafka);
    h.feed(&post("/topics/t", b"a"));
    let seq = h.sink.seq(0);
    h.deliver(seq + 100, Ok((0, 0)));
    assert!(h.out().is_empty());
    h.deliver(seq, Ok((0, 0)));
    assert_eq!(statuses(&h.responses()), [200]);
    h.deliver(seq, Ok((0, 0)));
    assert!(h.out().is_empty());
}

// ---------------------------------------------------------------------------------------
// Health, readiness, metrics
// ---------------------------------------------------------------------------------------

#[test]
fn healthz_readyz_metrics() {
    let mut h = Harness::with_ack(AckMode::Enqueue);
    h.feed(&get("/healthz"));
    let r = one_response(&mut h);
    assert_eq!(r.status, 200);
    h.feed(&get("/readyz"));
    assert_eq!(one_response(&mut h).status, 200);
    h.feed(&get("/metrics"));
    let r = one_response(&mut h);
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    let text = r.body_str();
    assert!(
        text.contains("gateway_http_requests_total{code=\"200\"} 2"),
        "{text}"
    );
    assert!(text.contains("gateway_info{runtime=\"test\"} 1"));
    assert!(!h.conn.is_finished());
}

#[test]
fn readyz_with_the_null_sink_is_200() {
    let metrics = std::sync::Arc::new(common::observe::metrics::Metrics::default());
    let sink = std::sync::Arc::new(common::publish::NullSink::new(metrics));
    let shared = shared_with(config(AckMode::Kafka), sink);
    let start = std::time::Instant::now();
    let mailbox = common::publish::dispatch::router().new_mailbox();
    let port = mailbox.register();
    let mut conn = common::conn::Conn::new(shared, port.reply(), start);
    conn.on_data(&get("/readyz"), start);
    let out = conn.take_output().expect("an answer");
    assert_eq!(statuses(&parse_responses(&out)), [200]);
    // The null sink acknowledges at once, through the connection's mailbox slot.
    conn.on_data(&post("/topics/t?partition=2", b"x"), start);
    assert!(conn.take_output().is_none());
    let mut got = Vec::new();
    port.take(&mut got);
    let d = got.pop().expect("the null sink delivered");
    assert!(got.is_empty());
    conn.on_delivery(d, start);
    let out = conn.take_output().expect("an answer");
    let rs = parse_responses(&out);
    assert_eq!(rs[0].body_str(), r#"{"partition":2,"offset":0}"#);
}

#[test]
fn readyz_is_503_while_kafka_is_unreachable() {
    let mut h = Harness::with_ack(AckMode::Enqueue);
    h.sink.set_ready(false);
    h.feed(&get("/readyz"));
    let r = one_response(&mut h);
    assert_error(&r, 503, "kafka_unreachable");
    assert!(r.header("retry-after").is_some());
    h.feed(&get("/healthz"));
    assert_eq!(one_response(&mut h).status, 200, "alive though not ready");
}
