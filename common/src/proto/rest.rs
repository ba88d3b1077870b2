//! The Kafka REST Proxy API v2 produce dialect (Confluent REST Proxy, Strimzi bridge,
//! Karapace, Redpanda's HTTP proxy), selected per request by `Content-Type`:
//!
//! - `application/vnd.kafka.binary.v2+json`: key and value are base64 strings;
//! - `application/vnd.kafka.json.v2+json`: key and value are any JSON, stored as their JSON
//!   text (exactly as sent);
//! - another `application/vnd.kafka.*` type (avro, protobuf, jsonschema, v1, v3): 415;
//! - anything else: the raw contract.
//!
//! Parsing borrows from the request body (serde_json over `&[u8]`; only base64 and escaped
//! strings are decoded into new buffers) and is tested here without sockets. The connection
//! (`conn`) sends the records, collects one outcome per record and answers with
//! `write_offsets` once every record is resolved.

use std::borrow::Cow;

use base64::Engine;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::dialect::Dialect;
use super::http::response::{error_headers, write_response};
use crate::policy::ack::KAFKA_UNAVAILABLE;
use crate::publish::DeliveryError;

/// The response media type of every REST v2 answer.
pub const CONTENT_TYPE: &str = "application/vnd.kafka.v2+json";

/// A request-level error, answered as `{"error_code":N,"message":"…"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestError {
    pub status: u16,
    pub error_code: u32,
    pub message: String,
}

impl RestError {
    fn new(status: u16, error_code: u32, message: impl Into<String>) -> RestError {
        RestError {
            status,
            error_code,
            message: message.into(),
        }
    }

    /// 415 for a Kafka media type other than binary/json v2.
    pub fn unsupported_media_type() -> RestError {
        RestError::new(
            415,
            415,
            "unsupported media type: this gateway speaks application/vnd.kafka.binary.v2+json and application/vnd.kafka.json.v2+json",
        )
    }

    /// A request the gateway refused before parsing the envelope (bad target, no route,
    /// Kafka unreachable, …): same status as the raw contract, the REST shape, with the
    /// REST Proxy's codes where it has one (`error_code` = status otherwise, as its
    /// generic errors do).
    pub fn from_code(status: u16, code: &str) -> RestError {
        let error_code = match code {
            "unknown_partition" => 40402,
            c if c == KAFKA_UNAVAILABLE => 50003,
            "queue_full" | "delivery_timeout" => 50003,
            "delivery_failed" => 50002,
            _ => u32::from(status),
        };
        let status = if code == "unknown_partition" {
            404
        } else {
            status
        };
        RestError::new(status, error_code, code)
    }

    /// Every record of the request failed: the request fails with the first error.
    pub fn from_delivery(e: &DeliveryError) -> RestError {
        RestError::from_code(e.status(), e.code())
    }
}

/// One record of an envelope, borrowed from the body where possible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestRecord<'a> {
    pub key: Option<Cow<'a, [u8]>>,
    /// `None` for a null or absent value (stored as an empty value).
    pub value: Option<Cow<'a, [u8]>>,
    pub partition: Option<i32>,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    records: Vec<WireRecord<'a>>,
}

#[derive(Deserialize)]
struct WireRecord<'a> {
    #[serde(default, borrow)]
    key: Option<&'a RawValue>,
    #[serde(default, borrow)]
    value: Option<&'a RawValue>,
    #[serde(default)]
    partition: Option<i64>,
}

