//! `gateway-compio`: the ingest gateway on compio 0.19 (completion-based: io_uring, with
//! compio's polling driver as the fallback where io_uring is unavailable). `--threads`
//! threads, each with its own compio runtime and its own SO_REUSEPORT listener.
//!
//! Everything but the I/O runtime lives in `common`; this crate is glue (`main`: arguments,
//! driver probe, start) and the adapter (`server`). It must not grow protocol logic.

mod server;

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use common::{Gateway, GatewayArgs, RuntimeInfo};
use compio::driver::{DriverType, ProactorBuilder};

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

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum DriverChoice {
    /// io_uring if the kernel allows it, else compio's polling driver.
    Auto,
    /// Always the polling (epoll via `polling`) driver: to exercise the fallback.
    Polling,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum SetupFlags {
    /// The best set the kernel accepts: SINGLE_ISSUER+DEFER_TASKRUN (6.1), then
    /// COOP_TASKRUN+TASKRUN_FLAG (5.19), then none.
    Auto,
    /// At most COOP_TASKRUN+TASKRUN_FLAG (no single-issuer/deferred task running).
    Coop,
    /// No io_uring setup flags.
    None,
}

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
    #[arg(long, default_value_t = 4096)]
    ring_entries: u32,

    /// io_uring completion queue entries per thread (default: 2 x --ring-entries).
    #[arg(long)]
    cq_entries: Option<u32>,

    /// io_uring setup flags to request.
    #[arg(long, value_enum, default_value = "auto")]
    setup_flags: SetupFlags,

    /// Which compio driver to use.
    #[arg(long, value_enum, default_value = "auto")]
    driver: DriverChoice,

    /// Refuse to start when io_uring is unavailable instead of falling back to polling.
    #[arg(long, conflicts_with = "driver")]
    require_io_uring: bool,
}

/// io_uring setup flags; compio does not report which ones the kernel took, so `probe`
/// finds out by building rings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Flags {
    single_issuer: bool,
    defer_taskrun: bool,
    coop_taskrun: bool,
    taskrun_flag: bool,
}

impl Flags {
    const FULL: Flags = Flags {
        single_issuer: true,
        defer_taskrun: true,
        coop_taskrun: true,
        taskrun_flag: true,
    };
    const SINGLE_ISSUER: Flags = Flags {
        defer_taskrun: false,
        ..Flags::FULL
    };
    const COOP: Flags = Flags {
        single_issuer: false,
        defer_taskrun: false,
        coop_taskrun: true,
        taskrun_flag: true,
    };
    const NONE: Flags = Flags {
        single_issuer: false,
        defer_taskrun: false,
        coop_taskrun: false,
        taskrun_flag: false,
    };

    fn label(self) -> String {
        let names = [
            (self.single_issuer, "single_issuer"),
            (self.defer_taskrun, "defer_taskrun"),
            (self.coop_taskrun, "coop_taskrun"),
            (self.taskrun_flag, "taskrun_flag"),
        ];
        let on: Vec<&str> = names.iter().filter(|(b, _)| *b).map(|(_, n)| *n).collect();
        if on.is_empty() {
            "none".into()
        } else {
            on.join("+")
        }
    }
}

/// The proactor every I/O thread builds: decided once, so all threads run the same driver.
#[derive(Clone, Copy, Debug)]
pub struct Ring {
    driver: DriverType,
    entries: u32,
    cq_entries: u32,
    flags: Flags,
}

/// Buffers of each I/O thread's provided-buffer ring (`READ_CHUNK` bytes each): the most
/// reads whose bytes can wait in one ring turn before a read sees ENOBUFS and retries.
const READ_POOL_BUFFERS: std::num::NonZero<u16> = std::num::NonZero::new(256).unwrap();

fn proactor(
    entries: u32,
    cq_entries: u32,
    flags: Flags,
    driver: Option<DriverType>,
) -> ProactorBuilder {
    let mut b = ProactorBuilder::new();
    b.capacity(entries)
        .cqsize(cq_entries)
        .single_issuer(flags.single_issuer)
        .defer_taskrun(flags.defer_taskrun)
        .coop_taskrun(flags.coop_taskrun)
        .taskrun_flag(flags.taskrun_flag)
        // The provided-buffer ring of lent reads (server.rs): buffers are held only from a
        // read's completion until its bytes are consumed.
        .buffer_pool_size(READ_POOL_BUFFERS)
        .buffer_pool_buffer_len(common::driver::READ_CHUNK);
    if let Some(d) = driver {
        b.driver_type(d);
    }
    b
}

impl Ring {
    /// Builds this thread's runtime. The driver is forced to the probed one: an io_uring
    /// failure here is an error, never a silent per-thread fallback to polling.
    pub fn runtime(&self) -> std::io::Result<compio::runtime::Runtime> {
        let proactor = proactor(self.entries, self.cq_entries, self.flags, Some(self.driver));
        compio::runtime::RuntimeBuilder::new()
            .with_proactor(proactor)
            .build()
    }

    pub fn is_io_uring(&self) -> bool {
        self.driver.is_iouring()
    }
}

/// Finds the driver and the richest flag set this kernel accepts. A build without a forced
/// driver type is what compio itself would pick: io_uring when the ring can be created and
/// the basic opcodes are supported, else polling (silently). Returns the ring and, on the
/// fallback, why io_uring is out.
fn probe(args: &Args) -> (Ring, Option<String>) {
    let entries = args.ring_entries;
    let cq_entries = args.cq_entries.unwrap_or(entries.saturating_mul(2));
    let polling = Ring {
        driver: DriverType::Poll,
        entries,
        cq_entries,
        flags: Flags::NONE,
    };
    if args.driver == DriverChoice::Polling {
        return (polling, Some("--driver polling".into()));
    }
    let ladder: &[Flags] = match args.setup_flags {
        SetupFlags::Auto => &[Flags::FULL, Flags::SINGLE_ISSUER, Flags::COOP, Flags::NONE],
        SetupFlags::Coop => &[Flags::COOP, Flags::NONE],
        SetupFlags::None => &[Flags::NONE],
    };
    for &flags in ladder {
        // No forced driver type: compio falls back to polling when this ring is refused.
        let built = proactor(entries, cq_entries, flags, None).build();
        if matches!(built, Ok(p) if p.driver_type().is_iouring()) {
            let ring = Ring {
                driver: DriverType::IoUring,
                flags,
                ..polling
            };
            return (ring, None);
        }
    }
    // Why: a forced io_uring build reports the kernel's error; if it succeeds, compio
    // refused io_uring because an opcode it needs is missing.
    let forced = proactor(entries, cq_entries, Flags::NONE, Some(DriverType::IoUring));
    let reason = match forced.build() {
        Err(e) => format!("io_uring setup failed: {e}"),
        Ok(_) => "io_uring lacks an opcode compio needs".into(),
    };
    (polling, Some(reason))
}

/// `accept=` label: compio submits IORING_OP_ACCEPT with the multishot flag on io_uring
/// from kernel 5.19 (its own uname check), a single-shot accept otherwise.
fn accept_mode(ring: &Ring) -> &'static str {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release.trim().split('.').map(|p| p.parse::<u32>().ok());
    let version = (parts.next().flatten(), parts.next().flatten());
    match version {
        (Some(major), Some(minor)) if ring.is_io_uring() && (major, minor) >= (5, 19) => {
            "multishot"
        }
        _ => "single",
    }
}

fn main() -> std::process::ExitCode {
    common::process::app::exit_code("gateway-compio", run(Args::parse()))
}

fn run(args: Args) -> anyhow::Result<()> {
    let (ring, fallback) = probe(&args);
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
