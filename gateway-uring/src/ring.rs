//! The io_uring ring every I/O thread builds: its queue sizes (the `uring-*` fault
//! reproductions shrink them) and the best set-up flags this kernel accepts, probed once.

use common::policy::config::Fault;

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
