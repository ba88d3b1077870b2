//! Recording: the per-thread [`Recorder`]s and the run's [`Recording`], whose `on_*`
//! events connection tasks call with the current [`Instant`].
//!
//! Counters that drive the run (the live progress figures) are atomics ([`Live`]);
//! everything that ends up in the result goes to the recorder of the calling worker thread
//! (found through a thread-local, one per run), so histograms are per thread and merged
//! with `add` at the end, as the methodology asks.
//!
//! Part of the [load engine](crate::engine::load): knows nothing of the schedule, the
//! requests or the connections.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::engine::analysis::errors::{connect_class, ConnectClass, ErrorKey, Phase};
use crate::engine::analysis::stats::{self, new_hist, record_ns, Hist};
use crate::engine::analysis::timeline::{ConnectSpan, Timeline};
use crate::engine::config::RunConfig;

/// Everything one client thread recorded.
pub struct Recorder {
    pub timeline: Timeline,
    /// Latency of successful requests: from the intended send time in open loop
    /// (coordinated-omission corrected), from the actual send in closed loop.
    pub latency: Hist,
    /// Latency of successful requests from the actual send.
    pub latency_uncorrected: Hist,
    pub connect: Hist,
    /// TLS handshakes that completed: from the TCP connect to the handshake's end.
    pub tls_handshake: Hist,
    /// Completed TLS handshakes that were full / resumed.
    pub tls_full: u64,
    pub tls_resumed: u64,
    /// Open loop: how late sends left when the connection was free to send.
    pub schedule_lag: Hist,
    /// Lateness of the runtime probe's 10 ms timer.
    pub runtime_lag: Hist,
    /// 503 / nack answers, timed like `latency`.
    pub backpressure: Hist,
    /// Open loop: requests unresolved at the end, recorded in `latency` (censored).
    pub censored: u64,
    pub errors: HashMap<ErrorKey, u64>,
    pub statuses: HashMap<u16, u64>,
    pub spans: Vec<ConnectSpan>,
    /// Sequence numbers acknowledged with ack=kafka (when collected), warmup included.
    pub acked: Vec<u64>,
    /// Per-second latency histograms (V2 deflate), when collected.
    pub intervals: Vec<(u64, Vec<u8>)>,
    cur_interval: Option<(u64, Hist)>,
}

impl Recorder {
    fn new() -> Self {
        Recorder {
            timeline: Timeline::default(),
            latency: new_hist(),
            latency_uncorrected: new_hist(),
            connect: new_hist(),
            tls_handshake: new_hist(),
            tls_full: 0,
            tls_resumed: 0,
            schedule_lag: new_hist(),
            runtime_lag: new_hist(),
            backpressure: new_hist(),
            censored: 0,
            errors: HashMap::new(),
            statuses: HashMap::new(),
            spans: Vec::new(),
            acked: Vec::new(),
            intervals: Vec::new(),
            cur_interval: None,
        }
    }

    fn interval(&mut self, sec: u64, ns: u64) {
        if self.cur_interval.as_ref().is_some_and(|(s, _)| *s != sec) {
            self.flush_interval();
        }
        let (_, h) = self.cur_interval.get_or_insert_with(|| (sec, new_hist()));
        record_ns(h, ns);
    }

    fn flush_interval(&mut self) {
        if let Some((s, h)) = self.cur_interval.take() {
            self.intervals.push((s, stats::encode_bytes(&h)));
        }
    }

    fn error(&mut self, key: ErrorKey, n: u64) {
        *self.errors.entry(key).or_default() += n;
    }
}

/// The per-thread recorders of one run.
pub(crate) struct Registry {
    all: Mutex<Vec<Arc<Mutex<Recorder>>>>,
}

/// This thread's recorder for each live run.
type LocalRecorders = Vec<(Weak<Registry>, Arc<Mutex<Recorder>>)>;

thread_local! {
    static LOCAL: RefCell<LocalRecorders> = const { RefCell::new(Vec::new()) };
}

