//! The tokio-uring adapter: ring set-up, the accept loop and `ConnIo` over a
//! completion-based `TcpStream` (owned buffers, `&self` operations).

use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::policy::config::Fault;
use common::{serve_conn, AcceptAction, AcceptPolicy, ConnCtx, ConnIo, Timer};
use tokio_uring::net::{TcpListener, TcpStream};

/// Optional ring set-up flags, best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RingFlags {
    /// IORING_SETUP_COOP_TASKRUN (5.19): no IPI to run completion task work; it runs at
    /// the thread's next kernel entry, which an event loop makes often anyway.
    coop_taskrun: bool,
    /// IORING_SETUP_SINGLE_ISSUER (6.0): the ring is only ever submitted to by the thread
    /// that creates it, which holds here (one runtime per thread, built on that thread).
    single_issuer: bool,
}

impl RingFlags {
    const CANDIDATES: [RingFlags; 3] = [
        RingFlags {
            coop_taskrun: true,
            single_issuer: true,
        },
        RingFlags {
            coop_taskrun: true,
            single_issuer: false,
        },
        RingFlags {
            coop_taskrun: false,
            single_issuer: false,
        },
    ];

    fn label(self) -> String {
        let mut names = Vec::new();
        if self.coop_taskrun {
            names.push("COOP_TASKRUN");
        }
        if self.single_issuer {
            names.push("SINGLE_ISSUER");
        }
        if names.is_empty() {
            "none".into()
        } else {
            names.join("|")
        }
    }
}

/// The ring every I/O thread builds, as accepted by this kernel.
#[derive(Clone, Debug)]
pub struct RingConfig {
    pub entries: u32,
    pub cq_entries: u32,
    flags: RingFlags,
    /// Flag sets the kernel refused during the probe, with its error.
    pub rejected: Vec<(String, String)>,
}

impl RingConfig {
    /// Finds the best flag set this kernel accepts by building (and dropping) a ring with
    /// each candidate; fails only if even a plain ring cannot be built.
    pub fn probe(entries: u32, faults: &[Fault]) -> anyhow::Result<RingConfig> {
        let (entries, cq_entries) = ring_sizes(entries, faults);
        let mut ring = RingConfig {
            entries,
            cq_entries,
            flags: RingFlags::CANDIDATES[0],
            rejected: Vec::new(),
        };
        let mut last_err = None;
        for flags in RingFlags::CANDIDATES {
            ring.flags = flags;
            match tokio_uring::Runtime::new(&ring.builder()) {
                Ok(_rt) => return Ok(ring),
                Err(e) => {
                    ring.rejected.push((flags.label(), e.to_string()));
                    last_err = Some(e);
                }
            }
        }
        Err(anyhow::anyhow!(
            "cannot set up io_uring ({} entries): {}",
            entries,
            last_err.map_or_else(String::new, |e| e.to_string())
        ))
    }

    pub fn flags_label(&self) -> String {
        self.flags.label()
    }

    pub fn builder(&self) -> tokio_uring::Builder {
        let mut urb = tokio_uring::uring_builder();
        urb.setup_cqsize(self.cq_entries);
        if self.flags.coop_taskrun {
            urb.setup_coop_taskrun();
        }
        if self.flags.single_issuer {
            urb.setup_single_issuer();
        }
        let mut b = tokio_uring::builder();
        b.entries(self.entries).uring_builder(&urb);
        b
    }
}

/// Submission queue entries of the `uring-tiny-ring` and `uring-sq-full` reproductions.
pub const TINY_SQ_ENTRIES: u32 = 2;
/// Completion queue entries of the `uring-tiny-ring` reproduction (the kernel's own default
/// of twice the submission queue): fewer than the accepts kept in flight alone.
pub const TINY_CQ_ENTRIES: u32 = 2 * TINY_SQ_ENTRIES;

/// The (submission, completion) queue sizes for `--ring-entries` and the faults. The kernel
/// rounds both up to powers of two; these are what it really builds.
pub fn ring_sizes(ring_entries: u32, faults: &[Fault]) -> (u32, u32) {
    let entries = ring_entries.next_power_of_two();
    let default_cq = entries.saturating_mul(2);
    if faults.contains(&Fault::UringTinyRing) {
        (TINY_SQ_ENTRIES, TINY_CQ_ENTRIES)
    } else if faults.contains(&Fault::UringSqFull) {
        // Only the submission side is small: the completion queue keeps its default size.
        (TINY_SQ_ENTRIES, default_cq)
    } else {
        (entries, default_cq)
    }
}

