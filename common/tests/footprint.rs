//! What an idle connection costs in `serve_conn` itself, and that its lean idle wait still
//! does its job: the task's future is bounded (with I/O futures of almost no size, i.e. the
//! shared part only: a runtime adds its own read and write futures), and an idle connection
//! that holds neither a shutdown waiter nor a sleep of its own is still woken and closed by
//! a graceful shutdown and at its idle timeout, through its I/O thread's dispatcher.

mod support;

use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use common::driver::{ConnCtx, Drain, Shutdown};
use common::policy::ack::AckMode;
use common::{serve_conn, ConnIo, Timer};
use support::*;

/// The bound on the shared part of a connection task's future. It was 1160 bytes with a
/// `Notify` pair and a shutdown waiter per connection, 792 with a `ConnCtx` and a `Port`
/// beside the guard; 616 since the guard holds the port and the context stays with the
/// I/O thread. A runtime's own futures (a read waiting for bytes) come on top, so growing
/// this moves every runtime's idle cost. Its deadlines no longer add a runtime sleep: the
/// I/O thread's dispatcher keeps them (`idle_timeout_comes_from_the_dispatchers_timer`).
/// 656 with TLS (issue 31): the guard carries the TLS setup to the connection (an `Arc`),
/// and the connection's stack a pointer to its TLS session (`None` for plaintext).
const SERVE_CONN_MAX_BYTES: usize = 656;

/// A socket stand-in: the first read returns `request`, later reads wait until `close`.
#[derive(Default)]
struct FakeIo {
    request: Mutex<Option<Vec<u8>>>,
    written: Mutex<Vec<u8>>,
    closed: AtomicBool,
    reader: Mutex<Option<Waker>>,
}

struct Io(Arc<FakeIo>);

impl ConnIo for Io {
    fn lends_read_buffers(&self) -> bool {
        true
    }

    fn read_lent<R>(
        &self,
        consume: impl FnOnce(&[u8]) -> R,
    ) -> impl Future<Output = io::Result<R>> {
        let mut consume = Some(consume);
        std::future::poll_fn(move |cx| {
            if let Some(req) = self.0.request.lock().unwrap().take() {
                return Poll::Ready(Ok((consume.take().unwrap())(&req)));
            }
            if self.0.closed.load(Ordering::Acquire) {
                return Poll::Ready(Ok((consume.take().unwrap())(&[])));
            }
            *self.0.reader.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        })
    }

    async fn write_all(&self, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        self.0.written.lock().unwrap().extend_from_slice(&buf);
        (Ok(()), buf)
    }

    fn close(&self) {
        self.0.closed.store(true, Ordering::Release);
        if let Some(w) = self.0.reader.lock().unwrap().take() {
            w.wake();
        }
    }
}

/// A timer that never fires (the idle timeout is a minute away in this test).
struct NeverTimer;

impl Timer for NeverTimer {
    fn sleep_until(&self, _deadline: Instant) -> impl Future<Output = ()> {
        std::future::pending()
    }
}

#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

fn ctx() -> ConnCtx {
    let shared = shared_with(config(AckMode::Enqueue), Arc::new(ManualSink::default()));
    ConnCtx {
        shared,
        shutdown: Shutdown::default(),
        drain: Arc::new(Drain::default()),
        mailbox: None,
        tls: None,
    }
}

#[test]
fn serve_conn_future_is_small() {
    let (ctx, _dispatch) = ctx().for_io_thread(NeverTimer);
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let guard = ctx.admit(&a).expect("admitted");
    let fut = serve_conn(Io(Arc::default()), guard);
    let size = std::mem::size_of_val(&fut);
    assert!(
        size <= SERVE_CONN_MAX_BYTES,
        "serve_conn's future is {size} bytes (bound {SERVE_CONN_MAX_BYTES})"
    );
}