impl Registry {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Registry {
            all: Mutex::new(Vec::new()),
        })
    }

    fn register(&self) -> Arc<Mutex<Recorder>> {
        let r = Arc::new(Mutex::new(Recorder::new()));
        lock(&self.all).push(r.clone());
        r
    }

    /// Run `f` on this thread's recorder for this run. Called several times per request:
    /// the common case (this thread already has one) is a thread-local scan and an
    /// uncontended lock, with no reference-count traffic.
    pub(crate) fn with<R>(self: &Arc<Self>, f: impl FnOnce(&mut Recorder) -> R) -> R {
        let me = Arc::as_ptr(self);
        let mut f = Some(f);
        let done = LOCAL.try_with(|l| {
            let l = l.borrow();
            let (_, r) = l.iter().find(|(w, _)| w.as_ptr() == me)?;
            let f = f.take()?;
            let out = f(&mut lock(r));
            Some(out)
        });
        if let Ok(Some(out)) = done {
            return out;
        }
        let rec = LOCAL
            .try_with(|l| {
                let mut l = l.borrow_mut();
                // Forget the recorders of finished runs.
                l.retain(|(w, _)| w.strong_count() > 0);
                let r = self.register();
                l.push((Arc::downgrade(self), r.clone()));
                r
            })
            // Thread-locals are gone while a thread exits: use a recorder of its own.
            .unwrap_or_else(|_| self.register());
        let f = f.take().expect("the recorder closure runs once");
        let mut g = lock(&rec);
        f(&mut g)
    }

    /// Take every thread's recorder (call once all tasks are gone).
    pub(crate) fn drain(&self) -> Vec<Recorder> {
        let all = std::mem::take(&mut *lock(&self.all));
        all.into_iter()
            .map(|r| {
                let mut rec = std::mem::replace(&mut *lock(&r), Recorder::new());
                rec.flush_interval();
                rec
            })
            .collect()
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Figures read live by the progress line and the end-of-run condition.
#[derive(Default)]
pub(crate) struct Live {
    pub sent: AtomicU64,
    pub ok: AtomicU64,
    pub backpressure: AtomicU64,
    pub errors: AtomicU64,
    /// Requests that got their final outcome (any).
    pub resolved: AtomicU64,
    pub open: AtomicI64,
}

/// One request on its way.
#[derive(Debug, Clone, Copy)]
pub(crate) struct InFlight {
    pub seq: u64,
    /// Open loop: when the schedule wanted it sent.
    pub intended: Option<Instant>,
    /// When the client started it (write, or connect in http-close mode).
    pub start: Instant,
}

/// How a request ended with a response.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    Ok { acked: bool },
    Backpressure,
    Error(ErrorKey),
}

/// Words of the resolved bitmap: every sequence number an open loop can claim (its
/// permits are released only for due requests), none for a closed loop.
fn resolved_words(cfg: &RunConfig) -> usize {
    let Some(rate) = cfg.rate else { return 0 };
    let secs = match (cfg.duration_s, cfg.requests) {
        (Some(d), _) => cfg.warmup_s + d + 2.0,
        (None, Some(n)) => cfg.warmup_s + n as f64 / rate + 2.0,
        (None, None) => 0.0,
    };
    ((rate * secs) as usize + 64) / 64
}

/// What a run records, and when: the measured phase runs from `measure_start_ns` to
/// `end_ns` (nanoseconds since `t_start`); events outside it still shape the timeline but
/// not the histograms or error counts.
pub(crate) struct Recording {
    pub t_start: Instant,
    pub measure_start_ns: u64,
    /// Time the run ended (u64::MAX while it runs): nothing after it is measured.
    pub end_ns: AtomicU64,
    pub window_ns: u64,
    /// Keep one latency histogram per second (`--hdr-log`).
    intervals: bool,
    pub live: Live,
    pub registry: Arc<Registry>,
    /// Open loop: one bit per sequence number, set when the request got its outcome
    /// within the run (what is left unset at the end is censored).
    resolved_bits: Vec<AtomicU64>,
}

