//! The SVG charts of a comparison, drawn with plotters: throughput over time and latency
//! percentile curves per load scenario (one line per gateway variant), the saturation
//! search, latency against load, and memory per idle connection (bars).
//!
//! Entry point: [`draw_all`]. Reads a [`Summary`] (and the report's [`cells`]), built on
//! the shared primitives of [`crate::reporting::charts`]. Must not depend on the compare
//! run logic (`run.rs`, `execute.rs`); the markdown report does not depend on it either.

use std::path::Path;

use plotters::prelude::*;

use super::cell::cells;
use super::plan::{Offer, Scenario, Shape, Sink};
use super::summary::{Phase, RunRecord, Summary};
use crate::engine::analysis::stats::{merge, new_hist, Hist};
use crate::reporting::charts::{color, err, legend, no_data, si, SIZE};
use crate::reporting::format::Spread;

/// Every chart the report links to.
pub fn draw_all(s: &Summary, dir: &Path) -> anyhow::Result<()> {
    for sc in &s.plan.scenarios {
        if matches!(sc.shape, Shape::Load { .. }) {
            throughput_chart(s, sc, &dir.join(format!("throughput-{}.svg", sc.id)))?;
            latency_chart(s, sc, &dir.join(format!("latency-{}.svg", sc.id)))?;
        }
        if sc.search().is_some() {
            saturation_chart(s, sc, &dir.join(format!("saturation-{}.svg", sc.id)))?;
        }
    }
    if s.plan.scenarios.iter().any(|sc| {
        matches!(
            sc.shape,
            Shape::Load {
                offer: Offer::OwnMax { .. },
                ..
            }
        )
    }) {
        latency_vs_load_chart(s, &dir.join("latency-vs-load.svg"))?;
    }
    if s.plan
        .scenarios
        .iter()
        .any(|sc| matches!(sc.shape, Shape::Idle { .. }))
    {
        memory_chart(s, &dir.join("memory.svg"))?;
    }
    Ok(())
}

fn runs_of<'a>(s: &'a Summary, sc: &Scenario, variant: &str) -> Vec<&'a RunRecord> {
    s.runs
        .iter()
        .filter(|r| {
            r.phase == Phase::Round
                && r.scenario == sc.id
                && r.variant == variant
                && r.result.is_some()
        })
        .collect()
}

/// Variants of a scenario with their palette colour (stable across charts).
fn series(s: &Summary, sc: &Scenario) -> Vec<(String, RGBColor)> {
    s.plan
        .variants_for(sc)
        .into_iter()
        .map(|i| (s.plan.variants[i].name(), color(i)))
        .collect()
}

