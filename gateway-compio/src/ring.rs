//! The io_uring ring every I/O thread builds: which driver (io_uring, or compio's polling
//! fallback) and the richest setup flags this kernel accepts, probed once at start so all
//! threads run the same ring.

use clap::ValueEnum;
use compio::driver::{DriverType, ProactorBuilder};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DriverChoice {
    /// io_uring if the kernel allows it, else compio's polling driver.
    Auto,
    /// Always the polling (epoll via `polling`) driver: to exercise the fallback.
    Polling,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SetupFlags {
    /// The best set the kernel accepts: SINGLE_ISSUER+DEFER_TASKRUN (6.1), then
    /// COOP_TASKRUN+TASKRUN_FLAG (5.19), then none.
    Auto,
    /// At most COOP_TASKRUN+TASKRUN_FLAG (no single-issuer/deferred task running).
    Coop,
    /// No io_uring setup flags.
    None,
}

/// io_uring setup flags; compio does not report which ones the kernel took, so `probe`
/// finds out by building rings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags {
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

    pub fn label(self) -> String {
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
    pub entries: u32,
    pub cq_entries: u32,
    pub flags: Flags,
}

/// Buffers of each I/O thread's provided-buffer ring (`READ_CHUNK` bytes each): the most
/// reads whose bytes can wait in one ring turn before a read sees ENOBUFS and retries.
pub const READ_POOL_BUFFERS: std::num::NonZero<u16> = std::num::NonZero::new(256).unwrap();

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
pub fn probe(
    choice: DriverChoice,
    setup_flags: SetupFlags,
    entries: u32,
    cq_entries: Option<u32>,
) -> (Ring, Option<String>) {
    let cq_entries = cq_entries.unwrap_or(entries.saturating_mul(2));
    let polling = Ring {
        driver: DriverType::Poll,
        entries,
        cq_entries,
        flags: Flags::NONE,
    };
    if choice == DriverChoice::Polling {
        return (polling, Some("--driver polling".into()));
    }
    let ladder: &[Flags] = match setup_flags {
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
pub fn accept_mode(ring: &Ring) -> &'static str {
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
