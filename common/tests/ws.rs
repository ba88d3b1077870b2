//! `Conn` after a WebSocket upgrade, driven by hand: frames in, a fake clock, deliveries
//! completed by the test, acks, nacks and close frames out. No sockets, no runtime.

mod support;

use std::time::Duration;

use common::policy::ack::AckMode;
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
// WebSocket
// ---------------------------------------------------------------------------------------

fn ws(ack: AckMode) -> Harness {
    let mut h = Harness::with_ack(ack);
    h.upgrade("/ws/events?key=dev%2F1");
    h
}

fn ws_with(cfg: common::policy::config::Config) -> Harness {
    let mut h = Harness::new(cfg);
    h.upgrade("/ws/events");
    h
}

#[test]
fn ws_upgrade_answers_101_with_the_accept_key() {
    let mut h = Harness::with_ack(AckMode::Kafka);
    h.feed(&upgrade_request("/ws/t"));
    let rs = h.responses();
    assert_eq!(statuses(&rs), [101]);
    assert_eq!(rs[0].header("sec-websocket-accept"), Some(WS_ACCEPT));
    assert!(rs[0]
        .header("upgrade")
        .unwrap()
        .eq_ignore_ascii_case("websocket"));
    assert!(rs[0]
        .header("connection")
        .unwrap()
        .eq_ignore_ascii_case("upgrade"));
    assert!(h.conn.is_websocket());
    assert!(h.conn.wants_read());
    assert_eq!(h.conn.deadline(), Some(h.at(IDLE / 2)));
}

#[test]
fn ws_upgrade_without_the_headers_is_400() {
    let mut h = Harness::with_ack(AckMode::Kafka);
    h.feed(&get("/ws/t"));
    assert_error(&one_response(&mut h), 400, "websocket_upgrade_required");
    assert!(!h.conn.is_websocket());
}

#[test]
fn ws_upgrade_behind_a_pending_request_is_refused() {
    let mut h = Harness::with_ack(AckMode::Kafka);
    let mut input = post("/topics/t", b"a");
    input.extend(upgrade_request("/ws/t"));
    h.feed(&input);
    h.deliver(h.sink.seq(0), Ok((0, 0)));
    let rs = h.responses();
    assert_eq!(statuses(&rs), [200, 400]);
    assert_error(&rs[1], 400, "upgrade_while_pipelining");
    assert!(h.conn.is_finished());
    assert!(!h.conn.is_websocket());
}

#[test]
fn ws_messages_become_records() {
    let mut h = ws(AckMode::Kafka);
    let mut input = binary(b"\x00\x01bin");
    input.extend(text("héllo"));
    // A fragmented message is one record.
    input.extend(client_frame(false, OP_TEXT, b"frag"));
    input.extend(client_frame(true, OP_CONT, b"ment"));
    h.feed(&input);
    let recs = h.sink.records();
    let values: Vec<&[u8]> = recs.iter().map(|r| r.value.as_slice()).collect();
    assert_eq!(
        values,
        [&b"\x00\x01bin"[..], "héllo".as_bytes(), b"fragment"]
    );
    for r in &recs {
        assert_eq!(r.topic, "events");
        assert_eq!(r.key.as_deref(), Some(&b"dev/1"[..]));
        assert_eq!(r.partition, None);
        assert!(r.headers.is_empty());
    }
    // Messages are numbered 1, 2, 3 per connection.
    assert_eq!(h.sink.tickets(), [(1, true), (2, true), (3, true)]);
    assert!(h.out().is_empty(), "nothing resolved yet");
}

