//! Analysis: what the recorded numbers mean. Histograms ([`stats`]), the 10 ms
//! [`timeline`] and its stall detection, error classification ([`errors`]), the label of
//! what bound a run ([`bound`]), the client's check on itself ([`self_check`]) and the
//! merge of sharded results ([`merge`]).
//!
//! Pure functions over data: no sockets, no clock; only [`merge`] reads and writes files.

pub mod bound;
pub mod errors;
pub mod merge;
pub mod self_check;
pub mod stats;
pub mod timeline;