/// Parses a produce envelope `{"records":[{"key":…,"value":…,"partition":N},…]}`.
///
/// Errors: body not JSON → 400/400; JSON of another shape (no `records` array, a record
/// not an object, a partition that is not an integer in 0..=2^31-1, a binary key/value
/// that is not a string) → 422/422; no records, more than `max_records`, invalid base64
/// → 422/42206.
pub fn parse<'a>(
    dialect: Dialect,
    body: &'a [u8],
    max_records: usize,
) -> Result<Vec<RestRecord<'a>>, RestError> {
    if dialect == Dialect::Unsupported {
        return Err(RestError::unsupported_media_type());
    }
    let env: Envelope<'a> = serde_json::from_slice(body).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Syntax | Category::Eof | Category::Io => {
                RestError::new(400, 400, format!("malformed JSON: {e}"))
            }
            Category::Data => RestError::new(422, 422, format!("invalid produce request: {e}")),
        }
    })?;
    if env.records.is_empty() {
        return Err(RestError::new(422, 42206, "records must not be empty"));
    }
    if env.records.len() > max_records {
        return Err(RestError::new(
            422,
            42206,
            format!(
                "{} records in one request, at most {max_records} are accepted",
                env.records.len()
            ),
        ));
    }
    env.records
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let partition = match r.partition {
                None => None,
                Some(p) => Some(i32::try_from(p).ok().filter(|p| *p >= 0).ok_or_else(|| {
                    RestError::new(422, 422, format!("records[{i}].partition: invalid {p}"))
                })?),
            };
            Ok(RestRecord {
                key: embedded(dialect, r.key, i, "key")?,
                value: embedded(dialect, r.value, i, "value")?,
                partition,
            })
        })
        .collect()
}

/// A key or value as the bytes to store: JSON text (json) or base64-decoded (binary).
fn embedded<'a>(
    dialect: Dialect,
    raw: Option<&'a RawValue>,
    i: usize,
    field: &str,
) -> Result<Option<Cow<'a, [u8]>>, RestError> {
    let Some(raw) = raw else { return Ok(None) };
    let text = raw.get();
    if text == "null" {
        return Ok(None);
    }
    match dialect {
        Dialect::Json => Ok(Some(Cow::Borrowed(text.as_bytes()))),
        _ => {
            let s: Cow<'a, str> = serde_json::from_str(text).map_err(|_| {
                RestError::new(
                    422,
                    422,
                    format!("records[{i}].{field}: binary data must be a base64 string"),
                )
            })?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s.as_bytes())
                .map_err(|e| {
                    RestError::new(
                        422,
                        42206,
                        format!("records[{i}].{field}: invalid base64: {e}"),
                    )
                })?;
            Ok(Some(Cow::Owned(bytes)))
        }
    }
}

/// The outcome of one record of a REST request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Sent, report not in yet.
    Pending,
    /// Accepted without waiting for Kafka (`ack=none|enqueue`): partition/offset unknown.
    Accepted,
    Stored(i32, i64),
    Failed(DeliveryError),
}

/// The REST Proxy's per-record error code: 50003 retriable, 50002 not.
pub fn record_error_code(e: &DeliveryError) -> u32 {
    match e {
        DeliveryError::QueueFull | DeliveryError::Timeout => 50003,
        _ => 50002,
    }
}

/// Encodes a REST answer: `status` with `body` as `application/vnd.kafka.v2+json`, 503s
/// with `Retry-After: 1`.
fn write(out: &mut Vec<u8>, status: u16, body: &[u8], keep_alive: bool) {
    let extra = error_headers(status);
    write_response(out, status, CONTENT_TYPE, body, keep_alive, extra);
}

/// Encodes a request-level error.
pub fn write_error(out: &mut Vec<u8>, e: &RestError, keep_alive: bool) {
    let body = serde_json::json!({"error_code": e.error_code, "message": e.message});
    write(out, e.status, body.to_string().as_bytes(), keep_alive);
}