#[test]
fn ws_out_of_order_deliveries_give_one_cumulative_ack() {
    let mut h = ws(AckMode::Kafka);
    let input: Vec<u8> = (0..4).flat_map(|i| binary(&[i])).collect();
    h.feed(&input);
    assert_eq!(h.sink.len(), 4);
    h.deliver(3, Ok((0, 3)));
    h.deliver(2, Ok((0, 2)));
    assert!(
        h.out().is_empty(),
        "message 1 is unresolved: nothing to ack"
    );
    h.deliver(1, Ok((0, 1)));
    let frames = h.frames();
    assert_eq!(texts(&frames), [r#"{"ack":3}"#], "one frame covers 1..=3");
    h.deliver(4, Ok((0, 4)));
    assert_eq!(texts(&h.frames()), [r#"{"ack":4}"#]);
}

#[test]
fn ws_in_order_deliveries_processed_together_give_one_ack() {
    let mut h = ws(AckMode::Kafka);
    let input: Vec<u8> = (0..3).flat_map(|i| binary(&[i])).collect();
    h.feed(&input);
    // The driver hands every queued delivery over before it takes the output.
    for seq in 1..=3 {
        h.deliver(seq, Ok((0, seq as i64)));
    }
    assert_eq!(texts(&h.frames()), [r#"{"ack":3}"#]);
}

#[test]
fn ws_failed_delivery_is_nacked_before_the_covering_ack() {
    let mut h = ws(AckMode::Kafka);
    let input: Vec<u8> = (0..3).flat_map(|i| binary(&[i])).collect();
    h.feed(&input);
    h.deliver(2, Err(DeliveryError::Timeout));
    assert_eq!(
        texts(&h.frames()),
        [r#"{"nack":2,"error":"delivery_timeout"}"#],
        "the nack goes out at once; no ack yet, 1 is unresolved"
    );
    h.deliver(1, Ok((0, 1)));
    assert_eq!(texts(&h.frames()), [r#"{"ack":2}"#]);
    h.deliver(3, Err(DeliveryError::QueueFull));
    assert_eq!(
        texts(&h.frames()),
        [r#"{"nack":3,"error":"queue_full"}"#, r#"{"ack":3}"#]
    );
}

#[test]
fn ws_refused_send_is_nacked_then_acked() {
    let mut h = ws(AckMode::Kafka);
    h.sink.refuse(Some(DeliveryError::QueueFull));
    h.feed(&binary(b"x"));
    assert_eq!(
        texts(&h.frames()),
        [r#"{"nack":1,"error":"queue_full"}"#, r#"{"ack":1}"#]
    );
    assert!(!h.conn.is_finished());
}

#[test]
fn ws_ack_enqueue_and_none_ack_at_once() {
    for (ack, query) in [(AckMode::Enqueue, "enqueue"), (AckMode::None, "none")] {
        let mut h = Harness::with_ack(AckMode::Kafka);
        h.upgrade(&format!("/ws/t?ack={query}"));
        let input: Vec<u8> = (0..3).flat_map(|i| binary(&[i])).collect();
        h.feed(&input);
        assert_eq!(texts(&h.frames()), [r#"{"ack":3}"#], "{ack:?}");
        assert!(h.sink.tickets().iter().all(|t| !t.1));
    }
}

#[test]
fn ws_max_inflight_stops_reading() {
    let mut cfg = config(AckMode::Kafka);
    cfg.limits.ws_max_inflight = 4;
    let mut h = ws_with(cfg);
    let input: Vec<u8> = (1..=5).flat_map(|i| binary(&[i])).collect();
    h.feed(&input);
    assert_eq!(h.sink.len(), 4, "the 5th message waits in the buffer");
    assert!(!h.conn.wants_read());
    // Resolving a later message does not open the window: 1 is still unresolved.
    h.deliver(3, Ok((0, 3)));
    assert_eq!(h.sink.len(), 4);
    assert!(!h.conn.wants_read());
    assert!(h.out().is_empty());
}

#[test]
fn ws_max_inflight_resumes_from_the_buffer_when_one_resolves() {
    let mut cfg = config(AckMode::Kafka);
    cfg.limits.ws_max_inflight = 4;
    let mut h = ws_with(cfg);
    let input: Vec<u8> = (1..=5).flat_map(|i| binary(&[i])).collect();
    h.feed(&input);
    assert_eq!(h.sink.len(), 4);
    h.deliver(1, Ok((0, 1)));
    assert_eq!(texts(&h.frames()), [r#"{"ack":1}"#]);
    // The client sent everything it had; nothing else will wake the connection.
    assert_eq!(h.sink.len(), 5, "the buffered 5th message is published");
    assert_eq!(h.sink.values()[4], [5]);
}

#[test]
fn ws_unread_output_stops_reading() {
    // A client that floods pings and never reads: the driver's writer is stuck in
    // write_all, its reader keeps calling on_data while wants_read() says so.
    let mut h = ws(AckMode::Enqueue);
    let chunk = client_frame(true, OP_PING, &[b'p'; 125]).repeat(120); // ~16 KiB a read
    let mut fed = 0;
    while h.conn.wants_read() && fed < 8 << 20 {
        h.feed(&chunk);
        fed += chunk.len();
    }
    assert!(
        fed <= 512 << 10,
        "still reading after {fed} bytes with ~{fed} bytes of pongs unwritten"
    );
}

#[test]
fn ws_oversized_message_closes_1009() {
    let mut cfg = config(AckMode::Kafka);
    cfg.limits.max_body = 100;
    let mut h = ws_with(cfg);
    h.feed(&binary(&[7u8; 101]));
    let frames = h.frames();
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].close_code(), 1009);
    assert!(h.conn.is_finished());
    assert_eq!(h.sink.len(), 0);
}

#[test]
fn ws_oversized_fragmented_message_closes_1009() {
    let mut cfg = config(AckMode::Kafka);
    cfg.limits.max_body = 100;
    let mut h = ws_with(cfg);
    let mut input = client_frame(false, OP_BINARY, &[1u8; 60]);
    input.extend(client_frame(true, OP_CONT, &[2u8; 60]));
    h.feed(&input);
    assert_eq!(h.frames().last().unwrap().close_code(), 1009);
    assert!(h.conn.is_finished());
    assert_eq!(h.sink.len(), 0);
}

#[test]
fn ws_invalid_utf8_text_closes_1007() {
    let mut h = ws(AckMode::Kafka);
    h.feed(&client_frame(true, OP_TEXT, &[b'o', b'k', 0xff, 0xfe]));
    let frames = h.frames();
    assert_eq!(frames.last().unwrap().close_code(), 1007);
    assert!(h.conn.is_finished());
    assert_eq!(h.sink.len(), 0);
}

#[test]
fn ws_unmasked_frame_closes_1002() {
    let mut h = ws(AckMode::Kafka);
    h.feed(&unmasked_frame(true, OP_BINARY, b"x"));
    assert_eq!(h.frames().last().unwrap().close_code(), 1002);
    assert!(h.conn.is_finished());
    assert_eq!(h.sink.len(), 0);
}

#[test]
fn ws_protocol_errors_close_1002() {
    for bad in [
        client_frame(true, 3, b"x"),            // reserved opcode
        client_frame(false, OP_PING, b"x"),     // fragmented control frame
        client_frame(true, OP_CONT, b"x"),      // continuation of nothing
        client_frame(true, OP_PING, &[0; 126]), // control frame over 125 bytes
    ] {
        let mut h = ws(AckMode::Kafka);
        h.feed(&bad);
        assert_eq!(h.frames().last().unwrap().close_code(), 1002, "{bad:?}");
        assert!(h.conn.is_finished());
    }
}

#[test]
fn ws_messages_before_a_protocol_error_are_still_acked() {
    let mut h = ws(AckMode::Enqueue);
    let mut input = binary(b"a");
    input.extend(unmasked_frame(true, OP_BINARY, b"b"));
    h.feed(&input);
    let frames = h.frames();
    assert_eq!(h.sink.values(), vec![b"a".to_vec()], "a was enqueued");
    assert_eq!(
        texts(&frames),
        [r#"{"ack":1}"#],
        "the client learns a is safe"
    );
    assert_eq!(frames.last().unwrap().close_code(), 1002);
}

#[test]
fn ws_messages_before_a_client_close_are_still_acked() {
    let mut h = ws(AckMode::Enqueue);
    let mut input = binary(b"last");
    input.extend(client_frame(true, OP_CLOSE, &1000u16.to_be_bytes()));
    h.feed(&input);
    let frames = h.frames();
    assert_eq!(h.sink.values(), vec![b"last".to_vec()], "last was enqueued");
    assert_eq!(
        texts(&frames),
        [r#"{"ack":1}"#],
        "the client learns last is safe"
    );
    assert_eq!(frames.last().unwrap().close_code(), 1000);
}

#[test]
fn ws_ping_is_answered_with_pong() {
    let mut h = ws(AckMode::Kafka);
    h.feed(&client_frame(true, OP_PING, b"are you there"));
    let frames = h.frames();
    assert_eq!(
        frames,
        [Frame {
            fin: true,
            opcode: OP_PONG,
            payload: b"are you there".to_vec()
        }]
    );
    assert!(!h.conn.is_finished());
    assert_eq!(h.sink.len(), 0, "control frames are not records");
}

#[test]
fn ws_idle_connection_is_pinged_then_closed() {
    let mut h = ws(AckMode::Kafka);
    h.timer(IDLE / 2 - MS);
    assert!(h.out().is_empty());
    h.timer(IDLE / 2);
    let frames = h.frames();
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].opcode, OP_PING);
    assert_eq!(h.conn.deadline(), Some(h.at(IDLE)));
    h.timer(IDLE - MS);
    assert!(h.out().is_empty());
    h.timer(IDLE);
    let frames = h.frames();
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].close_code(), 1001);
    assert!(h.conn.is_finished());
}

#[test]
fn ws_pong_keeps_the_connection_alive() {
    let mut h = ws(AckMode::Kafka);
    h.timer(IDLE / 2);
    assert_eq!(h.frames()[0].opcode, OP_PING);
    h.feed_at(&client_frame(true, OP_PONG, b""), IDLE / 2 + SEC);
    assert!(h.out().is_empty());
    assert_eq!(h.conn.deadline(), Some(h.at(IDLE / 2 + SEC + IDLE / 2)));
    h.timer(IDLE);
    assert!(!h.conn.is_finished());
    assert!(h.out().is_empty());
}

#[test]
fn ws_client_close_is_answered_and_finishes() {
    let mut h = ws(AckMode::Kafka);
    let mut payload = 1000u16.to_be_bytes().to_vec();
    payload.extend_from_slice(b"bye");
    h.feed(&client_frame(true, OP_CLOSE, &payload));
    let frames = h.frames();
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].close_code(), 1000);
    assert!(h.conn.is_finished());
    assert!(!h.conn.wants_read());
}

#[test]
fn ws_bytes_after_the_upgrade_in_the_same_read_are_frames() {
    let mut h = Harness::with_ack(AckMode::Enqueue);
    let mut input = upgrade_request("/ws/t");
    input.extend(binary(b"first"));
    input.extend(binary(b"second")[..3].to_vec());
    h.feed(&input);
    let out = h.out();
    let (resp, rest) = parse_one_response(&out).unwrap();
    assert_eq!(resp.status, 101);
    assert_eq!(texts(&parse_frames(rest)), [r#"{"ack":1}"#]);
    assert_eq!(h.sink.values(), vec![b"first".to_vec()]);
    h.feed(&binary(b"second")[3..]);
    assert_eq!(texts(&h.frames()), [r#"{"ack":2}"#]);
    assert_eq!(h.sink.values()[1], b"second");
}

#[test]
fn ws_shutdown_waits_for_unresolved_messages_then_closes_1001() {
    let mut h = ws(AckMode::Kafka);
    h.feed(&binary(b"a"));
    h.conn.on_shutdown(h.start);
    assert!(!h.conn.is_finished());
    assert!(!h.conn.wants_read());
    h.feed(&binary(b"b"));
    assert_eq!(h.sink.len(), 1, "nothing new after shutdown");
    h.deliver(1, Ok((0, 0)));
    let frames = h.frames();
    assert_eq!(texts(&frames), [r#"{"ack":1}"#]);
    assert_eq!(frames.last().unwrap().close_code(), 1001);
    assert!(h.conn.is_finished());
}

#[test]
fn ws_eof_finishes() {
    let mut h = ws(AckMode::Enqueue);
    h.feed(&binary(b"a"));
    h.conn.on_eof(h.start);
    assert_eq!(last_ack(&h.frames()), Some(1));
    assert!(h.conn.is_finished());
}

/// The ack-mode table (conn/ack.rs) holds for every protocol: a record the sink refuses is
/// reported to the client under ack=enqueue|kafka and only counted under ack=none.
#[test]
fn a_refused_record_is_told_under_enqueue_and_kafka_and_only_counted_under_none() {
    let rest_body = br#"{"records":[{"value":"v"}]}"#;
    let rest_type = [("content-type", "application/vnd.kafka.json.v2+json")];
    // Each ack mode as the gateway's default and asked for in the query.
    for (ack, query, told) in [
        (AckMode::Kafka, "kafka", true),
        (AckMode::Enqueue, "enqueue", true),
        (AckMode::None, "none", false),
    ] {
        // Raw HTTP, one record and a batch.
        for target in [
            format!("/topics/t?ack={query}"),
            format!("/topics/t/batch?ack={query}"),
        ] {
            let mut h = Harness::with_ack(ack);
            h.sink.refuse(Some(DeliveryError::QueueFull));
            h.feed(&post(&target, b"a\nb"));
            let r = h.responses();
            assert_eq!(r.len(), 1, "{target}");
            assert_eq!(r[0].status == 503, told, "{target}: {}", r[0].status);
        }
        // REST Proxy v2: the record's own error in the offsets.
        let mut h = Harness::with_ack(ack);
        h.sink.refuse(Some(DeliveryError::QueueFull));
        h.feed(&post_with(
            &format!("/topics/t?ack={query}"),
            &rest_type,
            rest_body,
        ));
        let r = h.responses();
        assert_eq!(r.len(), 1, "rest {query}");
        let body = String::from_utf8_lossy(&r[0].body);
        assert_eq!(
            body.contains("\"error_code\":null"),
            !told,
            "rest {query}: {body}"
        );
        // WebSocket: a nack, or the cumulative ack.
        let mut h = Harness::with_ack(ack);
        h.upgrade(&format!("/ws/t?ack={query}"));
        h.sink.refuse(Some(DeliveryError::QueueFull));
        h.feed(&binary(b"x"));
        let texts = texts(&h.frames());
        assert_eq!(
            texts.iter().any(|t| t.contains("\"nack\":1")),
            told,
            "ws {query}: {texts:?}"
        );
    }
}
