//! The delivery routing, tested without a producer: tokens, batches, wakes, closed
//! connections and deadlines.

use super::*;
use crate::publish::token::{expand_seq, NO_REPLY, SEQ_MASK};
use std::future::Future;
use std::sync::atomic::AtomicUsize;
use std::task::Wake;

#[derive(Default)]
struct CountingWaker(AtomicUsize);
impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

fn ok(o: i64) -> Result<(i32, i64), DeliveryError> {
    Ok((0, o))
}

/// Registers `port`'s waker and returns its counter.
fn park(port: &Port) -> Arc<CountingWaker> {
    let w = Arc::new(CountingWaker::default());
    let waker = Waker::from(w.clone());
    let mut out = Vec::new();
    assert!(port
        .poll_take(&mut Context::from_waker(&waker), &mut out, None)
        .is_pending());
    w
}

#[test]
fn token_round_trip() {
    let r = ReplyTo::new(5, 12345, 7);
    let t = decode(r.token(0x1234_5678_9abc)).unwrap();
    assert_eq!(
        (t.mailbox, t.slot, t.gen, t.seq),
        (5, 12345, 7, 0x1234_5678_9abc & SEQ_MASK)
    );
    assert!(decode(NO_REPLY).is_none());
    assert_eq!(expand_seq(5 & SEQ_MASK, 3), 5);
    let base = (1 << 24) - 2;
    assert_eq!(expand_seq((base + 5) & SEQ_MASK, base), base + 5);
    // Older than the window: far out of it, so ignored by the connection.
    assert!(expand_seq(base - 1, base) > base + 1000);
}

#[test]
fn one_wake_per_batch_and_per_connection() {
    let mb = router().new_mailbox();
    let a = mb.register();
    let b = mb.register();
    let (wa, wb) = (park(&a), park(&b));
    let mut batcher = Batcher::default();
    for seq in 0..100 {
        batcher.push(a.reply().token(seq), ok(seq as i64));
        batcher.push(b.reply().token(seq), ok(seq as i64));
    }
    batcher.push(NO_REPLY, ok(0));
    assert_eq!(batcher.len(), 200);
    batcher.flush();
    assert_eq!(mb.wakes(), 1, "one wake for the whole batch");
    assert_eq!(mb.dispatch(), 200);
    assert_eq!(wa.0.load(Ordering::Relaxed), 1, "one wake per connection");
    assert_eq!(wb.0.load(Ordering::Relaxed), 1);
    let mut got = Vec::new();
    a.take(&mut got);
    assert_eq!(got.len(), 100);
    assert_eq!(
        got[99],
        Delivery {
            seq: 99,
            result: ok(99)
        }
    );
    got.clear();
    b.take(&mut got);
    assert_eq!(got.len(), 100);
    // A second batch reuses the returned vector and wakes again.
    batcher.push(a.reply().token(100), ok(100));
    batcher.flush();
    assert_eq!(mb.wakes(), 2);
    assert_eq!(mb.dispatch(), 1);
    assert_eq!(mb.dropped(), 0);
}

#[test]
fn closed_connection_drops_reports_and_frees_its_slot_only_when_quiet() {
    let mb = router().new_mailbox();
    let mut a = mb.register();
    let old = a.reply();
    let mut batcher = Batcher::default();
    batcher.push(old.token(1), ok(1));
    batcher.flush();
    mb.dispatch();
    // Three records sent, one reported (in the inbox, never taken), two in flight.
    a.close(3);
    assert_eq!(mb.dropped(), 1);
    // The slot is not reused while reports are owed.
    let b = mb.register();
    assert_ne!(b.slot, a.slot);
    batcher.push(old.token(2), ok(2));
    batcher.flush();
    mb.dispatch();
    let c = mb.register();
    assert_ne!(c.slot, a.slot, "one report still owed");
    batcher.push(old.token(3), Err(DeliveryError::Timeout));
    batcher.flush();
    mb.dispatch();
    assert_eq!(mb.dropped(), 3);
    // Now quiet: freed, and reused (after the slots freed before it) with a new generation.
    let d = mb.register();
    assert_eq!(d.slot, a.slot);
    assert_ne!(d.reply(), old);
    let mut got = Vec::new();
    for p in [&b, &c, &d] {
        p.take(&mut got);
        assert!(got.is_empty());
    }
}

