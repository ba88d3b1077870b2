//! Arbitrary bytes through the whole connection state machine (HTTP, and WebSocket after an
//! upgrade), with the null sink: never a panic, output always drained.
#![no_main]

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::policy::ack::AckMode;
use common::policy::config::{Config, Limits, SinkKind};
use common::conn::{Conn, Shared};
use common::observe::metrics::Metrics;
use common::publish::NullSink;
use libfuzzer_sys::fuzz_target;

const UPGRADE: &[u8] = b"GET /ws/f HTTP/1.1\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n";

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else {
        return;
    };
    let metrics = Arc::new(Metrics::default());
    let shared = Arc::new(Shared {
        config: Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            threads: 1,
            default_ack: AckMode::Kafka,
            sink: SinkKind::Null,
            limits: Limits {
                max_head: 1024,
                max_headers: 16,
                max_body: 4096,
                max_pipeline: 8,
                ws_max_inflight: 8,
                max_records: 8,
            },
            backlog: 16,
            max_connections: 16,
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(1),
            faults: Vec::new(),
        },
        sink: Arc::new(NullSink::new(metrics.clone())),
        metrics,
        info: Vec::new(),
    });
    let now = Instant::now();
    static MAILBOX: std::sync::OnceLock<Arc<common::publish::dispatch::Mailbox>> = std::sync::OnceLock::new();
    let mailbox = MAILBOX.get_or_init(|| common::publish::dispatch::router().new_mailbox());
    let mut port = mailbox.register();
    let mut conn = Conn::new(shared, port.reply(), now);
    let mut got = Vec::new();
    if mode & 1 == 1 {
        conn.on_data(UPGRADE, now);
    }
    let step = usize::from(mode >> 1).max(1);
    for piece in data.chunks(step) {
        if conn.is_finished() {
            break;
        }
        conn.on_data(piece, now);
        port.take(&mut got);
        for d in got.drain(..) {
            conn.on_delivery(d, now);
        }
        let _ = conn.take_output();
    }
    conn.on_timer(now + Duration::from_secs(3600));
    conn.on_eof(now);
    let _ = conn.take_output();
    port.close(conn.routed());
});
