//! Probes of the machine and the processes around a run: what the target and the broker
//! spent ([`cost`]), the target's accept queue ([`procnet`]) and the [`manifest`] of where
//! and how the numbers were made.
//!
//! Each reads /proc, perf or the system; none knows about the load engine.

pub mod cost;
pub mod manifest;
pub mod procnet;
