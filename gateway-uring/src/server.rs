//! The tokio-uring adapter: the accept loop and `ConnIo` over a completion-based
//! `TcpStream` (owned buffers, `&self` operations). The ring itself is set up in `ring`,
//! reads are `read::PostedReader`'s.

use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::policy::config::Fault;
use common::{serve_conn, AcceptAction, AcceptPolicy, ConnCtx, ConnIo, Timer};
use tokio_uring::net::TcpListener;

use crate::read::PostedReader;

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
                tokio_uring::spawn(serve_conn(UringIo(PostedReader::new(stream)), guard));
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

struct UringIo(PostedReader);

impl ConnIo for UringIo {
    /// Lent: a small posted read waits for bytes, the rest of a read that fills it comes
    /// from the thread's scratch buffer (`read`): an idle connection keeps only the small one.
    fn lends_read_buffers(&self) -> bool {
        true
    }

    async fn read_lent<R>(&self, consume: impl FnOnce(&[u8]) -> R) -> io::Result<R> {
        self.0.read(consume).await
    }

    async fn write_all(&self, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        self.0.stream().write_all(buf).await
    }

    fn close(&self) {
        common::process::sys::shutdown_both(&fd(self.0.stream()));
    }
}

struct UringTimer;

impl Timer for UringTimer {
    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> {
        tokio::time::sleep_until(deadline.into())
    }
}