impl Recording {
    pub(crate) fn new(cfg: &RunConfig, t_start: Instant) -> Self {
        Recording {
            t_start,
            measure_start_ns: cfg.warmup().as_nanos() as u64,
            end_ns: AtomicU64::new(u64::MAX),
            window_ns: cfg.stall_window().as_nanos() as u64,
            intervals: cfg.interval_histograms,
            live: Live::default(),
            registry: Registry::new(),
            resolved_bits: (0..resolved_words(cfg))
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }

    pub(crate) fn ns(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.t_start).as_nanos() as u64
    }

    fn measured(&self, ns: u64) -> bool {
        ns >= self.measure_start_ns && ns < self.end_ns.load(Relaxed)
    }

    fn rec<R>(&self, f: impl FnOnce(&mut Recorder) -> R) -> R {
        self.registry.with(f)
    }

    pub(crate) fn on_sent(&self, now: Instant, n: u64) {
        self.live.sent.fetch_add(n, Relaxed);
        let ns = self.ns(now);
        self.rec(|r| r.timeline.activity(ns).sent += n);
    }

    /// A send left `lag` later than it could have (open-loop schedule lag).
    pub(crate) fn on_schedule_lag(&self, now: Instant, lag: Duration) {
        let ns = self.ns(now);
        let lag = lag.as_nanos() as u64;
        let m = self.measured(ns);
        self.rec(|r| {
            r.timeline.lag(ns, lag);
            if m {
                record_ns(&mut r.schedule_lag, lag);
            }
        });
    }

    /// The runtime probe woke `lag` late.
    pub(crate) fn on_runtime_lag(&self, now: Instant, lag: Duration) {
        let ns = self.ns(now);
        let lag = lag.as_nanos() as u64;
        let m = self.measured(ns);
        self.rec(|r| {
            r.timeline.lag(ns, lag);
            if m {
                record_ns(&mut r.runtime_lag, lag);
            }
        });
    }

    pub(crate) fn on_cpu(&self, now: Instant, cpu_ns: u64) {
        let ns = self.ns(now);
        self.rec(|r| r.timeline.at(ns).cpu_ns += cpu_ns);
    }

    /// One sample of the target's accept queue (only when it listens on this host).
    pub(crate) fn on_accept_queue(&self, now: Instant, queue: u64) {
        let ns = self.ns(now);
        self.rec(|r| {
            let b = r.timeline.at(ns);
            b.queue_samples += 1;
            b.accept_queue_max = b.accept_queue_max.max(queue);
        });
    }

    /// A response arrived for `f`.
    pub(crate) fn on_response(
        &self,
        f: &InFlight,
        now: Instant,
        status: Option<u16>,
        out: Outcome,
    ) {
        let ns = self.ns(now);
        let m = self.measured(ns);
        self.mark_resolved(f.seq, ns);
        let l = &self.live;
        l.resolved.fetch_add(1, Relaxed);
        match &out {
            Outcome::Ok { .. } => l.ok.fetch_add(1, Relaxed),
            Outcome::Backpressure => l.backpressure.fetch_add(1, Relaxed),
            Outcome::Error(_) => l.errors.fetch_add(1, Relaxed),
        };
        let corrected = now.saturating_duration_since(f.intended.unwrap_or(f.start));
        let uncorrected = now.saturating_duration_since(f.start);
        let sec = ns.saturating_sub(self.measure_start_ns) / 1_000_000_000;
        let intervals = self.intervals;
        self.rec(|r| {
            let b = r.timeline.response(ns);
            match &out {
                Outcome::Ok { .. } => b.ok += 1,
                Outcome::Backpressure => b.backpressure += 1,
                Outcome::Error(_) => b.http_errors += 1,
            }
            // Acks are kept for verification, warmup included: they are not statistics.
            if matches!(out, Outcome::Ok { acked: true }) {
                r.acked.push(f.seq);
            }
            if !m {
                return;
            }
            if let Some(s) = status {
                *r.statuses.entry(s).or_default() += 1;
            }
            match out {
                Outcome::Ok { .. } => {
                    let c = corrected.as_nanos() as u64;
                    record_ns(&mut r.latency, c);
                    record_ns(&mut r.latency_uncorrected, uncorrected.as_nanos() as u64);
                    if intervals {
                        r.interval(sec, c);
                    }
                }
                Outcome::Backpressure => {
                    record_ns(&mut r.backpressure, corrected.as_nanos() as u64)
                }
                Outcome::Error(k) => r.error(k, 1),
            }
        });
    }

