//! `gateway-tokio`: the ingest gateway on tokio (epoll). `--flavor multi` runs one
//! work-stealing runtime with `--threads` workers behind one listener; `--flavor per-core`
//! runs `--threads` current-thread runtimes, each with its own SO_REUSEPORT listener, so a
//! comparison can separate "io_uring vs epoll" from "thread-per-core vs work-stealing".
//!
//! Everything but the I/O runtime lives in `common`; this crate is glue (`main`) and the
//! adapter (`server`).

mod server;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use common::{Gateway, GatewayArgs, RuntimeInfo};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Flavor {
    /// One multi-thread (work-stealing) runtime, one listener.
    Multi,
    /// One current-thread runtime per thread, one SO_REUSEPORT listener each.
    PerCore,
}

/// Kafka ingest gateway: HTTP/1.1 and WebSocket in, one Kafka record per event out (tokio).
#[derive(Parser, Debug)]
#[command(
    version,
    long_version = concat!(env!("CARGO_PKG_VERSION"), "\nruntime: tokio (epoll readiness)\nasymmetries: none (reference runtime)")
)]
struct Args {
    #[command(flatten)]
    gateway: GatewayArgs,

    /// Threading model.
    #[arg(long, env = "GATEWAY_FLAVOR", value_enum, default_value = "multi")]
    flavor: Flavor,
}

fn main() -> std::process::ExitCode {
    common::process::app::exit_code("gateway-tokio", run(Args::parse()))
}

fn run(args: Args) -> anyhow::Result<()> {
    let flavor = match args.flavor {
        Flavor::Multi => "multi",
        Flavor::PerCore => "per-core",
    };
    let info = RuntimeInfo {
        runtime: "tokio",
        labels: vec![
            ("flavor".into(), flavor.into()),
            ("driver".into(), "epoll".into()),
            (
                "reads".into(),
                "lent (readiness + per-thread scratch)".into(),
            ),
        ],
    };
    let gateway = Gateway::start(&args.gateway, info)?;
    let threads = gateway.config.threads;
    let handles = match args.flavor {
        Flavor::Multi => {
            let listeners = gateway.bind(1)?;
            gateway.spawn_io_threads(
                listeners,
                move |_| {
                    tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(threads)
                        .thread_name("tokio-worker")
                        .enable_all()
                        .build()
                        .context("building the tokio runtime")
                },
                |rt, listener, ctx| {
                    // The accept loop runs on the runtime's workers like every connection,
                    // not on this thread: with `--threads 1` the gateway then has one busy
                    // I/O thread, as on every other runtime, instead of an extra accept
                    // thread.
                    rt.block_on(async move {
                        if let Err(e) = tokio::spawn(server::serve(listener, ctx)).await {
                            tracing::error!("the accept loop task failed: {e}");
                        }
                    });
                },
            )?
        }
        Flavor::PerCore => {
            let listeners = gateway.bind(threads)?;
            gateway.spawn_io_threads(
                listeners,
                |_| {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .context("building the tokio runtime")
                },
                |rt, listener, ctx| rt.block_on(server::serve(listener, ctx)),
            )?
        }
    };
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
