//! The compio adapter: the accept loop (multishot accept on io_uring) and `ConnIo` over a
//! completion-based `TcpStream` with owned buffers.

use std::future::Future;
use std::io;
use std::time::Instant;

use common::{serve_conn, AcceptAction, AcceptPolicy, ConnCtx, ConnIo, Timer};
use compio::io::{AsyncRead, AsyncWriteExt};
use compio::net::{TcpListener, TcpStream};
use compio::BufResult;
use futures_util::StreamExt;

/// Accepts until shutdown, then waits for the drain to release this thread.
pub async fn serve(listener: std::net::TcpListener, ctx: ConnCtx) {
    let (ctx, deliveries) = ctx.for_io_thread();
    compio::runtime::spawn(deliveries).detach();
    match TcpListener::from_std(listener) {
        Ok(listener) => {
            // An in-flight accept is never cancelled (a connection the kernel already
            // accepted would be lost); shutdown(2) on the listener makes it complete with an
            // error instead, and the policy turns that into Stop.
            let waker = listener.clone();
            let shutdown = ctx.shutdown.clone();
            compio::runtime::spawn(async move {
                shutdown.wait().await;
                common::sys::shutdown_listener(&waker);
            })
            .detach();
            accept_loop(&listener, &ctx).await;
            // Open until the drain is over, as on every runtime (see gateway-tokio).
            ctx.released().await;
            drop(listener);
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot register the listener");
            ctx.released().await;
        }
    }
}

async fn accept_loop(listener: &TcpListener, ctx: &ConnCtx) {
    let mut policy = AcceptPolicy::default();
    // One multishot IORING_OP_ACCEPT (kernel >= 5.19) yields every connection until it
    // fails; the stream re-arms it on the next poll. Single-shot accepts on polling.
    let mut incoming = listener.incoming();
    loop {
        let Some(accepted) = incoming.next().await else {
            // `Incoming` never ends; a new accept is submitted on the next poll.
            continue;
        };
        match accepted {
            Ok(stream) => {
                policy.on_success();
                let Some(guard) = ctx.admit(&stream) else {
                    continue;
                };
                compio::runtime::spawn(serve_conn(
                    CompioIo(stream),
                    CompioTimer,
                    ctx.clone(),
                    guard,
                ))
                .detach();
            }
            Err(e) => match policy.on_error(ctx, &e) {
                AcceptAction::Retry => {}
                AcceptAction::Backoff(d) => compio::time::sleep(d).await,
                AcceptAction::Stop => return,
            },
        }
    }
}

struct CompioIo(TcpStream);

impl ConnIo for CompioIo {
    async fn read(&self, buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        // `&TcpStream` implements AsyncRead/AsyncWrite, so a read and a write can be in
        // flight together. The driver passes an empty Vec: the kernel fills it from index 0
        // and compio sets its length to the bytes read.
        let BufResult(res, buf) = (&mut &self.0).read(buf).await;
        (res, buf)
    }

    async fn write_all(&self, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        let BufResult(res, buf) = (&mut &self.0).write_all(buf).await;
        (res, buf)
    }

    fn close(&self) {
        common::sys::shutdown_both(&self.0);
    }
}

struct CompioTimer;

impl Timer for CompioTimer {
    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> {
        compio::time::sleep_until(deadline)
    }
}
