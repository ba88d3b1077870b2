//! The tokio adapter: the accept loop and `ConnIo` over a readiness-based `TcpStream`
//! (lent reads: readiness, then the I/O thread's scratch buffer).

use std::future::Future;
use std::io;
use std::time::Instant;

use common::{serve_conn, AcceptAction, AcceptPolicy, ConnCtx, ConnIo, Timer};

/// Accepts until shutdown, then waits for the drain to release this thread.
pub async fn serve(listener: std::net::TcpListener, ctx: ConnCtx) {
    let (ctx, deliveries) = ctx.for_io_thread(TokioTimer);
    tokio::spawn(deliveries);
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot register the listener");
            return ctx.released().await;
        }
    };
    accept_loop(&listener, &ctx).await;
    // The listener stays open until the drain is over, as on every runtime: an accept loop
    // that stopped early (the accept-exit-on-error reproduction) leaves a listening socket
    // whose queue fills, not a refused port.
    ctx.released().await;
    drop(listener);
}

async fn accept_loop(listener: &tokio::net::TcpListener, ctx: &ConnCtx) {
    let mut policy = AcceptPolicy::default();
    loop {
        // tokio's accept is cancel-safe: dropping it on shutdown loses no connection.
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = ctx.shutdown.wait() => return,
        };
        match accepted {
            Ok((stream, _peer)) => {
                policy.on_success();
                let Some(guard) = ctx.admit(&stream) else {
                    continue;
                };
                tokio::spawn(serve_conn(TokioIo(stream), guard));
            }
            Err(e) => match policy.on_error(ctx, &e) {
                AcceptAction::Retry => {}
                AcceptAction::Backoff(d) => tokio::time::sleep(d).await,
                AcceptAction::Stop => return,
            },
        }
    }
}

struct TokioIo(tokio::net::TcpStream);

impl ConnIo for TokioIo {
    fn lends_read_buffers(&self) -> bool {
        true
    }

    /// Readiness, then one `recv` into the I/O thread's scratch buffer: a connection owns
    /// no read buffer, idle or not.
    ///
    /// A short read drained the socket, so the readiness is cleared with it (as tokio's own
    /// `poll_read` does): `try_read` clears it only on `WouldBlock`, which would cost every
    /// request a second `recv` that returns EAGAIN. `try_io` clears it when its closure
    /// reports `WouldBlock`, so after a short read the closure keeps the bytes' result in
    /// `out` and reports `WouldBlock`.
    async fn read_lent<R>(&self, consume: impl FnOnce(&[u8]) -> R) -> io::Result<R> {
        let mut consume = Some(consume);
        let mut out = None;
        loop {
            // poll_read_ready, not readable(): the waker lives in the socket's registration,
            // not in a ~150-byte waiter inside every idle connection's future.
            std::future::poll_fn(|cx| self.0.poll_read_ready(cx)).await?;
            let r = common::driver::with_scratch(|buf| {
                self.0.try_io(tokio::io::Interest::READABLE, || {
                    let n = common::process::sys::recv(&self.0, buf)?;
                    let f = consume.take().expect("consumed once");
                    out = Some(f(&buf[..n]));
                    if n < buf.len() {
                        Err(io::ErrorKind::WouldBlock.into())
                    } else {
                        Ok(())
                    }
                })
            });
            match r {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if let Some(r) = out.take() {
                return Ok(r);
            }
        }
    }

    async fn write_all(&self, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        let mut pos = 0;
        while pos < buf.len() {
            if let Err(e) = std::future::poll_fn(|cx| self.0.poll_write_ready(cx)).await {
                return (Err(e), buf);
            }
            match self.0.try_write(&buf[pos..]) {
                Ok(n) => pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return (Err(e), buf),
            }
        }
        (Ok(()), buf)
    }

    fn close(&self) {
        common::process::sys::shutdown_both(&self.0);
    }
}

struct TokioTimer;

impl Timer for TokioTimer {
    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> {
        tokio::time::sleep_until(deadline.into())
    }
}
