//! Wall-clock time as the lab writes it: Unix seconds and milliseconds, UTC dates and
//! times, and the dated output directories (`results/<date>-<what>`).
//!
//! Depends on nothing else in the crate.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch.
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Milliseconds since the Unix epoch.
pub fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `YYYY-MM-DD` and `HH:MM:SS` (UTC) of a Unix time.
pub fn utc_date_time(unix_s: u64) -> (String, String) {
    let secs = unix_s % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = (unix_s / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        format!("{y:04}-{m:02}-{d:02}"),
        format!(
            "{:02}:{:02}:{:02}",
            secs / 3600,
            (secs / 60) % 60,
            secs % 60
        ),
    )
}

/// `YYYY-MM-DD` (UTC) of a unix time, for result directory names.
pub fn utc_date(unix_s: u64) -> String {
    utc_date_time(unix_s).0
}

/// `results/<today>-<what>`.
pub fn default_out_dir(what: &str) -> PathBuf {
    PathBuf::from("results").join(format!("{}-{what}", utc_date(now_unix())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(951_782_400), "2000-02-29");
        assert_eq!(utc_date(1_767_225_599), "2025-12-31");
        assert_eq!(utc_date_time(0), ("1970-01-01".into(), "00:00:00".into()));
    }
}