#[test]
fn stale_generation_never_reaches_the_new_connection() {
    let mb = router().new_mailbox();
    let mut a = mb.register();
    let old = a.reply();
    // The connection claims everything was reported: slot freed at once.
    a.close(0);
    let b = mb.register();
    assert_eq!(b.slot, a.slot, "the only free slot is reused");
    let w = park(&b);
    let mut batcher = Batcher::default();
    batcher.push(old.token(0), ok(0));
    batcher.flush();
    mb.dispatch();
    assert_eq!(w.0.load(Ordering::Relaxed), 0, "no wake for a stale report");
    let mut got = Vec::new();
    b.take(&mut got);
    assert!(got.is_empty());
    assert_eq!(mb.dropped(), 1);
    // The null sink's direct path checks the same.
    router().deliver_now(old.token(0), ok(0));
    router().deliver_now(b.reply().token(4), ok(4));
    b.take(&mut got);
    assert_eq!(
        got,
        [Delivery {
            seq: 4,
            result: ok(4)
        }]
    );
    assert_eq!(mb.dropped(), 2);
}

#[test]
fn dropped_port_retires_its_slot() {
    let mb = router().new_mailbox();
    let a = mb.register();
    let slot = a.slot;
    drop(a);
    let b = mb.register();
    assert_ne!(b.slot, slot);
}

#[test]
fn dispatcher_task_wakes_once_per_batch() {
    let mb = router().new_mailbox();
    let a = mb.register();
    let wa = park(&a);
    let task = Arc::new(CountingWaker::default());
    let waker = Waker::from(task.clone());
    let m = mb.clone();
    let mut fut = Box::pin(std::future::poll_fn(move |cx| {
        m.register_dispatcher(cx.waker());
        m.dispatch();
        Poll::<()>::Pending
    }));
    let mut cx = Context::from_waker(&waker);
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    let mut batcher = Batcher::default();
    for seq in 0..10 {
        batcher.push(a.reply().token(seq), ok(0));
    }
    batcher.flush();
    assert_eq!(task.0.load(Ordering::Relaxed), 1);
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    assert_eq!(wa.0.load(Ordering::Relaxed), 1);
    let mut got = Vec::new();
    a.take(&mut got);
    assert_eq!(got.len(), 10);
}

#[test]
fn deadlines_wake_waiting_connections_once_and_stale_entries_do_not_pile_up() {
    let mb = router().new_mailbox();
    let t0 = Instant::now();
    let at = |ms| t0 + Duration::from_millis(ms);
    let a = mb.register();
    let w = Arc::new(CountingWaker::default());
    let waker = Waker::from(w.clone());
    let mut cx = Context::from_waker(&waker);
    let mut out = Vec::new();
    assert!(a.poll_take(&mut cx, &mut out, Some(at(100))).is_pending());
    // A later deadline keeps the earlier entry (it wakes early; the caller re-arms).
    assert!(a.poll_take(&mut cx, &mut out, Some(at(200))).is_pending());
    assert_eq!(mb.timers(), 1);
    assert_eq!(mb.fire_timers(at(50)), Some(at(100)));
    assert_eq!(w.0.load(Ordering::Relaxed), 0);
    assert_eq!(mb.fire_timers(at(100)), None);
    assert_eq!(w.0.load(Ordering::Relaxed), 1);
    // An earlier deadline is armed at once.
    assert!(a.poll_take(&mut cx, &mut out, Some(at(300))).is_pending());
    assert!(a.poll_take(&mut cx, &mut out, Some(at(150))).is_pending());
    assert_eq!(mb.fire_timers(at(160)), Some(at(300)));
    assert_eq!(w.0.load(Ordering::Relaxed), 2);
    // The superseded entry at 300 is dropped without a wake.
    assert_eq!(mb.fire_timers(at(400)), None);
    assert_eq!(w.0.load(Ordering::Relaxed), 2);
    // Churn: closed connections' entries are compacted away.
    for i in 0..10_000 {
        let p = mb.register();
        assert!(p
            .poll_take(&mut cx, &mut out, Some(at(1000 + i)))
            .is_pending());
    }
    assert!(mb.timers() <= 2 + 1024, "{} entries", mb.timers());
    drop(a);
}

#[test]
fn per_connection_parts_stay_small() {
    // Part of every idle connection: its slot here (the timer entry is 16 bytes more
    // while a deadline is set) and its port in the connection's future.
    assert!(
        std::mem::size_of::<Slot>() <= 64,
        "{}",
        std::mem::size_of::<Slot>()
    );
    assert!(
        std::mem::size_of::<Port>() <= 16,
        "{}",
        std::mem::size_of::<Port>()
    );
    assert_eq!(std::mem::size_of::<Reverse<(u64, u32)>>(), 16);
}
