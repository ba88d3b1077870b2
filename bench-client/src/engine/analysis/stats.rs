//! Latency histograms. Every figure is an HdrHistogram of nanoseconds (3 significant
//! digits, auto-resizing); threads keep their own and the runner merges them with
//! [`Histogram::add`]. Percentiles are only ever read from a merged histogram, never
//! averaged. A [`HistSummary`] carries the percentiles plus the whole histogram
//! (base64 of the V2-deflate encoding), so later tools can merge results again.
//!
//! Entry points: [`new_hist`], [`merge`], [`HistSummary`]. Part of the
//! [engine](crate::engine): must not depend on anything outside it.

use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The histogram type used everywhere: counts of nanosecond values.
pub type Hist = Histogram<u64>;

/// A fresh auto-resizing nanosecond histogram with 3 significant digits.
pub fn new_hist() -> Hist {
    // Sized for 10 s up front (no resizing on the hot path), growing past that if needed.
    let mut h = Histogram::new_with_bounds(1, 10_000_000_000, 3)
        .expect("static bounds and 3 significant digits are valid");
    h.auto(true);
    h
}

/// Record a duration in nanoseconds; 0 is recorded as 1 ns (the histogram's floor).
pub fn record_ns(h: &mut Hist, ns: u64) {
    // `record` (unlike `saturating_record`) grows an auto-resizing histogram instead of
    // clamping; growing a u64-indexed histogram cannot fail on a 64-bit target.
    let _ = h.record(ns.max(1));
}

/// Merge `src` into `dst` (auto-resizing, so this cannot fail on range).
pub fn merge(dst: &mut Hist, src: &Hist) {
    dst.add(src)
        .expect("auto-resizing histograms accept any value range");
}

/// Percentile summary of one histogram, in microseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistSummary {
    pub count: u64,
    pub min_us: f64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub p9999_us: f64,
    pub max_us: f64,
    /// The full histogram: base64 of HdrHistogram's V2 deflate encoding (the same as in
    /// a `.hlog` line), so results can be merged and re-quantiled later.
    pub hdr: String,
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

impl HistSummary {
    pub fn of(h: &Hist) -> Self {
        if h.is_empty() {
            return HistSummary {
                count: 0,
                min_us: 0.0,
                mean_us: 0.0,
                p50_us: 0.0,
                p90_us: 0.0,
                p99_us: 0.0,
                p999_us: 0.0,
                p9999_us: 0.0,
                max_us: 0.0,
                hdr: encode(h),
            };
        }
        HistSummary {
            count: h.len(),
            min_us: us(h.min()),
            mean_us: h.mean() / 1000.0,
            p50_us: us(h.value_at_quantile(0.50)),
            p90_us: us(h.value_at_quantile(0.90)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            p9999_us: us(h.value_at_quantile(0.9999)),
            max_us: us(h.max()),
            hdr: encode(h),
        }
    }

    /// The histogram this summary was made from.
    pub fn histogram(&self) -> anyhow::Result<Hist> {
        decode(&self.hdr)
    }
}

/// Base64 of the V2 deflate encoding.
pub fn encode(h: &Hist) -> String {
    base64::engine::general_purpose::STANDARD.encode(encode_bytes(h))
}

/// The V2 deflate encoding.
pub fn encode_bytes(h: &Hist) -> Vec<u8> {
    let mut buf = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut buf)
        .expect("serializing into a Vec cannot fail");
    buf
}

pub fn decode_bytes(bytes: &[u8]) -> anyhow::Result<Hist> {
    let mut h: Hist = Deserializer::new()
        .deserialize(&mut &bytes[..])
        .map_err(|e| anyhow::anyhow!("bad histogram encoding: {e:?}"))?;
    h.auto(true);
    Ok(h)
}

pub fn decode(b64: &str) -> anyhow::Result<Hist> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64)?;
    decode_bytes(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_is_exact_not_an_average() {
        // Thread A: 990 fast requests; thread B: 10 slow ones. Averaging the two p99s
        // would give ~(1ms + 100ms)/2; the merged p99 must be the true one.
        let mut a = new_hist();
        let mut b = new_hist();
        for _ in 0..990 {
            record_ns(&mut a, 1_000_000);
        }
        for _ in 0..10 {
            record_ns(&mut b, 100_000_000);
        }
        let mut m = new_hist();
        merge(&mut m, &a);
        merge(&mut m, &b);
        assert_eq!(m.len(), 1000);
        let s = HistSummary::of(&m);
        // 99% of the values are 1 ms: p99 is 1 ms, p99.9 is the slow class.
        assert!((s.p99_us - 1000.0).abs() < 2.0, "{}", s.p99_us);
        assert!((s.p999_us - 100_000.0).abs() < 100.0, "{}", s.p999_us);
        assert!((s.max_us - 100_000.0).abs() < 100.0);
    }

    #[test]
    fn summary_roundtrips_through_encoding() {
        let mut h = new_hist();
        for v in 1..5000u64 {
            record_ns(&mut h, v * 1000);
        }
        let s = HistSummary::of(&h);
        let back = s.histogram().unwrap();
        assert_eq!(back.len(), h.len());
        assert_eq!(back.value_at_quantile(0.99), h.value_at_quantile(0.99));
        // A decoded histogram must still accept values past its old max.
        let mut back = back;
        record_ns(&mut back, 3_600_000_000_000);
        assert_eq!(back.len(), h.len() + 1);
    }

    #[test]
    fn empty_summary_is_zero() {
        let s = HistSummary::of(&new_hist());
        assert_eq!(s.count, 0);
        assert_eq!(s.p99_us, 0.0);
    }
}
