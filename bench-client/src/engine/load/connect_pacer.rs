//! Connect pacing (`--connect-rate`): connects leave at most this many a second, in order.
//!
//! Part of the [load engine](crate::engine::load).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::engine::load::recorder::lock;

/// The next connect slot of a run under `--connect-rate` (none without it).
pub(crate) struct ConnectPacer {
    next: Mutex<Instant>,
    interval: Option<Duration>,
}

impl ConnectPacer {
    pub(crate) fn new(rate: Option<f64>, t_start: Instant) -> Self {
        ConnectPacer {
            next: Mutex::new(t_start),
            interval: rate.map(|r| Duration::from_secs_f64(1.0 / r)),
        }
    }

    /// Wait for a connect slot under `--connect-rate`.
    pub(crate) async fn slot(&self) {
        let Some(iv) = self.interval else {
            return;
        };
        let at = {
            let mut next = lock(&self.next);
            let at = (*next).max(Instant::now());
            *next = at + iv;
            at
        };
        tokio::time::sleep_until(at.into()).await;
    }
}
