//! Load generation: the [`runner`] spawns one task per connection ([`http`], [`ws`], over
//! [`conn`], and [`tls`] for `https://` and `wss://`) that share one run's state ([`shared`]): the open-loop schedule ([`pacer`]),
//! connect pacing ([`connect_pacer`]), the requests they send ([`request`]) and what they
//! record ([`recorder`]).
//!
//! Depends on the scenario ([`config`](crate::engine::config)), the analysis types it
//! records into and the probes it starts; never on the printer or the monitor's display
//! beyond starting it.

pub(crate) mod conn;
pub(crate) mod connect_pacer;
pub(crate) mod http;
pub(crate) mod pacer;
pub(crate) mod recorder;
pub(crate) mod request;
pub mod runner;
pub(crate) mod shared;
pub(crate) mod tls;
pub(crate) mod ws;