#[test]
fn idle_connection_is_woken_and_closed_by_shutdown_through_its_dispatcher() {
    let (ctx, dispatch) = ctx().for_io_thread(NeverTimer);
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let guard = ctx.admit(&a).expect("admitted");
    let io = Arc::new(FakeIo::default());
    *io.request.lock().unwrap() = Some(post("/topics/t", b"v"));
    let mut conn = pin!(serve_conn(Io(io.clone()), guard));
    let mut dispatch = pin!(dispatch);

    let task = Arc::new(CountingWaker::default());
    let waker = Waker::from(task.clone());
    let mut cx = Context::from_waker(&waker);
    let noop = Waker::noop();
    let mut noop_cx = Context::from_waker(noop);

    // One exchange, then idle: answered, and waiting (for the next request or the timer).
    for _ in 0..4 {
        assert!(conn.as_mut().poll(&mut cx).is_pending());
    }
    assert_eq!(
        statuses(&parse_responses(&io.written.lock().unwrap())),
        [202]
    );
    assert!(dispatch.as_mut().poll(&mut noop_cx).is_pending());
    assert_eq!(ctx.drain.open(), 1);

    // Shutdown: only the dispatcher hears it, and wakes the idle connection.
    let wakes = task.0.load(Ordering::Relaxed);
    ctx.shutdown.trigger();
    assert!(dispatch.as_mut().poll(&mut noop_cx).is_pending());
    assert!(
        task.0.load(Ordering::Relaxed) > wakes,
        "the idle connection was not woken by the shutdown"
    );
    let mut done = false;
    for _ in 0..4 {
        if conn.as_mut().poll(&mut cx).is_ready() {
            done = true;
            break;
        }
    }
    assert!(done, "the idle connection did not finish after shutdown");
    assert!(io.closed.load(Ordering::Acquire));
    assert_eq!(ctx.drain.open(), 0);
}

/// A timer for tests polled by hand: done once the clock passed the deadline.
struct ClockTimer;

impl Timer for ClockTimer {
    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> {
        std::future::poll_fn(move |_| {
            if Instant::now() >= deadline {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }
}

#[test]
fn idle_timeout_comes_from_the_dispatchers_timer() {
    let mut c = ctx();
    let mut cfg = config(AckMode::Enqueue);
    cfg.idle_timeout = std::time::Duration::from_millis(50);
    c.shared = shared_with(cfg, Arc::new(ManualSink::default()));
    let (ctx, dispatch) = c.for_io_thread(ClockTimer);
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let guard = ctx.admit(&a).expect("admitted");
    let io = Arc::new(FakeIo::default());
    *io.request.lock().unwrap() = Some(post("/topics/t", b"v"));
    let mut conn = pin!(serve_conn(Io(io.clone()), guard));
    let mut dispatch = pin!(dispatch);
    let task = Arc::new(CountingWaker::default());
    let waker = Waker::from(task.clone());
    let mut cx = Context::from_waker(&waker);
    let noop = Waker::noop();
    let mut noop_cx = Context::from_waker(noop);

    for _ in 0..4 {
        assert!(conn.as_mut().poll(&mut cx).is_pending());
    }
    assert_eq!(
        statuses(&parse_responses(&io.written.lock().unwrap())),
        [202]
    );
    let mailbox = ctx.mailbox.as_ref().unwrap();
    assert_eq!(
        mailbox.timers(),
        1,
        "one deadline entry for the idle connection"
    );
    // Only the dispatcher's timer wakes the idle connection, once its deadline passed.
    let started = Instant::now();
    let wakes = task.0.load(Ordering::Relaxed);
    while task.0.load(Ordering::Relaxed) == wakes {
        assert!(dispatch.as_mut().poll(&mut noop_cx).is_pending());
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "the idle deadline never fired"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let mut done = false;
    for _ in 0..4 {
        if conn.as_mut().poll(&mut cx).is_ready() {
            done = true;
            break;
        }
    }
    assert!(done, "the idle connection was not closed at its timeout");
    assert!(io.closed.load(Ordering::Acquire));
    assert_eq!(ctx.drain.open(), 0);
}
