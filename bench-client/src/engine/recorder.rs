//! Recording: the run's shared state ([`Shared`]) and the per-thread [`Recorder`]s.
//!
//! Connection tasks call the `on_*` methods of [`Shared`] with the current [`Instant`].
//! Counters that drive the run (sequence numbers, the live progress figures) are atomics;
//! everything that ends up in the result goes to the recorder of the calling worker thread
//! (found through a thread-local, one per run), so histograms are per thread and merged
//! with `add` at the end, as the methodology asks.
//!
//! Part of the [engine](crate::engine): must not depend on anything outside it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::engine::config::{Format, RunConfig};
use crate::engine::errors::{connect_class, ConnectClass, ErrorKey, Phase};
use crate::engine::stats::{self, new_hist, record_ns, Hist};
use crate::engine::timeline::{ConnectSpan, Timeline};

/// Everything one client thread recorded.
pub struct Recorder {
    pub timeline: Timeline,
    /// Latency of successful requests: from the intended send time in open loop
    /// (coordinated-omission corrected), from the actual send in closed loop.
    pub latency: Hist,
    /// Latency of successful requests from the actual send.
    pub latency_uncorrected: Hist,
    pub connect: Hist,
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

/// A claimed request slot.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Claim {
    pub seq: u64,
    pub intended: Option<Instant>,
}

/// The pacer releases permits at most this far apart (ns): ~20 requests per wake-up at
/// 100k/s, one per wake-up below 5k/s.
pub(crate) const PACER_BATCH_NS: u64 = 200_000;

/// The longest the pacer thread sleeps while the runtime keeps the schedule itself (its
/// responses pump the permits, see [`Shared::pump`]): when the runtime goes quiet, the
/// first batch after it is at most this late, then the pacer is back to [`PACER_BATCH_NS`].
pub(crate) const PACER_IDLE_NS: u64 = 1_000_000;

/// Requests due by `now_ns` (slot k is due at `k * iv`): slots `0..due_by`.
pub(crate) fn due_by(now_ns: u64, iv: f64) -> u64 {
    (now_ns as f64 / iv) as u64 + 1
}

/// How long the pacer sleeps after releasing `released` slots at `now_ns`: until the next
/// slot is due, but at least `min_ns` (and at most 10 ms, to notice the stop).
pub(crate) fn pacer_sleep_ns(now_ns: u64, released: u64, iv: f64, min_ns: u64) -> u64 {
    let next = (released as f64 * iv) as u64;
    next.saturating_sub(now_ns).clamp(min_ns, 10_000_000)
}

