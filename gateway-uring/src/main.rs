//! `gateway-uring`: the ingest gateway on tokio-uring (io_uring). `--threads` threads, each
//! with its own io_uring ring (on a tokio current-thread runtime) and its own SO_REUSEPORT
//! listener built by `common`, so the listener options and backlog match the other gateways.
//!
//! Everything but the I/O runtime lives in `common`; this crate is glue (`main`) and the
//! adapter (`server`). It must not grow protocol logic.

mod read;
mod ring;
mod server;

use anyhow::Context;
use clap::Parser;
use common::{Gateway, GatewayArgs, RuntimeInfo};

/// Kafka ingest gateway: HTTP/1.1 and WebSocket in, one Kafka record per event out
/// (tokio-uring).
#[derive(Parser, Debug)]
#[command(
    version,
    long_version = concat!(
        env!("CARGO_PKG_VERSION"),
        "\nruntime: tokio-uring 0.5 (io_uring completions, one ring + current-thread runtime per thread)",
        "\nasymmetries:",
        "\n  - no multishot accept in tokio-uring 0.5: one accept SQE per connection, with",
        "\n    16 of them in flight (one at a time starved under a connection burst: each",
        "\n    accept waited a whole ring turn behind the busy connections)",
        "\n  - no provided/registered buffers in tokio-uring 0.5: a posted read owns its Vec, so",
        "\n    every connection, idle ones too, holds a 256 B read buffer; a read that fills it",
        "\n    is completed by one recv(2) with MSG_DONTWAIT into a per-thread 16 KiB buffer",
        "\n    (one more system call; tokio and compio on io_uring lend a per-thread buffer",
        "\n    only while bytes are consumed)",
        "\n  - completions are reaped by polling the ring fd from tokio's epoll, so no DEFER_TASKRUN",
        "\n  - ring flags COOP_TASKRUN and SINGLE_ISSUER only where the kernel accepts them",
        "\n    (the active set is the `ring_flags` label of gateway_info in /metrics)",
        "\n  - no accept cancellation: shutdown(2) on the listener fails the pending accept",
        "\n    (a dropped in-flight accept is not cancelled by tokio-uring 0.5: the kernel still",
        "\n    accepts into it and the fd is lost; see --fault uring-cancel-accept)",
        "\n  - a full completion queue is not a stall: the kernel (IORING_FEAT_NODROP) keeps",
        "\n    overflowing completions until the next io_uring_enter; a full submission queue",
        "\n    makes tokio-uring submit at once (--fault uring-tiny-ring, uring-sq-full)",
    )
)]
struct Args {
    #[command(flatten)]
    gateway: GatewayArgs,

    /// io_uring submission queue entries per thread, rounded up to a power of two (the
    /// completion queue gets twice as many).
    #[arg(long, env = "GATEWAY_RING_ENTRIES", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=32768))]
    ring_entries: u32,
}

fn main() -> std::process::ExitCode {
    common::process::app::exit_code("gateway-uring", run(Args::parse()))
}

fn run(args: Args) -> anyhow::Result<()> {
    // Probe before `start` so the flags the kernel really accepted go into gateway_info.
    let ring = ring::RingConfig::probe(args.ring_entries, &args.gateway.fault)?;
    let info = RuntimeInfo {
        runtime: "tokio-uring",
        labels: vec![
            ("driver".into(), "io_uring".into()),
            ("ring_entries".into(), ring.entries.to_string()),
            ("cq_entries".into(), ring.cq_entries.to_string()),
            ("ring_flags".into(), ring.flags_label()),
            (
                "accept".into(),
                format!("oneshot x{}", server::ACCEPTS_IN_FLIGHT),
            ),
            (
                "reads".into(),
                format!(
                    "posted {} B per connection, the rest by recv into a {} KiB thread buffer",
                    read::POSTED_READ,
                    common::driver::READ_CHUNK / 1024
                ),
            ),
        ],
    };
    let gateway = Gateway::start(&args.gateway, info)?;
    // One ring per I/O thread: their state (fdinfo) goes into /metrics as gateway_uring_*.
    gateway
        .ctx
        .shared
        .metrics
        .watch_uring_rings(gateway.config.threads);
    for (flags, err) in &ring.rejected {
        tracing::warn!(flags = %flags, error = %err, "kernel rejected io_uring flags; retried without");
    }
    tracing::info!(
        entries = ring.entries,
        cq_entries = ring.cq_entries,
        flags = %ring.flags_label(),
        "io_uring driver active"
    );
    let listeners = gateway.bind(gateway.config.threads)?;
    let handles = gateway.spawn_io_threads(
        listeners,
        move |_| {
            tokio_uring::Runtime::new(&ring.builder()).context("building the io_uring runtime")
        },
        |rt, listener, ctx| rt.block_on(server::serve(listener, ctx)),
    )?;
    gateway.wait(handles)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn every_flag_has_an_environment_variable() {
        let missing = common::process::args::flags_without_env(&super::Args::command());
        assert!(
            missing.is_empty(),
            "flags without a GATEWAY_* environment variable: {missing:?}"
        );
    }
}
