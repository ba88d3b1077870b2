//! The Kafka REST Proxy v2 produce dialect (issue 16) on every gateway variant, through
//! real sockets and a real (mock) Kafka: each dialect's answer names offsets that are
//! read back from Kafka with the same bytes; malformed envelopes answer the REST Proxy's
//! error shape.

use std::time::Duration;

use base64::Engine;
use conformance::{consume, Gateway, Variant};

conformance::suite!(json_and_binary_offsets_are_in_kafka, malformed_envelopes);

const JSON: &str = "application/vnd.kafka.json.v2+json";
const BINARY: &str = "application/vnd.kafka.binary.v2+json";

/// (partition, offset) of every entry of a 200 answer's `offsets`.
fn offsets(r: &conformance::Response) -> Vec<(i32, i64)> {
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.kafka.v2+json")
    );
    let v = r.json();
    assert!(
        v["key_schema_id"].is_null() && v["value_schema_id"].is_null(),
        "{v}"
    );
    v["offsets"]
        .as_array()
        .unwrap_or_else(|| panic!("no offsets in {v}"))
        .iter()
        .map(|o| {
            assert!(o["error_code"].is_null() && o["error"].is_null(), "{v}");
            (
                o["partition"].as_i64().unwrap() as i32,
                o["offset"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn json_and_binary_offsets_are_in_kafka(v: &Variant) {
    let gw = Gateway::start(v, &[]);
    let mut c = gw.connect();
    // The issue's example, as curl sends it.
    let r = c
        .request(
            "POST",
            "/topics/restjson",
            &[("Content-Type", JSON)],
            br#"{"records":[{"value":{"a":1}}]}"#,
        )
        .unwrap();
    let first = offsets(&r);
    assert_eq!(first.len(), 1);
    // Several records, one with a key and one for a given partition.
    let r = c
        .request(
            "POST",
            "/topics/restjson",
            &[("Content-Type", JSON)],
            br#"{"records":[{"key":"k1","value":[1,2]},{"value":"s","partition":1}]}"#,
        )
        .unwrap();
    let more = offsets(&r);
    assert_eq!(more.len(), 2);
    assert_eq!(more[1].0, 1, "the record's own partition");
    let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
    let body = format!(
        r#"{{"records":[{{"key":"{}","value":"{}"}},{{"value":"{}"}}]}}"#,
        b64(b"bkey"),
        b64(b"\x00binary\xff"),
        b64(b"second")
    );
    let r = c
        .request(
            "POST",
            "/topics/restbin",
            &[("Content-Type", BINARY)],
            body.as_bytes(),
        )
        .unwrap();
    let bin = offsets(&r);
    assert_eq!(bin.len(), 2);

    let at = |records: &[conformance::Consumed], (p, o): (i32, i64)| {
        records
            .iter()
            .find(|c| c.partition == p && c.offset == o)
            .cloned()
            .unwrap_or_else(|| panic!("no record at partition {p} offset {o} in {records:?}"))
    };
    let json = consume(&gw.brokers, "restjson", Duration::from_secs(20), |rs| {
        rs.len() >= 3
    });
    assert_eq!(at(&json, first[0]).value, br#"{"a":1}"#);
    let keyed = at(&json, more[0]);
    assert_eq!(keyed.key.as_deref(), Some(&br#""k1""#[..]));
    assert_eq!(keyed.value, b"[1,2]");
    assert_eq!(at(&json, more[1]).value, br#""s""#);
    let bins = consume(&gw.brokers, "restbin", Duration::from_secs(20), |rs| {
        rs.len() >= 2
    });
    let one = at(&bins, bin[0]);
    assert_eq!(one.key.as_deref(), Some(&b"bkey"[..]));
    assert_eq!(one.value, b"\x00binary\xff");
    assert_eq!(at(&bins, bin[1]).value, b"second");
}

fn malformed_envelopes(v: &Variant) {
    let gw = Gateway::start(v, &["--max-records", "2"]);
    let mut c = gw.connect();
    for (ct, body, status, code) in [
        (JSON, &b"{\"records\":"[..], 400, 400),
        (JSON, b"{\"value\":1}", 422, 422),
        (
            JSON,
            b"{\"records\":[{\"value\":1},{\"value\":2},{\"value\":3}]}",
            422,
            42206,
        ),
        (BINARY, b"{\"records\":[{\"value\":\"%%%\"}]}", 422, 42206),
        (
            "application/vnd.kafka.avro.v2+json",
            b"{\"records\":[{\"value\":1}]}",
            415,
            415,
        ),
    ] {
        // The same keep-alive connection throughout: a malformed envelope does not close it.
        let r = c
            .request("POST", "/topics/restbad", &[("Content-Type", ct)], body)
            .unwrap();
        assert_eq!(r.status, status, "{}: {r:?}", String::from_utf8_lossy(body));
        assert_eq!(
            r.header("content-type"),
            Some("application/vnd.kafka.v2+json")
        );
        let j = r.json();
        assert_eq!(j["error_code"], code, "{j}");
        assert!(j["message"].is_string(), "{j}");
    }
    assert_eq!(gw.metric("gateway_records_sent_total"), 0.0);
    assert_eq!(gw.metric("gateway_http_requests_total{code=\"422\"}"), 3.0);
}
