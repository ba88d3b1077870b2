//! The load engine: drives one gateway with one scenario and measures it honestly.
//!
//! Entry point: [`run`] / [`run_blocking`] take a [`RunConfig`] ([`config`]) and return a
//! [`RunResult`] ([`result`], serializable, schema in `SCHEMA.md`). Inside: connections
//! (`conn`, `http`, `ws`) record into per-thread HdrHistograms ([`stats`]) and a 10 ms
//! [`timeline`] (`recorder`); [`errors`] classifies failures; after the run the result is
//! built with stalls detected offline, the gateway's cost ([`cost`]), the accept-queue
//! probe ([`procnet`]), the label of what bound the run ([`bound`]) and the [`manifest`]
//! of the machine.
//!
//! The engine depends on nothing else in this crate: the lab, the experiments and the
//! reporting are built on it, never the other way round.

pub mod bound;
pub mod config;
mod conn;
pub mod cost;
pub mod errors;
mod http;
pub mod manifest;
pub mod merge;
pub mod procnet;
mod recorder;
pub mod result;
mod runner;
pub mod stats;
pub mod timeline;
mod ws;

pub use config::{Ack, Mode, PayloadSize, RunArgs, RunConfig};
pub use result::{RunResult, SelfCheck, Totals};
pub use runner::{run, run_blocking, run_blocking_until, run_until};
