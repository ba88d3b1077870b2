//! `common`: the runtime-agnostic core of the Kafka ingest gateways.
//!
//! Entry points: `app::Gateway` (a gateway process's life), `driver::serve_conn` (one
//! connection, over any runtime implementing `driver::ConnIo` + `driver::Timer`), and
//! `conn::Conn` (the sans-IO per-connection state machine underneath). `http` and `ws` are
//! the codecs, `publish` the Kafka producer and null sink, `config` the shared command line.
//!
//! This crate must not depend on a runtime's networking: no tokio runtime or net, no
//! tokio-uring, no compio. (`tokio::sync` is runtime-free and used for channels.)

pub mod app;
pub mod config;
pub mod conn;
pub mod driver;
pub mod embedded;
pub mod http;
pub mod metrics;
pub mod publish;
pub mod rest;
pub mod route;
pub mod sys;
pub mod telemetry;
pub mod ws;

pub use app::{Gateway, RuntimeInfo};
pub use config::GatewayArgs;
pub use driver::{serve_conn, AcceptAction, AcceptPolicy, ConnCtx, ConnIo, Timer};
