//! The runtime-independent half of a gateway's I/O: the per-connection driver loop, the
//! accept-error policy, connection admission and the shutdown drain.
//!
//! A runtime adapter implements `ConnIo` and `Timer`, and calls `serve_conn` for each
//! accepted socket. Nothing here names a runtime; the futures are plain `std::future`s
//! combined with `futures-util` and `tokio::sync` (runtime-free).
//!
//! Reads come in two styles, chosen by the adapter (`ConnIo::lends_read_buffers`):
//! - lent: the runtime waits until bytes are there and lends a buffer that is not the
//!   connection's (tokio: readiness, then `try_read` into the I/O thread's scratch buffer,
//!   `with_scratch`; compio on io_uring: a kernel-selected buffer of a provided-buffer
//!   ring; tokio-uring 0.5: a 256 B posted read of the connection's own, and when it fills,
//!   the rest by a non-blocking `recv` into the scratch buffer). An idle connection then holds no read buffer: only the state machine, whose
//!   buffers keep just unconsumed bytes (`Conn::held_bytes`).
//! - owned: the connection owns a Vec that the read fills (a posted completion read needs
//!   its buffer while it waits: compio's polling fallback). That buffer is
//!   the connection's while it is idle; the adapters declare it. It is `OWNED_READ_MIN`
//!   bytes while reads are small and `READ_CHUNK` while they fill it (`OwnedReadSize`): a
//!   16 KiB buffer posted by every idle connection is 16 KiB of heap each, and under
//!   connection churn the allocator's reuse touches every page of it, so the process's RSS
//!   climbs towards that heap (measured with tokio-uring, when it read this way, at 3,000
//!   churning connections: heap flat at 52 MiB, RSS 10 -> 32 MiB in a minute).

use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::conn::Shared;
use crate::policy::config::Fault;
use crate::publish::dispatch::{router, Mailbox, Port};
use crate::publish::Delivery;
use crate::tls::stack::Stack;
use crate::tls::Setup as TlsSetup;

/// Bytes asked for per read.
pub const READ_CHUNK: usize = 16 * 1024;

/// An owned read buffer's size while reads are small (a request or a few frames).
pub const OWNED_READ_MIN: usize = 2 * 1024;

/// The size of an owned-read connection's buffer: `OWNED_READ_MIN` until a read fills it,
/// then `READ_CHUNK` until `SHRINK_AFTER` reads in a row return at most a quarter of
/// `OWNED_READ_MIN` (hysteresis: a stream of medium reads does not reallocate every read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnedReadSize {
    size: usize,
    small_reads: u8,
}

impl Default for OwnedReadSize {
    fn default() -> Self {
        OwnedReadSize {
            size: OWNED_READ_MIN,
            small_reads: 0,
        }
    }
}

impl OwnedReadSize {
    const SHRINK_AFTER: u8 = 8;

    /// The size to post the next read with.
    pub fn size(&self) -> usize {
        self.size
    }

    /// A read of `n` bytes into a buffer of `self.size()` completed.
    pub fn on_read(&mut self, n: usize) {
        if n >= self.size {
            self.size = READ_CHUNK;
            self.small_reads = 0;
        } else if self.size > OWNED_READ_MIN && n <= OWNED_READ_MIN / 4 {
            self.small_reads += 1;
            if self.small_reads >= Self::SHRINK_AFTER {
                *self = OwnedReadSize::default();
            }
        } else {
            self.small_reads = 0;
        }
    }
}

