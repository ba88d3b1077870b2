//! `gateway-compio`: the ingest gateway on compio 0.19 (completion-based: io_uring, with
//! compio's polling driver as the fallback where io_uring is unavailable). `--threads`
//! threads, each with its own compio runtime and its own SO_REUSEPORT listener.
//!
//! Everything but the I/O runtime lives in `common`; this crate is glue (`main`: arguments,
//! start), the driver probe (`ring`) and the adapter (`server`). It must not grow protocol logic.

mod ring;
mod server;

use anyhow::{bail, Context};
use clap::Parser;
use common::{Gateway, GatewayArgs, RuntimeInfo};
use ring::{accept_mode, probe, DriverChoice, SetupFlags, READ_POOL_BUFFERS};

/// What differs from the reference (tokio) gateway; printed by `--version`, also in
/// `/metrics` (`gateway_info`). A macro because `concat!` (for `long_version`) needs a literal.
macro_rules! asymmetries {
    () => {
        "multishot-accept(io_uring>=5.19;single-shot on polling/older kernels),\
         provided-buffer-reads(io_uring: kernel-selected buffers of a per-thread ring, none held \
         by an idle connection; a read that finds the ring empty reads into a buffer of its own; polling \
         fallback: a 2 KiB buffer per connection, 16 KiB while reads fill it),\
         uring-setup-flags(single_issuer,defer_taskrun,coop_taskrun,taskrun_flag where the kernel has them)"
    };
}
const ASYMMETRIES: &str = asymmetries!();

/// Kafka ingest gateway: HTTP/1.1 and WebSocket in, one Kafka record per event out (compio).
#[derive(Parser, Debug)]
#[command(
    version,
    long_version = concat!(
        env!("CARGO_PKG_VERSION"),
        "\nruntime: compio 0.19 (io_uring completion; polling fallback), one runtime + SO_REUSEPORT listener per thread",
        "\nasymmetries: ",
        asymmetries!()
    )
)]
struct Args {
    #[command(flatten)]
    gateway: GatewayArgs,

    /// io_uring submission queue entries per thread (the polling driver's event capacity).
    #[arg(long, env = "GATEWAY_RING_ENTRIES", default_value_t = 4096)]
    ring_entries: u32,

    /// io_uring completion queue entries per thread (default: 2 x --ring-entries).
    #[arg(long, env = "GATEWAY_CQ_ENTRIES")]
    cq_entries: Option<u32>,

    /// io_uring setup flags to request.
    #[arg(long, env = "GATEWAY_SETUP_FLAGS", value_enum, default_value = "auto")]
    setup_flags: SetupFlags,

    /// Which compio driver to use.
    #[arg(long, env = "GATEWAY_DRIVER", value_enum, default_value = "auto")]
    driver: DriverChoice,

    /// Refuse to start when io_uring is unavailable instead of falling back to polling.
    #[arg(long, env = "GATEWAY_REQUIRE_IO_URING", conflicts_with = "driver")]
    require_io_uring: bool,
}

fn main() -> std::process::ExitCode {
    common::process::app::exit_code("gateway-compio", run(Args::parse()))
}

fn run(args: Args) -> anyhow::Result<()> {
    let (ring, fallback) = probe(
        args.driver,
        args.setup_flags,
        args.ring_entries,
        args.cq_entries,
    );
    if args.require_io_uring && !ring.is_io_uring() {
        bail!(
            "io_uring is unavailable ({}); refusing to start on compio's polling fallback \
             (--require-io-uring)",
            fallback.as_deref().unwrap_or("unknown reason")
        );
    }
    let driver = if ring.is_io_uring() {
        "io_uring"
    } else {
        "polling"
    };
    let accept = accept_mode(&ring);
    let info = RuntimeInfo {
        runtime: "compio",
        labels: vec![
            ("driver".into(), driver.into()),
            ("ring_entries".into(), ring.entries.to_string()),
            // The polling driver has no completion queue.
            (
                "cq_entries".into(),
                if ring.is_io_uring() {
                    ring.cq_entries.to_string()
                } else {
                    "-".into()
                },
            ),
            ("uring_flags".into(), ring.flags.label()),
            ("accept".into(), accept.into()),
            (
                "reads".into(),
                if ring.is_io_uring() {
                    format!("provided-buffers x{READ_POOL_BUFFERS}")
                } else {
                    "owned".into()
                },
            ),
            ("asymmetries".into(), ASYMMETRIES.into()),
        ],
    };
    let gateway = Gateway::start(&args.gateway, info)?;
    if ring.is_io_uring() {
        // One ring per I/O thread: their state (fdinfo) goes into /metrics as gateway_uring_*.
        gateway
            .ctx
            .shared
            .metrics
            .watch_uring_rings(gateway.config.threads);
    }
    match &fallback {
        None => tracing::info!(
            driver,
            ring_entries = ring.entries,
            cq_entries = ring.cq_entries,
            flags = %ring.flags.label(),
            accept,
            "compio driver: io_uring"
        ),
        Some(reason) => tracing::warn!(
            driver,
            capacity = ring.entries,
            accept,
            reason = %reason,
            "compio driver: polling fallback"
        ),
    }
    let listeners = gateway.bind(gateway.config.threads)?;
    let handles = gateway.spawn_io_threads(
        listeners,
        move |_| {
            ring.runtime()
                .with_context(|| format!("building the compio runtime ({ring:?})"))
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
