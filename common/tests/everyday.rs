//! `Conn` behaviours of issue 14 (a gateway people reach for every day), without sockets:
//! `503 kafka_unavailable` at once while Kafka is not ready, strict request targets, and
//! the metrics a connection feeds (request durations by route and class, upgrades apart,
//! WebSocket acks, nacks and closes by code).

mod support;

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use common::policy::ack::AckMode;
use common::publish::DeliveryError;
use support::*;

const MS: Duration = Duration::from_millis(1);

fn metrics_text(h: &Harness) -> String {
    h.shared.render_metrics()
}

#[test]
fn publish_while_not_ready_is_503_kafka_unavailable_at_once() {
    for ack in [AckMode::Kafka, AckMode::Enqueue, AckMode::None] {
        let mut h = Harness::with_ack(ack);
        h.sink.set_ready(false);
        h.feed(&post("/topics/t", b"x"));
        h.feed(&post("/topics/t/batch", b"a\nb\n"));
        let rs = h.responses();
        assert_eq!(statuses(&rs), [503, 503], "{ack:?}");
        for r in &rs {
            assert_eq!(r.body_str(), r#"{"error":"kafka_unavailable"}"#);
            assert_eq!(r.header("retry-after"), Some("1"));
            assert!(!r.closes(), "the connection stays usable");
        }
        assert_eq!(h.sink.len(), 0, "nothing was queued");
        // Ready again: publishing works on the same connection.
        h.sink.set_ready(true);
        h.feed(&post("/topics/t?ack=enqueue", b"x"));
        assert_eq!(statuses(&h.responses()), [202]);
    }
}

#[test]
fn ws_message_while_not_ready_is_nacked_kafka_unavailable() {
    for ack in [AckMode::Kafka, AckMode::Enqueue, AckMode::None] {
        let mut h = Harness::with_ack(ack);
        h.upgrade("/ws/t");
        h.sink.set_ready(false);
        h.feed(&text("one"));
        let frames = h.frames();
        let texts: Vec<&str> = frames.iter().map(|f| f.text()).collect();
        assert_eq!(
            texts,
            [r#"{"nack":1,"error":"kafka_unavailable"}"#, r#"{"ack":1}"#],
            "{ack:?}"
        );
        assert_eq!(h.sink.len(), 0);
        assert_eq!(h.shared.metrics.ws_nacked.load(Relaxed), 1);
        assert_eq!(h.shared.metrics.ws_acked.load(Relaxed), 0);
    }
}

#[test]
fn malformed_percent_encoding_is_400_and_keeps_the_connection() {
    let mut h = Harness::with_ack(AckMode::Enqueue);
    h.feed(&post("/topics/t?key=%zz", b"x"));
    h.feed(&post("/topics/t%zz", b"x"));
    h.feed(&post("/topics/%ff", b"x"));
    h.feed(&post("/topics/t?key=%41", b"x"));
    let rs = h.responses();
    assert_eq!(statuses(&rs), [400, 400, 400, 202]);
    assert_eq!(rs[0].body_str(), r#"{"error":"invalid_percent_encoding"}"#);
    assert_eq!(rs[1].body_str(), r#"{"error":"invalid_percent_encoding"}"#);
    assert_eq!(rs[2].body_str(), r#"{"error":"invalid_topic"}"#);
    assert_eq!(h.sink.records()[0].key.as_deref(), Some(&b"A"[..]));
}

#[test]
fn request_durations_by_route_and_class() {
    let mut h = Harness::with_ack(AckMode::Kafka);
    // Answered once delivered, 30 ms later.
    h.feed(&post("/topics/t", b"x"));
    let seq = h.sink.seq(0);
    h.conn.on_delivery(
        common::publish::Delivery {
            seq,
            result: Ok((0, 1)),
        },
        h.at(30 * MS),
    );
    assert_eq!(statuses(&h.responses()), [200]);
    h.feed_at(&get("/healthz"), 40 * MS);
    h.feed_at(&get("/nope"), 40 * MS);
    h.feed_at(&post("/topics/t?ack=maybe", b"x"), 40 * MS);
    assert_eq!(statuses(&h.responses()), [200, 404, 400]);
    let m = metrics_text(&h);
    for line in [
        r#"gateway_http_request_duration_seconds_bucket{route="publish",class="2xx",le="0.025"} 0"#,
        r#"gateway_http_request_duration_seconds_bucket{route="publish",class="2xx",le="0.05"} 1"#,
        r#"gateway_http_request_duration_seconds_count{route="healthz",class="2xx"} 1"#,
        r#"gateway_http_request_duration_seconds_count{route="other",class="4xx"} 1"#,
        r#"gateway_http_request_duration_seconds_count{route="publish",class="4xx"} 1"#,
        r#"gateway_http_requests_total{code="200"} 2"#,
        r#"gateway_http_requests_total{code="404"} 1"#,
    ] {
        assert!(m.contains(line), "missing {line} in\n{m}");
    }
}

#[test]
fn request_timeout_is_timed_from_the_first_byte() {
    let mut h = Harness::with_ack(AckMode::Enqueue);
    h.feed(&get("/healthz"));
    assert_eq!(statuses(&h.responses()), [200]);
    h.feed_at(b"POST /topics/t HTTP/1.1\r\n", 5 * MS);
    h.timer(5 * MS + REQUEST_TIMEOUT);
    assert_eq!(statuses(&h.responses()), [408]);
    let m = metrics_text(&h);
    for line in [
        r#"gateway_http_request_duration_seconds_bucket{route="other",class="4xx",le="5"} 0"#,
        r#"gateway_http_request_duration_seconds_bucket{route="other",class="4xx",le="10"} 1"#,
        r#"gateway_http_request_duration_seconds_count{route="healthz",class="2xx"} 1"#,
    ] {
        assert!(m.contains(line), "missing {line} in\n{m}");
    }
}

#[test]
fn upgrades_and_websocket_outcomes_are_counted_apart() {
    let mut h = Harness::with_ack(AckMode::Kafka);
    h.upgrade("/ws/t");
    h.feed(&text("a"));
    h.feed(&text("b"));
    h.deliver(1, Ok((0, 0)));
    h.deliver(2, Err(DeliveryError::QueueFull));
    let texts: Vec<String> = h.frames().iter().map(|f| f.text().to_string()).collect();
    assert_eq!(
        texts,
        [r#"{"nack":2,"error":"queue_full"}"#, r#"{"ack":2}"#]
    );
    // The peer closes with 1000; the count lands when the connection is gone.
    h.feed(&client_frame(true, 8, &1000u16.to_be_bytes()));
    let _ = h.out();
    assert!(h.conn.is_finished());
    let shared = h.shared.clone();
    drop(h);
    let m = shared.render_metrics();
    for line in [
        "gateway_ws_upgrades_total 1",
        "gateway_ws_messages_total 2",
        "gateway_ws_messages_acked_total 1",
        "gateway_ws_messages_nacked_total 1",
        "gateway_ws_closes_total{close_code=\"1000\"} 1",
        "gateway_ws_closes_total{close_code=\"1006\"} 0",
    ] {
        assert!(m.contains(line), "missing {line} in\n{m}");
    }
    assert!(!m.contains("code=\"101\""));
}

#[test]
fn websocket_close_codes() {
    // Oversized message: we close with 1009.
    let mut cfg = config(AckMode::Enqueue);
    cfg.limits.max_body = 4;
    let mut h = Harness::new(cfg);
    h.upgrade("/ws/t");
    h.feed(&text("too long"));
    let _ = h.out();
    let shared = h.shared.clone();
    drop(h);
    assert!(shared
        .render_metrics()
        .contains("gateway_ws_closes_total{close_code=\"1009\"} 1"));

    // Peer vanished without a close frame: 1006.
    let mut h = Harness::with_ack(AckMode::Enqueue);
    h.upgrade("/ws/t");
    h.conn.on_eof(h.at(MS));
    let shared = h.shared.clone();
    drop(h);
    assert!(shared
        .render_metrics()
        .contains("gateway_ws_closes_total{close_code=\"1006\"} 1"));

    // Idle: pinged, then closed with 1001.
    let mut h = Harness::with_ack(AckMode::Enqueue);
    h.upgrade("/ws/t");
    h.timer(IDLE / 2);
    h.timer(IDLE);
    let _ = h.out();
    let shared = h.shared.clone();
    drop(h);
    assert!(shared
        .render_metrics()
        .contains("gateway_ws_closes_total{close_code=\"1001\"} 1"));

    // Plain HTTP connections count no close.
    let h = Harness::with_ack(AckMode::Enqueue);
    let shared = h.shared.clone();
    drop(h);
    assert!(shared
        .render_metrics()
        .contains("gateway_ws_closes_total{close_code=\"1006\"} 0"));
}

#[test]
fn metrics_content_type() {
    let mut h = Harness::with_ack(AckMode::Enqueue);
    h.feed(&get("/metrics"));
    let rs = h.responses();
    assert_eq!(
        rs[0].header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
}
