//! What the operator chose and what it means: the validated configuration (`config`) and
//! the ack-mode rule (`ack`, the one place an `AckMode` is looked at). Plain data and pure
//! functions; below the codecs, which read `?ack=` and apply `Limits`.

pub mod ack;
pub mod config;
