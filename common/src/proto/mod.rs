//! The codecs: pure functions of bytes, no I/O, no clock. `http` (HTTP/1.1 requests and
//! responses), `dialect` and `rest` (the Kafka REST Proxy v2 produce dialect over HTTP),
//! `ws` (WebSocket framing over tungstenite, in memory). Above `policy` (they read `?ack=`
//! and apply `Limits`) and `publish` (REST answers name a record's `DeliveryError`).

pub mod dialect;
pub mod http;
pub mod rest;
pub mod ws;