/// Per-second ok/s of the median-throughput repeat of each variant.
fn throughput_chart(s: &Summary, sc: &Scenario, path: &Path) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut lines = Vec::new();
    for (name, col) in series(s, sc) {
        let runs = runs_of(s, sc, &name);
        let tps: Vec<f64> = runs
            .iter()
            .filter_map(|r| r.result.as_ref().map(|x| x.totals.ok_per_sec))
            .collect();
        let Some(med) = Spread::of(&tps) else {
            continue;
        };
        let Some(run) = runs
            .iter()
            .filter_map(|r| r.result.as_ref())
            .min_by(|a, b| {
                (a.totals.ok_per_sec - med.median)
                    .abs()
                    .total_cmp(&(b.totals.ok_per_sec - med.median).abs())
            })
        else {
            continue;
        };
        let pts: Vec<(f64, f64)> = run
            .timeline
            .iter()
            .map(|t| (t.second as f64 + 0.5, t.ok as f64))
            .collect();
        lines.push((name, col, pts));
    }
    let title = format!("{}: successful requests per second (median run)", sc.id);
    if lines.is_empty() {
        no_data(&root, &title)?;
        return root.present().map_err(err);
    }
    let xmax = lines
        .iter()
        .flat_map(|l| l.2.iter().map(|p| p.0 + 0.5))
        .fold(1.0, f64::max);
    let ymax = lines
        .iter()
        .flat_map(|l| l.2.iter().map(|p| p.1))
        .fold(1.0, f64::max)
        * 1.15;
    let mut chart = ChartBuilder::on(&root)
        .caption(&title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..xmax, 0f64..ymax)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("second of the measured phase")
        .y_desc("ok / s")
        .y_label_formatter(&|y| si(*y))
        .draw()
        .map_err(err)?;
    for (name, col, pts) in lines {
        chart
            .draw_series(LineSeries::new(pts, col.stroke_width(2)))
            .map_err(err)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// Latency by percentile (x: 1/(1-q) on a log axis, as HdrHistogram plots do) from the
/// merged histogram of each variant's repeats.
fn latency_chart(s: &Summary, sc: &Scenario, path: &Path) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut lines = Vec::new();
    for (name, col) in series(s, sc) {
        let mut h: Hist = new_hist();
        for r in runs_of(s, sc, &name) {
            if let Some(Ok(x)) = r.result.as_ref().map(|x| x.latency.histogram()) {
                merge(&mut h, &x);
            }
        }
        if h.is_empty() {
            continue;
        }
        // x = log10(1 / (1 - q)): 0 = p0, 1 = p90, 2 = p99, … 4 = p99.99, then the max.
        let top = (h.len() as f64).log10().clamp(1.0, 5.0);
        let mut pts = Vec::new();
        let mut x = 0.0;
        while x <= top {
            let q = 1.0 - 10f64.powf(-x);
            pts.push((x, h.value_at_quantile(q) as f64 / 1e6));
            x += 0.05;
        }
        pts.push((top, h.max() as f64 / 1e6));
        lines.push((name, col, pts));
    }
    let open = matches!(
        sc.shape,
        Shape::Load {
            offer: Offer::OwnMax { .. } | Offer::Common { .. },
            ..
        }
    );
    let title = format!(
        "{}: latency by percentile{}",
        sc.id,
        if open { " (open loop, corrected)" } else { "" }
    );
    if lines.is_empty() {
        no_data(&root, &title)?;
        return root.present().map_err(err);
    }
    let xmax = lines
        .iter()
        .flat_map(|l| l.2.iter().map(|p| p.0))
        .fold(1.0, f64::max);
    let ymin = lines
        .iter()
        .flat_map(|l| l.2.iter().map(|p| p.1))
        .fold(f64::MAX, f64::min)
        .max(0.001);
    let ymax = lines
        .iter()
        .flat_map(|l| l.2.iter().map(|p| p.1))
        .fold(0.0, f64::max)
        .max(ymin * 10.0);
    let mut chart = ChartBuilder::on(&root)
        .caption(&title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..xmax, (ymin * 0.8..ymax * 1.25).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_labels(xmax.ceil() as usize + 1)
        .x_label_formatter(&|x| {
            let p = 100.0 * (1.0 - 10f64.powf(-x));
            if *x < 0.5 {
                "p0".to_string()
            } else {
                format!("p{}", trim(p))
            }
        })
        .x_desc("percentile")
        .y_desc("latency (ms, log)")
        .draw()
        .map_err(err)?;
    for (name, col, pts) in lines {
        chart
            .draw_series(LineSeries::new(pts, col.stroke_width(2)))
            .map_err(err)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// Saturation search: ok/s against offered in-flight requests (log₂ axis), one line per
/// variant; Kafka and null-sink variants on separate panels (their scales differ ~3×).
fn saturation_chart(s: &Summary, sc: &Scenario, path: &Path) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (1200, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (plots, side) = root.split_horizontally(1000);
    let sinks: Vec<Sink> = [Sink::Kafka, Sink::Null]
        .into_iter()
        .filter(|k| {
            series(s, sc)
                .iter()
                .any(|(n, _)| (*k == Sink::Null) == n.ends_with("/null"))
        })
        .collect();
    let panels = plots.split_evenly((1, sinks.len().max(1)));
    let mut items = Vec::new();
    for (panel, sink) in panels.iter().zip(&sinks) {
        let mut lines = Vec::new();
        for (name, col) in series(s, sc) {
            if (*sink == Sink::Null) != name.ends_with("/null") {
                continue;
            }
            let pts: Vec<(f64, f64)> = s
                .search_steps(&sc.id, &name)
                .iter()
                .filter_map(|r| {
                    let st = r.step?;
                    let x = r.result.as_ref().filter(|_| r.error.is_none())?;
                    Some(((st.in_flight() as f64).log2(), x.totals.ok_per_sec))
                })
                .collect();
            if !pts.is_empty() {
                items.push((name.clone(), col));
                lines.push((name, col, pts));
            }
        }
        let title = format!("{}: ok/s by in-flight requests ({})", sc.id, sink.name());
        if lines.is_empty() {
            no_data(panel, &title)?;
            continue;
        }
        let xs = lines.iter().flat_map(|l| l.2.iter().map(|p| p.0));
        let (x0, x1) = xs.fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
        let ymax = lines
            .iter()
            .flat_map(|l| l.2.iter().map(|p| p.1))
            .fold(1.0, f64::max)
            * 1.1;
        let mut chart = ChartBuilder::on(panel)
            .caption(&title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((x0 - 0.3)..(x1 + 0.3), 0f64..ymax)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_labels(((x1 - x0) as usize + 2).min(12))
            .x_label_formatter(&|x| format!("{:.0}", 2f64.powf(*x)))
            .y_label_formatter(&|y| si(*y))
            .x_desc("requests in flight (connections x depth, log scale)")
            .y_desc("ok / s")
            .draw()
            .map_err(err)?;
        for (_, col, pts) in lines {
            chart
                .draw_series(LineSeries::new(pts.clone(), col.stroke_width(2)))
                .map_err(err)?;
            chart
                .draw_series(pts.into_iter().map(|p| Circle::new(p, 4, col.filled())))
                .map_err(err)?;
        }
    }
    legend(&side, &items)?;
    root.present().map_err(err)
}

/// Latency against offered load: p50, p99 and p99.9 (corrected, merged over the rounds)
/// at each open-loop fraction of the gateway's own maximum; one panel per percentile.
fn latency_vs_load_chart(s: &Summary, path: &Path) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (1200, 460)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (plots, side) = root.split_horizontally(1000);
    let scen: Vec<(&Scenario, u32)> = s
        .plan
        .scenarios
        .iter()
        .filter_map(|sc| match sc.shape {
            Shape::Load {
                offer: Offer::OwnMax { pct },
                ..
            } => Some((sc, pct)),
            _ => None,
        })
        .collect();
    let cells = cells(s);
    let mut items = Vec::new();
    let mut per_variant = Vec::new();
    for (i, v) in s.plan.variants.iter().enumerate() {
        if v.sink != Sink::Kafka {
            continue;
        }
        let pts: Vec<(f64, [f64; 3])> = scen
            .iter()
            .filter_map(|(sc, pct)| {
                let l = cells.get(&(sc.id.clone(), v.name()))?.latency.clone()?;
                Some((
                    f64::from(*pct),
                    [l.p50_us, l.p99_us, l.p999_us].map(|x| x / 1000.0),
                ))
            })
            .collect();
        if !pts.is_empty() {
            items.push((v.name(), color(i)));
            per_variant.push((color(i), pts));
        }
    }
    let panels = plots.split_evenly((1, 3));
    for (k, (panel, q)) in panels.iter().zip(["p50", "p99", "p99.9"]).enumerate() {
        let title = format!("{q} latency (ms, log) by offered load");
        if per_variant.is_empty() {
            no_data(panel, &title)?;
            continue;
        }
        let ys = per_variant
            .iter()
            .flat_map(|(_, p)| p.iter().map(|x| x.1[k]));
        let (y0, y1) = ys.fold((f64::MAX, 0f64), |(a, b), y| (a.min(y), b.max(y)));
        let (y0, y1) = (y0.max(0.001) * 0.8, y1.max(y0 * 10.0) * 1.25);
        let mut chart = ChartBuilder::on(panel)
            .caption(&title, ("sans-serif", 15))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(0f64..100f64, (y0..y1).log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("% of the gateway's own maximum without pipelining")
            .y_label_formatter(&|y| format!("{y:.2}"))
            .draw()
            .map_err(err)?;
        for (col, pts) in &per_variant {
            let line: Vec<(f64, f64)> = pts.iter().map(|p| (p.0, p.1[k])).collect();
            chart
                .draw_series(LineSeries::new(line.clone(), col.stroke_width(2)))
                .map_err(err)?;
            chart
                .draw_series(line.into_iter().map(|p| Circle::new(p, 3, col.filled())))
                .map_err(err)?;
        }
    }
    legend(&side, &items)?;
    root.present().map_err(err)
}

fn trim(p: f64) -> String {
    let s = format!("{p:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Bars: KiB per idle connection, one group per variant, one bar per memory scenario.
fn memory_chart(s: &Summary, path: &Path) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let cells = cells(s);
    let idle: Vec<&Scenario> = s
        .plan
        .scenarios
        .iter()
        .filter(|sc| matches!(sc.shape, Shape::Idle { .. }))
        .collect();
    let variants: Vec<String> = s
        .plan
        .variants
        .iter()
        .filter(|v| {
            idle.iter().any(|sc| {
                s.plan
                    .variants_for(sc)
                    .iter()
                    .any(|&i| s.plan.variants[i] == **v)
            })
        })
        .map(|v| v.name())
        .collect();
    let mut bars = Vec::new();
    for (gi, v) in variants.iter().enumerate() {
        for (si, sc) in idle.iter().enumerate() {
            if let Some(b) = cells
                .get(&(sc.id.clone(), v.clone()))
                .and_then(|c| c.bytes_per_conn)
            {
                bars.push((gi, si, b.median / 1024.0, b.min / 1024.0, b.max / 1024.0));
            }
        }
    }
    let title = "gateway RSS per idle connection (KiB, median; whiskers: min–max)";
    if bars.is_empty() {
        no_data(&root, title)?;
        return root.present().map_err(err);
    }
    let ymax = bars.iter().map(|b| b.4.max(b.2)).fold(1.0, f64::max) * 1.2;
    let ymin = bars.iter().map(|b| b.3.min(b.2)).fold(0.0, f64::min) * 1.2;
    let n = variants.len() as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..n, ymin..ymax)
        .map_err(err)?;
    let names = variants.clone();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(variants.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - x.floor() - 0.5).abs() < 0.01 && i < names.len() {
                names[i].clone()
            } else {
                String::new()
            }
        })
        .y_desc("KiB per connection")
        .draw()
        .map_err(err)?;
    let k = idle.len().max(1) as f64;
    let w = 0.8 / k;
    for (si, sc) in idle.iter().enumerate() {
        let col = color(si + 3);
        let rects: Vec<_> = bars
            .iter()
            .filter(|b| b.1 == si)
            .map(|b| {
                let x0 = b.0 as f64 + 0.1 + w * si as f64;
                Rectangle::new([(x0, 0.0), (x0 + w * 0.9, b.2)], col.filled())
            })
            .collect();
        chart
            .draw_series(rects)
            .map_err(err)?
            .label(sc.id.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], col.filled()));
        let whiskers: Vec<_> = bars
            .iter()
            .filter(|b| b.1 == si)
            .map(|b| {
                let xm = b.0 as f64 + 0.1 + w * si as f64 + w * 0.45;
                PathElement::new(vec![(xm, b.3), (xm, b.4)], BLACK.stroke_width(1))
            })
            .collect();
        chart.draw_series(whiskers).map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}
