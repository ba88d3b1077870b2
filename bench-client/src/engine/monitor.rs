//! The live progress display of a run (`--quiet`: none): a bar with ETA on a terminal,
//! else one plain line a second on stderr. The warmup is shown apart; the measured phase
//! counts from zero.
//!
//! Reads the run's live counters ([`Live`]) when the runner's sampler ticks; never touches
//! the recording, the result or the printed summary.

use std::io::IsTerminal as _;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::engine::config::RunConfig;
use crate::engine::load::recorder::Live;
use crate::engine::units::human_bytes;

/// Where the display goes.
#[derive(Clone)]
pub(crate) enum Progress {
    None,
    /// On a terminal: an indicatif bar with ETA for the measured phase, the warmup shown
    /// apart before it.
    Bar(ProgressBar),
    /// Not on a terminal: one plain line a second on stderr.
    Lines,
}

impl Progress {
    pub(crate) fn new(cfg: &RunConfig) -> Progress {
        if !cfg.progress {
            Progress::None
        } else if std::io::stderr().is_terminal() {
            let pb = ProgressBar::with_draw_target(
                Some((cfg.warmup_s * 1000.0) as u64),
                ProgressDrawTarget::stderr(),
            );
            pb.set_style(bar_style("{prefix:>7} [{bar:30}] {msg}"));
            pb.set_prefix("warmup");
            Progress::Bar(pb)
        } else {
            Progress::Lines
        }
    }

    pub(crate) fn finish(&self) {
        if let Progress::Bar(pb) = self {
            pb.finish_and_clear();
        }
    }
}

fn bar_style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// Live counters at one moment, to show the measured phase apart from the warmup.
#[derive(Clone, Copy, Default)]
struct Snap {
    ok: u64,
    backpressure: u64,
    errors: u64,
    resolved: u64,
}

impl Snap {
    fn of(l: &Live) -> Snap {
        Snap {
            ok: l.ok.load(Relaxed),
            backpressure: l.backpressure.load(Relaxed),
            errors: l.errors.load(Relaxed),
            resolved: l.resolved.load(Relaxed),
        }
    }
}

/// The display of one run: what it last drew and from which counts.
pub(crate) struct Monitor {
    progress: Progress,
    warmup_s: f64,
    duration_s: Option<f64>,
    requests: Option<u64>,
    /// Mean record value size, for the bytes a second.
    payload_mean: f64,
    every: Duration,
    last_draw: Instant,
    last: Snap,
    /// The counts at the end of the warmup (`None` during it).
    base: Option<Snap>,
}

impl Monitor {
    pub(crate) fn new(cfg: &RunConfig, progress: Progress) -> Monitor {
        let every = match progress {
            Progress::Lines => Duration::from_secs(1),
            _ => Duration::from_millis(250),
        };
        Monitor {
            progress,
            warmup_s: cfg.warmup_s,
            duration_s: cfg.duration_s,
            requests: cfg.requests,
            payload_mean: (cfg.payload.min + cfg.payload.max) as f64 / 2.0,
            every,
            last_draw: Instant::now(),
            last: Snap::default(),
            base: None,
        }
    }

    /// Called on every sampler tick, `elapsed_s` after the run's start: redraw when due.
    pub(crate) fn tick(&mut self, now: Instant, elapsed_s: f64, live: &Live) {
        if matches!(self.progress, Progress::None) {
            return;
        }
        let t = elapsed_s - self.warmup_s;
        if t >= 0.0 && self.base.is_none() {
            self.start_measured(now, live);
            return;
        }
        if now - self.last_draw < self.every {
            return;
        }
        let snap = Snap::of(live);
        let rate = (snap.ok - self.last.ok) as f64 / (now - self.last_draw).as_secs_f64();
        let text = self.text(live, snap, self.base.unwrap_or_default(), rate);
        match &self.progress {
            Progress::Bar(pb) => {
                let pos = match (self.base, self.duration_s) {
                    (None, _) => ((t + self.warmup_s) * 1000.0) as u64,
                    (Some(_), Some(_)) => (t * 1000.0) as u64,
                    (Some(b), None) => snap.resolved - b.resolved,
                };
                pb.set_position(pos);
                pb.set_message(text);
            }
            Progress::Lines => {
                let when = match (self.base, self.duration_s) {
                    (None, _) => format!("warmup {:>5.1} s (not measured)", t + self.warmup_s),
                    (Some(_), Some(d)) => format!("{t:>6.1}/{d:.0} s"),
                    (Some(_), None) => format!("{t:>6.1} s"),
                };
                eprintln!("bench-client: {when} | {text}");
            }
            Progress::None => {}
        }
        self.last_draw = now;
        self.last = snap;
    }

    /// The measured phase starts: the bar restarts, counts start from zero.
    fn start_measured(&mut self, now: Instant, live: &Live) {
        let b = Snap::of(live);
        self.base = Some(b);
        self.last = b;
        self.last_draw = now;
        if let Progress::Bar(pb) = &self.progress {
            pb.reset();
            match (self.duration_s, self.requests) {
                (Some(d), _) => {
                    pb.set_length((d * 1000.0) as u64);
                    pb.set_style(bar_style(
                        "{prefix:>7} [{bar:30}] {percent:>3}% ETA {eta:>4} | {msg}",
                    ));
                }
                (None, n) => {
                    pb.set_length(n.unwrap_or(0));
                    pb.set_style(bar_style(
                        "{prefix:>7} [{bar:30}] {pos}/{len} ETA {eta:>4} | {msg}",
                    ));
                }
            }
            pb.set_prefix("run");
            pb.set_message(self.text(live, b, b, 0.0));
        }
    }

    /// What the display shows; `base` is the snapshot at the end of the warmup (zero
    /// during it), `rate` the ok/s since the last draw.
    fn text(&self, l: &Live, now: Snap, base: Snap, rate: f64) -> String {
        let bytes = rate * self.payload_mean;
        format!(
            "ok {} ({rate:.0} ok/s, {}/s) | 503/nack {} | errors {} | conns {} | in flight {}",
            now.ok - base.ok,
            human_bytes(bytes),
            now.backpressure - base.backpressure,
            now.errors - base.errors,
            l.open.load(Relaxed),
            l.sent
                .load(Relaxed)
                .saturating_sub(l.resolved.load(Relaxed)),
        )
    }
}