thread_local! {
    /// The I/O thread's read buffer for lent reads (`with_scratch`).
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Calls `f` with this thread's `READ_CHUNK`-byte scratch buffer: the one read buffer of
/// every connection a readiness-based I/O thread serves. `f` must not call it again (if it
/// does, that call gets a temporary buffer instead of panicking).
pub fn with_scratch<R>(f: impl FnOnce(&mut [u8]) -> R) -> R {
    let mut f = Some(f);
    let lent = SCRATCH.with(|s| {
        let mut buf = s.try_borrow_mut().ok()?;
        if buf.len() < READ_CHUNK {
            buf.resize(READ_CHUNK, 0);
        }
        Some((f.take().expect("called once"))(&mut buf[..]))
    });
    match lent {
        Some(r) => r,
        None => (f.take().expect("called once"))(&mut vec![0; READ_CHUNK]),
    }
}

/// What a runtime must provide for one accepted TCP stream.
///
/// A read (`read` or `read_lent`) and `write_all` may be in flight at the same time (from
/// two futures of the same task); `close` must make a pending read return (shutdown(2)
/// with SHUT_RDWR does).
pub trait ConnIo {
    /// True if reads are lent (`read_lent`), false if they fill the connection's own
    /// buffer (`read`). Asked once per connection.
    fn lends_read_buffers(&self) -> bool {
        false
    }
    /// Owned-buffer read: reads into the spare capacity of `buf` (which the driver passes
    /// empty, with `OWNED_READ_MIN` or `READ_CHUNK` capacity) and returns how many bytes were read;
    /// `buf[..n]` holds them.
    fn read(&self, buf: Vec<u8>) -> impl Future<Output = (io::Result<usize>, Vec<u8>)> {
        async move { (Err(io::ErrorKind::Unsupported.into()), buf) }
    }
    /// Lent-buffer read: waits until bytes (or EOF) are there, reads them into a buffer the
    /// connection does not own, and calls `consume` with them (empty at EOF) before the
    /// buffer is reused. `consume` is called at most once, and not on error.
    fn read_lent<R>(
        &self,
        consume: impl FnOnce(&[u8]) -> R,
    ) -> impl Future<Output = io::Result<R>> {
        let _ = consume;
        async { Err(io::ErrorKind::Unsupported.into()) }
    }
    /// Writes all of `buf`.
    fn write_all(&self, buf: Vec<u8>) -> impl Future<Output = (io::Result<()>, Vec<u8>)>;
    /// Shuts the socket down in both directions.
    fn close(&self);
}

/// The runtime's timer: one sleep per I/O thread, in its dispatcher (connections' deadlines
/// are kept in the mailbox, `route`).
pub trait Timer {
    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()>;
}

/// Process-wide shutdown signal (SIGTERM/SIGINT or a test).
#[derive(Clone)]
pub struct Shutdown {
    tx: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown {
            tx: Arc::new(tokio::sync::watch::channel(false).0),
        }
    }
}

impl Shutdown {
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    pub fn is_triggered(&self) -> bool {
        *self.tx.borrow()
    }

    /// Completes once shutdown was triggered.
    pub async fn wait(&self) {
        let mut rx = self.tx.subscribe();
        let _ = rx.wait_for(|v| *v).await;
    }
}

/// Counts open connections so shutdown can wait for them, and releases the runtimes when
/// they are gone or the shutdown timeout passed.
#[derive(Default)]
pub struct Drain {
    open: AtomicUsize,
    lock: Mutex<()>,
    zero: Condvar,
    released: AtomicBool,
    release: Notify,
}

impl Drain {
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Blocks the calling (non-I/O) thread until no connection is open or `timeout` passed;
    /// returns the number still open.
    pub fn wait_idle(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        let mut guard = self.lock.lock().unwrap();
        loop {
            let open = self.open();
            let now = Instant::now();
            if open == 0 || now >= deadline {
                return open;
            }
            guard = self
                .zero
                .wait_timeout(guard, (deadline - now).min(Duration::from_millis(100)))
                .unwrap()
                .0;
        }
    }

    /// Lets every runtime thread waiting in `released` finish.
    pub fn release(&self) {
        self.released.store(true, Ordering::Release);
        self.release.notify_waiters();
    }

    pub async fn released(&self) {
        loop {
            let notified = self.release.notified();
            if self.released.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }
}

/// Held by every admitted connection: its registration in the I/O thread's mailbox, and
/// the counts, which dropping it updates.
pub struct ConnGuard {
    shared: Arc<Shared>,
    drain: Arc<Drain>,
    port: Port,
    /// Set when TLS is on (`ConnCtx::tls`).
    tls: Option<Arc<TlsSetup>>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.shared
            .metrics
            .connections_open
            .fetch_sub(1, Ordering::Relaxed);
        if self.drain.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            let _g = self.drain.lock.lock().unwrap();
            self.drain.zero.notify_all();
        }
    }
}

/// What an accept loop does after an accept error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptAction {
    /// Transient (the peer gave up, a signal): accept again at once.
    Retry,
    /// Out of a resource (EMFILE, ENFILE, ENOBUFS, ENOMEM): keep serving open connections,
    /// wait this long, then accept again.
    Backoff(Duration),
    /// The listener is gone (shutdown), or the `accept-exit-on-error` fault is on.
    Stop,
}

/// Per accept loop: backoff state and rate-limited logging of accept errors.
pub struct AcceptPolicy {
    backoff: Duration,
    last_log: Option<Instant>,
    suppressed: u64,
}

const BACKOFF_MIN: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_millis(500);

impl Default for AcceptPolicy {
    fn default() -> Self {
        AcceptPolicy {
            backoff: BACKOFF_MIN,
            last_log: None,
            suppressed: 0,
        }
    }
}

