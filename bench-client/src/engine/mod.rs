//! The load engine: drives one gateway with one scenario and measures it honestly.
//!
//! Shaped like oha: the engine, the live display, the printed summary and the result data
//! are apart and never reach into each other.
//!
//! * [`config`] — the scenario: clap [`RunArgs`] validated once into a [`RunConfig`].
//! * [`load`] — load generation: the runner ([`run`] / [`run_blocking`]), the connection
//!   tasks (HTTP keep-alive, connect-per-request, WebSocket), the open-loop pacer, connect
//!   pacing, request encoding and the per-thread recorders.
//! * `monitor` — the live progress display, ticked by the runner.
//! * [`analysis`] — histograms, the 10 ms timeline and its offline stall detection, error
//!   classes, the label of what bound a run, the client's self-check, the merge of shards.
//! * [`probes`] — the gateway's and broker's cost, the accept-queue probe, the manifest of
//!   the machine.
//! * [`result`] — the result data ([`RunResult`], serializable, schema in `SCHEMA.md`) and
//!   its files; `build` makes it from the recorders; [`printer`] prints its summary.
//!
//! Inside, imports go one way: `config`, `units` and `analysis` are at the bottom;
//! `probes` and `result` above them; `load`'s recording and the monitor above those; the
//! runner and `build` at the top (`analysis::merge` reads results and prints them).
//!
//! The engine depends on nothing else in this crate: the lab, the experiments and the
//! reporting are built on it, never the other way round.

pub mod analysis;
pub(crate) mod build;
pub mod config;
pub mod load;
pub(crate) mod monitor;
pub mod printer;
pub mod probes;
pub mod result;
pub(crate) mod units;

pub use analysis::self_check::SelfCheck;
pub use config::{Ack, Mode, PayloadSize, RunArgs, RunConfig};
pub use load::runner::{run, run_blocking, run_blocking_until, run_until};
pub use result::{RunResult, Totals};
