//! The run's timeline and the stall detector.
//!
//! Every event is counted in a fine bucket (10 ms) of a [`Timeline`], one per client
//! thread, merged by the runner. A bucket also keeps the exact time of its first and last
//! response, so a stall can be measured from the last completion before it to the first
//! completion after it, with nanosecond rather than window resolution. The per-second
//! series of a result is the fine timeline summed per second, and [`detect_stalls`] works
//! on the merged timeline only: it is a pure function, tested on synthetic timelines.
//!
//! Entry point: [`detect_stalls`]. Part of the [engine](crate::engine): must not depend on
//! anything outside it.

use serde::{Deserialize, Serialize};

use crate::engine::analysis::errors::ConnectClass;

/// Width of a fine bucket.
pub const BUCKET_NS: u64 = 10_000_000;
const NONE: u64 = u64::MAX;

/// Counters of one fine bucket. Times are nanoseconds since the run started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// Requests (HTTP) or messages (WebSocket) written.
    pub sent: u64,
    /// Responses of any kind (success, backpressure, error status): the server made progress.
    pub responses: u64,
    pub ok: u64,
    pub backpressure: u64,
    /// Responses with an error status.
    pub http_errors: u64,
    /// Sent requests that ended without a response (reset, EOF, timeout, write error).
    pub aborted: u64,
    /// A connection task started wanting a connection (it has none and will retry until it
    /// gets one); `connecting_end` when it got one (or the run ended).
    pub connecting_start: u64,
    pub connecting_end: u64,
    /// Individual connect attempts and their outcome.
    pub connect_attempts: u64,
    pub connect_ok: u64,
    pub connect_failed: u64,
    pub refused: u64,
    pub connect_timeouts: u64,
    pub exhaustion: u64,
    /// Established connections that closed.
    pub closed: u64,
    /// Established connections without any answer from the server yet: +1 when
    /// established, -1 at the first answer (or when closed unanswered).
    pub unanswered_start: u64,
    pub unanswered_end: u64,
    pub first_response_ns: u64,
    pub last_response_ns: u64,
    /// First send or connect start in the bucket (used when a stall starts after idleness).
    pub first_activity_ns: u64,
    /// Worst client schedule lag seen in the bucket (open-loop send lateness or the runtime
    /// probe's timer lateness).
    pub max_lag_ns: u64,
    /// Process CPU time consumed in the bucket.
    pub cpu_ns: u64,
    /// Samples of the target's accept queue taken in the bucket (only when the target
    /// listens on this host), and the longest queue they saw.
    pub queue_samples: u64,
    pub accept_queue_max: u64,
}

impl Default for Bucket {
    fn default() -> Self {
        Bucket {
            sent: 0,
            responses: 0,
            ok: 0,
            backpressure: 0,
            http_errors: 0,
            aborted: 0,
            connecting_start: 0,
            connecting_end: 0,
            connect_attempts: 0,
            connect_ok: 0,
            connect_failed: 0,
            refused: 0,
            connect_timeouts: 0,
            exhaustion: 0,
            closed: 0,
            unanswered_start: 0,
            unanswered_end: 0,
            first_response_ns: NONE,
            last_response_ns: 0,
            first_activity_ns: NONE,
            max_lag_ns: 0,
            cpu_ns: 0,
            queue_samples: 0,
            accept_queue_max: 0,
        }
    }
}

impl Bucket {
    fn merge(&mut self, o: &Bucket) {
        self.sent += o.sent;
        self.responses += o.responses;
        self.ok += o.ok;
        self.backpressure += o.backpressure;
        self.http_errors += o.http_errors;
        self.aborted += o.aborted;
        self.connecting_start += o.connecting_start;
        self.connecting_end += o.connecting_end;
        self.connect_attempts += o.connect_attempts;
        self.connect_ok += o.connect_ok;
        self.connect_failed += o.connect_failed;
        self.refused += o.refused;
        self.connect_timeouts += o.connect_timeouts;
        self.exhaustion += o.exhaustion;
        self.closed += o.closed;
        self.unanswered_start += o.unanswered_start;
        self.unanswered_end += o.unanswered_end;
        self.first_response_ns = self.first_response_ns.min(o.first_response_ns);
        self.last_response_ns = self.last_response_ns.max(o.last_response_ns);
        self.first_activity_ns = self.first_activity_ns.min(o.first_activity_ns);
        self.max_lag_ns = self.max_lag_ns.max(o.max_lag_ns);
        self.cpu_ns += o.cpu_ns;
        self.queue_samples += o.queue_samples;
        self.accept_queue_max = self.accept_queue_max.max(o.accept_queue_max);
    }