    /// Request `seq` got its outcome at `ns` (only outcomes within the run count).
    fn mark_resolved(&self, seq: u64, ns: u64) {
        if ns >= self.end_ns.load(Relaxed) {
            return;
        }
        if let Some(w) = self.resolved_bits.get((seq / 64) as usize) {
            w.fetch_or(1 << (seq % 64), Relaxed);
        }
    }

    /// Open loop (one slot every `iv` ns), once the run is over: every request that was
    /// due before the end (and below `limit`, with `--requests`) and had no outcome by then
    /// (never sent, or sent and unanswered) goes into the corrected histogram with its wait
    /// until the end, so a stall at the end of a run is not dropped from the latency
    /// figures. Returns how many.
    pub(crate) fn censor_at_end(&self, iv: f64, limit: Option<u64>) -> u64 {
        let end = self.end_ns.load(Relaxed);
        if end == u64::MAX {
            return 0;
        }
        // Due before the end: seq * iv < end.
        let due = ((end as f64 / iv).ceil() as u64).min(self.resolved_bits.len() as u64 * 64);
        let due = limit.map_or(due, |l| due.min(l));
        let mut n = 0;
        self.rec(|r| {
            for seq in 0..due {
                let w = self.resolved_bits[(seq / 64) as usize].load(Relaxed);
                if w & (1 << (seq % 64)) != 0 {
                    continue;
                }
                let intended = (seq as f64 * iv) as u64;
                record_ns(&mut r.latency, end.saturating_sub(intended));
                r.censored += 1;
                n += 1;
            }
        });
        n
    }

    /// Sent requests `seqs` ended without a response.
    pub(crate) fn on_aborted(&self, now: Instant, seqs: &[u64], key: ErrorKey) {
        let n = seqs.len() as u64;
        if n == 0 {
            return;
        }
        let ns_now = self.ns(now);
        for &s in seqs {
            self.mark_resolved(s, ns_now);
        }
        self.live.resolved.fetch_add(n, Relaxed);
        self.live.errors.fetch_add(n, Relaxed);
        let ns = self.ns(now);
        let m = self.measured(ns);
        self.rec(|r| {
            r.timeline.at(ns).aborted += n;
            if m {
                r.error(key, n);
            }
        });
    }

    /// A connection-level failure that no request paid for (e.g. a failed handshake).
    pub(crate) fn on_conn_error(&self, now: Instant, key: ErrorKey) {
        self.live.errors.fetch_add(1, Relaxed);
        let ns = self.ns(now);
        let m = self.measured(ns);
        self.rec(|r| {
            r.timeline.at(ns).connect_failed += 1;
            if m {
                r.error(key, 1);
            }
        });
    }

    pub(crate) fn on_connecting_start(&self, now: Instant) {
        let ns = self.ns(now);
        self.rec(|r| r.timeline.activity(ns).connecting_start += 1);
    }

    pub(crate) fn on_connecting_end(
        &self,
        start: Instant,
        now: Instant,
        last_failure: Option<ConnectClass>,
    ) {
        let (s, e) = (self.ns(start), self.ns(now));
        let window = self.window_ns;
        self.rec(|r| {
            r.timeline.at(e).connecting_end += 1;
            if e - s >= window {
                r.spans.push(ConnectSpan {
                    start_ns: s,
                    end_ns: e,
                    last_failure,
                });
            }
        });
    }

