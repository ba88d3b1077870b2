//! bench-client: a load generator for the ingest gateways whose numbers can be trusted.
//!
//! Entry points: [`run`] / [`run_blocking`] drive one gateway with one scenario
//! ([`RunConfig`]) and return a [`RunResult`] (serializable, schema in `SCHEMA.md`);
//! [`verify::verify`] checks that acknowledged records are in Kafka. The binary
//! (`main.rs`) is glue over these, so `compare`, `stall-lab` and `report` can reuse them.
//!
//! Methodology (see DESIGN.md): per-thread HdrHistograms merged with `add`; open loop
//! measured from the intended send time; per-second series with explicit zeros; stalls
//! detected offline on a 10 ms timeline ([`timeline::detect_stalls`]) and classified.
//!
//! This crate talks to gateways only over sockets: it depends on no other workspace crate.

pub mod bound;
pub mod chaos;
pub mod charts;
pub mod compare;
pub mod compare_report;
pub mod config;
mod conn;
pub mod cost;
pub mod errors;
mod http;
pub mod idle;
pub mod lab;
pub mod manifest;
pub mod matrix;
pub mod procnet;
mod recorder;
pub mod report;
mod runner;
pub mod soak;
pub mod stall_lab;
pub mod stats;
pub mod timeline;
pub mod verify;
mod ws;

pub use config::{Ack, Mode, PayloadSize, RunArgs, RunConfig};
pub use report::{RunResult, SelfCheck, Totals};
pub use runner::{run, run_blocking};
pub use stats::HistSummary;
pub use timeline::{Stall, StallClass};
pub use verify::{VerifyArgs, VerifyResult};