/// Encodes the answer to a request whose records are all resolved; returns its status.
/// If no record was stored or accepted, the request fails with the first record's error;
/// otherwise `status` (200 once Kafka acknowledged, 202 for ack=none|enqueue) with one
/// offsets entry per record, in request order, failures in place.
pub fn write_offsets(
    out: &mut Vec<u8>,
    outcomes: &[Outcome],
    status: u16,
    keep_alive: bool,
) -> u16 {
    let any_ok = outcomes
        .iter()
        .any(|o| matches!(o, Outcome::Stored(..) | Outcome::Accepted));
    if !any_ok {
        if let Some(Outcome::Failed(e)) = outcomes.iter().find(|o| matches!(o, Outcome::Failed(_)))
        {
            let e = RestError::from_delivery(e);
            write_error(out, &e, keep_alive);
            return e.status;
        }
    }
    use std::fmt::Write;
    let mut body = String::with_capacity(16 + outcomes.len() * 64);
    body.push_str("{\"offsets\":[");
    for (i, o) in outcomes.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        let _ = match o {
            Outcome::Stored(p, off) => write!(
                body,
                "{{\"partition\":{p},\"offset\":{off},\"error_code\":null,\"error\":null}}"
            ),
            Outcome::Accepted | Outcome::Pending => body.write_str(
                "{\"partition\":null,\"offset\":null,\"error_code\":null,\"error\":null}",
            ),
            Outcome::Failed(e) => write!(
                body,
                "{{\"partition\":null,\"offset\":null,\"error_code\":{},\"error\":\"{}\"}}",
                record_error_code(e),
                e.code()
            ),
        };
    }
    body.push_str("],\"key_schema_id\":null,\"value_schema_id\":null}");
    write(out, status, body.as_bytes(), keep_alive);
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(resp: &[u8]) -> serde_json::Value {
        let at = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        serde_json::from_slice(&resp[at..]).unwrap()
    }

    #[test]
    fn content_types() {
        let d = Dialect::from_content_type;
        assert_eq!(d(b"application/vnd.kafka.json.v2+json"), Dialect::Json);
        assert_eq!(
            d(b" Application/VND.kafka.binary.v2+JSON ; charset=utf-8"),
            Dialect::Binary
        );
        assert_eq!(
            d(b"application/vnd.kafka.avro.v2+json"),
            Dialect::Unsupported
        );
        assert_eq!(d(b"application/vnd.kafka.v2+json"), Dialect::Unsupported);
        assert_eq!(d(b"application/json"), Dialect::Raw);
        assert_eq!(d(b"application/octet-stream"), Dialect::Raw);
        assert_eq!(d(b""), Dialect::Raw);
    }

    #[test]
    fn json_records_borrow_their_json_text() {
        let body =
            br#"{"records":[{"value":{"a":1}},{"key":"k","value":[1, 2],"partition":2},{"value":null}]}"#;
        let recs = parse(Dialect::Json, body, 10).unwrap();
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[0].value.as_deref(), Some(&br#"{"a":1}"#[..]));
        assert!(matches!(recs[0].value, Some(Cow::Borrowed(_))));
        assert_eq!(recs[0].key, None);
        assert_eq!(recs[1].key.as_deref(), Some(&br#""k""#[..]));
        assert_eq!(recs[1].value.as_deref(), Some(&b"[1, 2]"[..]));
        assert_eq!(recs[1].partition, Some(2));
        assert_eq!(recs[2].value, None);
    }

    #[test]
    fn binary_records_are_base64_decoded() {
        let body = br#"{"records":[{"key":"a2V5","value":"aGVsbG8="},{"value":"aGk\/"}]}"#;
        let recs = parse(Dialect::Binary, body, 10).unwrap();
        assert_eq!(recs[0].key.as_deref(), Some(&b"key"[..]));
        assert_eq!(recs[0].value.as_deref(), Some(&b"hello"[..]));
        // An escaped `/` in the JSON string is unescaped before decoding.
        assert_eq!(recs[1].value.as_deref(), Some(&b"hi?"[..]));
    }

    #[test]
    fn malformed_envelopes_get_the_rest_proxy_error_shape() {
        let err = |d, b: &[u8]| parse(d, b, 3).unwrap_err();
        let e = err(Dialect::Json, b"{\"records\":[");
        assert_eq!((e.status, e.error_code), (400, 400));
        let e = err(Dialect::Json, b"not json");
        assert_eq!((e.status, e.error_code), (400, 400));
        for shape in [
            &b"{}"[..],
            b"{\"records\":{}}",
            b"{\"records\":[1]}",
            b"[]",
            b"{\"records\":[{\"value\":1,\"partition\":-1}]}",
            b"{\"records\":[{\"value\":1,\"partition\":\"0\"}]}",
            b"{\"records\":[{\"value\":1,\"partition\":4294967296}]}",
        ] {
            let e = err(Dialect::Json, shape);
            assert_eq!(
                (e.status, e.error_code),
                (422, 422),
                "{}",
                String::from_utf8_lossy(shape)
            );
        }
        let e = err(Dialect::Json, b"{\"records\":[]}");
        assert_eq!((e.status, e.error_code), (422, 42206));
        let e = err(
            Dialect::Json,
            b"{\"records\":[{\"value\":1},{\"value\":2},{\"value\":3},{\"value\":4}]}",
        );
        assert_eq!((e.status, e.error_code), (422, 42206));
        assert!(e.message.contains("at most 3"), "{}", e.message);
        let e = err(Dialect::Binary, b"{\"records\":[{\"value\":\"***\"}]}");
        assert_eq!((e.status, e.error_code), (422, 42206));
        let e = err(Dialect::Binary, b"{\"records\":[{\"value\":{\"a\":1}}]}");
        assert_eq!((e.status, e.error_code), (422, 422));
        let e = err(Dialect::Unsupported, b"{\"records\":[{\"value\":1}]}");
        assert_eq!((e.status, e.error_code), (415, 415));
        // The encoded answer.
        let mut out = Vec::new();
        write_error(&mut out, &e, true);
        assert!(out.starts_with(b"HTTP/1.1 415 "));
        assert!(
            String::from_utf8_lossy(&out).contains("content-type: application/vnd.kafka.v2+json")
        );
        let v = body_of(&out);
        assert_eq!(v["error_code"], 415);
        assert!(v["message"].as_str().unwrap().contains("unsupported"));
    }

    #[test]
    fn offsets_in_request_order_with_errors_in_place() {
        let mut out = Vec::new();
        let status = write_offsets(
            &mut out,
            &[
                Outcome::Stored(1, 7),
                Outcome::Failed(DeliveryError::QueueFull),
                Outcome::Stored(0, 3),
            ],
            200,
            true,
        );
        assert_eq!(status, 200);
        let v = body_of(&out);
        assert_eq!(v["offsets"][0]["partition"], 1);
        assert_eq!(v["offsets"][0]["offset"], 7);
        assert!(v["offsets"][0]["error_code"].is_null());
        assert_eq!(v["offsets"][1]["error_code"], 50003);
        assert_eq!(v["offsets"][1]["error"], "queue_full");
        assert!(v["offsets"][1]["offset"].is_null());
        assert_eq!(v["offsets"][2]["offset"], 3);
        assert!(v["key_schema_id"].is_null() && v["value_schema_id"].is_null());
    }

    #[test]
    fn a_request_with_nothing_stored_fails_as_a_whole() {
        let mut out = Vec::new();
        let status = write_offsets(
            &mut out,
            &[
                Outcome::Failed(DeliveryError::Timeout),
                Outcome::Failed(DeliveryError::TooLarge),
            ],
            200,
            false,
        );
        assert_eq!(status, 503);
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("retry-after: 1"), "{text}");
        assert!(text.contains("connection: close"), "{text}");
        let v = body_of(&out);
        assert_eq!(v["error_code"], 50003);
        assert_eq!(v["message"], "delivery_timeout");
        let e = RestError::from_code(400, "unknown_partition");
        assert_eq!((e.status, e.error_code), (404, 40402));
        let e = RestError::from_code(400, "invalid_topic");
        assert_eq!((e.status, e.error_code), (400, 400));
    }

    #[test]
    fn accepted_records_have_null_offsets() {
        let mut out = Vec::new();
        assert_eq!(
            write_offsets(&mut out, &[Outcome::Accepted], 202, true),
            202
        );
        let v = body_of(&out);
        assert!(v["offsets"][0]["offset"].is_null());
        assert!(v["offsets"][0]["partition"].is_null());
    }
}
