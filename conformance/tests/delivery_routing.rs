//! Delivery reports reach the right connection (common/src/route.rs) through real sockets:
//! connections that close with records in flight must not leak their acknowledgements to
//! the connections that come after them, on every gateway variant.

use std::collections::HashMap;
use std::time::Duration;

use conformance::{consume, encode_request, kafka_control, start_kafka_mock, Gateway, Variant};

conformance::suite!(closed_connections_never_ack_for_new_ones);

/// Rounds of: 40 WebSocket connections each send three ack=kafka messages and hang up at
/// once, while records take ~150 ms to be acknowledged (a WebSocket connection whose peer
/// is gone closes without waiting for its reports); then 40 new HTTP connections, likely
/// in the slots just released, each pipeline three records and must get exactly their own
/// records' partition/offset back, in order.
fn closed_connections_never_ack_for_new_ones(v: &Variant) {
    let topic = "routing";
    let (mut kafka, brokers) = start_kafka_mock(&[topic]);
    let gw = Gateway::start(v, &["--brokers", &brokers]);
    for b in 1..=3 {
        kafka_control(&mut kafka, &format!("rtt {b} 150"));
    }
    let mut expected: HashMap<(i32, i64), String> = HashMap::new();
    for round in 0..3 {
        for i in 0..40 {
            let stream = std::net::TcpStream::connect(gw.addr).unwrap();
            let url = format!("ws://{}/ws/{topic}", gw.addr);
            let (mut ws, _) = tungstenite::client(url, stream).expect("websocket handshake");
            for j in 0..3 {
                ws.write(tungstenite::Message::text(format!("gone-{round}-{i}-{j}")))
                    .unwrap();
            }
            ws.flush().unwrap();
            drop(ws);
        }
        let mut clients: Vec<_> = (0..40)
            .map(|i| {
                let mut c = gw.connect();
                let bodies: Vec<String> = (0..3).map(|j| format!("kept-{round}-{i}-{j}")).collect();
                let mut raw = Vec::new();
                for body in &bodies {
                    raw.extend(encode_request(
                        "POST",
                        &format!("/topics/{topic}"),
                        &[],
                        body.as_bytes(),
                    ));
                }
                c.send_raw(&raw).expect("send");
                (c, bodies)
            })
            .collect();
        for (c, bodies) in &mut clients {
            for body in bodies.iter() {
                let r = c.read_response().expect("an answer");
                assert_eq!(r.status, 200, "{}: {r:?}", v.name);
                let j = r.json();
                let po = (
                    j["partition"].as_i64().unwrap() as i32,
                    j["offset"].as_i64().unwrap(),
                );
                assert!(
                    expected.insert(po, body.clone()).is_none(),
                    "{}: two acks name {po:?}",
                    v.name
                );
            }
        }
    }
    // Every acknowledged (partition, offset) holds the record of the connection it was
    // acknowledged to.
    let records = consume(&brokers, topic, Duration::from_secs(30), |rs| {
        let found = rs
            .iter()
            .filter(|x| expected.contains_key(&(x.partition, x.offset)))
            .count();
        found == expected.len()
    });
    for ((p, o), body) in &expected {
        let rec = records
            .iter()
            .find(|x| x.partition == *p && x.offset == *o)
            .unwrap_or_else(|| panic!("{}: acked {p}/{o} not in Kafka", v.name));
        assert_eq!(
            String::from_utf8_lossy(&rec.value),
            *body,
            "{}: the ack for {body} named another connection's record",
            v.name
        );
    }
    // The gateway counted the hung-up connections' records too.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while gw.metric("gateway_records_delivered_total") < 3.0 * (120.0 + 120.0) {
        assert!(
            std::time::Instant::now() < deadline,
            "{}: delivered {} of {}",
            v.name,
            gw.metric("gateway_records_delivered_total"),
            3 * 240
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
