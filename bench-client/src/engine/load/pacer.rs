//! The open-loop schedule (`--rate`): slot `k` is due at `k × interval` after the start.
//! A plain thread ([`Pacer::run`]) counts the slots whose time has come, a task on the
//! client's runtime ([`Pacer::relay`]) turns them into send permits, and every response
//! releases the permits due by then ([`Pacer::pump`]).
//!
//! Part of the [load engine](crate::engine::load): knows nothing of recording or requests.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore};

/// The pacer releases permits at most this far apart (ns): ~20 requests per wake-up at
/// 100k/s, one per wake-up below 5k/s.
pub(crate) const PACER_BATCH_NS: u64 = 200_000;

/// The longest the pacer thread sleeps while the runtime keeps the schedule itself (its
/// responses pump the permits, see [`Pacer::pump`]): when the runtime goes quiet, the
/// first batch after it is at most this late, then the pacer is back to [`PACER_BATCH_NS`].
pub(crate) const PACER_IDLE_NS: u64 = 1_000_000;

/// Requests due by `now_ns` (slot k is due at `k * iv`): slots `0..due_by`.
pub(crate) fn due_by(now_ns: u64, iv: f64) -> u64 {
    (now_ns as f64 / iv) as u64 + 1
}

/// How long the pacer sleeps after releasing `released` slots at `now_ns`: until the next
/// slot is due, but at least `min_ns` (and at most 10 ms, to notice the stop).
pub(crate) fn pacer_sleep_ns(now_ns: u64, released: u64, iv: f64, min_ns: u64) -> u64 {
    let next = (released as f64 * iv) as u64;
    next.saturating_sub(now_ns).clamp(min_ns, 10_000_000)
}

/// The pacer's next minimum sleep: [`PACER_BATCH_NS`] when it found due requests the
/// runtime had not released, else twice the last one up to [`PACER_IDLE_NS`] (the runtime
/// is keeping the schedule; waking it costs two context switches on the client's core).
pub(crate) fn pacer_backoff_ns(last_ns: u64, found_due: bool) -> u64 {
    if found_due {
        PACER_BATCH_NS
    } else {
        (last_ns * 2).min(PACER_IDLE_NS)
    }
}

/// The open-loop schedule of one run; a closed loop has one too, that never holds a send
/// back.
pub(crate) struct Pacer {
    t_start: Instant,
    /// Open loop: nanoseconds between scheduled sends.
    interval_ns: Option<f64>,
    /// Open loop: one permit per scheduled send whose time has come, counted by the
    /// [`Pacer::run`] thread (tokio's 1 ms timer wheel would add up to ~2 ms of send
    /// lag) and released by [`Pacer::relay`] on the runtime.
    sched: Option<Semaphore>,
    /// Open loop: requests due so far, published by the pacer thread for the relay task.
    due: AtomicU64,
    wake: Notify,
    /// Open loop: send permits released so far (by [`Pacer::pump`]).
    granted: AtomicU64,
}

impl Pacer {
    /// The schedule of `rate` requests a second from `t_start` (`None`: closed loop).
    pub(crate) fn new(rate: Option<f64>, t_start: Instant) -> Self {
        Pacer {
            t_start,
            interval_ns: rate.map(|r| 1e9 / r),
            sched: rate.map(|_| Semaphore::new(0)),
            due: AtomicU64::new(0),
            wake: Notify::new(),
            granted: AtomicU64::new(0),
        }
    }

