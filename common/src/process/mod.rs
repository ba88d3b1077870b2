//! One gateway process: its command line (`args`), its life (`app`: start, bind, I/O
//! threads, signals, drain), the operating-system plumbing every runtime shares (`sys`)
//! and the embedded mock Kafka cluster (`embedded`). The top layer: nothing below uses it.

pub mod app;
pub mod args;
pub mod embedded;
pub mod sys;