    /// Errors as counted in the per-second series: failed requests plus failed connects.
    pub fn errors(&self) -> u64 {
        self.http_errors + self.aborted + self.connect_failed
    }
}

/// Fine-grained event counts over a run.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    pub buckets: Vec<Bucket>,
}

impl Timeline {
    /// The bucket holding time `ns` (grown on demand).
    pub fn at(&mut self, ns: u64) -> &mut Bucket {
        let i = (ns / BUCKET_NS) as usize;
        if i >= self.buckets.len() {
            self.buckets.resize(i + 1, Bucket::default());
        }
        &mut self.buckets[i]
    }

    pub fn merge(&mut self, o: &Timeline) {
        if o.buckets.len() > self.buckets.len() {
            self.buckets.resize(o.buckets.len(), Bucket::default());
        }
        for (a, b) in self.buckets.iter_mut().zip(&o.buckets) {
            a.merge(b);
        }
    }

    pub fn response(&mut self, ns: u64) -> &mut Bucket {
        let b = self.at(ns);
        b.responses += 1;
        b.first_response_ns = b.first_response_ns.min(ns);
        b.last_response_ns = b.last_response_ns.max(ns);
        b
    }

    pub fn activity(&mut self, ns: u64) -> &mut Bucket {
        let b = self.at(ns);
        b.first_activity_ns = b.first_activity_ns.min(ns);
        b
    }

    pub fn lag(&mut self, ns: u64, lag_ns: u64) {
        let b = self.at(ns);
        b.max_lag_ns = b.max_lag_ns.max(lag_ns);
    }

    /// Per-second series over `[from_ns, to_ns)`; second 0 starts at `from_ns`. Gauges
    /// (open connections) are cumulative from the start of the run.
    pub fn per_second(&self, from_ns: u64, to_ns: u64, threads: usize) -> Vec<SecondStats> {
        let mut out = Vec::new();
        if to_ns <= from_ns {
            return out;
        }
        let secs = (to_ns - from_ns).div_ceil(1_000_000_000);
        let mut open: i64 = 0;
        let mut i = 0usize;
        let empty = Bucket::default();
        for s in 0..secs {
            let lo = from_ns + s * 1_000_000_000;
            let hi = (lo + 1_000_000_000).min(to_ns);
            let mut row = SecondStats::empty(s);
            let mut cpu = 0u64;
            // Buckets before `lo` only feed the gauge.
            while (i as u64) * BUCKET_NS < hi {
                let b = self.buckets.get(i).unwrap_or(&empty);
                open += b.connect_ok as i64 - b.closed as i64;
                if (i as u64) * BUCKET_NS >= lo {
                    row.sent += b.sent;
                    row.completed += b.responses;
                    row.ok += b.ok;
                    row.errors += b.errors();
                    row.backpressure += b.backpressure;
                    row.connects += b.connect_ok;
                    row.connect_errors += b.connect_failed;
                    cpu += b.cpu_ns;
                }
                i += 1;
            }
            row.open_connections = open.max(0) as u64;
            let wall = (hi - lo) as f64 * threads.max(1) as f64;
            row.cpu_util = cpu as f64 / wall;
            out.push(row);
        }
        out
    }
}

/// One second of the run (after warmup). Zero seconds are present, not skipped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecondStats {
    /// Seconds since the end of warmup.
    pub second: u64,
    pub sent: u64,
    /// Responses of any kind.
    pub completed: u64,
    pub ok: u64,
    /// Failed requests (transport errors, timeouts, error statuses) plus failed connects.
    pub errors: u64,
    pub backpressure: u64,
    /// Successful connects.
    pub connects: u64,
    pub connect_errors: u64,
    /// Established connections at the end of the second.
    pub open_connections: u64,
    /// Client process CPU time / (wall time x client threads).
    pub cpu_util: f64,
}

