//! Delivery routing: how the outcome of a record gets from the producer's poll thread back
//! to the connection that sent it, in batches.
//!
//! Every record carries a plain integer (`ReplyTo::token`): mailbox, connection slot,
//! slot generation and the low bits of the connection's sequence number. No allocation,
//! no reference count per record. Each I/O thread owns one `Mailbox`; the poll thread
//! collects a whole poll batch of delivery reports per mailbox (`Batcher`), hands each
//! batch over with one lock-free channel send and wakes the mailbox's dispatcher once.
//! The dispatcher (a task on the I/O thread, `Mailbox::run`) moves the reports into the
//! connections' inboxes and wakes each connection that got something, locally, once per
//! batch; the connection drains its inbox and writes one coalesced answer.
//!
//! Closed connections: a slot whose connection is gone while records are in flight is
//! not reused until every one of those records has been reported (their reports are
//! dropped; the sink counts them in its metrics). The generation check is a second line:
//! a report whose generation does not match its slot is dropped, so a stale report can
//! never reach a newer connection in the same slot.
//!
//! The poll thread never takes a lock a connection holds and never waits: it only sends
//! on `std::sync::mpsc` (lock-free) and wakes an `AtomicWaker`.
//!
//! The mailbox also keeps its connections' deadlines (idle, request and close timeouts):
//! one heap entry of 16 bytes per waiting connection instead of a runtime sleep in every
//! connection's future, and one runtime sleep per I/O thread, in the dispatcher
//! (`Mailbox::fire_timers`, driven by `driver::ConnCtx::for_io_thread`). A slot has at most
//! one live entry (`Slot::armed`); entries of closed connections and superseded deadlines
//! are dropped when they come up, or by a compaction once they outnumber the open
//! connections, so churn cannot pile them up.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;

use super::sink::{Delivery, DeliveryError};
use super::token::{decode, ReplyTo, Token, GEN_BITS, GEN_MASK, MAX_MAILBOXES, MAX_SLOTS};

/// One report on its way to a mailbox.
#[derive(Debug)]
pub struct Routed {
    pub token: u64,
    pub result: Result<(i32, i64), DeliveryError>,
}

/// Every mailbox of the process, by index (what a token names).
pub struct Router {
    mailboxes: Box<[OnceLock<Arc<Mailbox>>]>,
    next: AtomicUsize,
}

/// The process's router.
pub fn router() -> &'static Router {
    static ROUTER: OnceLock<Router> = OnceLock::new();
    ROUTER.get_or_init(|| Router {
        mailboxes: (0..MAX_MAILBOXES).map(|_| OnceLock::new()).collect(),
        next: AtomicUsize::new(0),
    })
}

impl Router {
    /// A new mailbox (one per I/O thread). The last index is reserved for
    /// `ReplyTo::detached`.
    pub fn new_mailbox(&self) -> Arc<Mailbox> {
        let index = self.next.fetch_add(1, Ordering::Relaxed);
        assert!(
            index < MAX_MAILBOXES - 1,
            "more than {} I/O threads",
            MAX_MAILBOXES - 1
        );
        let (tx, rx) = mpsc::channel();
        let (spare_tx, spare_rx) = mpsc::channel();
        let mailbox = Arc::new(Mailbox {
            index,
            tx,
            spare_tx,
            spare_rx: Mutex::new(spare_rx),
            waker: AtomicWaker::new(),
            wakes: AtomicU64::new(0),
            shut_down: AtomicBool::new(false),
            epoch: Instant::now(),
            table: Mutex::new(Table {
                rx,
                slots: Vec::new(),
                free: VecDeque::new(),
                dropped: 0,
                open: 0,
                timers: BinaryHeap::new(),
                sleeping_until: 0,
            }),
        });
        let _ = self.mailboxes[index].set(mailbox.clone());
        mailbox
    }

    fn mailbox(&self, index: usize) -> Option<&Arc<Mailbox>> {
        self.mailboxes.get(index).and_then(OnceLock::get)
    }

    /// Reports one record at once, from the connection's own thread (the null sink).
    pub fn deliver_now(&self, token: u64, result: Result<(i32, i64), DeliveryError>) {
        let Some(t) = decode(token) else { return };
        if let Some(mb) = self.mailbox(t.mailbox) {
            let mut table = mb.table.lock().unwrap();
            table.route(t, result);
        }
    }
}

