//! The Kafka REST Proxy v2 dialect through `Conn`, driven by hand: envelopes in, one
//! delivery report per record (in any order), one answer per request with every record's
//! partition and offset in request order. No sockets.

mod support;

use common::policy::ack::AckMode;
use common::publish::DeliveryError;
use proptest::prelude::*;
use serde_json::Value;
use support::*;

const JSON: &str = "application/vnd.kafka.json.v2+json";
const BINARY: &str = "application/vnd.kafka.binary.v2+json";

fn rest_post(target: &str, content_type: &str, body: &str) -> Vec<u8> {
    post_with(target, &[("Content-Type", content_type)], body.as_bytes())
}

fn json_of(r: &Resp) -> Value {
    serde_json::from_str(r.body_str()).unwrap_or_else(|e| panic!("{e}: {r:?}"))
}

fn assert_rest_error(r: &Resp, status: u16, error_code: u64) {
    assert_eq!(r.status, status, "{r:?}");
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.kafka.v2+json")
    );
    let v = json_of(r);
    assert_eq!(v["error_code"], error_code, "{r:?}");
    assert!(
        v["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{r:?}"
    );
}

#[test]
fn answers_once_every_record_is_acknowledged_with_offsets_in_request_order() {
    let mut h = Harness::with_ack(AckMode::Kafka);
    h.feed(&rest_post(
        "/topics/orders",
        JSON,
        r#"{"records":[{"value":{"a":1}},{"key":"k","value":"two","partition":1},{"value":3}]}"#,
    ));
    let sent = h.sink.records();
    let values: Vec<&[u8]> = sent.iter().map(|s| s.value.as_slice()).collect();
    assert_eq!(values, [&br#"{"a":1}"#[..], br#""two""#, b"3"]);
    assert_eq!(sent[1].key.as_deref(), Some(&br#""k""#[..]));
    assert_eq!(sent[1].partition, Some(1));
    let seqs: Vec<u64> = h.sink.tickets().iter().map(|t| t.0).collect();
    assert_eq!(seqs.len(), 3);
    assert!(
        seqs[0] != seqs[1] && seqs[1] != seqs[2],
        "one sequence number per record: {seqs:?}"
    );
    // Reports arrive out of order (different partitions); nothing is answered early.
    h.deliver(seqs[2], Ok((0, 30)));
    h.deliver(seqs[0], Ok((2, 10)));
    assert!(h.out().is_empty(), "one record is still unacknowledged");
    h.deliver(seqs[1], Ok((1, 20)));
    let rs = h.responses();
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].status, 200);
    assert_eq!(
        rs[0].header("content-type"),
        Some("application/vnd.kafka.v2+json")
    );
    let v = json_of(&rs[0]);
    let got: Vec<(i64, i64)> = v["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["partition"].as_i64().unwrap(),
                o["offset"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, [(2, 10), (1, 20), (0, 30)]);
    assert!(v["offsets"][0]["error_code"].is_null());
    assert!(v["key_schema_id"].is_null());
    assert!(!rs[0].closes());
}

#[test]
fn pipelined_rest_and_raw_requests_are_answered_in_order() {
    let mut h = Harness::with_ack(AckMode::Kafka);
    let mut bytes = rest_post(
        "/topics/t",
        JSON,
        r#"{"records":[{"value":1},{"value":2}]}"#,
    );
    bytes.extend(post("/topics/t", b"raw"));
    bytes.extend(rest_post(
        "/topics/t",
        BINARY,
        r#"{"records":[{"value":"aGk="}]}"#,
    ));
    h.feed(&bytes);
    let seqs: Vec<u64> = h.sink.tickets().iter().map(|t| t.0).collect();
    assert_eq!(seqs.len(), 4);
    assert_eq!(h.sink.values()[3], b"hi");
    // The raw request and the last REST one complete first: held behind the first.
    h.deliver(seqs[2], Ok((0, 100)));
    h.deliver(seqs[3], Ok((0, 101)));
    h.deliver(seqs[1], Ok((0, 51)));
    assert!(h.out().is_empty());
    h.deliver(seqs[0], Err(DeliveryError::Timeout));
    let rs = h.responses();
    assert_eq!(statuses(&rs), [200, 200, 200]);
    let first = json_of(&rs[0]);
    assert_eq!(first["offsets"][0]["error_code"], 50003);
    assert_eq!(first["offsets"][0]["error"], "delivery_timeout");
    assert!(first["offsets"][0]["offset"].is_null());
    assert_eq!(first["offsets"][1]["offset"], 51);
    assert_eq!(rs[1].body_str(), r#"{"partition":0,"offset":100}"#);
    assert_eq!(json_of(&rs[2])["offsets"][0]["offset"], 101);
    // A late duplicate or stale report changes nothing.
    h.deliver(seqs[0], Ok((0, 1)));
    assert!(h.out().is_empty());
}

#[test]
fn a_request_with_no_record_stored_fails_with_retry_after() {
    let mut h = Harness::with_ack(AckMode::Kafka);
    h.sink.refuse(Some(DeliveryError::QueueFull));
    h.feed(&rest_post(
        "/topics/t",
        JSON,
        r#"{"records":[{"value":1},{"value":2}]}"#,
    ));
    let r = h.responses().remove(0);
    assert_rest_error(&r, 503, 50003);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(!r.closes(), "backpressure keeps the connection");
    // Every record failed at delivery: the same.
    h.sink.refuse(None);
    h.feed(&rest_post(
        "/topics/t",
        JSON,
        r#"{"records":[{"value":1}]}"#,
    ));
    let seq = h.sink.tickets().last().unwrap().0;
    h.deliver(seq, Err(DeliveryError::Timeout));
    assert_rest_error(&h.responses().remove(0), 503, 50003);
    // Kafka unreachable: at once, nothing queued.
    h.sink.set_ready(false);
    let before = h.sink.len();
    h.feed(&rest_post(
        "/topics/t",
        BINARY,
        r#"{"records":[{"value":"eA=="}]}"#,
    ));
    let r = h.responses().remove(0);
    assert_rest_error(&r, 503, 50003);
    assert_eq!(json_of(&r)["message"], "kafka_unavailable");
    assert_eq!(h.sink.len(), before);
}

#[test]
fn ack_enqueue_and_none_answer_202_with_null_offsets() {
    for ack in ["enqueue", "none"] {
        let mut h = Harness::with_ack(AckMode::Kafka);
        h.feed(&rest_post(
            &format!("/topics/t?ack={ack}"),
            JSON,
            r#"{"records":[{"value":1},{"value":2}]}"#,
        ));
        let r = h.responses().remove(0);
        assert_eq!(r.status, 202, "{ack}: {r:?}");
        let v = json_of(&r);
        assert_eq!(v["offsets"].as_array().unwrap().len(), 2);
        assert!(v["offsets"][1]["offset"].is_null());
        assert!(!h.sink.tickets()[0].1, "nobody waits for the report");
    }
}

#[test]
fn malformed_envelopes_answer_the_rest_proxy_error_shape_and_keep_the_connection() {
    let mut h = Harness::with_ack(AckMode::Kafka);
    let cases: [(&str, &str, u16, u64); 6] = [
        (JSON, "{\"records\":[", 400, 400),
        (JSON, "{\"value\":1}", 422, 422),
        (JSON, "{\"records\":[]}", 422, 42206),
        (
            BINARY,
            "{\"records\":[{\"value\":\"not base64!\"}]}",
            422,
            42206,
        ),
        (
            "application/vnd.kafka.avro.v2+json",
            "{\"records\":[{\"value\":1}]}",
            415,
            415,
        ),
        (
            JSON,
            "{\"records\":[{\"value\":1,\"partition\":-2}]}",
            422,
            422,
        ),
    ];
    for (ct, body, status, code) in cases {
        h.feed(&rest_post("/topics/t", ct, body));
        let rs = h.responses();
        assert_eq!(rs.len(), 1, "{body}");
        assert_rest_error(&rs[0], status, code);
        assert!(!rs[0].closes());
    }
    assert_eq!(h.sink.len(), 0, "nothing of a malformed request is sent");
    // An invalid topic, in the REST shape too.
    h.feed(&rest_post(
        "/topics/a%20b",
        JSON,
        r#"{"records":[{"value":1}]}"#,
    ));
    assert_rest_error(&h.responses().remove(0), 400, 400);
    assert_eq!(h.shared.metrics.requests_with_status(422), 4);
}

#[test]
fn records_per_request_are_limited() {
    let mut cfg = config(AckMode::Kafka);
    cfg.limits.max_records = 2;
    let mut h = Harness::new(cfg);
    h.feed(&rest_post(
        "/topics/t",
        JSON,
        r#"{"records":[{"value":1},{"value":2},{"value":3}]}"#,
    ));
    assert_rest_error(&h.responses().remove(0), 422, 42206);
    assert_eq!(h.sink.len(), 0);
}

#[test]
fn other_content_types_keep_the_raw_contract() {
    let mut h = Harness::with_ack(AckMode::Enqueue);
    let body = r#"{"records":[{"value":1}]}"#;
    h.feed(&rest_post("/topics/t", "application/json", body));
    assert_eq!(h.responses().remove(0).status, 202);
    assert_eq!(h.sink.values(), [body.as_bytes().to_vec()]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any body, in either dialect: exactly one answer per request, in the REST shape, and
    /// the connection stays usable.
    #[test]
    fn any_body_gets_exactly_one_rest_answer(
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..200),
            prop::string::string_regex(
                "\\{\"records\":\\[(\\{\"value\":(1|\"aGk=\"|null|\\{\\}),?\"?(partition|key)?\"?:?-?[0-9]{0,3}\\},?){0,4}\\]\\}"
            )
            .unwrap()
            .prop_map(String::into_bytes),
        ],
        binary in any::<bool>(),
    ) {
        let mut h = Harness::with_ack(AckMode::Enqueue);
        let ct = if binary { BINARY } else { JSON };
        h.feed(&post_with("/topics/t", &[("Content-Type", ct)], &body));
        h.feed(&get("/healthz"));
        let rs = h.responses();
        prop_assert_eq!(rs.len(), 2);
        prop_assert!([202, 400, 422].contains(&rs[0].status), "{:?}", rs[0]);
        prop_assert_eq!(rs[0].header("content-type"), Some("application/vnd.kafka.v2+json"));
        prop_assert!(serde_json::from_str::<Value>(rs[0].body_str()).is_ok());
        prop_assert_eq!(rs[1].status, 200);
    }
}