impl SecondStats {
    /// Second `second` with nothing in it (explicit zeros are part of the series).
    pub fn empty(second: u64) -> SecondStats {
        SecondStats {
            second,
            sent: 0,
            completed: 0,
            ok: 0,
            errors: 0,
            backpressure: 0,
            connects: 0,
            connect_errors: 0,
            open_connections: 0,
            cpu_util: 0.0,
        }
    }
}

/// One connection task's wait for a connection, kept when it lasted at least a stall
/// window (short ones are only counted in the timeline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectSpan {
    pub start_ns: u64,
    pub end_ns: u64,
    /// How the last attempt ended, `None` if it succeeded or the run ended first.
    pub last_failure: Option<ConnectClass>,
}

/// What a stall was caused by, as far as the client can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StallClass {
    /// Connects pending or timing out: the server is not accepting.
    Accept,
    /// Connected, requests outstanding, no responses.
    Service,
    /// Connects refused (ECONNREFUSED).
    Refused,
    /// The client ran out of source ports or file descriptors.
    ClientExhaustion,
    /// The client itself could not keep up (schedule lag or CPU).
    ClientSaturation,
}

impl std::fmt::Display for StallClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StallClass::Accept => "accept",
            StallClass::Service => "service",
            StallClass::Refused => "refused",
            StallClass::ClientExhaustion => "client-exhaustion",
            StallClass::ClientSaturation => "client-saturation",
        })
    }
}

/// A stall: an interval of at least one stall window without progress while the client
/// was waiting for the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stall {
    /// Start, in ms since the end of warmup.
    pub start_ms: f64,
    pub length_ms: f64,
    pub class: StallClass,
    /// Most requests outstanding at any point of the stall.
    pub outstanding: u64,
    /// Most connection tasks waiting for a connection at any point of the stall.
    pub pending_connects: u64,
    pub connect_refused: u64,
    pub connect_timeouts: u64,
    pub connect_exhaustion: u64,
    /// Worst client schedule lag during the stall.
    pub max_client_lag_ms: f64,
    /// Client CPU during the stall, as a fraction of its threads.
    pub client_cpu_util: f64,
    /// The stall had not ended when the run did (its length is a lower bound).
    pub ongoing_at_end: bool,
    /// Longest accept queue of the target's listeners sampled during the stall; `None`
    /// when the target does not listen on this host (or was not sampled).
    #[serde(default)]
    pub server_accept_queue: Option<u64>,
    /// Merged results: the shard (`I/N`) whose client saw this stall.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
}

/// Inputs of the detector besides the timeline.
#[derive(Debug, Clone, Copy)]
pub struct StallParams {
    pub window_ns: u64,
    /// Warmup end: stalls are clipped to start here.
    pub measure_start_ns: u64,
    pub end_ns: u64,
    /// Client worker threads (for the CPU fraction).
    pub threads: usize,
}

