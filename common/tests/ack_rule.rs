//! The ack rule has one home (`common::policy::ack`): every row of its table, run through
//! the three dialects (raw HTTP, REST Proxy v2, WebSocket), gets the answer the row says;
//! and no code outside the fate module looks at an `AckMode`.

mod support;

use std::path::{Path, PathBuf};

use common::policy::ack::{fate, AckMode, Fate};
use common::publish::DeliveryError;
use support::*;

const REST_JSON: &str = "application/vnd.kafka.json.v2+json";

/// What a client saw of one record: an answer at once, or one after the report.
#[derive(Debug, PartialEq)]
enum Seen {
    /// HTTP status, or a WebSocket ack/nack frame.
    Now(String),
    AfterReport(String),
}

fn http_seen(mut h: Harness, request: &[u8]) -> Seen {
    h.feed(request);
    let rs = h.responses();
    if let [r] = rs.as_slice() {
        return Seen::Now(r.status.to_string());
    }
    assert!(rs.is_empty(), "{rs:?}");
    h.deliver(h.sink.seq(0), Ok((0, 7)));
    let rs = h.responses();
    assert_eq!(rs.len(), 1, "{rs:?}");
    Seen::AfterReport(rs[0].status.to_string())
}

fn raw(ack: AckMode, refuse: bool) -> Seen {
    let h = Harness::with_ack(ack);
    h.sink.refuse(refuse.then_some(DeliveryError::QueueFull));
    http_seen(h, &post("/topics/t", b"v"))
}

fn rest(ack: AckMode, refuse: bool) -> Seen {
    let h = Harness::with_ack(ack);
    h.sink.refuse(refuse.then_some(DeliveryError::QueueFull));
    let body = br#"{"records":[{"value":1}]}"#;
    http_seen(
        h,
        &post_with("/topics/t", &[("Content-Type", REST_JSON)], body),
    )
}

fn websocket(ack: AckMode, refuse: bool) -> Seen {
    let mut h = Harness::with_ack(ack);
    h.upgrade("/ws/t");
    h.sink.refuse(refuse.then_some(DeliveryError::QueueFull));
    h.feed(&text("v"));
    let now = texts(&h.frames());
    if !now.is_empty() {
        return Seen::Now(now.join(" "));
    }
    h.deliver(h.sink.seq(0), Ok((0, 7)));
    Seen::AfterReport(texts(&h.frames()).join(" "))
}

/// What each dialect must show for a record of `fate`: (raw, REST, WebSocket).
fn expected(fate: &Fate) -> [Seen; 3] {
    let now = |s: &str| Seen::Now(s.to_string());
    let later = |s: &str| Seen::AfterReport(s.to_string());
    match fate {
        Fate::Awaiting => [later("200"), later("200"), later(r#"{"ack":1}"#)],
        Fate::Settled => [now("202"), now("202"), now(r#"{"ack":1}"#)],
        Fate::Refused(e) => [
            now(&e.status().to_string()),
            now(&e.status().to_string()),
            // Resolved all the same: the cumulative ack moves past it.
            now(&format!(
                r#"{{"nack":1,"error":"{}"}} {{"ack":1}}"#,
                e.code()
            )),
        ],
    }
}

#[test]
fn every_row_of_the_table_through_every_dialect() {
    for ack in [AckMode::Kafka, AckMode::Enqueue, AckMode::None] {
        for refuse in [false, true] {
            let sent = if refuse {
                Err(DeliveryError::QueueFull)
            } else {
                Ok(())
            };
            let row = fate(ack, sent);
            let [want_raw, want_rest, want_ws] = expected(&row);
            let case = format!("ack={ack:?}, sink refuses: {refuse}, fate {row:?}");
            assert_eq!(raw(ack, refuse), want_raw, "raw HTTP, {case}");
            assert_eq!(rest(ack, refuse), want_rest, "REST v2, {case}");
            assert_eq!(websocket(ack, refuse), want_ws, "WebSocket, {case}");
        }
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// True if `line` (comments stripped) looks at an `AckMode` value: a pattern naming a
/// variant (a match arm, `if let`, `matches!`), or a comparison with one.
fn matches_ack_mode(line: &str) -> bool {
    let code = line.split("//").next().unwrap_or_default();
    let Some(at) = code.find("AckMode::") else {
        return false;
    };
    let trimmed = code.trim_start();
    code.contains("== AckMode::")
        || code.contains("!= AckMode::")
        || code.contains("matches!(") && code[code.find("matches!(").unwrap()..].contains("AckMode::")
        || code.contains("let AckMode::")
        || code.contains("let Some(AckMode::")
        // A pattern: the variant before the arm's `=>`, or a line of an or-pattern.
        || code.find("=>").is_some_and(|arrow| at < arrow)
        || trimmed.starts_with("AckMode::")
        || trimmed.starts_with("| AckMode::")
}

/// Only the fate module may look at an `AckMode`; everything else passes it along. Its
/// spellings (`AckMode::parse`, the `--ack` values) live in the fate module too, so there is
/// nothing to allow elsewhere: constructing a value (`Some(AckMode::Kafka)` in a test) is
/// not a match and is not flagged.
#[test]
fn ack_mode_is_matched_only_in_the_fate_module() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let fate_module = src.join("policy").join("ack.rs");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(
        files.contains(&fate_module),
        "the fate module moved: update this test"
    );
    let mut offenders = Vec::new();
    for file in files.iter().filter(|f| **f != fate_module) {
        let text = std::fs::read_to_string(file).unwrap();
        for (i, line) in text.lines().enumerate() {
            if matches_ack_mode(line) {
                let shown = file.strip_prefix(&src).unwrap().display();
                offenders.push(format!("src/{shown}:{}: {}", i + 1, line.trim()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "AckMode is matched outside policy/ack.rs (decide there, e.g. ack::answer):\n{}",
        offenders.join("\n")
    );
}

#[test]
fn the_scan_sees_every_kind_of_match() {
    for line in [
        "        AckMode::Kafka => 200,",
        "    (AckMode::None, _) => x,",
        "    | AckMode::Enqueue => y,",
        "    if ack == AckMode::Kafka { 200 } else { 202 }",
        "    if ack != AckMode::None {",
        "    matches!(ack, AckMode::Kafka)",
        "    if let AckMode::Kafka = ack {",
        "    let Some(AckMode::None) = q.ack else { return };",
    ] {
        assert!(matches_ack_mode(line), "missed: {line}");
    }
    for line in [
        "    default_ack: AckMode::Kafka,",
        "    assert_eq!(q.ack, Some(AckMode::Enqueue));",
        "    x => AckMode::Kafka, // a construction",
        "    // AckMode::Kafka => 200 (a comment)",
    ] {
        assert!(!matches_ack_mode(line), "flagged: {line}");
    }
}