    pub(crate) fn on_connect_attempt(&self, now: Instant) {
        let ns = self.ns(now);
        self.rec(|r| r.timeline.activity(ns).connect_attempts += 1);
    }

    pub(crate) fn on_connect_ok(&self, now: Instant, took: Duration) {
        self.live.open.fetch_add(1, Relaxed);
        let ns = self.ns(now);
        let m = self.measured(ns);
        self.rec(|r| {
            r.timeline.at(ns).connect_ok += 1;
            if m {
                record_ns(&mut r.connect, took.as_nanos() as u64);
            }
        });
    }

    /// A TLS handshake completed `took` after the TCP connect; `resumed`: an abbreviated
    /// one (session resumption). A failed one is a connection error (`on_conn_error`).
    pub(crate) fn on_tls_handshake(&self, now: Instant, took: Duration, resumed: bool) {
        let ns = self.ns(now);
        if !self.measured(ns) {
            return;
        }
        self.rec(|r| {
            record_ns(&mut r.tls_handshake, took.as_nanos() as u64);
            if resumed {
                r.tls_resumed += 1;
            } else {
                r.tls_full += 1;
            }
        });
    }

    pub(crate) fn on_connect_failed(&self, now: Instant, e: &std::io::Error) -> ConnectClass {
        self.live.errors.fetch_add(1, Relaxed);
        let class = connect_class(e);
        let ns = self.ns(now);
        let m = self.measured(ns);
        self.rec(|r| {
            let b = r.timeline.at(ns);
            b.connect_failed += 1;
            match class {
                ConnectClass::Refused => b.refused += 1,
                ConnectClass::Timeout => b.connect_timeouts += 1,
                ConnectClass::Exhaustion => b.exhaustion += 1,
                ConnectClass::Other => {}
            }
            if m {
                r.error(ErrorKey::io(Phase::Connect, e), 1);
            }
        });
        class
    }

    /// An established connection became unanswered (`start`, at establishment) or stopped
    /// being so (first answer, or closed without one). A connection left unanswered for a
    /// stall window or longer is kept as a span, like a long connect: the process never
    /// accepted it even though the kernel completed the handshake.
    pub(crate) fn on_unanswered(&self, since: Instant, now: Instant, start: bool) {
        let (s, e) = (self.ns(since), self.ns(now));
        let window = self.window_ns;
        self.rec(|r| {
            let b = r.timeline.at(e);
            if start {
                b.unanswered_start += 1;
            } else {
                b.unanswered_end += 1;
                if e - s >= window {
                    r.spans.push(ConnectSpan {
                        start_ns: s,
                        end_ns: e,
                        last_failure: None,
                    });
                }
            }
        });
    }

    pub(crate) fn on_closed(&self, now: Instant) {
        self.live.open.fetch_sub(1, Relaxed);
        let ns = self.ns(now);
        self.rec(|r| r.timeline.at(ns).closed += 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_get_their_own_recorders() {
        let cfg = RunConfig::new("http://127.0.0.1:9").unwrap();
        let rec = Arc::new(Recording::new(&cfg, Instant::now()));
        let now = rec.t_start + Duration::from_secs(2);
        let hs: Vec<_> = (0..3)
            .map(|_| {
                let rec = rec.clone();
                std::thread::spawn(move || {
                    for _ in 0..10 {
                        rec.on_sent(now, 1);
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        rec.on_sent(now, 1);
        let recs = rec.registry.drain();
        assert_eq!(recs.len(), 4);
        let mut tl = Timeline::default();
        for r in &recs {
            tl.merge(&r.timeline);
        }
        assert_eq!(tl.buckets.iter().map(|b| b.sent).sum::<u64>(), 31);
    }
}
