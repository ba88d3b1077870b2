//! Growth of a series over a soak ([`growth`]): the averages of the first, the settled and
//! the last window, and the least-squares slope; and growth as a percentage.

use serde::{Deserialize, Serialize};

/// The window averaged at each end for the growth figure (shorter runs use a third).
pub const GROWTH_WINDOW_S: f64 = 60.0;

/// Growth of a series over a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Growth {
    /// Length of the windows averaged at the start and at the end, seconds.
    pub window_s: f64,
    pub first_avg: f64,
    pub last_avg: f64,
    /// `last_avg - first_avg`.
    pub growth: f64,
    /// Where the settled window starts, seconds after the first point: the asked settle
    /// time, at most the span minus two windows.
    #[serde(default)]
    pub settled_from_s: f64,
    /// Average over `[settled_from_s, settled_from_s + window_s]`.
    #[serde(default)]
    pub settled_avg: f64,
    /// `last_avg - settled_avg`: growth after the warm-up. A series that rises while the
    /// process warms up (the allocator's high-water mark under churn) and then stays flat
    /// has a large `growth` and a `settled_growth` near 0; a leak has both.
    #[serde(default)]
    pub settled_growth: f64,
    /// Least-squares slope over every sample, units per hour.
    pub slope_per_hour: f64,
    pub min: f64,
    pub max: f64,
}

/// Growth of `points` (`(seconds, value)`, in time order): averages over the first and
/// the last `window_s` (at most a third of the span each) and over the window starting
/// `settle_s` after the first point (at most at the span minus two windows), and the
/// fitted slope.
pub fn growth(points: &[(f64, f64)], window_s: f64, settle_s: f64) -> Option<Growth> {
    let (first, last) = (points.first()?, points.last()?);
    let span = last.0 - first.0;
    if points.len() < 2 || span <= 0.0 {
        return None;
    }
    let w = window_s.min(span / 3.0);
    let avg = |sel: &dyn Fn(f64) -> bool| {
        let v: Vec<f64> = points.iter().filter(|p| sel(p.0)).map(|p| p.1).collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    let first_avg = avg(&|t| t <= first.0 + w);
    let last_avg = avg(&|t| t >= last.0 - w);
    let settled_from_s = settle_s.clamp(0.0, span - 2.0 * w);
    let from = first.0 + settled_from_s;
    let settled_avg = avg(&|t| t >= from && t <= from + w);
    Some(Growth {
        window_s: w,
        first_avg,
        last_avg,
        growth: last_avg - first_avg,
        settled_from_s,
        settled_avg,
        settled_growth: last_avg - settled_avg,
        slope_per_hour: slope(points) * 3600.0,
        min: points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min),
        max: points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max),
    })
}

/// Least-squares slope of `y` over `x` (0 when `x` does not vary).
pub fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx == 0.0 {
        0.0
    } else {
        sxy / sxx
    }
}

/// `part` as a percentage of `of` (0 when `of` is not positive).
fn pct(part: f64, of: f64) -> f64 {
    if of > 0.0 {
        part / of * 100.0
    } else {
        0.0
    }
}

/// RSS growth as a percentage of the first window's average.
pub fn growth_pct(r: &Growth) -> f64 {
    pct(r.growth, r.first_avg)
}

/// Growth after the settle time as a percentage of the settled window's average.
pub fn settled_pct(r: &Growth) -> f64 {
    pct(r.settled_growth, r.settled_avg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_of_a_line() {
        // 1 MiB per minute for 10 minutes, sampled every second.
        let pts: Vec<(f64, f64)> = (0..=600)
            .map(|t| (t as f64, 100.0 + t as f64 / 60.0))
            .collect();
        let g = growth(&pts, 60.0, 0.0).unwrap();
        assert_eq!(g.window_s, 60.0);
        assert!((g.slope_per_hour - 60.0).abs() < 1e-6, "{g:?}");
        // First minute averages 100.5, last minute 109.5.
        assert!((g.first_avg - 100.5).abs() < 1e-9, "{g:?}");
        assert!((g.last_avg - 109.5).abs() < 1e-9, "{g:?}");
        assert!((g.growth - 9.0).abs() < 1e-9);
        // Settle 0: the settled window is the first.
        assert_eq!((g.settled_from_s, g.settled_growth), (0.0, g.growth));
        assert_eq!((g.min, g.max), (100.0, 110.0));
    }

    #[test]
    fn a_warm_up_to_a_plateau_is_not_settled_growth_and_a_leak_is() {
        // Rises 6 MiB over the first 2 minutes, then flat (the 10k soak's shape).
        let plateau: Vec<(f64, f64)> = (0..=600)
            .map(|t| (t as f64, 36.0 + 6.0 * (t.min(120) as f64 / 120.0)))
            .collect();
        let g = growth(&plateau, 60.0, 120.0).unwrap();
        assert!((g.growth - 4.5).abs() < 1e-9, "{g:?}");
        assert_eq!(g.settled_from_s, 120.0);
        assert!(g.settled_growth.abs() < 1e-9, "{g:?}");
        assert!((g.settled_avg - 42.0).abs() < 1e-9, "{g:?}");
        // A steady leak keeps growing after the settle time: 1 MiB per 100 s, the
        // settled window [120, 180] averages 37.5 and the last [540, 600] 41.7.
        let leak: Vec<(f64, f64)> = (0..=600)
            .map(|t| (t as f64, 36.0 + t as f64 / 100.0))
            .collect();
        let g = growth(&leak, 60.0, 120.0).unwrap();
        assert!((g.growth - 5.4).abs() < 1e-6, "{g:?}");
        assert!((g.settled_growth - 4.2).abs() < 1e-6, "{g:?}");
        // A settle time past where a window still fits stops there: the span minus two
        // windows (600 - 120 = 480).
        let g = growth(&leak, 60.0, 1e9).unwrap();
        assert_eq!(g.settled_from_s, 480.0);
        assert!((g.settled_growth - 0.6).abs() < 1e-6, "{g:?}");
    }

    #[test]
    fn growth_of_flat_and_short_series() {
        let flat: Vec<(f64, f64)> = (0..30).map(|t| (t as f64, 42.0)).collect();
        let g = growth(&flat, 60.0, 0.0).unwrap();
        // A 29 s run: windows of a third of it.
        assert!((g.window_s - 29.0 / 3.0).abs() < 1e-9);
        assert_eq!((g.growth, g.slope_per_hour), (0.0, 0.0));
        // A step in the middle shows as growth; noise around a level does not.
        let step: Vec<(f64, f64)> = (0..90)
            .map(|t| (t as f64, if t < 45 { 10.0 } else { 20.0 } + (t % 2) as f64))
            .collect();
        let g = growth(&step, 60.0, 0.0).unwrap();
        assert!((g.growth - 10.0).abs() < 0.1, "{g:?}");
        assert!(g.slope_per_hour > 0.0);
        assert!(growth(&[(1.0, 1.0)], 60.0, 0.0).is_none());
        assert!(growth(&[], 60.0, 0.0).is_none());
        assert_eq!(slope(&[(1.0, 5.0), (1.0, 7.0)]), 0.0);
    }
}
