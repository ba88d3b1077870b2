//! bench-client: a load generator for the ingest gateways whose numbers can be trusted.
//!
//! The crate is layered; each layer depends only on the ones before it:
//!
//! 1. [`engine`] — the load engine: [`run`] / [`run_blocking`] drive one gateway with one
//!    scenario ([`RunConfig`]) and return a [`RunResult`] (serializable, schema in
//!    `SCHEMA.md`). Shaped like oha, in parts that never reach into each other:
//!    `engine::config` (the scenario), `engine::load` (runner, connections, HTTP and
//!    WebSocket tasks, pacer, request encoding, connect pacing, recorder),
//!    `engine::monitor` (the live display), `engine::analysis` (stats, timeline and stalls,
//!    errors, bound, self-check, merge), `engine::probes` (cost, accept queue, manifest),
//!    and the result apart in three: `engine::result` (the data and its files),
//!    `engine::build` (made from the recorders), `engine::printer` (the printed summary).
//! 2. [`lab`] — child processes, pinning, gateway and kafka-mock lifecycle, /proc sampling.
//! 3. [`reporting`] — formatting, chart primitives and outcome lines shared by reports.
//! 4. [`experiments`] — `compare`, `soak`, `chaos`, `stall-lab`, `verify`, `idle`.
//!
//! The binary (`main.rs`) is glue over these.
//!
//! Methodology (see DESIGN.md): per-thread HdrHistograms merged with `add`; open loop
//! measured from the intended send time; per-second series with explicit zeros; stalls
//! detected offline on a 10 ms timeline ([`engine::analysis::timeline::detect_stalls`]) and
//! classified.
//!
//! This crate talks to gateways only over sockets: the only workspace crate it depends on is
//! `duration-grammar` (no dependencies; the duration grammar it shares with the gateways).

pub mod engine;
pub mod experiments;
pub mod lab;
pub mod reporting;

pub use engine::analysis::self_check::SelfCheck;
pub use engine::analysis::stats::HistSummary;
pub use engine::analysis::timeline::{Stall, StallClass};
pub use engine::config::{Ack, Mode, PayloadSize, RunArgs, RunConfig};
pub use engine::result::{RunResult, Totals};
pub use engine::{run, run_blocking, run_blocking_until, run_until};
pub use experiments::verify::{VerifyArgs, VerifyResult};
