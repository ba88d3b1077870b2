//! The experiments, one module per `bench-client` subcommand that runs more than one
//! process: [`compare`] (every gateway through the scenario matrix), [`soak`] (long runs
//! with connection churn), [`chaos`] (broker faults, then verification), [`stall_lab`]
//! (the accept-stall reproductions); plus [`verify`] (acknowledged ids read back from
//! Kafka) and [`idle`] (memory per idle connection), which `chaos` and `compare` use.
//!
//! Each follows the same shape, [`shared::Experiment`]: arguments (a clap struct that
//! flattens the common [`shared::ExperimentArgs`]) → run on the [`lab`](crate::lab) with the
//! [`engine`](crate::engine) → a serializable summary written as JSON → a markdown report
//! and charts rendered from that summary alone (with [`reporting`](crate::reporting)) → an
//! exit status; [`shared::main`] drives it. Experiments depend on the engine, the lab and the
//! reporting; nothing outside this module depends on an experiment.

pub mod chaos;
pub mod compare;
pub mod idle;
pub mod shared;
pub mod soak;
pub mod stall_lab;
#[cfg(test)]
pub(crate) mod test_fixtures;
pub mod verify;
