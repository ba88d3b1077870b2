//! The one duration grammar of every time flag in the workspace: the gateways' flags
//! (through `common::config`) and every bench-client flag. Literally one implementation,
//! in a crate with no dependencies so that bench-client can use it without depending on
//! the gateways' core.

use std::time::Duration;

/// Parse a duration: a bare number is seconds (`2`, `0.5`); otherwise one or more
/// `<number><unit>` parts, summed, with units `h`, `m` (or `min`), `s`, `ms`, `us`
/// (`1h30m`, `2s`, `250ms`, `1m30s`, `1.5s`). Spaces between parts and between a number
/// and its unit are allowed.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let text = s.trim();
    let bad = |why: &str| {
        format!("invalid duration `{text}`: {why} (examples: 250ms, 2s, 1h30m, bare 10 = seconds)")
    };
    if text.is_empty() {
        return Err(bad("empty"));
    }
    if let Ok(v) = text.parse::<f64>() {
        // Only plain decimals: `inf`, `nan` and `1e3` are not durations.
        if text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return secs_to_duration(v).ok_or_else(|| bad("out of range"));
        }
    }
    let mut rest = text;
    let mut total = 0.0f64;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if n == 0 {
            return Err(bad("expected a number"));
        }
        let value: f64 = rest[..n].parse().map_err(|_| bad("bad number"))?;
        rest = rest[n..].trim_start();
        let u = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let scale = match &rest[..u] {
            "h" => 3600.0,
            "m" | "min" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" => 1e-6,
            "" => return Err(bad("a number without a unit (use h, m, s, ms or us)")),
            _ => return Err(bad("unknown unit (use h, m, s, ms or us)")),
        };
        total += value * scale;
        rest = rest[u..].trim_start();
    }
    secs_to_duration(total).ok_or_else(|| bad("out of range"))
}

fn secs_to_duration(secs: f64) -> Option<Duration> {
    Duration::try_from_secs_f64(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let d = |s: &str| parse_duration(s).unwrap();
        assert_eq!(d("250ms"), Duration::from_millis(250));
        assert_eq!(d("10s"), Duration::from_secs(10));
        assert_eq!(d("2m"), Duration::from_secs(120));
        assert_eq!(d("2min"), Duration::from_secs(120));
        assert_eq!(d("3"), Duration::from_secs(3));
        assert_eq!(d("0.5"), Duration::from_millis(500));
        assert_eq!(d("1.5s"), Duration::from_millis(1500));
        assert_eq!(d("1h30m"), Duration::from_secs(5400));
        assert_eq!(d("1m30s"), Duration::from_secs(90));
        assert_eq!(d("1h 2m 3s 4ms"), Duration::from_millis(3_723_004));
        assert_eq!(d("10 s"), Duration::from_secs(10));
        assert_eq!(d(" 2s "), Duration::from_secs(2));
        assert_eq!(d("500us"), Duration::from_micros(500));
        assert_eq!(d("5h"), Duration::from_secs(18_000));
        assert_eq!(d("0"), Duration::ZERO);
        for bad in [
            "", "x", "s", "5d", "1h30", "-1s", "inf", "nan", "1e3", "1..2s", "2 s x",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    /// What bench-client's own, older parser accepted still parses.
    #[test]
    fn durations_accept_bench_client_grammar() {
        for s in [
            "500ms", "10s", "2m", "2min", "3h", "250us", "1.5", "7", "0.25s",
        ] {
            assert!(parse_duration(s).is_ok(), "{s}");
        }
    }
}
