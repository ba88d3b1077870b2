//! The figures of one cell (scenario × variant) of a comparison, aggregated over its
//! rounds: [`Cell`], [`cells`], and the bare producer's rate; shared by the report and the
//! charts. Per cell, throughput is the median over the rounds with its spread (min–max);
//! latency percentiles come from the rounds' histograms merged with `add` (never
//! averaged).
//!
//! Reads the [`Summary`] types only: must not depend on the report, the charts or the
//! compare run logic.

use std::collections::BTreeMap;

use super::plan::Step;
use super::summary::{Phase, RunRecord, Summary};
use crate::engine::analysis::bound::Bound;
use crate::engine::analysis::stats::{merge, new_hist, HistSummary};
use crate::reporting::format::Spread;

/// What the report says about one cell (rounds phase only; the search has its own table).
#[derive(Debug, Clone, Default)]
pub struct Cell {
    pub runs: usize,
    /// Runs that produced figures.
    pub measured: usize,
    /// `round N: error` for every run that reported one.
    pub errors: Vec<String>,
    pub throughput: Option<Spread>,
    pub latency: Option<HistSummary>,
    pub latency_uncorrected: Option<HistSummary>,
    pub client_errors: u64,
    pub backpressure: u64,
    pub censored: u64,
    pub stalls: usize,
    pub stall_ms: f64,
    /// How many runs each binding constraint labelled.
    pub bounds: BTreeMap<Bound, usize>,
    /// The offered concurrency of the cell's runs (the search maximum for maxima).
    pub step: Option<Step>,
    /// ok/s × mean latency.
    pub little: Option<Spread>,
    /// Gateway CPU busy (cores) over the measured phase.
    pub gateway_cores: Option<Spread>,
    /// Gateway CPU µs per successful request, measured phase only, and its split.
    pub cpu_us_per_req: Option<Spread>,
    pub cpu_us_by_class: BTreeMap<String, Spread>,
    pub syscalls_per_req: Option<Spread>,
    pub voluntary_cs_per_req: Option<Spread>,
    pub involuntary_cs_per_req: Option<Spread>,
    /// Mean over the runs of (gateway CPU s, ok) for marginal cost.
    pub cpu_s_and_ok: Option<(f64, f64)>,
    pub rate: Option<Spread>,
    pub rate_achieved: Option<Spread>,
    /// Memory scenarios: bytes per idle connection.
    pub bytes_per_conn: Option<Spread>,
    pub idle_open: Option<Spread>,
    pub idle_rss_before_kib: Option<Spread>,
    pub idle_rss_after_kib: Option<Spread>,
    /// Connect latency of the runs, merged (connects of the measured phase only).
    pub connect_latency: Option<HistSummary>,
    /// Load runs: gateway RSS growth per open connection, bytes (see
    /// [`super::summary::LoadMemory`]), and the RSS with the connections open.
    pub load_bytes_per_conn: Option<Spread>,
    pub load_rss_kib: Option<Spread>,
    /// Connections accepted per second (connects that completed, measured phase).
    pub connects_per_sec: Option<Spread>,
    /// `gateway_info{…}` of the cell's first run that had one.
    pub gateway_info: Option<String>,
}

