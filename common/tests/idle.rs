//! Idle memory of a connection, without sockets: once an exchange is complete and the
//! connection waits for the next one, it holds no received bytes (no read buffer: the
//! driver's reads are lent, see `driver::ConnIo::lends_read_buffers`) and at most
//! `IDLE_BUFFER_FLOOR` of output per buffer, however large the exchange before was.

mod support;

use common::policy::ack::AckMode;
use common::policy::config::IDLE_BUFFER_FLOOR;
use support::*;

/// Feeds `bytes` in reads of at most `chunk` bytes, as the driver would.
fn feed_chunks(h: &mut Harness, bytes: &[u8], chunk: usize) {
    for part in bytes.chunks(chunk) {
        h.feed(part);
    }
}

fn assert_idle(h: &Harness, what: &str) {
    let held = h.conn.held_bytes();
    assert_eq!(
        held.input, 0,
        "{what}: received bytes kept while idle: {held:?}"
    );
    assert!(
        held.output <= 2 * IDLE_BUFFER_FLOOR,
        "{what}: output capacity kept while idle: {held:?}"
    );
    assert!(h.conn.wants_read(), "{what}: the connection still reads");
}

#[test]
fn http_connection_idle_after_an_exchange_holds_no_input_and_little_output() {
    let mut h = Harness::with_ack(AckMode::Enqueue);
    h.feed(&post("/topics/t", b"v"));
    assert_eq!(statuses(&h.responses()), [202]);
    assert_idle(&h, "one small request");
    assert!(
        h.conn.held_bytes().total() <= 2 * IDLE_BUFFER_FLOOR,
        "{:?}",
        h.conn.held_bytes()
    );

    // A large body, arriving in pieces (the input buffers the partial request), then
    // a pipelined burst whose answers fill a large output.
    let body = vec![b'x'; 12 * 1024];
    feed_chunks(&mut h, &post("/topics/t", &body), 1000);
    assert_eq!(statuses(&h.responses()), [202]);
    assert_idle(&h, "a 12 KiB body in 1000-byte reads");

    let burst: Vec<u8> = (0..32).flat_map(|_| post("/topics/t", b"v")).collect();
    h.feed(&burst);
    assert_eq!(h.responses().len(), 32);
    assert_idle(&h, "32 pipelined requests");
    assert!(
        h.conn.held_bytes().other <= IDLE_BUFFER_FLOOR,
        "the answer queue is released: {:?}",
        h.conn.held_bytes()
    );
}

#[test]
fn http_partial_request_keeps_only_its_bytes() {
    let mut h = Harness::with_ack(AckMode::Enqueue);
    let req = post("/topics/t", &vec![b'y'; 8 * 1024]);
    // Everything but the last byte, in one read after a large exchange.
    feed_chunks(&mut h, &req[..req.len() - 1], 16 * 1024);
    let held = h.conn.held_bytes();
    assert!(held.input > 0, "a partial request is kept: {held:?}");
    assert!(
        held.input <= 2 * req.len() + IDLE_BUFFER_FLOOR,
        "only about its own bytes: {held:?} for {} bytes",
        req.len()
    );
    h.feed(&req[req.len() - 1..]);
    assert_eq!(statuses(&h.responses()), [202]);
    assert_idle(&h, "the partial request completed");
}

#[test]
fn large_output_is_released_once_written() {
    let mut h = Harness::with_ack(AckMode::Enqueue);
    h.feed(&get("/metrics"));
    let out = h.out();
    assert!(
        out.len() > 4 * IDLE_BUFFER_FLOOR,
        "the /metrics answer is large ({} bytes)",
        out.len()
    );
    assert_idle(&h, "after a large answer");
}

#[test]
fn websocket_idle_after_messages_holds_no_input_and_little_output() {
    let mut h = Harness::with_ack(AckMode::Enqueue);
    h.upgrade("/ws/events");
    // Many messages in one large read, then one large message split across reads.
    let many: Vec<u8> = (0..200)
        .flat_map(|i| binary(format!("m{i}").as_bytes()))
        .collect();
    h.feed(&many);
    let frames = h.frames();
    assert!(!frames.is_empty(), "acks are sent");
    assert_idle(&h, "200 messages in one read");

    let big = binary(&vec![b'z'; 8 * 1024]);
    feed_chunks(&mut h, &big, 3000);
    assert_eq!(h.frames().len(), 1, "one ack");
    assert_idle(&h, "an 8 KiB message in 3000-byte reads");
    let held = h.conn.held_bytes();
    assert!(
        held.total() <= 3 * IDLE_BUFFER_FLOOR,
        "idle WebSocket buffers: {held:?}"
    );
}
