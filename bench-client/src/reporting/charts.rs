//! Chart primitives shared by every experiment, drawn with plotters as SVG: the palette
//! ([`color`]), axis labels in k/M ([`si`]), a legend strip ([`legend`]), the "no data"
//! panel ([`no_data`]), and [`line_chart`] (series over time with optional shaded
//! phases, used by `soak`, `chaos` and `stall-lab`).
//!
//! Depends on nothing else in the crate; never on an experiment.

use anyhow::anyhow;
use plotters::prelude::*;

/// Size of a chart, pixels.
pub const SIZE: (u32, u32) = (960, 540);

/// A plotters error as an `anyhow` one.
pub fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing a chart: {e:?}")
}

/// Colours in the palette.
pub const PALETTE: usize = 8;

pub fn color(i: usize) -> RGBColor {
    const C: [RGBColor; PALETTE] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
    ];
    C[i % C.len()]
}

pub fn no_data(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
) -> anyhow::Result<()> {
    root.draw(&Text::new(
        format!("{title}: no run produced figures (see report.md)"),
        (40, 260),
        ("sans-serif", 20),
    ))
    .map_err(err)
}

/// Axis labels in k/M: `50k`, `1.2M`.
pub fn si(v: f64) -> String {
    let a = v.abs();
    let (x, unit) = if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let t = format!("{x:.1}");
    format!("{}{unit}", t.trim_end_matches('0').trim_end_matches('.'))
}

/// A legend in its own strip, off the data: one coloured line and name per series.
pub fn legend(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    items: &[(String, RGBColor)],
) -> anyhow::Result<()> {
    for (i, (name, col)) in items.iter().enumerate() {
        let y = 60 + 22 * i as i32;
        area.draw(&PathElement::new(
            vec![(8, y), (30, y)],
            col.stroke_width(3),
        ))
        .map_err(err)?;
        area.draw(&Text::new(name.clone(), (36, y - 7), ("sans-serif", 14)))
            .map_err(err)?;
    }
    Ok(())
}

/// A line chart as SVG text (`soak`, `chaos`, `stall-lab`): one line per series, optional
/// shaded x-ranges `(label, from, to)`.
pub fn line_chart(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[(String, Vec<(f64, f64)>)],
    bands: &[(String, f64, f64)],
    legend_top: bool,
) -> anyhow::Result<String> {
    use plotters::prelude::*;
    let pts = series.iter().flat_map(|s| s.1.iter());
    let (mut x0, mut x1, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, 0.0f64);
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y1 = y1.max(y);
    }
    for b in bands {
        x0 = x0.min(b.1);
        x1 = x1.max(b.2);
    }
    if !x0.is_finite() || !x1.is_finite() {
        (x0, x1) = (0.0, 1.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let y1 = if y1 > 0.0 { y1 * 1.08 } else { 1.0 };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 440)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, 0.0..y1)?;
        let x_fmt = |v: &f64| {
            if x1 - x0 >= 10.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.1}")
            }
        };
        let y_fmt = |v: &f64| {
            if y1 >= 20.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.1}")
            }
        };
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        for (i, (label, from, to)) in bands.iter().enumerate() {
            let c = color(PALETTE - 1 - i).mix(0.15);
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(*from, 0.0), (*to, y1)],
                    c.filled(),
                )))?
                .label(label.as_str())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], c.filled()));
        }
        for (i, (name, pts)) in series.iter().enumerate() {
            let c = color(i).to_rgba();
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2))
                });
        }
        if !series.is_empty() || !bands.is_empty() {
            chart
                .configure_series_labels()
                .position(if legend_top {
                    SeriesLabelPosition::UpperRight
                } else {
                    SeriesLabelPosition::LowerRight
                })
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.4))
                .draw()?;
        }
        root.present()?;
    }
    Ok(svg)
}
