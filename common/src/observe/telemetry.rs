//! Logging: `tracing` to stderr as text or JSON lines ([`LogFormat`]), filtered by
//! `RUST_LOG` (default `info`), and the rate limiter that keeps librdkafka's repeated
//! errors to one line per event and window.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

/// How log lines are written to stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event (`... INFO common::process::sys: listening on ADDR`).
    #[default]
    Text,
    /// One JSON object per line, for log shippers: `timestamp`, `level`, `target`, the
    /// event's fields flattened (the text is `message`) and the connection's span.
    Json,
}

/// Text logs (the programs without a `--log-format`: kafka-mock, producer-bench).
pub fn init() {
    init_with(LogFormat::Text);
}

/// Installs the process's subscriber: stderr, `RUST_LOG` (default `info`), `format`.
pub fn init_with(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // On a failed write (stderr's reader gone: a closed pipe, a dead log collector)
        // tracing-subscriber would report it with `eprintln!`, which panics on the same
        // closed stderr and kills the thread that logged: the signal thread among them,
        // after which SIGTERM no longer shuts the process down. Lost log lines are the
        // lesser harm.
        .log_internal_errors(false);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        // `message` at the top level next to the other fields, as log shippers expect; no
        // colour codes inside JSON strings.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_ansi(false)
            .try_init(),
    };
}

/// How often one librdkafka message may be logged; repeats in between are counted and
/// reported with the next one that gets through.
pub const KAFKA_LOG_WINDOW: Duration = Duration::from_secs(30);

/// Deduplicates and rate-limits log messages by their text, ignoring what changes between
/// repeats of one event (librdkafka's `[thrd:...]: ` prefix and what it says in parentheses,
/// e.g. `(after 0ms in state CONNECT, 4 identical error(s) suppressed)`). librdkafka reports
/// one connection failure twice (as a log line and as an error event): both map to one
/// key, so each event is logged once.
pub struct LogLimiter {
    window: Duration,
    seen: HashMap<String, (Instant, u64)>,
}

/// Keys remembered at most; past it the oldest are forgotten (bounded memory).
const MAX_KEYS: usize = 256;

impl LogLimiter {
    pub fn new(window: Duration) -> LogLimiter {
        LogLimiter {
            window,
            seen: HashMap::new(),
        }
    }

    /// `Some(suppressed)` when `message` should be logged now (with the number of repeats
    /// swallowed since it was last logged), `None` to drop it.
    pub fn admit(&mut self, message: &str, now: Instant) -> Option<u64> {
        let key = Self::key(message);
        if let Some((last, suppressed)) = self.seen.get_mut(&key) {
            if now.duration_since(*last) < self.window {
                *suppressed += 1;
                return None;
            }
            let n = *suppressed;
            *last = now;
            *suppressed = 0;
            return Some(n);
        }
        if self.seen.len() >= MAX_KEYS {
            let window = self.window;
            self.seen
                .retain(|_, (t, _)| now.duration_since(*t) < window);
            if self.seen.len() >= MAX_KEYS {
                self.seen.clear();
            }
        }
        self.seen.insert(key, (now, 0));
        Some(0)
    }

    fn key(message: &str) -> String {
        let mut m = message.trim();
        if m.starts_with("[thrd:") {
            if let Some(i) = m.find("]: ") {
                m = &m[i + 3..];
            }
        }
        // What is in parentheses changes between repeats of one event: left out.
        let mut out = String::with_capacity(m.len());
        let mut depth = 0usize;
        for c in m.chars() {
            match c {
                '(' => {
                    if depth == 0 {
                        out.push_str("(..)");
                    }
                    depth += 1;
                }
                ')' if depth > 0 => depth -= 1,
                _ if depth == 0 => out.push(c),
                _ => {}
            }
        }
        out
    }
}

static KAFKA_LOG: LazyLock<Mutex<LogLimiter>> =
    LazyLock::new(|| Mutex::new(LogLimiter::new(KAFKA_LOG_WINDOW)));

/// The process-wide limiter for librdkafka's log and error callbacks.
pub fn admit_kafka_log(message: &str) -> Option<u64> {
    KAFKA_LOG
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .admit(message, Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_event_and_window() {
        let mut l = LogLimiter::new(Duration::from_secs(30));
        let t0 = Instant::now();
        let log = "[thrd:127.0.0.1:1/bootstrap]: 127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused (after 0ms in state CONNECT)";
        let err = "127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused (after 1ms in state CONNECT, 4 identical error(s) suppressed)";
        assert_eq!(l.admit(log, t0), Some(0));
        // The same event through the error callback, and its repeats: swallowed.
        assert_eq!(l.admit(err, t0), None);
        for i in 1..=30 {
            assert_eq!(l.admit(log, t0 + Duration::from_millis(i * 100)), None);
        }
        // A different event still gets through.
        assert_eq!(l.admit("1/1 brokers are down", t0), Some(0));
        // After the window: logged again, with the count of what was swallowed.
        assert_eq!(l.admit(err, t0 + Duration::from_secs(31)), Some(31));
        assert_eq!(l.admit(err, t0 + Duration::from_secs(32)), None);
    }

    #[test]
    fn bounded() {
        let mut l = LogLimiter::new(Duration::from_secs(30));
        let t0 = Instant::now();
        for i in 0..10 * MAX_KEYS {
            assert_eq!(l.admit(&format!("event {i}"), t0), Some(0));
        }
        assert!(l.seen.len() <= MAX_KEYS);
    }
}
