//! The overall progress of an experiment (`compare`, `stall-lab`, `soak`): cells done out
//! of the total, with an ETA. On a terminal an indicatif bar with the per-cell lines printed
//! above it; otherwise (or when the runs inside draw their own bar) each per-cell line is
//! prefixed with `[done/total, ETA]`. `--quiet`: nothing.
//!
//! Depends on nothing else in the crate.

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Cells done out of a known total.
pub struct Overall {
    what: &'static str,
    total: u64,
    done: u64,
    start: Instant,
    /// Estimated length of the whole experiment before any cell is done.
    estimate: Option<Duration>,
    bar: Option<ProgressBar>,
    quiet: bool,
}

impl Overall {
    /// `what` names the cells (`runs`, `gateways`); `bar`: draw a bar when on a terminal
    /// (not when the cells draw their own).
    pub fn new(
        what: &'static str,
        total: usize,
        estimate: Option<Duration>,
        quiet: bool,
        bar: bool,
    ) -> Overall {
        let bar = (bar && !quiet && std::io::stderr().is_terminal()).then(|| {
            let pb =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(&format!(
                "[{{bar:30}}] {{pos}}/{{len}} {what}, ETA {{eta}} {{msg}}"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            pb.set_style(style);
            pb
        });
        Overall {
            what,
            total: total as u64,
            done: 0,
            start: Instant::now(),
            estimate,
            bar,
            quiet,
        }
    }

    /// Time left: from the mean time per cell so far, else from the estimate.
    pub fn eta(&self) -> Option<Duration> {
        let left = self.total.saturating_sub(self.done);
        if self.done > 0 {
            Some(self.start.elapsed().mul_f64(left as f64 / self.done as f64))
        } else {
            self.estimate
        }
    }

    /// `[done/total what, ETA 3m20s]`.
    pub fn status(&self) -> String {
        let eta = match self.eta() {
            Some(d) => format!(", ETA {}", short_duration(d)),
            None => String::new(),
        };
        format!("[{}/{} {}{eta}]", self.done, self.total, self.what)
    }

    /// A line about the current cell (above the bar, or prefixed with the status).
    pub fn line(&self, s: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(pb) => pb.println(s),
            None => eprintln!("{} {s}", self.status()),
        }
    }

    /// One more cell done.
    pub fn inc(&mut self) {
        self.done += 1;
        if let Some(pb) = &self.bar {
            pb.inc(1);
        }
    }

    pub fn finish(&self) {
        if let Some(pb) = &self.bar {
            pb.finish_and_clear();
        }
    }
}

/// `45s`, `3m20s`, `1h05m`.
pub fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_eta() {
        let mut o = Overall::new("runs", 4, Some(Duration::from_secs(200)), true, false);
        assert_eq!(o.status(), "[0/4 runs, ETA 3m20s]");
        o.inc();
        assert!(o.status().starts_with("[1/4 runs, ETA "));
        // Three more cells at the pace of the first, which took next to nothing.
        assert!(o.eta().unwrap() < Duration::from_secs(1));
        assert_eq!(short_duration(Duration::from_secs(3900)), "1h05m");
    }
}