impl Cell {
    pub fn of(runs: &[&RunRecord]) -> Cell {
        let mut c = Cell {
            runs: runs.len(),
            ..Cell::default()
        };
        let (mut tp, mut cores, mut cpr, mut rate, mut ach, mut little) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        let (mut sys, mut vcs, mut ivcs) = (vec![], vec![], vec![]);
        let mut by_class: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let (mut cpu_sum, mut ok_sum, mut n_cost) = (0.0, 0.0, 0);
        let (mut bpc, mut open, mut before, mut after) = (vec![], vec![], vec![], vec![]);
        let mut lat = new_hist();
        let mut unc = new_hist();
        let mut any_unc = false;
        let mut con = new_hist();
        let (mut lbpc, mut lrss, mut cps) = (vec![], vec![], vec![]);
        for r in runs {
            if c.gateway_info.is_none() {
                c.gateway_info.clone_from(&r.gateway_info);
            }
            if let Some(m) = &r.memory {
                lbpc.push(m.bytes_per_conn);
                lrss.push(m.rss_loaded_kib as f64);
            }
            if let Some(e) = &r.error {
                c.errors.push(format!(
                    "round {}: {}",
                    r.round + 1,
                    e.lines().next().unwrap_or_default()
                ));
            }
            if r.step.is_some() {
                c.step = r.step;
            }
            if let Some(res) = &r.result {
                c.measured += 1;
                tp.push(res.totals.ok_per_sec);
                little.push(res.little_in_flight);
                *c.bounds.entry(res.binding.bound).or_default() += 1;
                if let Ok(h) = res.latency.histogram() {
                    merge(&mut lat, &h);
                }
                if let Ok(h) = res.connect_latency.histogram() {
                    merge(&mut con, &h);
                }
                if res.measured_s > 0.0 {
                    cps.push(res.totals.connects as f64 / res.measured_s);
                }
                if let Some(u) = &res.latency_uncorrected {
                    if let Ok(h) = u.histogram() {
                        merge(&mut unc, &h);
                        any_unc = true;
                    }
                }
                c.client_errors += res.totals.errors;
                c.backpressure += res.totals.backpressure;
                c.censored += res.totals.censored;
                c.stalls += res.stalls.len();
                c.stall_ms += res.stalls.iter().map(|s| s.length_ms).sum::<f64>();
                if let Some(a) = res.self_check.rate_achieved {
                    ach.push(a);
                }
                if let (Some(t), true) = (&res.target_cost, res.totals.ok > 0) {
                    let ok = res.totals.ok as f64;
                    cores.push(t.cores());
                    cpr.push(t.cpu_s * 1e6 / ok);
                    for (k, v) in &t.by_class {
                        by_class
                            .entry(k.clone())
                            .or_default()
                            .push(v.cpu_s * 1e6 / ok);
                    }
                    if let Some(n) = t.syscalls {
                        sys.push(n as f64 / ok);
                    }
                    vcs.push(t.voluntary_cs as f64 / ok);
                    ivcs.push(t.involuntary_cs as f64 / ok);
                    cpu_sum += t.cpu_s / t.wall_s.max(1e-9);
                    ok_sum += res.totals.ok_per_sec;
                    n_cost += 1;
                }
                if let Some(x) = r.rate {
                    rate.push(x);
                }
            }
            if let Some(i) = &r.idle {
                c.measured += 1;
                bpc.push(i.bytes_per_conn);
                open.push(i.open as f64);
                before.push(i.rss_before_kib as f64);
                after.push(i.rss_after_kib as f64);
                c.client_errors += i.errors.values().sum::<u64>();
            }
        }
        c.throughput = Spread::of(&tp);
        if !con.is_empty() {
            c.connect_latency = Some(HistSummary::of(&con));
        }
        c.load_bytes_per_conn = Spread::of(&lbpc);
        c.load_rss_kib = Spread::of(&lrss);
        c.connects_per_sec = Spread::of(&cps);
        if !lat.is_empty() {
            c.latency = Some(HistSummary::of(&lat));
        }
        if any_unc {
            c.latency_uncorrected = Some(HistSummary::of(&unc));
        }
        c.little = Spread::of(&little);
        c.gateway_cores = Spread::of(&cores);
        c.cpu_us_per_req = Spread::of(&cpr);
        c.cpu_us_by_class = by_class
            .into_iter()
            .filter_map(|(k, v)| Some((k, Spread::of(&v)?)))
            .collect();
        c.syscalls_per_req = Spread::of(&sys);
        c.voluntary_cs_per_req = Spread::of(&vcs);
        c.involuntary_cs_per_req = Spread::of(&ivcs);
        if n_cost > 0 {
            c.cpu_s_and_ok = Some((cpu_sum / n_cost as f64, ok_sum / n_cost as f64));
        }
        c.rate = Spread::of(&rate);
        c.rate_achieved = Spread::of(&ach);
        c.bytes_per_conn = Spread::of(&bpc);
        c.idle_open = Spread::of(&open);
        c.idle_rss_before_kib = Spread::of(&before);
        c.idle_rss_after_kib = Spread::of(&after);
        c
    }

    /// The error that left this cell without figures.
    pub fn empty_reason(&self) -> Option<String> {
        (self.measured == 0).then(|| {
            self.errors
                .first()
                .cloned()
                .unwrap_or_else(|| "no run recorded".to_string())
        })
    }

    /// The label most runs got (ties: the first in [`Bound`] order, gateway first).
    pub fn bound(&self) -> Option<Bound> {
        let top = self.bounds.values().copied().max()?;
        self.bounds.iter().find(|(_, &n)| n == top).map(|(&b, _)| b)
    }

    /// `gateway` or `concurrency 3/5, gateway 2/5`.
    pub fn bound_text(&self) -> String {
        match self.bounds.len() {
            0 => "–".into(),
            1 => self.bound().map_or("–".into(), |b| b.name().to_string()),
            _ => {
                let mut v: Vec<(&Bound, &usize)> = self.bounds.iter().collect();
                v.sort_by(|a, b| b.1.cmp(a.1));
                v.iter()
                    .map(|(b, n)| format!("{} {n}/{}", b.name(), self.measured))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        }
    }
}

/// Cells keyed by (scenario id, variant name), from the rounds phase.
pub fn cells(s: &Summary) -> BTreeMap<(String, String), Cell> {
    let mut groups: BTreeMap<(String, String), Vec<&RunRecord>> = BTreeMap::new();
    for r in s.runs.iter().filter(|r| r.phase == Phase::Round) {
        groups
            .entry((r.scenario.clone(), r.variant.clone()))
            .or_default()
            .push(r);
    }
    let mut out = BTreeMap::new();
    for sc in &s.plan.scenarios {
        for &vi in &s.plan.variants_for(sc) {
            let v = s.plan.variants[vi].name();
            let runs = groups
                .remove(&(sc.id.clone(), v.clone()))
                .unwrap_or_default();
            out.insert((sc.id.clone(), v), Cell::of(&runs));
        }
    }
    out
}

/// The bare producer's median records/s over the rounds.
pub fn producer_rate(s: &Summary) -> Option<Spread> {
    let v: Vec<f64> = s
        .producer
        .iter()
        .filter(|p| p.error.is_none() && p.records_per_sec > 0.0)
        .map(|p| p.records_per_sec)
        .collect();
    Spread::of(&v)
}
