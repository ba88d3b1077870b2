//! Figures as the reports print them: [`Spread`] (median and range of repeats),
//! [`ratio`], [`overlap`], and the text forms (`fmt_us`, `fmt_rate`, `fmt_spread`,
//! `fmt_ratio`, `kib`, `md`) shared by every experiment's report.
//!
//! Depends on nothing else in the crate; never on an experiment.

/// Median and range of a set of figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Spread {
    /// None for an empty set; the median of an even count is the mean of the middle two.
    pub fn of(values: &[f64]) -> Option<Spread> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
            n,
        })
    }

    /// (max - min) / median.
    pub fn relative_range(&self) -> f64 {
        if self.median == 0.0 {
            0.0
        } else {
            (self.max - self.min) / self.median
        }
    }
}

/// `a / b`, None when either is missing or b is zero.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 && a.is_finite() && b.is_finite() => Some(a / b),
        _ => None,
    }
}

/// Two spreads whose [min, max] ranges overlap: not called different.
pub fn overlap(a: &Spread, b: &Spread) -> bool {
    a.min <= b.max && b.min <= a.max
}

/// Microseconds as `850 µs`, `1.25 ms`, `12.5 ms` or `1.20 s`.
pub fn fmt_us(us: f64) -> String {
    if us >= 1_000_000.0 {
        format!("{:.2} s", us / 1e6)
    } else if us >= 10_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

/// 45200 → `45.2k`.
pub fn fmt_rate(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e4 {
        format!("{:.1}k", x / 1e3)
    } else if x >= 1e3 {
        format!("{:.2}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// `median [min–max]`, or the median alone when the range is empty.
pub fn fmt_spread(s: &Spread, f: impl Fn(f64) -> String) -> String {
    if s.n <= 1 || s.min == s.max {
        f(s.median)
    } else {
        format!("{} [{}–{}]", f(s.median), f(s.min), f(s.max))
    }
}

/// `1.23×`, or `–` when there is no ratio.
pub fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "–".to_string(), |r| format!("{r:.2}×"))
}

/// Bytes as `12.3 KiB`.
pub fn kib(b: f64) -> String {
    format!("{:.1} KiB", b / 1024.0)
}

/// Markdown table cells can't hold `|` or newlines.
pub fn md(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_spread() {
        assert_eq!(Spread::of(&[]), None);
        let s = Spread::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
        let s = Spread::of(&[4.0, 1.0, 2.0, 10.0]).unwrap();
        assert_eq!(s.median, 3.0);
        assert!((s.relative_range() - 3.0).abs() < 1e-9);
        assert_eq!(Spread::of(&[f64::NAN, 5.0]).unwrap().median, 5.0);
    }

    #[test]
    fn ratios() {
        assert_eq!(ratio(Some(3.0), Some(2.0)), Some(1.5));
        assert_eq!(ratio(Some(3.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(2.0)), None);
        assert_eq!(fmt_ratio(Some(1.0 / 3.0)), "0.33×");
    }

    #[test]
    fn formats() {
        assert_eq!(fmt_us(850.0), "850 µs");
        assert_eq!(fmt_us(1234.0), "1.23 ms");
        assert_eq!(fmt_us(25_000.0), "25.0 ms");
        assert_eq!(fmt_rate(45_230.0), "45.2k");
        assert_eq!(fmt_rate(999.0), "999");
    }
}