/// What the poll thread fills during one poll batch: reports grouped by mailbox. Flushing
/// hands each mailbox its reports with one send and one wake.
#[derive(Default)]
pub struct Batcher {
    pending: Vec<Vec<Routed>>,
    touched: Vec<usize>,
}

impl Batcher {
    pub fn push(&mut self, token: u64, result: Result<(i32, i64), DeliveryError>) {
        let Some(t) = decode(token) else { return };
        if t.mailbox >= self.pending.len() {
            self.pending.resize_with(t.mailbox + 1, Vec::new);
        }
        let v = &mut self.pending[t.mailbox];
        if v.is_empty() {
            self.touched.push(t.mailbox);
            if v.capacity() == 0 {
                if let Some(mb) = router().mailbox(t.mailbox) {
                    *v = mb.spare();
                }
            }
        }
        v.push(Routed { token, result });
    }

    /// Reports collected and not yet flushed.
    pub fn len(&self) -> usize {
        self.touched.iter().map(|&i| self.pending[i].len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.touched.is_empty()
    }

    /// One send and one wake per mailbox that has reports.
    pub fn flush(&mut self) {
        for i in self.touched.drain(..) {
            let batch = std::mem::take(&mut self.pending[i]);
            if let Some(mb) = router().mailbox(i) {
                if mb.tx.send(batch).is_ok() {
                    mb.wakes.fetch_add(1, Ordering::Relaxed);
                    mb.waker.wake();
                }
            }
        }
    }
}

/// One I/O thread's delivery reports: the batches from the poll thread and the table of
/// its connections.
pub struct Mailbox {
    index: usize,
    tx: mpsc::Sender<Vec<Routed>>,
    /// Emptied batch vectors going back to the poll thread for reuse.
    spare_tx: mpsc::Sender<Vec<Routed>>,
    spare_rx: Mutex<mpsc::Receiver<Vec<Routed>>>,
    waker: AtomicWaker,
    /// Batches handed over (one wake each).
    wakes: AtomicU64,
    /// Set by `shut_down`: every connection of this mailbox is told to shut down.
    shut_down: AtomicBool,
    /// Deadlines are kept as nanoseconds since this instant, plus one (0: none).
    epoch: Instant,
    table: Mutex<Table>,
}

struct Table {
    rx: mpsc::Receiver<Vec<Routed>>,
    slots: Vec<Slot>,
    /// Free slots, oldest first (a freed slot is reused last).
    free: VecDeque<usize>,
    /// Reports dropped: connection gone or generation mismatch.
    dropped: u64,
    /// Slots registered and not closed.
    open: usize,
    /// The connections' deadlines, earliest first: (time, `timer_key(slot, gen)`). An entry
    /// is live if its slot is open with that generation and `armed` at that time.
    timers: BinaryHeap<Reverse<(u64, u32)>>,
    /// When the dispatcher's sleep ends (0: no sleep): an earlier deadline wakes it.
    sleeping_until: u64,
}

struct Slot {
    /// Current generation, never 0; bumped when the slot is handed out.
    gen: u32,
    state: SlotState,
    /// Open: reports handed to the connection (its inbox) so far. Closed: reports still
    /// to come.
    count: u64,
    /// The time of this slot's live timer entry (0: none).
    armed: u64,
    inbox: Vec<Delivery>,
    waker: Option<Waker>,
}

impl Default for Slot {
    fn default() -> Slot {
        Slot {
            gen: 0,
            state: SlotState::Free,
            count: 0,
            armed: 0,
            inbox: Vec::new(),
            waker: None,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum SlotState {
    Free,
    Open,
    /// The connection is gone; `count` reports are still to come.
    Closed,
}

fn timer_key(slot: usize, gen: u32) -> u32 {
    ((slot as u32) << GEN_BITS) | gen
}

fn timer_slot(key: u32) -> (usize, u32) {
    ((key >> GEN_BITS) as usize, key & GEN_MASK)
}

impl Table {
    fn route(&mut self, t: Token, result: Result<(i32, i64), DeliveryError>) {
        let Some(slot) = self.slots.get_mut(t.slot) else {
            self.dropped += 1;
            return;
        };
        if slot.gen != t.gen {
            self.dropped += 1;
            return;
        }
        match slot.state {
            SlotState::Open => {
                slot.count += 1;
                let was_empty = slot.inbox.is_empty();
                slot.inbox.push(Delivery { seq: t.seq, result });
                if was_empty {
                    if let Some(w) = &slot.waker {
                        w.wake_by_ref();
                    }
                }
            }
            SlotState::Closed => {
                self.dropped += 1;
                if slot.count <= 1 {
                    slot.state = SlotState::Free;
                    self.free.push_back(t.slot);
                } else {
                    slot.count -= 1;
                }
            }
            SlotState::Free => self.dropped += 1,
        }
    }
}

impl Mailbox {
    pub fn index(&self) -> usize {
        self.index
    }

    /// Batches handed over by poll threads so far (each was one wake).
    pub fn wakes(&self) -> u64 {
        self.wakes.load(Ordering::Relaxed)
    }

    /// Reports dropped because their connection was gone (or its slot reused).
    pub fn dropped(&self) -> u64 {
        self.table.lock().unwrap().dropped
    }

    fn spare(&self) -> Vec<Routed> {
        // try_lock: the poll thread never waits (another poller may hold it).
        self.spare_rx
            .try_lock()
            .ok()
            .and_then(|rx| rx.try_recv().ok())
            .unwrap_or_default()
    }

    /// Registers a connection: its slot and the address its records carry.
    pub fn register(self: &Arc<Self>) -> Port {
        let mut table = self.table.lock().unwrap();
        let slot = match table.free.pop_front() {
            Some(i) => i,
            None => {
                assert!(table.slots.len() < MAX_SLOTS, "too many connections");
                table.slots.push(Slot::default());
                table.slots.len() - 1
            }
        };
        let s = &mut table.slots[slot];
        s.gen = if s.gen >= GEN_MASK { 1 } else { s.gen + 1 };
        s.state = SlotState::Open;
        s.count = 0;
        s.armed = 0;
        s.inbox = Vec::new();
        s.waker = None;
        let gen = s.gen as u16;
        table.open += 1;
        Port {
            mailbox: self.clone(),
            slot: slot as u32,
            gen,
            closed: false,
        }
    }

    fn ticks(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_nanos() as u64 + 1
    }

    fn instant(&self, ticks: u64) -> Instant {
        self.epoch + Duration::from_nanos(ticks - 1)
    }

    /// Wakes every waiting connection whose deadline (`Port::poll_take`) is `now` or
    /// earlier; returns the earliest deadline still set, which the dispatcher sleeps until.
    pub fn fire_timers(&self, now: Instant) -> Option<Instant> {
        let now = self.ticks(now);
        let mut table = self.table.lock().unwrap();
        let Table {
            slots,
            timers,
            sleeping_until,
            ..
        } = &mut *table;
        while let Some(&Reverse((t, key))) = timers.peek() {
            if t > now {
                break;
            }
            timers.pop();
            let (slot, gen) = timer_slot(key);
            if let Some(s) = slots.get_mut(slot) {
                if s.gen == gen && s.state == SlotState::Open && s.armed == t {
                    s.armed = 0;
                    if let Some(w) = &s.waker {
                        w.wake_by_ref();
                    }
                }
            }
        }
        let next = timers.peek().map(|e| e.0 .0);
        *sleeping_until = next.unwrap_or(0);
        next.map(|t| self.instant(t))
    }

    /// Timer entries held (live or not yet dropped).
    pub fn timers(&self) -> usize {
        self.table.lock().unwrap().timers.len()
    }

    /// Tells every connection of this mailbox to shut down (`Port::is_shut_down`) and wakes
    /// every waiting one.
    pub fn shut_down(&self) {
        self.shut_down.store(true, Ordering::Release);
        self.wake_all();
    }

    /// Moves every batch that arrived into the connections' inboxes, waking each connection
    /// that got a report. Returns the reports handled.
    pub fn dispatch(&self) -> usize {
        let mut table = self.table.lock().unwrap();
        let mut n = 0;
        while let Ok(mut batch) = table.rx.try_recv() {
            n += batch.len();
            for r in batch.drain(..) {
                if let Some(t) = decode(r.token) {
                    table.route(t, r.result);
                }
            }
            let _ = self.spare_tx.send(batch);
        }
        n
    }

    /// Wakes every open connection that is waiting (`Port::poll_take`), whether or not a
    /// report came: how the I/O thread tells its connections to look at a process-wide
    /// event (shutdown) without each holding a waiter of its own. A connection that registers
    /// its waker after this call returned must check the event itself after registering.
    fn wake_all(&self) {
        let table = self.table.lock().unwrap();
        for slot in &table.slots {
            if slot.state == SlotState::Open {
                if let Some(w) = &slot.waker {
                    w.wake_by_ref();
                }
            }
        }
    }

    /// The dispatcher task (`driver`) registers its waker before each `dispatch` and
    /// `fire_timers`: a batch or an earlier deadline wakes it.
    pub fn register_dispatcher(&self, waker: &Waker) {
        self.waker.register(waker);
    }
}

/// A connection's registration in its I/O thread's mailbox (16 bytes: part of every
/// connection).
pub struct Port {
    mailbox: Arc<Mailbox>,
    slot: u32,
    gen: u16,
    closed: bool,
}

impl Port {
    /// The address this connection's records carry.
    pub fn reply(&self) -> ReplyTo {
        ReplyTo::new(self.mailbox.index, self.slot as usize, self.gen as u32)
    }

    /// True once the I/O thread was told to shut down (`Mailbox::shut_down`). A connection
    /// checks it after `poll_take` registered its waker: a shutdown after the check wakes it.
    pub fn is_shut_down(&self) -> bool {
        self.mailbox.shut_down.load(Ordering::Acquire)
    }

    /// Swaps the reports that arrived into `out` (which should be empty).
    pub fn take(&self, out: &mut Vec<Delivery>) {
        let mut table = self.mailbox.table.lock().unwrap();
        std::mem::swap(&mut table.slots[self.slot as usize].inbox, out);
    }

    /// Like `take`, but when nothing arrived yet registers the task to be woken when a
    /// report arrives, at shutdown, and at `deadline` if one is given (a later call replaces
    /// it). The wake at the deadline comes from the dispatcher's timer and may come early
    /// (a deadline that was moved later): the caller compares the time itself.
    pub fn poll_take(
        &self,
        cx: &mut Context<'_>,
        out: &mut Vec<Delivery>,
        deadline: Option<Instant>,
    ) -> Poll<()> {
        let mut table = self.mailbox.table.lock().unwrap();
        let Table {
            slots,
            timers,
            sleeping_until,
            open,
            ..
        } = &mut *table;
        let slot = &mut slots[self.slot as usize];
        if !slot.inbox.is_empty() {
            std::mem::swap(&mut slot.inbox, out);
            return Poll::Ready(());
        }
        match &slot.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => slot.waker = Some(cx.waker().clone()),
        }
        // A waiting connection keeps no report buffer (the next report allocates one).
        if slot.inbox.capacity() > 0 {
            slot.inbox = Vec::new();
        }
        let Some(deadline) = deadline else {
            // An entry still armed fires as a spurious wake, or is dropped by compaction.
            return Poll::Pending;
        };
        let t = self.mailbox.ticks(deadline);
        // An armed entry at or before `t` wakes the connection in time (to re-arm if early).
        if slot.armed != 0 && slot.armed <= t {
            return Poll::Pending;
        }
        slot.armed = t;
        timers.push(Reverse((t, timer_key(self.slot as usize, self.gen as u32))));
        if timers.len() > 2 * *open + 1024 {
            // Compaction: only live entries stay, at most one per open slot.
            timers.retain(|&Reverse((t, key))| {
                let (slot, gen) = timer_slot(key);
                slots
                    .get(slot)
                    .is_some_and(|s| s.gen == gen && s.state == SlotState::Open && s.armed == t)
            });
        }
        let wake_dispatcher = *sleeping_until == 0 || t < *sleeping_until;
        if wake_dispatcher {
            *sleeping_until = t;
        }
        drop(table);
        if wake_dispatcher {
            self.mailbox.waker.wake();
        }
        Poll::Pending
    }

    /// The connection is gone after handing `sent` records with this address to the sink:
    /// reports still to come are dropped, and the slot is reused once they all came.
    pub fn close(&mut self, sent: u64) {
        if std::mem::replace(&mut self.closed, true) {
            return;
        }
        let mut table = self.mailbox.table.lock().unwrap();
        table.open -= 1;
        let slot = &mut table.slots[self.slot as usize];
        let dropped = slot.inbox.len() as u64;
        slot.inbox = Vec::new();
        slot.waker = None;
        slot.armed = 0;
        let owed = sent.saturating_sub(slot.count);
        if owed == 0 {
            slot.state = SlotState::Free;
            table.free.push_back(self.slot as usize);
        } else {
            slot.state = SlotState::Closed;
            slot.count = owed;
        }
        table.dropped += dropped;
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        // Without a count of what was sent the slot can never be proven quiet: retire it.
        self.close(u64::MAX);
    }
}

#[cfg(test)]
mod tests;
