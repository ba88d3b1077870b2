//! `--retries`: the order of the rounds phase when runs are made again. A round run whose
//! gateway or client CPUs had hypervisor steal ≥ 15% ([`RunRecord::stolen`]) measured the
//! host, not the gateway; it goes to the back of the queue (after every run still to make,
//! so a burst of steal on the host has time to pass) and is made again, up to `retries`
//! times. The last attempt's record is kept, with its attempt count.
//!
//! Pure: no processes, no clock; `run.rs` drives it.
//!
//! [`RunRecord::stolen`]: super::summary::RunRecord::stolen

use std::collections::VecDeque;

/// One run to make: the index of its slot in the plan's order, and which attempt it is
/// (1 = the first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Queued {
    pub slot: usize,
    pub attempt: u32,
}

/// Whether a run that has been made `attempt` times is made again.
pub fn should_retry(stolen: bool, attempt: u32, retries: usize) -> bool {
    stolen && (attempt as usize) <= retries
}

/// The rounds phase's queue: the plan's slots in order, then the re-runs.
#[derive(Debug, Clone)]
pub struct RetryQueue {
    queue: VecDeque<Queued>,
    retries: usize,
    last: Option<usize>,
}

impl RetryQueue {
    /// `slots` runs in the plan's order, each re-run at most `retries` times.
    pub fn new(slots: usize, retries: usize) -> Self {
        RetryQueue {
            queue: (0..slots).map(|slot| Queued { slot, attempt: 1 }).collect(),
            retries,
            last: None,
        }
    }

    /// The next run, and whether it follows its own previous attempt (only when nothing
    /// else is left to run; the caller then pauses first). Never the run just made while
    /// another one is queued.
    pub fn next(&mut self) -> Option<(Queued, bool)> {
        let pos =
            usize::from(self.queue.len() > 1 && self.queue.front().map(|q| q.slot) == self.last);
        let q = self.queue.remove(pos)?;
        let follows_itself = self.last == Some(q.slot);
        self.last = Some(q.slot);
        Some((q, follows_itself))
    }

    /// `q` was made; `stolen`: its CPUs had steal. Returns whether it is queued again.
    pub fn done(&mut self, q: Queued, stolen: bool) -> bool {
        let again = should_retry(stolen, q.attempt, self.retries);
        if again {
            self.queue.push_back(Queued {
                slot: q.slot,
                attempt: q.attempt + 1,
            });
        }
        again
    }
}

#[cfg(test)]
mod tests {
    use super::{should_retry, Queued, RetryQueue};

    /// Runs the queue to the end with `stolen(slot, attempt)` deciding each run; returns
    /// the order of the runs and the "follows itself" flags.
    fn drain(
        slots: usize,
        retries: usize,
        stolen: impl Fn(usize, u32) -> bool,
    ) -> (Vec<Queued>, Vec<bool>) {
        let mut q = RetryQueue::new(slots, retries);
        let (mut order, mut alone) = (vec![], vec![]);
        while let Some((r, follows)) = q.next() {
            order.push(r);
            alone.push(follows);
            q.done(r, stolen(r.slot, r.attempt));
        }
        (order, alone)
    }

    #[test]
    fn a_stolen_run_is_made_again_and_a_clean_one_is_not() {
        assert!(should_retry(true, 1, 2));
        assert!(should_retry(true, 2, 2));
        assert!(!should_retry(true, 3, 2), "2 retries = 3 attempts at most");
        assert!(!should_retry(false, 1, 2));
        let (order, _) = drain(3, 2, |slot, attempt| slot == 1 && attempt == 1);
        let slots: Vec<(usize, u32)> = order.iter().map(|q| (q.slot, q.attempt)).collect();
        assert_eq!(slots, [(0, 1), (1, 1), (2, 1), (1, 2)]);
    }

    #[test]
    fn retries_zero_keeps_the_plan_order() {
        assert!(!should_retry(true, 1, 0));
        let (order, _) = drain(4, 0, |_, _| true);
        let slots: Vec<(usize, u32)> = order.iter().map(|q| (q.slot, q.attempt)).collect();
        assert_eq!(slots, [(0, 1), (1, 1), (2, 1), (3, 1)]);
    }

    #[test]
    fn an_always_stolen_run_stops_after_its_retries() {
        let (order, _) = drain(2, 2, |slot, _| slot == 0);
        assert_eq!(order.iter().filter(|q| q.slot == 0).count(), 3);
        assert_eq!(order.iter().filter(|q| q.slot == 1).count(), 1);
    }

    #[test]
    fn re_runs_are_never_back_to_back_while_another_run_is_queued() {
        // Everything stolen: every slot is made 3 times.
        let (order, alone) = drain(3, 2, |_, _| true);
        assert_eq!(order.len(), 9);
        for (w, f) in order.windows(2).zip(&alone[1..]) {
            assert!(w[0].slot != w[1].slot, "back to back: {order:?}");
            assert!(!f);
        }
        // The last slot stolen, the others clean: its re-run follows the others, and
        // only when it is the last one left does it follow itself (flagged).
        let (order, alone) = drain(2, 1, |slot, _| slot == 1);
        let slots: Vec<usize> = order.iter().map(|q| q.slot).collect();
        assert_eq!(slots, [0, 1, 1]);
        assert_eq!(alone, [false, false, true]);
        // Two stolen slots at the end alternate rather than repeat.
        let (order, alone) = drain(3, 2, |slot, _| slot >= 1);
        let slots: Vec<usize> = order.iter().map(|q| q.slot).collect();
        assert_eq!(slots, [0, 1, 2, 1, 2, 1, 2]);
        assert!(alone.iter().all(|&f| !f));
    }
}