impl AcceptPolicy {
    pub fn on_success(&mut self) {
        self.backoff = BACKOFF_MIN;
    }

    pub fn on_error(&mut self, ctx: &ConnCtx, err: &io::Error) -> AcceptAction {
        if ctx.shutdown.is_triggered() {
            return AcceptAction::Stop;
        }
        ctx.shared.metrics.accept_error(err);
        if ctx.shared.config.has_fault(Fault::AcceptExitOnError) {
            tracing::error!(error = %err, "accept failed; accept loop exits (fault accept-exit-on-error)");
            return AcceptAction::Stop;
        }
        let action = match err.raw_os_error() {
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                let wait = self.backoff;
                self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                AcceptAction::Backoff(wait)
            }
            Some(libc::EBADF | libc::EINVAL | libc::ENOTSOCK) => {
                tracing::error!(error = %err, "listener unusable; accept loop exits");
                return AcceptAction::Stop;
            }
            _ => AcceptAction::Retry,
        };
        let now = Instant::now();
        if self
            .last_log
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
        {
            tracing::warn!(error = %err, suppressed = self.suppressed, ?action, "accept error");
            self.last_log = Some(now);
            self.suppressed = 0;
        } else {
            self.suppressed += 1;
        }
        action
    }
}

/// What every connection task gets: the shared state, the shutdown signal, the drain, and
/// its I/O thread's delivery mailbox.
#[derive(Clone)]
pub struct ConnCtx {
    pub shared: Arc<Shared>,
    pub shutdown: Shutdown,
    pub drain: Arc<Drain>,
    /// Set by `for_io_thread`; `admit` needs it.
    pub mailbox: Option<Arc<Mailbox>>,
    /// TLS on every connection (`--tls-cert`), or plaintext.
    pub tls: Option<Arc<TlsSetup>>,
}

impl ConnCtx {
    /// The context for one I/O thread (one runtime): a new delivery mailbox, and the task
    /// that dispatches its reports to the connections and wakes them at their deadlines
    /// (with the thread's one runtime sleep, from `timer`) and at shutdown, which the
    /// adapter spawns on that runtime before accepting. It runs until the runtime is dropped.
    pub fn for_io_thread<T: Timer + 'static>(
        &self,
        timer: T,
    ) -> (ConnCtx, impl Future<Output = ()> + 'static) {
        let mailbox = router().new_mailbox();
        let ctx = ConnCtx {
            mailbox: Some(mailbox.clone()),
            ..self.clone()
        };
        // The thread's one shutdown waiter: tells every connection once, and each sees the
        // flag (`serve_conn`'s writer checks it after registering its waker).
        let shutdown = self.shutdown.clone();
        let woken = mailbox.clone();
        let run = futures_util::future::join(dispatch(mailbox, timer), async move {
            shutdown.wait().await;
            woken.shut_down();
        });
        (ctx, async move {
            run.await;
        })
    }

    /// Admits a freshly accepted socket: enforces `--max-connections` (over it: `None`, the
    /// caller drops the socket, which closes it at once), sets TCP_NODELAY, counts it and
    /// registers it in the I/O thread's mailbox. `self` must come from `for_io_thread`.
    pub fn admit<S: std::os::fd::AsFd>(&self, sock: &S) -> Option<ConnGuard> {
        let metrics = &self.shared.metrics;
        metrics.connections_accepted.fetch_add(1, Ordering::Relaxed);
        let open = self.drain.open.fetch_add(1, Ordering::AcqRel);
        if open >= self.shared.config.max_connections || self.shutdown.is_triggered() {
            self.drain.open.fetch_sub(1, Ordering::AcqRel);
            metrics.connections_rejected.fetch_add(1, Ordering::Relaxed);
            let sock = socket2::SockRef::from(sock);
            // RST rather than FIN: the client learns at once, and no TIME_WAIT here.
            let _ = sock.set_linger(Some(Duration::ZERO));
            return None;
        }
        metrics.connections_open.fetch_add(1, Ordering::Relaxed);
        let _ = socket2::SockRef::from(sock).set_tcp_nodelay(true);
        let port = self
            .mailbox
            .as_ref()
            .expect("admit needs a ConnCtx from for_io_thread")
            .register();
        Some(ConnGuard {
            shared: self.shared.clone(),
            drain: self.drain.clone(),
            port,
            tls: self.tls.clone(),
        })
    }

    /// Completes when the process is done draining: a runtime thread's last await.
    pub async fn released(&self) {
        self.drain.released().await
    }
}