/// Find and classify stalls.
///
/// Two sources of intervals, unioned:
/// * no response while the client waits (requests outstanding or connects pending) for at
///   least a window; bounded exactly by the last response before and the first after;
/// * a connection task waiting for a connection for at least a window (even while other
///   connections make progress).
///
/// Overlapping or touching intervals become one stall.
pub fn detect_stalls(tl: &Timeline, spans: &[ConnectSpan], p: &StallParams) -> Vec<Stall> {
    let mut raw: Vec<(u64, u64, bool)> = Vec::new();
    let push = |raw: &mut Vec<(u64, u64, bool)>, s: u64, e: u64, ongoing: bool| {
        if e > s && e - s >= p.window_ns {
            raw.push((s, e, ongoing));
        }
    };

    let mut outstanding: i64 = 0;
    let mut pending: i64 = 0;
    let mut cand: Option<u64> = None;
    for (i, b) in tl.buckets.iter().enumerate() {
        let bstart = i as u64 * BUCKET_NS;
        if bstart >= p.end_ns {
            break;
        }
        outstanding += b.sent as i64 - b.responses as i64 - b.aborted as i64;
        pending += b.connecting_start as i64 - b.connecting_end as i64;
        let busy = outstanding > 0 || pending > 0 || b.sent > 0 || b.connect_attempts > 0;
        if b.responses > 0 {
            if let Some(s) = cand.take() {
                push(&mut raw, s, b.first_response_ns, false);
            }
            if busy {
                cand = Some(b.last_response_ns);
            }
        } else if busy {
            if cand.is_none() {
                let s = if b.first_activity_ns != NONE {
                    b.first_activity_ns
                } else {
                    bstart
                };
                cand = Some(s);
            }
        } else if let Some(s) = cand.take() {
            push(&mut raw, s, bstart, false);
        }
    }
    if let Some(s) = cand {
        // Past the last bucket nothing happened: still waiting only if something was
        // outstanding or pending when the timeline ends.
        let tl_end = tl.buckets.len() as u64 * BUCKET_NS;
        if outstanding > 0 || pending > 0 || tl_end >= p.end_ns {
            push(&mut raw, s, p.end_ns, true);
        } else {
            push(&mut raw, s, tl_end, false);
        }
    }
    for sp in spans {
        let end = sp.end_ns.min(p.end_ns);
        push(&mut raw, sp.start_ns, end, sp.end_ns >= p.end_ns);
    }

    raw.sort_by_key(|r| r.0);
    let mut merged: Vec<(u64, u64, bool)> = Vec::new();
    for (s, e, o) in raw {
        match merged.last_mut() {
            Some(last) if s <= last.1 + BUCKET_NS => {
                if e >= last.1 {
                    last.1 = e;
                    last.2 = o;
                }
            }
            _ => merged.push((s, e, o)),
        }
    }

    let mut out = Vec::new();
    for (s, e, ongoing) in merged {
        let s = s.max(p.measure_start_ns);
        if e <= s || e - s < p.window_ns {
            continue;
        }
        out.push(describe(tl, p, s, e, ongoing));
    }
    out
}