    fn ns(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.t_start).as_nanos() as u64
    }

    pub(crate) fn open_loop(&self) -> bool {
        self.interval_ns.is_some()
    }

    /// Open loop: nanoseconds between scheduled sends.
    pub(crate) fn interval_ns(&self) -> Option<f64> {
        self.interval_ns
    }

    /// Open loop: when slot `seq` is due, however late it is claimed.
    pub(crate) fn intended(&self, seq: u64) -> Option<Instant> {
        self.interval_ns
            .map(|i| self.t_start + Duration::from_nanos((seq as f64 * i) as u64))
    }

    /// Wait for the next send permit (open loop; at once in a closed loop). `None` once
    /// the schedule is closed.
    pub(crate) async fn permit(&self) -> Option<()> {
        if let Some(s) = &self.sched {
            s.acquire().await.ok()?.forget();
        }
        Some(())
    }

    /// Open loop: count the scheduled times that have come, from a plain thread with a
    /// 1 us timer slack, in batches at most [`PACER_BATCH_NS`] apart, until
    /// `stop`; each batch is one wake of [`Pacer::relay`], which releases
    /// the send permits on the client's runtime.
    ///
    /// Batching is what lets one client core keep a 100k/s schedule: a wake-up per request
    /// from another thread (a context switch, the runtime's injection queue and an unpark
    /// each time) costs more than the request. Under load the runtime releases the permits
    /// itself as responses arrive ([`Pacer::pump`]); the pacer then finds nothing due and
    /// backs off to [`PACER_IDLE_NS`] ([`pacer_backoff_ns`]). A request released late by
    /// the batching is still timed from its intended time (`seq × interval`), so the delay
    /// shows in the corrected latency, never hidden.
    pub(crate) fn run(&self, stop: &AtomicBool) {
        let Some(iv) = self.interval_ns else {
            return;
        };
        // SAFETY: prctl(PR_SET_TIMERSLACK) only changes this thread's timer slack.
        unsafe {
            libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong);
        }
        let mut min_sleep = PACER_BATCH_NS;
        while !stop.load(Relaxed) {
            let now = self.ns(Instant::now());
            let due = due_by(now, iv);
            // Requests already a batch late that the runtime has not released: it is not
            // keeping the schedule by itself.
            let found_due =
                due_by(now.saturating_sub(PACER_BATCH_NS), iv) > self.granted.load(Relaxed);
            if due > self.granted.load(Relaxed) {
                self.due.store(due, Relaxed);
                self.wake.notify_one();
            }
            min_sleep = pacer_backoff_ns(min_sleep, found_due);
            std::thread::sleep(Duration::from_nanos(pacer_sleep_ns(
                now, due, iv, min_sleep,
            )));
        }
        // Let the relay see the stop.
        self.wake.notify_one();
    }

    /// Open loop, a task on the client's runtime: turns the pacer's due count into send
    /// permits, so the connection tasks are woken from their own runtime (local wakes).
    pub(crate) async fn relay(&self, stop: &AtomicBool) {
        while !stop.load(Relaxed) {
            self.wake.notified().await;
            self.grant_to(self.due.load(Relaxed));
        }
    }

    /// Open loop, on the client's runtime: release the permits of every request due by
    /// `now`. Called for each response, so a busy client keeps its schedule without the
    /// pacer thread's wake-ups.
    pub(crate) fn pump(&self, now: Instant) {
        if let Some(iv) = self.interval_ns {
            self.grant_to(due_by(self.ns(now), iv));
        }
    }

    fn grant_to(&self, due: u64) {
        let Some(sem) = &self.sched else { return };
        let granted = self.granted.load(Relaxed);
        if due > granted
            && self
                .granted
                .compare_exchange(granted, due, Relaxed, Relaxed)
                .is_ok()
        {
            sem.add_permits((due - granted) as usize);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_releases_in_batches() {
        // 100k/s: one slot every 10 us; the pacer sleeps at least 200 us between batches.
        let iv = 1e9 / 100_000.0;
        assert_eq!(due_by(0, iv), 1);
        assert_eq!(due_by(1_000_000, iv), 101);
        assert_eq!(
            pacer_sleep_ns(1_000_000, 101, iv, PACER_BATCH_NS),
            PACER_BATCH_NS
        );
        // At 1k/s it sleeps until the next slot.
        let iv = 1e6;
        assert_eq!(pacer_sleep_ns(1_500_000, 2, iv, PACER_BATCH_NS), 500_000);
        // While the runtime releases the permits itself the pacer backs off to 1 ms, and
        // is back to 200 us batches as soon as it finds requests due and unreleased.
        let mut min = PACER_BATCH_NS;
        for _ in 0..10 {
            min = pacer_backoff_ns(min, false);
        }
        assert_eq!(min, PACER_IDLE_NS);
        assert_eq!(pacer_backoff_ns(min, true), PACER_BATCH_NS);
    }
}