/// The I/O thread's dispatcher: moves delivery reports into the connections' inboxes and
/// wakes connections whose deadline came, sleeping until the earliest one.
async fn dispatch<T: Timer>(mailbox: Arc<Mailbox>, timer: T) {
    let mut next: Option<Instant> = None;
    loop {
        let target = next;
        let mut sleep = pin!(async {
            match target {
                Some(t) => timer.sleep_until(t).await,
                None => std::future::pending().await,
            }
        });
        next = std::future::poll_fn(|cx| {
            mailbox.register_dispatcher(cx.waker());
            mailbox.dispatch();
            let next = mailbox.fire_timers(Instant::now());
            if next != target || sleep.as_mut().poll(cx).is_ready() {
                // A new earliest deadline, or the sleep ended: a new sleep.
                return Poll::Ready(next);
            }
            Poll::Pending
        })
        .await;
    }
}

enum Wake {
    Delivery(Vec<Delivery>),
    Output,
    Timer,
    Shutdown,
}

/// A notification between the reader and the writer of one connection. Both run in the
/// connection's one task, so it needs no waiter of its own (a `Notify` and its `Notified`
/// cost ~100 bytes per connection): a flag, like `Notify::notify_one`'s permit, and a wake
/// of the task if the other side is waiting for it now.
#[derive(Default)]
struct Signal {
    set: AtomicBool,
    waiting: AtomicBool,
}

impl Signal {
    /// Sets the flag (the next `poll_wait` takes it) and wakes the task if the other side
    /// waits.
    async fn notify(&self) {
        self.set.store(true, Ordering::Release);
        if self.waiting.load(Ordering::Acquire) {
            std::future::poll_fn(|cx| {
                cx.waker().wake_by_ref();
                Poll::Ready(())
            })
            .await
        }
    }

    /// Takes the flag if set; otherwise the next `notify` wakes the task.
    fn poll_wait(&self) -> Poll<()> {
        if self.set.swap(false, Ordering::AcqRel) {
            self.waiting.store(false, Ordering::Release);
            Poll::Ready(())
        } else {
            self.waiting.store(true, Ordering::Release);
            Poll::Pending
        }
    }

    /// The waiter gave up waiting (it was woken by something else).
    fn stop_waiting(&self) {
        self.waiting.store(false, Ordering::Release);
    }

    async fn wait(&self) {
        std::future::poll_fn(|_| self.poll_wait()).await
    }
}

/// The connection's stack; `None` if its TLS session cannot be made. (A function of its
/// own: its locals do not stay in `serve_conn`'s future.)
fn open_stack(guard: &mut ConnGuard) -> Option<Stack> {
    let tls = guard.tls.take();
    Stack::new(
        guard.shared.clone(),
        guard.port.reply(),
        tls.as_deref(),
        Instant::now(),
    )
}

