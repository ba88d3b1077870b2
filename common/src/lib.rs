//! `common`: the runtime-agnostic core of the Kafka ingest gateways.
//!
//! Entry points: `Gateway` (a gateway process's life), `serve_conn` (one connection, over
//! any runtime implementing `ConnIo` + `Timer`), and `conn::Conn` (the sans-IO
//! per-connection state machine underneath).
//!
//! The folders are the layers, top down; a layer uses only the layers below it:
//!
//! - `process`: one gateway process (command line, start, I/O threads, signals, drain,
//!   sockets, the embedded mock Kafka);
//! - `driver`: the runtime-adapter interface (`ConnIo`, `Timer`, `serve_conn`, accept policy,
//!   connection admission and drain);
//! - `tls`: HTTPS/WSS as a sans-IO layer (rustls's `ServerConnection`) between the driver's
//!   socket bytes and the state machine; plaintext connections go straight through;
//! - `conn`: the sans-IO connection state machine (bytes and time in, bytes and records out),
//!   HTTP and WebSocket sessions;
//! - `proto`: the codecs (HTTP/1.1, REST Proxy v2, WebSocket): pure, no I/O, no clock;
//! - `policy`: the validated configuration and the ack rule (`policy::ack`, the one place an
//!   `AckMode` is looked at);
//! - `publish`: the sinks (Kafka producer, null) and the routing of delivery reports back to
//!   their connections;
//! - `observe`: metrics, process figures, logging.
//!
//! This crate must not depend on a runtime's networking: no tokio runtime or net, no
//! tokio-uring, no compio. (`tokio::sync` is runtime-free and used for channels.)

pub mod conn;
pub mod driver;
pub mod observe;
pub mod policy;
pub mod process;
pub mod proto;
pub mod publish;
pub mod tls;

pub use driver::{serve_conn, AcceptAction, AcceptPolicy, ConnCtx, ConnIo, Timer};
pub use process::app::{Gateway, RuntimeInfo};
pub use process::args::GatewayArgs;