/// `--fault uring-cancel-accept`: how long the careless accept loop waits for a connection
/// before it drops the accept future (to look at a shutdown flag, say) and starts another.
pub const CARELESS_ACCEPT_TIMEOUT: Duration = Duration::from_millis(100);

/// Accept SQEs kept in flight per thread. tokio-uring 0.5 has no multishot accept, and
/// with a single accept in flight a burst of connections drains one per ring turn while
/// the turns are long with busy connections (400 connects took > 500 ms in debug builds).
pub const ACCEPTS_IN_FLIGHT: usize = 16;

/// Accepts until shutdown, then waits for the drain to release this thread.
pub async fn serve(listener: std::net::TcpListener, ctx: ConnCtx) {
    let careless = ctx.shared.config.has_fault(Fault::UringCancelAccept);
    let (ctx, deliveries) = ctx.for_io_thread(UringTimer);
    tokio_uring::spawn(deliveries);
    let listener = Rc::new(TcpListener::from_std(listener));
    // An in-flight tokio-uring accept must never be dropped (it is not cancelled and the fd
    // it later accepts would leak), so shutdown cannot be a `select!` arm: instead
    // shutdown(2) on the listener completes the pending accept with EINVAL, and
    // `AcceptPolicy::on_error` sees the triggered shutdown and stops the loop.
    let waker = {
        let (listener, ctx) = (listener.clone(), ctx.clone());
        tokio_uring::spawn(async move {
            ctx.shutdown.wait().await;
            common::process::sys::shutdown_listener(&*listener);
        })
    };
    let loops: Vec<_> = (0..ACCEPTS_IN_FLIGHT)
        .map(|_| {
            let (listener, ctx) = (listener.clone(), ctx.clone());
            tokio_uring::spawn(async move { accept_loop(&listener, &ctx, careless).await })
        })
        .collect();
    for l in loops {
        let _ = l.await;
    }
    waker.abort();
    tracing::debug!("accept loop stopped");
    ctx.released().await;
}

async fn accept_loop(listener: &TcpListener, ctx: &ConnCtx, careless: bool) {
    let mut policy = AcceptPolicy::default();
    loop {
        let accepted = if careless {
            // The reproduction: the timer wins, the in-flight accept future is dropped.
            // tokio-uring 0.5 submits no cancellation for it; the SQE stays armed in the
            // kernel, takes the next connection, and the driver discards that completion
            // (the accepted fd is never served nor closed).
            match tokio::time::timeout(CARELESS_ACCEPT_TIMEOUT, listener.accept()).await {
                Ok(r) => r,
                Err(_elapsed) if ctx.shutdown.is_triggered() => return,
                Err(_elapsed) => continue,
            }
        } else {
            listener.accept().await
        };
        match accepted {
            Ok((stream, _peer)) => {
                policy.on_success();
                let Some(guard) = ctx.admit(&fd(&stream)) else {
                    continue;
                };
                tokio_uring::spawn(serve_conn(UringIo(stream), guard));
            }
            Err(e) => match policy.on_error(ctx, &e) {
                AcceptAction::Retry => {}
                AcceptAction::Backoff(d) => tokio::time::sleep(d).await,
                AcceptAction::Stop => {
                    tracing::debug!(error = %e, "accept loop stops");
                    return;
                }
            },
        }
    }
}

/// tokio-uring 0.5 sockets implement `AsRawFd` only; `common` takes `AsFd`.
fn fd<S: AsRawFd>(sock: &S) -> BorrowedFd<'_> {
    // SAFETY: the descriptor belongs to `sock`, which stays open for the borrow's lifetime
    // (tokio-uring closes it only when the socket is dropped).
    unsafe { BorrowedFd::borrow_raw(sock.as_raw_fd()) }
}

struct UringIo(TcpStream);

impl ConnIo for UringIo {
    async fn read(&self, buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        // tokio-uring reads into buf[..capacity] and sets len to n: with the empty buffer the
        // driver passes, buf[..n] holds the bytes, as the trait asks.
        debug_assert!(buf.is_empty());
        self.0.read(buf).await
    }

    async fn write_all(&self, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        self.0.write_all(buf).await
    }

    fn close(&self) {
        common::process::sys::shutdown_both(&fd(&self.0));
    }
}

struct UringTimer;

impl Timer for UringTimer {
    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> {
        tokio::time::sleep_until(deadline.into())
    }
}