/// Serves one connection until it is finished; then closes the socket.
///
/// `guard` must come from `ConnCtx::admit` on a context from `ConnCtx::for_io_thread` on
/// this runtime.
///
/// What an idle connection holds is this future (and the state machine's few bytes, and
/// its mailbox slot), so its idle wait carries as little as it can: no shutdown waiter and
/// no sleep (the I/O thread's dispatcher wakes its connections at shutdown and at their
/// deadlines, `route`), no `Notify` between the reader and the writer (`Signal`), no
/// context beyond its guard. `tests/footprint.rs` bounds its size.
pub async fn serve_conn<I: ConnIo>(io: I, mut guard: ConnGuard) {
    // The connection: its state machine, under TLS when TLS is on (`tls::stack`).
    let conn = match open_stack(&mut guard) {
        Some(stack) => Mutex::new(stack),
        None => {
            io.close();
            return;
        }
    };
    let out_ready = Signal::default();
    let read_ready = Signal::default();
    let closed = AtomicBool::new(false);
    let port = &guard.port;

    let lent = io.lends_read_buffers();
    let reader = async {
        // Owned-buffer reads only: the connection's read buffer (see the module doc).
        let mut buf = Vec::new();
        let mut size = OwnedReadSize::default();
        loop {
            loop {
                if closed.load(Ordering::Acquire) {
                    return;
                }
                let wants = {
                    let c = conn.lock().unwrap();
                    if c.is_finished() {
                        return;
                    }
                    c.wants_read()
                };
                if wants {
                    break;
                }
                read_ready.wait().await;
            }
            // Hands bytes read (empty: EOF) to the state machine; true at EOF.
            let consume = |data: &[u8]| {
                let now = Instant::now();
                let mut c = conn.lock().unwrap();
                if data.is_empty() {
                    c.on_eof(now);
                    true
                } else {
                    c.on_data(data, now);
                    false
                }
            };
            let res = if lent {
                io.read_lent(consume).await
            } else {
                buf.clear();
                if buf.capacity() != size.size() {
                    buf = Vec::with_capacity(size.size());
                }
                let (res, b) = io.read(buf).await;
                buf = b;
                res.map(|n| {
                    size.on_read(n);
                    consume(&buf[..n])
                })
            };
            // A failed read ends the connection like EOF.
            let eof = res.unwrap_or_else(|_| consume(&[]));
            out_ready.notify().await;
            if eof {
                return;
            }
        }
    };

    let writer = async {
        let mut shutdown_seen = false;
        loop {
            let (out, finished, deadline) = {
                let mut inbox = Vec::new();
                port.take(&mut inbox);
                let mut c = conn.lock().unwrap();
                if !inbox.is_empty() {
                    let now = Instant::now();
                    for d in inbox.drain(..) {
                        c.on_delivery(d, now);
                    }
                }
                (c.take_output(), c.is_finished(), c.deadline())
            };
            read_ready.notify().await;
            if let Some(out) = out {
                let (res, buf) = io.write_all(out).await;
                if res.is_err() {
                    break;
                }
                conn.lock().unwrap().recycle_output(buf);
                continue;
            }
            if finished {
                break;
            }
            let wake = std::future::poll_fn(|cx| {
                // The deadline is compared here: the dispatcher's wake may come early.
                let expired = deadline.is_some_and(|d| Instant::now() >= d);
                // Registers the task's waker with the mailbox first: a shutdown or a
                // deadline after the checks below wakes it there.
                let mut inbox = Vec::new();
                let armed = if expired { None } else { deadline };
                if port.poll_take(cx, &mut inbox, armed).is_ready() {
                    return Poll::Ready(Wake::Delivery(inbox));
                }
                if out_ready.poll_wait().is_ready() {
                    return Poll::Ready(Wake::Output);
                }
                if !shutdown_seen && port.is_shut_down() {
                    return Poll::Ready(Wake::Shutdown);
                }
                if expired {
                    return Poll::Ready(Wake::Timer);
                }
                Poll::Pending
            })
            .await;
            out_ready.stop_waiting();
            let now = Instant::now();
            let mut c = conn.lock().unwrap();
            match wake {
                Wake::Delivery(inbox) => {
                    // Every report that arrived, then one write with every answer (and one
                    // cumulative WebSocket ack).
                    for d in inbox {
                        c.on_delivery(d, now);
                    }
                }
                Wake::Output => {}
                Wake::Timer => c.on_timer(now),
                Wake::Shutdown => {
                    shutdown_seen = true;
                    c.on_shutdown(now);
                }
            }
        }
        closed.store(true, Ordering::Release);
        io.close();
        read_ready.notify().await;
    };

    futures_util::future::join(reader, writer).await;
    // Reports still to come for this connection are dropped; its slot is reused once
    // they all came.
    let routed = conn.lock().unwrap().routed();
    guard.port.close(routed);
    drop(guard);
}

#[cfg(test)]
mod owned_read_tests {
    use super::*;

    #[test]
    fn an_owned_read_buffer_grows_while_reads_fill_it_and_shrinks_when_they_stop() {
        let mut s = OwnedReadSize::default();
        assert_eq!(s.size(), OWNED_READ_MIN);
        // One request at a time: stays small.
        for _ in 0..100 {
            s.on_read(250);
        }
        assert_eq!(s.size(), OWNED_READ_MIN);
        // A read that fills the buffer: the bytes may not stop there.
        s.on_read(OWNED_READ_MIN);
        assert_eq!(s.size(), READ_CHUNK);
        // Medium reads keep it large (no reallocation per read).
        for _ in 0..100 {
            s.on_read(OWNED_READ_MIN);
        }
        assert_eq!(s.size(), READ_CHUNK);
        // A few small reads are not enough; a run of them is.
        for _ in 0..OwnedReadSize::SHRINK_AFTER - 1 {
            s.on_read(100);
        }
        s.on_read(4000);
        for _ in 0..OwnedReadSize::SHRINK_AFTER - 1 {
            s.on_read(100);
        }
        assert_eq!(s.size(), READ_CHUNK);
        s.on_read(100);
        assert_eq!(s.size(), OWNED_READ_MIN);
        // EOF (0 bytes) counts as small, never as full.
        s.on_read(0);
        assert_eq!(s.size(), OWNED_READ_MIN);
    }
}