fn describe(tl: &Timeline, p: &StallParams, s: u64, e: u64, ongoing: bool) -> Stall {
    let mut outstanding: i64 = 0;
    let mut pending: i64 = 0;
    let mut max_out = 0i64;
    let mut max_pend = 0i64;
    let mut unanswered: i64 = 0;
    let mut max_unanswered = 0i64;
    let mut responses = 0u64;
    let (mut refused, mut timeouts, mut exhaustion) = (0, 0, 0);
    let mut lag = 0u64;
    let mut cpu = 0u64;
    let (mut queue_samples, mut queue_max) = (0u64, 0u64);
    let first = (s / BUCKET_NS) as usize;
    let last = ((e.saturating_sub(1)) / BUCKET_NS) as usize;
    for (i, b) in tl.buckets.iter().enumerate() {
        if i > last {
            break;
        }
        let before = outstanding;
        let before_pend = pending;
        outstanding += b.sent as i64 - b.responses as i64 - b.aborted as i64;
        pending += b.connecting_start as i64 - b.connecting_end as i64;
        let before_unanswered = unanswered;
        unanswered += b.unanswered_start as i64 - b.unanswered_end as i64;
        if i >= first {
            max_unanswered = max_unanswered.max(unanswered).max(before_unanswered);
            // Responses strictly inside the stall (its edge buckets hold the responses that
            // bound it): the server was answering someone meanwhile.
            if i > first && i < last {
                responses += b.responses;
            }
            // The gauge at the bucket's start counts too: a stall that begins right after
            // the last response of a bucket has the outstanding of that moment.
            max_out = max_out.max(outstanding).max(before);
            max_pend = max_pend.max(pending).max(before_pend);
            refused += b.refused;
            timeouts += b.connect_timeouts;
            exhaustion += b.exhaustion;
            lag = lag.max(b.max_lag_ns);
            cpu += b.cpu_ns;
            queue_samples += b.queue_samples;
            queue_max = queue_max.max(b.accept_queue_max);
        }
    }
    let len = e - s;
    let span = ((last + 1 - first) as u64 * BUCKET_NS) as f64;
    let cpu_util = cpu as f64 / (span * p.threads.max(1) as f64);
    let server_accept_queue = (queue_samples > 0).then_some(queue_max);
    // A connection left unanswered while the server answered others was either never
    // accepted or accepted and then never served (its task stuck behind a blocked thread).
    // From the client alone the two look alike; where the target's listener is visible
    // its accept queue tells them apart: empty all along means the process took the
    // connection. Either way a busy client CPU does not explain it: the client kept
    // serving the others.
    let unanswered_while_served = max_unanswered > 0 && responses > 0;
    let never_accepted = unanswered_while_served && server_accept_queue != Some(0);
    let class = if exhaustion > 0 {
        StallClass::ClientExhaustion
    } else if refused > 0 {
        StallClass::Refused
    } else if lag >= p.window_ns / 2 {
        // The client itself could not run on time: nothing it saw can be trusted.
        StallClass::ClientSaturation
    } else if max_pend > 0 || timeouts > 0 || never_accepted {
        // Connects pending, or connections left unanswered while the server answered
        // others and (where visible) sat in its accept queue: the kernel completed those
        // handshakes, the process never took them.
        StallClass::Accept
    } else if unanswered_while_served {
        // Accepted (the accept queue stayed empty), then never served.
        StallClass::Service
    } else if cpu_util >= 0.9 {
        StallClass::ClientSaturation
    } else {
        StallClass::Service
    };
    Stall {
        start_ms: (s - p.measure_start_ns) as f64 / 1e6,
        length_ms: len as f64 / 1e6,
        class,
        outstanding: max_out.max(0) as u64,
        pending_connects: max_pend.max(0) as u64,
        connect_refused: refused,
        connect_timeouts: timeouts,
        connect_exhaustion: exhaustion,
        max_client_lag_ms: lag as f64 / 1e6,
        client_cpu_util: cpu_util,
        ongoing_at_end: ongoing,
        server_accept_queue,
        shard: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn params(end_ms: u64) -> StallParams {
        StallParams {
            window_ns: 500 * MS,
            measure_start_ns: 0,
            end_ns: end_ms * MS,
            threads: 2,
        }
    }

    /// A closed-loop client with `conns` connections, each answered `rtt_ms` after it
    /// sent, except while the server is frozen in `[freeze_from, freeze_to)`.
    fn closed_loop(tl: &mut Timeline, conns: u64, end_ms: u64, freeze: Option<(u64, u64)>) {
        for c in 0..conns {
            let mut t = c * 100_000; // stagger
            tl.activity(t).sent += 1;
            loop {
                let mut done = t + MS;
                if let Some((f, to)) = freeze {
                    if done >= f * MS && done < to * MS {
                        done = to * MS + c * 1000;
                    }
                }
                if done >= end_ms * MS {
                    break;
                }
                tl.response(done).ok += 1;
                tl.activity(done).sent += 1;
                t = done;
            }
        }
    }

    #[test]
    fn clean_run_has_no_stall() {
        let mut tl = Timeline::default();
        closed_loop(&mut tl, 4, 5000, None);
        assert!(detect_stalls(&tl, &[], &params(5000)).is_empty());
    }

    #[test]
    fn freeze_is_one_service_stall_measured_exactly() {
        let mut tl = Timeline::default();
        closed_loop(&mut tl, 4, 5000, Some((2000, 4000)));
        let stalls = detect_stalls(&tl, &[], &params(5000));
        assert_eq!(stalls.len(), 1, "{stalls:?}");
        let s = &stalls[0];
        assert_eq!(s.class, StallClass::Service);
        // Last completion before the freeze is at ~1999.x ms, first after at 4000 ms:
        // far better than the 500 ms window (and the 10 ms bucket).
        assert!((s.length_ms - 2000.0).abs() < 2.0, "{}", s.length_ms);
        assert!((s.start_ms - 2000.0).abs() < 2.0, "{}", s.start_ms);
        assert_eq!(s.outstanding, 4);
        assert!(!s.ongoing_at_end);
    }

    #[test]
    fn short_pause_is_not_a_stall() {
        let mut tl = Timeline::default();
        closed_loop(&mut tl, 2, 3000, Some((1000, 1400)));
        assert!(detect_stalls(&tl, &[], &params(3000)).is_empty());
    }

    #[test]
    fn idle_client_is_not_stalled() {
        // Open loop at 1 request/s: long gaps between responses, but nothing outstanding.
        let mut tl = Timeline::default();
        for s in 0..5u64 {
            tl.activity(s * 1000 * MS).sent += 1;
            tl.response(s * 1000 * MS + MS).ok += 1;
        }
        assert!(detect_stalls(&tl, &[], &params(5000)).is_empty());
    }

    #[test]
    fn stall_until_end_is_ongoing() {
        let mut tl = Timeline::default();
        closed_loop(&mut tl, 2, 3000, Some((2000, 10_000)));
        let stalls = detect_stalls(&tl, &[], &params(3000));
        assert_eq!(stalls.len(), 1);
        assert!(stalls[0].ongoing_at_end);
        assert!((stalls[0].length_ms - 1000.0).abs() < 2.0);
    }

    #[test]
    fn warmup_stall_is_clipped() {
        let mut tl = Timeline::default();
        closed_loop(&mut tl, 2, 5000, Some((500, 2000)));
        let mut p = params(5000);
        p.measure_start_ns = 1000 * MS;
        let stalls = detect_stalls(&tl, &[], &p);
        assert_eq!(stalls.len(), 1);
        assert!(stalls[0].start_ms.abs() < 1e-9);
        assert!((stalls[0].length_ms - 1000.0).abs() < 2.0);
        p.measure_start_ns = 1800 * MS; // only 200 ms left after warmup: below the window
        assert!(detect_stalls(&tl, &[], &p).is_empty());
    }

    /// Responses stop at 1 s; from then on a task keeps (re)trying to connect.
    fn connect_trouble(tl: &mut Timeline, fail: Option<ConnectClass>) {
        closed_loop(tl, 1, 1000, None);
        // the established connection died at 1000 ms with its request outstanding
        tl.at(1000 * MS).aborted += 1;
        tl.at(1000 * MS).closed += 1;
        tl.activity(1000 * MS).connecting_start += 1;
        let mut t = 1000 * MS;
        while t < 3000 * MS {
            let b = tl.activity(t);
            b.connect_attempts += 1;
            if let Some(c) = fail {
                b.connect_failed += 1;
                match c {
                    ConnectClass::Refused => b.refused += 1,
                    ConnectClass::Timeout => b.connect_timeouts += 1,
                    ConnectClass::Exhaustion => b.exhaustion += 1,
                    ConnectClass::Other => {}
                }
            }
            t += 50 * MS;
        }
    }

    #[test]
    fn classes() {
        let cases = [
            (Some(ConnectClass::Refused), StallClass::Refused),
            (Some(ConnectClass::Exhaustion), StallClass::ClientExhaustion),
            (Some(ConnectClass::Timeout), StallClass::Accept),
            (None, StallClass::Accept), // SYNs unanswered: attempts pending, no error yet
        ];
        for (fail, want) in cases {
            let mut tl = Timeline::default();
            connect_trouble(&mut tl, fail);
            let stalls = detect_stalls(&tl, &[], &params(3000));
            assert_eq!(stalls.len(), 1, "{fail:?}: {stalls:?}");
            assert_eq!(stalls[0].class, want, "{fail:?}");
            assert_eq!(stalls[0].pending_connects, 1);
            assert!(stalls[0].ongoing_at_end);
        }
    }

    #[test]
    fn client_saturation_from_lag() {
        let mut tl = Timeline::default();
        closed_loop(&mut tl, 2, 5000, Some((2000, 3000)));
        // The client's own timers fired 400 ms late during the gap.
        tl.lag(2500 * MS, 400 * MS);
        let stalls = detect_stalls(&tl, &[], &params(5000));
        assert_eq!(stalls.len(), 1);
        assert_eq!(stalls[0].class, StallClass::ClientSaturation);
    }

    #[test]
    fn client_saturation_from_cpu() {
        let mut tl = Timeline::default();
        closed_loop(&mut tl, 2, 5000, Some((2000, 3000)));
        for ms in (2000..3000).step_by(10) {
            tl.at(ms * MS).cpu_ns = 2 * 10 * MS; // both threads fully busy
        }
        let stalls = detect_stalls(&tl, &[], &params(5000));
        assert_eq!(stalls[0].class, StallClass::ClientSaturation);
        assert!(stalls[0].client_cpu_util > 0.95);
    }

    #[test]
    fn unanswered_connection_is_accept_stall_while_others_progress() {
        // 4 connections are served; a fifth was established at 1 s (the kernel completed the
        // handshake) but never answered until the run ends: the process never accepted it.
        let mut tl = Timeline::default();
        closed_loop(&mut tl, 4, 5000, None);
        tl.at(1000 * MS).unanswered_start += 1;
        tl.activity(1000 * MS).sent += 1;
        tl.at(5000 * MS).unanswered_end += 1;
        let spans = [ConnectSpan {
            start_ns: 1000 * MS,
            end_ns: 5000 * MS,
            last_failure: None,
        }];
        let stalls = detect_stalls(&tl, &spans, &params(5000));
        assert_eq!(stalls.len(), 1, "{stalls:?}");
        assert_eq!(stalls[0].class, StallClass::Accept);
        // The same frozen connection while NOBODY is answered is a service stall.
        let mut frozen = Timeline::default();
        closed_loop(&mut frozen, 4, 5000, Some((1000, 3000)));
        frozen.at(1000 * MS).unanswered_start += 1;
        frozen.at(1000 * MS).unanswered_end += 1;
        let stalls = detect_stalls(&frozen, &[], &params(5000));
        assert_eq!(stalls.len(), 1, "{stalls:?}");
        assert_eq!(stalls[0].class, StallClass::Service);
    }

    #[test]
    fn visible_accept_queue_tells_never_accepted_from_never_served() {
        // The fifth connection of the test above, with the target's listener sampled every
        // 50 ms: `queue` is what the samples saw.
        let run = |queue: u64| {
            let mut tl = Timeline::default();
            closed_loop(&mut tl, 4, 5000, None);
            tl.at(1000 * MS).unanswered_start += 1;
            tl.activity(1000 * MS).sent += 1;
            tl.at(5000 * MS).unanswered_end += 1;
            for ms in (0..5000).step_by(50) {
                let b = tl.at(ms * MS);
                b.queue_samples += 1;
                if ms >= 1000 {
                    b.accept_queue_max = queue;
                }
            }
            let spans = [ConnectSpan {
                start_ns: 1000 * MS,
                end_ns: 5000 * MS,
                last_failure: None,
            }];
            let stalls = detect_stalls(&tl, &spans, &params(5000));
            assert_eq!(stalls.len(), 1, "{stalls:?}");
            (stalls[0].class, stalls[0].server_accept_queue)
        };
        // It sat in the accept queue: the process never took it.
        assert_eq!(run(1), (StallClass::Accept, Some(1)));
        // The queue stayed empty: the process accepted it and then never served it.
        assert_eq!(run(0), (StallClass::Service, Some(0)));
    }

    #[test]
    fn slow_connect_is_accept_stall_while_others_progress() {
        let mut tl = Timeline::default();
        closed_loop(&mut tl, 4, 5000, None);
        tl.activity(1000 * MS).connecting_start += 1;
        tl.at(1900 * MS).connecting_end += 1;
        let spans = [ConnectSpan {
            start_ns: 1000 * MS,
            end_ns: 1900 * MS,
            last_failure: None,
        }];
        let stalls = detect_stalls(&tl, &spans, &params(5000));
        assert_eq!(stalls.len(), 1, "{stalls:?}");
        assert_eq!(stalls[0].class, StallClass::Accept);
        assert!((stalls[0].length_ms - 900.0).abs() < 1e-6);
        // Two overlapping slow connects are one stall.
        let spans2 = [
            spans[0].clone(),
            ConnectSpan {
                start_ns: 1500 * MS,
                end_ns: 2600 * MS,
                last_failure: None,
            },
        ];
        let stalls = detect_stalls(&tl, &spans2, &params(5000));
        assert_eq!(stalls.len(), 1);
        assert!((stalls[0].length_ms - 1600.0).abs() < 1e-6);
    }

    #[test]
    fn per_second_series_has_explicit_zeros() {
        let mut tl = Timeline::default();
        tl.at(100 * MS).connect_ok += 1;
        tl.response(500 * MS).ok += 1;
        tl.response(2500 * MS).ok += 1;
        let s = tl.per_second(0, 3000 * MS, 1);
        assert_eq!(s.len(), 3);
        assert_eq!(
            s.iter().map(|r| r.completed).collect::<Vec<_>>(),
            vec![1, 0, 1]
        );
        assert!(s.iter().all(|r| r.open_connections == 1));
        // From an offset: the gauge still counts the connect made before it.
        let s = tl.per_second(1000 * MS, 3000 * MS, 1);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].open_connections, 1);
        assert_eq!(s[1].completed, 1);
    }
}
