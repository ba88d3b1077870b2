//! The state one run's connection tasks share ([`Shared`]): its scenario, the claims on
//! sequence numbers, and the parts each with a file of its own — the open-loop schedule
//! ([`Pacer`]), connect pacing ([`ConnectPacer`]), request encoding ([`RequestEncoder`])
//! and recording ([`Recording`]).
//!
//! Part of the [load engine](crate::engine::load).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use crate::engine::config::RunConfig;
use crate::engine::load::connect_pacer::ConnectPacer;
use crate::engine::load::pacer::Pacer;
use crate::engine::load::recorder::{InFlight, Outcome, Recording};
use crate::engine::load::request::RequestEncoder;
use crate::engine::load::tls::Tls;

/// A claimed request slot.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Claim {
    pub seq: u64,
    pub intended: Option<Instant>,
}

pub(crate) struct Shared {
    pub cfg: RunConfig,
    pub addr: SocketAddr,
    seq: AtomicU64,
    /// Requests with a sequence number from here on are not sent (u64::MAX: no limit yet;
    /// with `--requests` it is set by the first claim after warmup).
    pub limit: AtomicU64,
    /// Set when the run is over (stops the pacer and the server probe).
    pub stop: AtomicBool,
    /// Source-port / source-address round robin of new connections.
    pub bind_cursor: AtomicU32,
    pub pacer: Pacer,
    pub connects: ConnectPacer,
    pub encoder: RequestEncoder,
    pub rec: Recording,
    /// `https://` and `wss://`: the run's TLS client (set by the runner); `None`: plaintext.
    pub tls: Option<Tls>,
}

impl Shared {
    pub(crate) fn new(cfg: RunConfig, addr: SocketAddr, run_id: String) -> Self {
        let t_start = Instant::now();
        Shared {
            seq: AtomicU64::new(0),
            limit: AtomicU64::new(u64::MAX),
            stop: AtomicBool::new(false),
            bind_cursor: AtomicU32::new(0),
            pacer: Pacer::new(cfg.rate, t_start),
            connects: ConnectPacer::new(cfg.connect_rate, t_start),
            encoder: RequestEncoder::new(&cfg, run_id),
            rec: Recording::new(&cfg, t_start),
            tls: None,
            addr,
            cfg,
        }
    }

    pub(crate) fn ns(&self, t: Instant) -> u64 {
        self.rec.ns(t)
    }

    pub(crate) fn open_loop(&self) -> bool {
        self.pacer.open_loop()
    }

    pub(crate) fn claimed(&self) -> u64 {
        self.seq.load(Relaxed)
    }

    /// Wait for the next send slot (open loop), claim it and account for the client's own
    /// lateness. `free_at` is when the connection became able to send: waiting for the
    /// server is not schedule lag, waking up late is. `None` when `--requests` is used up.
    pub(crate) async fn next_send(&self, free_at: Instant) -> Option<Claim> {
        self.pacer.permit().await?;
        let c = self.claim()?;
        if let Some(t) = c.intended {
            if t > Instant::now() {
                // Only when slots were claimed out of permit order: rare, and short.
                tokio::time::sleep_until(t.into()).await;
            }
            let now = Instant::now();
            self.rec
                .on_schedule_lag(now, now.saturating_duration_since(t.max(free_at)));
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
                && self.ns(Instant::now()) >= self.rec.measure_start_ns
            {
                let _ = self
                    .limit
                    .compare_exchange(u64::MAX, seq + n, Relaxed, Relaxed);
            }
        }
        if seq >= self.limit.load(Relaxed) {
            return None;
        }
        let intended = self.pacer.intended(seq);
        Some(Claim { seq, intended })
    }

    /// A response arrived for `f`: it releases the send permits due by now (open loop),
    /// then is recorded.
    pub(crate) fn on_response(
        &self,
        f: &InFlight,
        now: Instant,
        status: Option<u16>,
        out: Outcome,
    ) {
        self.pacer.pump(now);
        self.rec.on_response(f, now, status, out);
    }

    /// Open loop, once the run is over: the requests due and unresolved at the end are
    /// censored (see [`Recording::censor_at_end`]). Returns how many.
    pub(crate) fn censor_at_end(&self) -> u64 {
        let Some(iv) = self.pacer.interval_ns() else {
            return 0;
        };
        let limit = self.cfg.requests.map(|_| self.limit.load(Relaxed));
        self.rec.censor_at_end(iv, limit)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::engine::analysis::errors::ErrorKey;
    use crate::engine::analysis::stats::{self, new_hist, HistSummary};
    use crate::engine::load::recorder::Recorder;

    /// One open-loop connection, pipeline 1, 1000 req/s for 5 s, each answered 100 us after
    /// it is sent, except that the server is frozen from 2 s to 4 s. Simulated time: no
    /// sockets, no sleeping.
    fn simulate(rate: Option<f64>) -> (HistSummary, HistSummary, Vec<Recorder>) {
        let mut cfg = RunConfig::new("http://127.0.0.1:9").unwrap();
        cfg.rate = rate;
        cfg.warmup_s = 0.0;
        let sh = Shared::new(cfg, "127.0.0.1:9".parse().unwrap(), "test".into());
        let t0 = sh.rec.t_start;
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
            sh.rec.on_sent(send, 1);
            sh.on_response(&f, done, Some(200), Outcome::Ok { acked: false });
            free = done;
        }
        let recs = sh.rec.registry.drain();
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
    fn open_loop_slots_keep_their_intended_times() {
        // However late a slot is claimed, its intended time is seq x interval.
        let mut cfg = RunConfig::new("http://127.0.0.1:9").unwrap();
        cfg.rate = Some(100_000.0);
        let sh = Shared::new(cfg, "127.0.0.1:9".parse().unwrap(), "t".into());
        for k in 0..1000u64 {
            let c = sh.claim().unwrap();
            assert_eq!(c.seq, k);
            assert_eq!(
                c.intended.unwrap(),
                sh.rec.t_start + Duration::from_nanos(k * 10_000)
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
        let t0 = sh.rec.t_start;
        sh.rec.end_ns.store(5_000_000_000, Relaxed);
        for _ in 0..3000u64 {
            let c = sh.claim().unwrap();
            let sent = c.intended.unwrap();
            sh.rec.on_sent(sent, 1);
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
        let recs = sh.rec.registry.drain();
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
        sh.rec.end_ns.store(1_000_000_000, Relaxed);
        let seqs: Vec<u64> = (0..1000).map(|_| sh.claim().unwrap().seq).collect();
        sh.rec
            .on_aborted(sh.rec.t_start, &seqs, ErrorKey::timeout());
        assert_eq!(sh.censor_at_end(), 0);
    }

    #[test]
    fn closed_loop_latency_is_from_the_actual_send() {
        let (lat, unc, _) = simulate(None);
        assert_eq!(lat.p99_us, unc.p99_us);
        assert!(lat.p99_us < 200.0);
    }
}
