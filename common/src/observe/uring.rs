//! io_uring's own health as the gateway can see it: the state the kernel prints in
//! /proc/self/fdinfo/<fd> of each of the process's io_uring fds (SqHead/SqTail,
//! CqHead/CqTail, the completions waiting on the overflow list). Read on scrape, only in
//! gateways that run io_uring rings (`Metrics::watch_uring_rings`).
//!
//! The kernel prints no overflow total there (with IORING_FEAT_NODROP an overflowing
//! completion waits on CqOverflowList until the next io_uring_enter flushes it): what a
//! scrape sees is how many are waiting at that moment, a gauge.

use std::sync::Mutex;

use super::expo::{header, sample};

/// One ring's state from its fdinfo.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RingState {
    pub sq_entries: u32,
    pub cq_entries: u32,
    /// Submissions written by the process, not yet consumed by the kernel.
    pub sq_pending: u32,
    /// Completions posted by the kernel, not yet reaped by the process.
    pub cq_pending: u32,
    /// Completions waiting on the overflow list (the completion queue was full).
    pub cq_overflow: u32,
}

/// Parses the io_uring part of /proc/<pid>/fdinfo/<fd> (None if it is not a ring's).
pub fn parse_fdinfo(text: &str) -> Option<RingState> {
    let field = |key: &str| -> Option<u32> {
        let v = text
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?;
        let v = v.trim();
        match v.strip_prefix("0x") {
            Some(hex) => u32::from_str_radix(hex, 16).ok(),
            None => v.parse().ok(),
        }
    };
    let sq_mask = field("SqMask")?;
    let cq_mask = field("CqMask")?;
    let (sq_head, sq_tail) = (field("SqHead")?, field("SqTail")?);
    let (cq_head, cq_tail) = (field("CqHead")?, field("CqTail")?);
    // Each overflowed completion is one indented `user_data=…` line after the header.
    let cq_overflow = text
        .lines()
        .skip_while(|l| !l.starts_with("CqOverflowList:"))
        .skip(1)
        .take_while(|l| l.starts_with(char::is_whitespace))
        .filter(|l| l.trim_start().starts_with("user_data="))
        .count();
    Some(RingState {
        sq_entries: sq_mask.wrapping_add(1),
        cq_entries: cq_mask.wrapping_add(1),
        sq_pending: sq_tail.wrapping_sub(sq_head),
        cq_pending: cq_tail.wrapping_sub(cq_head),
        cq_overflow: u32::try_from(cq_overflow).unwrap_or(u32::MAX),
    })
}

/// Finds the process's io_uring fds (links to `anon_inode:[io_uring]`), ascending.
fn find_ring_fds() -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    let mut fds: Vec<i32> = dir
        .filter_map(|e| {
            let e = e.ok()?;
            let fd: i32 = e.file_name().to_str()?.parse().ok()?;
            let link = std::fs::read_link(e.path()).ok()?;
            (link.as_os_str() == "anon_inode:[io_uring]").then_some(fd)
        })
        .collect();
    fds.sort_unstable();
    fds
}

fn read_ring(fd: i32) -> Option<RingState> {
    parse_fdinfo(&std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).ok()?)
}

/// The rings of this process, found once they all exist: `expected` is how many the
/// gateway builds (one per I/O thread). Until that many are found (threads still starting)
/// each scrape looks again; then their fds are kept, and looked for again if one stops
/// being a ring.
#[derive(Default)]
pub struct RingWatch {
    expected: usize,
    fds: Mutex<Vec<i32>>,
}

impl RingWatch {
    pub fn new(expected: usize) -> RingWatch {
        RingWatch {
            expected,
            fds: Mutex::new(Vec::new()),
        }
    }

    /// Every known ring's state now.
    pub fn rings(&self) -> Vec<RingState> {
        let mut fds = self.fds.lock().unwrap_or_else(|p| p.into_inner());
        if fds.len() >= self.expected {
            if let Some(states) = fds.iter().map(|&fd| read_ring(fd)).collect() {
                return states;
            }
        }
        *fds = find_ring_fds();
        fds.iter().filter_map(|&fd| read_ring(fd)).collect()
    }
}

/// The `gateway_uring_*` series: the ring count, then one series per ring (`ring` label:
/// 0.. in fd order) of each figure.
pub fn render(s: &mut String, rings: &[RingState]) {
    header(
        s,
        "gateway_uring_rings",
        "gauge",
        "io_uring rings of this process (one per I/O thread).",
    );
    sample(s, "gateway_uring_rings", "", rings.len());
    if rings.is_empty() {
        return;
    }
    type Field = fn(&RingState) -> u32;
    let per_ring: [(&str, &str, Field); 5] = [
        (
            "gateway_uring_sq_entries",
            "Submission queue size of each ring.",
            |r| r.sq_entries,
        ),
        (
            "gateway_uring_cq_entries",
            "Completion queue size of each ring.",
            |r| r.cq_entries,
        ),
        (
            "gateway_uring_sq_pending",
            "Submissions not yet consumed by the kernel, per ring (SqTail - SqHead).",
            |r| r.sq_pending,
        ),
        (
            "gateway_uring_cq_pending",
            "Completions not yet reaped by the gateway, per ring (CqTail - CqHead).",
            |r| r.cq_pending,
        ),
        (
            "gateway_uring_cq_overflow_pending",
            "Completions waiting on the ring's overflow list (its completion queue was full).",
            |r| r.cq_overflow,
        ),
    ];
    for (name, help, value) in per_ring {
        header(s, name, "gauge", help);
        for (i, r) in rings.iter().enumerate() {
            sample(s, name, &format!("ring=\"{i}\""), value(r));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FDINFO: &str = "pos:\t0\nflags:\t02000002\nmnt_id:\t17\nino:\t523434\nSqMask:\t0x3\n\
SqHead:\t10\nSqTail:\t12\nCachedSqHead:\t10\nCqMask:\t0x7\nCqHead:\t4294967295\nCqTail:\t3\n\
CachedCqTail:\t3\nSQEs:\t2\nCQEs:\t4\nSqThread:\t-1\nSqThreadCpu:\t-1\nUserFiles:\t0\n\
UserBufs:\t0\nPollList:\nCqOverflowList:\n  user_data=7, res=0, flags=0\n  \
user_data=8, res=-104, flags=0\nNAPI:\tdisabled\n";

    #[test]
    fn parses_a_ring() {
        let r = parse_fdinfo(FDINFO).unwrap();
        assert_eq!(
            r,
            RingState {
                sq_entries: 4,
                cq_entries: 8,
                sq_pending: 2,
                cq_pending: 4, // the tail wrapped past u32::MAX
                cq_overflow: 2,
            }
        );
        let idle = FDINFO.replace("  user_data=7, res=0, flags=0\n", "");
        assert_eq!(parse_fdinfo(&idle).unwrap().cq_overflow, 1);
    }

    #[test]
    fn not_a_ring() {
        assert_eq!(parse_fdinfo("pos:\t0\nflags:\t02\nmnt_id:\t1\n"), None);
        assert_eq!(parse_fdinfo("SqMask:\tzz\n"), None);
        assert_eq!(parse_fdinfo(""), None);
    }

    #[test]
    fn no_rings_in_a_plain_process() {
        // The test binary builds no ring: the watch finds none and renders none.
        let w = RingWatch::new(1);
        assert!(w.rings().is_empty());
        let mut s = String::new();
        render(&mut s, &w.rings());
        assert!(s.contains("gateway_uring_rings 0\n"));
        assert!(!s.contains("ring=\""));
    }
}