/// The pacer's next minimum sleep: [`PACER_BATCH_NS`] when it found due requests the
/// runtime had not released, else twice the last one up to [`PACER_IDLE_NS`] (the runtime
/// is keeping the schedule; waking it costs two context switches on the client's core).
pub(crate) fn pacer_backoff_ns(last_ns: u64, found_due: bool) -> u64 {
    if found_due {
        PACER_BATCH_NS
    } else {
        (last_ns * 2).min(PACER_IDLE_NS)
    }
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

pub(crate) struct Shared {
    pub cfg: RunConfig,
    pub addr: SocketAddr,
    pub run_id: String,
    pub t_start: Instant,
    pub measure_start_ns: u64,
    /// Time the run ended (u64::MAX while it runs): nothing after it is measured.
    pub end_ns: AtomicU64,
    pub window_ns: u64,
    seq: AtomicU64,
    /// Requests with a sequence number from here on are not sent (u64::MAX: no limit yet;
    /// with `--requests` it is set by the first claim after warmup).
    pub limit: AtomicU64,
    /// Open loop: nanoseconds between scheduled sends.
    interval_ns: Option<f64>,
    /// Open loop: one permit per scheduled send whose time has come, counted by the
    /// [`Shared::pacer`] thread (tokio's 1 ms timer wheel would add up to ~2 ms of send
    /// lag) and released by [`Shared::pacer_relay`] on the runtime.
    pub sched: Option<tokio::sync::Semaphore>,
    /// Set when the run is over (stops the pacer).
    pub stop: std::sync::atomic::AtomicBool,
    /// Open loop: requests due so far, published by the pacer thread for the relay task.
    pacer_due: AtomicU64,
    pacer_wake: tokio::sync::Notify,
    /// Open loop: send permits released so far (by [`Shared::pump`]).
    granted: AtomicU64,
    /// Open loop: one bit per sequence number, set when the request got its outcome
    /// within the run (what is left unset at the end is censored).
    resolved_bits: Vec<AtomicU64>,
    next_connect: Mutex<Instant>,
    connect_interval: Option<Duration>,
    pub bind_cursor: AtomicU32,
    pub live: Live,
    pub registry: Arc<Registry>,
    /// `POST /topics/T?ack=A HTTP/1.1\r\nHost: H\r\nContent-Length: `
    pub request_head: Vec<u8>,
    padding: Vec<u8>,
}

/// The query of every request: `ack=A`, then `&key=K` (percent-encoded) with `--key`.
pub(crate) fn query(cfg: &RunConfig) -> String {
    let mut q = format!("ack={}", cfg.ack.as_str());
    if let Some(k) = &cfg.key {
        q.push_str("&key=");
        q.extend(percent_encoding::utf8_percent_encode(
            k,
            percent_encoding::NON_ALPHANUMERIC,
        ));
    }
    q
}

impl Shared {
    pub(crate) fn new(cfg: RunConfig, addr: SocketAddr, run_id: String) -> Self {
        let t_start = Instant::now();
        let content_type = cfg
            .format
            .content_type()
            .map_or(String::new(), |t| format!("Content-Type: {t}\r\n"));
        let mut head = format!(
            "POST /topics/{}?{} HTTP/1.1\r\nHost: {}\r\n{content_type}",
            cfg.topic,
            query(&cfg),
            cfg.authority
        );
        for (n, v) in &cfg.headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        head.push_str("Content-Length: ");
        let request_head = head.into_bytes();
        Shared {
            measure_start_ns: cfg.warmup().as_nanos() as u64,
            end_ns: AtomicU64::new(u64::MAX),
            window_ns: cfg.stall_window().as_nanos() as u64,
            seq: AtomicU64::new(0),
            limit: AtomicU64::new(u64::MAX),
            interval_ns: cfg.rate.map(|r| 1e9 / r),
            sched: cfg.rate.map(|_| tokio::sync::Semaphore::new(0)),
            stop: std::sync::atomic::AtomicBool::new(false),
            pacer_due: AtomicU64::new(0),
            pacer_wake: tokio::sync::Notify::new(),
            granted: AtomicU64::new(0),
            resolved_bits: (0..resolved_words(&cfg))
                .map(|_| AtomicU64::new(0))
                .collect(),
            next_connect: Mutex::new(t_start),
            connect_interval: cfg.connect_rate.map(|r| Duration::from_secs_f64(1.0 / r)),
            bind_cursor: AtomicU32::new(0),
            live: Live::default(),
            registry: Registry::new(),
            request_head,
            padding: vec![b'.'; cfg.payload.max],
            t_start,
            addr,
            run_id,
            cfg,
        }
    }

    pub(crate) fn ns(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.t_start).as_nanos() as u64
    }

    fn measured(&self, ns: u64) -> bool {
        ns >= self.measure_start_ns && ns < self.end_ns.load(Relaxed)
    }

    pub(crate) fn open_loop(&self) -> bool {
        self.interval_ns.is_some()
    }

    pub(crate) fn claimed(&self) -> u64 {
        self.seq.load(Relaxed)
    }

    /// Wait for the next send slot (open loop), claim it and account for the client's own
    /// lateness. `free_at` is when the connection became able to send: waiting for the
    /// server is not schedule lag, waking up late is. `None` when `--requests` is used up.
    pub(crate) async fn next_send(&self, free_at: Instant) -> Option<Claim> {
        if let Some(s) = &self.sched {
            s.acquire().await.ok()?.forget();
        }
        let c = self.claim()?;
        if let Some(t) = c.intended {
            if t > Instant::now() {
                // Only when slots were claimed out of permit order: rare, and short.
                tokio::time::sleep_until(t.into()).await;
            }
            let now = Instant::now();
            self.on_schedule_lag(now, now.saturating_duration_since(t.max(free_at)));
        }
        Some(c)
    }

    /// The next request to send, or `None` when `--requests` is used up.
    pub(crate) fn claim(&self) -> Option<Claim> {
        let seq = self.seq.fetch_add(1, Relaxed);
        if let Some(n) = self.cfg.requests {
            // The first claim of the measured phase fixes the limit: requests claimed
            // from then on are the measured ones, however late the runner wakes up.
            if self.limit.load(Relaxed) == u64::MAX
                && self.ns(Instant::now()) >= self.measure_start_ns
            {
                let _ = self
                    .limit
                    .compare_exchange(u64::MAX, seq + n, Relaxed, Relaxed);
            }
        }
        if seq >= self.limit.load(Relaxed) {
            return None;
        }
        let intended = self
            .interval_ns
            .map(|i| self.t_start + Duration::from_nanos((seq as f64 * i) as u64));
        Some(Claim { seq, intended })
    }

    /// The id of request `seq`: `<run id>-<seq>`; shard I of N uses `seq × N + I`, so the
    /// shards of one run (same run id) never share an id.
    pub(crate) fn id(&self, seq: u64) -> String {
        format!("{}-{}", self.run_id, self.id_seq(seq))
    }

    fn id_seq(&self, seq: u64) -> u64 {
        match self.cfg.shard {
            Some(s) => seq * u64::from(s.count) + u64::from(s.index),
            None => seq,
        }
    }

    /// The size drawn for the next record value (`--payload MIN..MAX`).
    fn value_size(&self, rng: &mut fastrand::Rng) -> usize {
        let p = self.cfg.payload;
        if p.min == p.max {
            p.min
        } else {
            rng.usize(p.min..=p.max)
        }
    }

    /// Length of the value `value_into(seq, size)` writes: the id, padded up to `size`.
    fn value_len(&self, seq: u64, size: usize) -> usize {
        let digits = self
            .id_seq(seq)
            .checked_ilog10()
            .map_or(1, |d| d as usize + 1);
        size.max(self.run_id.len() + 1 + digits)
    }

    /// Append `<id>` then `.` padding up to `size` to `buf`, without allocating.
    fn value_into(&self, seq: u64, size: usize, buf: &mut Vec<u8>) {
        let start = buf.len();
        buf.extend_from_slice(self.run_id.as_bytes());
        buf.push(b'-');
        buf.extend_from_slice(itoa::Buffer::new().format(self.id_seq(seq)).as_bytes());
        let idlen = buf.len() - start;
        buf.extend_from_slice(&self.padding[..size.saturating_sub(idlen)]);
    }

    /// Append the record value of `seq` (`<id>` then `.` padding up to the size) to `buf`.
    /// With `--body-file`, append that file's content instead.
    pub(crate) fn payload_into(&self, seq: u64, rng: &mut fastrand::Rng, buf: &mut Vec<u8>) {
        match &self.cfg.body {
            Some(b) => buf.extend_from_slice(b),
            None => {
                let size = self.value_size(rng);
                self.value_into(seq, size, buf);
            }
        }
    }

    /// Append one full HTTP request for `seq` to `buf`, without allocating: the value is
    /// written in place and its length (known before it is written) goes into the head.
    pub(crate) fn http_request_into(&self, seq: u64, rng: &mut fastrand::Rng, buf: &mut Vec<u8>) {
        if self.cfg.format != Format::Raw {
            return self.rest_request_into(seq, rng, buf);
        }
        let size = self.value_size(rng);
        let len = match &self.cfg.body {
            Some(b) => b.len(),
            None => self.value_len(seq, size),
        };
        buf.extend_from_slice(&self.request_head);
        buf.extend_from_slice(itoa::Buffer::new().format(len).as_bytes());
        buf.extend_from_slice(b"\r\n\r\n");
        match &self.cfg.body {
            Some(b) => buf.extend_from_slice(b),
            None => self.value_into(seq, size, buf),
        }
    }

    /// A REST Proxy v2 request for `seq`: `--batch` records, record `i` carrying the id of
    /// record number `seq × batch + i` (see [`Shared::record_id`]), padded like a raw value;
    /// binary: base64 of that value, json: that value as a JSON string.
    fn rest_request_into(&self, seq: u64, rng: &mut fastrand::Rng, buf: &mut Vec<u8>) {
        use base64::Engine as _;
        let batch = self.cfg.batch as u64;
        let mut body =
            Vec::with_capacity(16 + (self.cfg.payload.max + 48) * batch as usize * 4 / 3);
        let mut value = Vec::with_capacity(self.cfg.payload.max + 32);
        body.extend_from_slice(b"{\"records\":[");
        for i in 0..batch {
            if i > 0 {
                body.push(b',');
            }
            value.clear();
            self.payload_into(seq * batch + i, rng, &mut value);
            body.extend_from_slice(b"{\"value\":\"");
            match self.cfg.format {
                Format::RestV2Binary => {
                    let at = body.len();
                    let n = base64::encoded_len(value.len(), true).unwrap_or(0);
                    body.resize(at + n, 0);
                    let _ = base64::engine::general_purpose::STANDARD
                        .encode_slice(&value, &mut body[at..]);
                }
                // Ids and padding are plain ASCII: no escaping needed in a JSON string.
                _ => body.extend_from_slice(&value),
            }
            body.extend_from_slice(b"\"}");
        }
        body.extend_from_slice(b"]}");
        let mut lens = itoa::Buffer::new();
        buf.extend_from_slice(&self.request_head);
        buf.extend_from_slice(lens.format(body.len()).as_bytes());
        buf.extend_from_slice(b"\r\n\r\n");
        buf.extend_from_slice(&body);
    }

    /// The ids of the records of request `seq`: `<run id>-<seq × batch + i>`.
    pub(crate) fn record_ids(&self, seq: u64) -> impl Iterator<Item = String> + '_ {
        let batch = self.cfg.batch.max(1) as u64;
        (seq * batch..(seq + 1) * batch).map(|n| self.id(n))
    }

    /// Wait for a connect slot under `--connect-rate`.
    pub(crate) async fn connect_slot(&self) {
        let Some(iv) = self.connect_interval else {
            return;
        };
        let at = {
            let mut next = lock(&self.next_connect);
            let at = (*next).max(Instant::now());
            *next = at + iv;
            at
        };
        tokio::time::sleep_until(at.into()).await;
    }

    /// Open loop: count the scheduled times that have come, from a plain thread with a
    /// 1 us timer slack, in batches at most [`PACER_BATCH_NS`] apart, until
    /// [`Shared::stop`]; each batch is one wake of [`Shared::pacer_relay`], which releases
    /// the send permits on the client's runtime.
    ///
    /// Batching is what lets one client core keep a 100k/s schedule: a wake-up per request
    /// from another thread (a context switch, the runtime's injection queue and an unpark
    /// each time) costs more than the request. Under load the runtime releases the permits
    /// itself as responses arrive ([`Shared::pump`]); the pacer then finds nothing due and
    /// backs off to [`PACER_IDLE_NS`] ([`pacer_backoff_ns`]). A request released late by
    /// the batching is still timed from its intended time (`seq × interval`), so the delay
    /// shows in the corrected latency, never hidden.
    pub(crate) fn pacer(&self) {
        let Some(iv) = self.interval_ns else {
            return;
        };
        // SAFETY: prctl(PR_SET_TIMERSLACK) only changes this thread's timer slack.
        unsafe {
            libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong);
        }
        let mut min_sleep = PACER_BATCH_NS;
        while !self.stop.load(Relaxed) {
            let now = self.ns(Instant::now());
            let due = due_by(now, iv);
            // Requests already a batch late that the runtime has not released: it is not
            // keeping the schedule by itself.
            let found_due =
                due_by(now.saturating_sub(PACER_BATCH_NS), iv) > self.granted.load(Relaxed);
            if due > self.granted.load(Relaxed) {
                self.pacer_due.store(due, Relaxed);
                self.pacer_wake.notify_one();
            }
            min_sleep = pacer_backoff_ns(min_sleep, found_due);
            std::thread::sleep(Duration::from_nanos(pacer_sleep_ns(
                now, due, iv, min_sleep,
            )));
        }
        // Let the relay see the stop.
        self.pacer_wake.notify_one();
    }

    /// Open loop, a task on the client's runtime: turns the pacer's due count into send
    /// permits, so the connection tasks are woken from their own runtime (local wakes).
    pub(crate) async fn pacer_relay(&self) {
        while !self.stop.load(Relaxed) {
            self.pacer_wake.notified().await;
            self.grant_to(self.pacer_due.load(Relaxed));
        }
    }

    /// Open loop, on the client's runtime: release the permits of every request due by
    /// `now`. Called for each response, so a busy client keeps its schedule without the
    /// pacer thread's wake-ups.
    pub(crate) fn pump(&self, now: Instant) {
        if let Some(iv) = self.interval_ns {
            self.grant_to(due_by(self.ns(now), iv));
        }
    }

    fn grant_to(&self, due: u64) {
        let Some(sem) = &self.sched else { return };
        let granted = self.granted.load(Relaxed);
        if due > granted
            && self
                .granted
                .compare_exchange(granted, due, Relaxed, Relaxed)
                .is_ok()
        {
            sem.add_permits((due - granted) as usize);
        }
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
        self.pump(now);
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
        let intervals = self.cfg.interval_histograms;
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

    /// Open loop, once the run is over: every request that was due before `end` and had
    /// no outcome by then (never sent, or sent and unanswered) goes into the corrected
    /// histogram with its wait until the end, so a stall at the end of a run is not
    /// dropped from the latency figures. Returns how many.
    pub(crate) fn censor_at_end(&self) -> u64 {
        let Some(iv) = self.interval_ns else { return 0 };
        let end = self.end_ns.load(Relaxed);
        if end == u64::MAX {
            return 0;
        }
        // Due before the end: seq * iv < end.
        let due = ((end as f64 / iv).ceil() as u64).min(self.resolved_bits.len() as u64 * 64);
        let due = match self.cfg.requests {
            Some(_) => due.min(self.limit.load(Relaxed)),
            None => due,
        };
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
    use crate::engine::config::PayloadSize;
    use crate::engine::stats::HistSummary;

    /// One open-loop connection, pipeline 1, 1000 req/s for 5 s, each answered 100 us after
    /// it is sent, except that the server is frozen from 2 s to 4 s. Simulated time: no
    /// sockets, no sleeping.
    fn simulate(rate: Option<f64>) -> (HistSummary, HistSummary, Vec<Recorder>) {
        let mut cfg = RunConfig::new("http://127.0.0.1:9").unwrap();
        cfg.rate = rate;
        cfg.warmup_s = 0.0;
        let sh = Shared::new(cfg, "127.0.0.1:9".parse().unwrap(), "test".into());
        let t0 = sh.t_start;
        let ms = |x: f64| t0 + Duration::from_secs_f64(x / 1000.0);
        let mut free = t0; // when the connection can send again
        for k in 0..5000u64 {
            let c = sh.claim().unwrap();
            assert_eq!(c.seq, k);
            let send = match c.intended {
                Some(t) => t.max(free),
                None => free,
            };
            let mut done = send + Duration::from_micros(100);
            if done >= ms(2000.0) && done < ms(4000.0) {
                done = ms(4000.0);
            }
            let f = InFlight {
                seq: k,
                intended: c.intended,
                start: send,
            };
            sh.on_sent(send, 1);
            sh.on_response(&f, done, Some(200), Outcome::Ok { acked: false });
            free = done;
        }
        let recs = sh.registry.drain();
        let (mut c, mut u) = (new_hist(), new_hist());
        for r in &recs {
            stats::merge(&mut c, &r.latency);
            stats::merge(&mut u, &r.latency_uncorrected);
        }
        (HistSummary::of(&c), HistSummary::of(&u), recs)
    }

    #[test]
    fn open_loop_latency_is_corrected_for_coordinated_omission() {
        let (corrected, uncorrected, _) = simulate(Some(1000.0));
        assert_eq!(corrected.count, 5000);
        // Only one request was in flight when the freeze began: the uncorrected view
        // sees one 2 s outlier, p99 stays at the service time.
        assert!(uncorrected.p99_us < 200.0, "{uncorrected:?}");
        assert!(uncorrected.max_us > 1_900_000.0);
        // Every request scheduled during the freeze waited for it: ~2000 of 5000 requests
        // are late, the worst by the whole 2 s, so p99 is ~2 s and p50 is still small.
        assert!(corrected.p99_us > 1_800_000.0, "{corrected:?}");
        assert!(corrected.p50_us < 1000.0, "{corrected:?}");
    }

    #[test]
    fn pacer_releases_in_batches_and_keeps_intended_times() {
        // 100k/s: one slot every 10 us; the pacer sleeps at least 200 us between batches.
        let iv = 1e9 / 100_000.0;
        assert_eq!(due_by(0, iv), 1);
        assert_eq!(due_by(1_000_000, iv), 101);
        assert_eq!(
            pacer_sleep_ns(1_000_000, 101, iv, PACER_BATCH_NS),
            PACER_BATCH_NS
        );
        // At 1k/s it sleeps until the next slot.
        let iv = 1e6;
        assert_eq!(pacer_sleep_ns(1_500_000, 2, iv, PACER_BATCH_NS), 500_000);
        // While the runtime releases the permits itself the pacer backs off to 1 ms, and
        // is back to 200 us batches as soon as it finds requests due and unreleased.
        let mut min = PACER_BATCH_NS;
        for _ in 0..10 {
            min = pacer_backoff_ns(min, false);
        }
        assert_eq!(min, PACER_IDLE_NS);
        assert_eq!(pacer_backoff_ns(min, true), PACER_BATCH_NS);
        // However late a slot is claimed, its intended time is seq x interval.
        let mut cfg = RunConfig::new("http://127.0.0.1:9").unwrap();
        cfg.rate = Some(100_000.0);
        let sh = Shared::new(cfg, "127.0.0.1:9".parse().unwrap(), "t".into());
        for k in 0..1000u64 {
            let c = sh.claim().unwrap();
            assert_eq!(c.seq, k);
            assert_eq!(
                c.intended.unwrap(),
                sh.t_start + Duration::from_nanos(k * 10_000)
            );
        }
    }

    #[test]
    fn unanswered_requests_at_the_end_are_censored_not_dropped() {
        // 1000 req/s for 5 s; answered after 1 ms until 2 s, then the server freezes; the
        // client sends on schedule (the requests stay in flight) until 3 s, then its
        // connections are all busy and nothing more is sent.
        let mut cfg = RunConfig::new("http://127.0.0.1:9").unwrap();
        cfg.rate = Some(1000.0);
        cfg.warmup_s = 0.0;
        cfg.duration_s = Some(5.0);
        let sh = Shared::new(cfg, "127.0.0.1:9".parse().unwrap(), "t".into());
        let t0 = sh.t_start;
        sh.end_ns.store(5_000_000_000, Relaxed);
        for _ in 0..3000u64 {
            let c = sh.claim().unwrap();
            let sent = c.intended.unwrap();
            sh.on_sent(sent, 1);
            if sent < t0 + Duration::from_secs(2) {
                let f = InFlight {
                    seq: c.seq,
                    intended: c.intended,
                    start: sent,
                };
                sh.on_response(
                    &f,
                    sent + Duration::from_millis(1),
                    Some(200),
                    Outcome::Ok { acked: false },
                );
            }
        }
        // 1000 sent and unanswered (2 s..3 s) + 2000 due and never sent (3 s..5 s).
        assert_eq!(sh.censor_at_end(), 3000);
        let recs = sh.registry.drain();
        let mut lat = new_hist();
        for r in &recs {
            stats::merge(&mut lat, &r.latency);
        }
        let l = HistSummary::of(&lat);
        assert_eq!(l.count, 5000);
        assert_eq!(recs.iter().map(|r| r.censored).sum::<u64>(), 3000);
        // The oldest censored request waited from 2 s to the end.
        assert!((l.max_us - 3_000_000.0).abs() < 5_000.0, "{l:?}");
        assert!(l.p50_us > 500_000.0, "{l:?}");
        // An aborted request is resolved (an error), not censored.
        let mut cfg = RunConfig::new("http://127.0.0.1:9").unwrap();
        cfg.rate = Some(1000.0);
        cfg.warmup_s = 0.0;
        cfg.duration_s = Some(1.0);
        let sh = Shared::new(cfg, "127.0.0.1:9".parse().unwrap(), "t".into());
        sh.end_ns.store(1_000_000_000, Relaxed);
        let seqs: Vec<u64> = (0..1000).map(|_| sh.claim().unwrap().seq).collect();
        sh.on_aborted(sh.t_start, &seqs, ErrorKey::timeout());
        assert_eq!(sh.censor_at_end(), 0);
    }

    #[test]
    fn closed_loop_latency_is_from_the_actual_send() {
        let (lat, unc, _) = simulate(None);
        assert_eq!(lat.p99_us, unc.p99_us);
        assert!(lat.p99_us < 200.0);
    }

    #[test]
    fn threads_get_their_own_recorders() {
        let cfg = RunConfig::new("http://127.0.0.1:9").unwrap();
        let sh = Arc::new(Shared::new(cfg, "127.0.0.1:9".parse().unwrap(), "t".into()));
        let now = sh.t_start + Duration::from_secs(2);
        let hs: Vec<_> = (0..3)
            .map(|_| {
                let sh = sh.clone();
                std::thread::spawn(move || {
                    for _ in 0..10 {
                        sh.on_sent(now, 1);
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        sh.on_sent(now, 1);
        let recs = sh.registry.drain();
        assert_eq!(recs.len(), 4);
        let mut tl = Timeline::default();
        for r in &recs {
            tl.merge(&r.timeline);
        }
        assert_eq!(tl.buckets.iter().map(|b| b.sent).sum::<u64>(), 31);
    }

    #[test]
    fn http_requests_carry_the_id_padded_to_the_size_with_a_matching_length() {
        fn body_of(req: &[u8]) -> Vec<u8> {
            let mut headers = [httparse::EMPTY_HEADER; 8];
            let mut r = httparse::Request::new(&mut headers);
            let head = match r.parse(req).unwrap() {
                httparse::Status::Complete(n) => n,
                httparse::Status::Partial => panic!("partial head"),
            };
            assert_eq!(r.method, Some("POST"));
            let len: usize = r
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
                .unwrap();
            assert_eq!(req.len() - head, len, "Content-Length matches the body");
            req[head..].to_vec()
        }
        let shard = Some(crate::engine::config::Shard { index: 2, count: 3 });
        for (min, max, shard) in [
            (100, 100, None),
            (3, 3, None),
            (10, 400, None),
            (100, 100, shard),
        ] {
            let mut cfg = RunConfig::new("http://127.0.0.1:9").unwrap();
            cfg.payload = PayloadSize { min, max };
            cfg.shard = shard;
            let sh = Shared::new(cfg, "127.0.0.1:9".parse().unwrap(), "run7".into());
            for seq in [0u64, 9, 12_345_678_901] {
                // The request's body is exactly the record value `payload_into` makes.
                let mut req = Vec::new();
                sh.http_request_into(seq, &mut fastrand::Rng::with_seed(seq), &mut req);
                let mut value = Vec::new();
                sh.payload_into(seq, &mut fastrand::Rng::with_seed(seq), &mut value);
                let body = body_of(&req);
                assert_eq!(body, value);
                let id = sh.id(seq);
                assert!(body.starts_with(id.as_bytes()));
                assert!(body.len() == id.len() || (body.len() >= min && body.len() <= max));
                assert!(body[id.len()..].iter().all(|&b| b == b'.'));
            }
        }
        let mut cfg = RunConfig::new("http://127.0.0.1:9").unwrap();
        cfg.body = Some(Arc::new(b"{\"fixed\":true}".to_vec()));
        let sh = Shared::new(cfg, "127.0.0.1:9".parse().unwrap(), "run7".into());
        let mut req = Vec::new();
        sh.http_request_into(5, &mut fastrand::Rng::with_seed(1), &mut req);
        assert_eq!(body_of(&req), b"{\"fixed\":true}");
    }
}
