//! The comparison report: a pure function from recorded data (each strategy's request records and pod counts) to
//! the eight panels of AIBrix's autoscaling figure (SVG and PNG), `table.md`, `index.html` and `summary.json`.
//!
//! Definitions follow `plot-everything.py` (`workloads.md` §7): times are rebased to each strategy's first
//! `start_time`; average latency is the mean over all rows; P99 is pandas' linearly interpolated quantile; cost is
//! pod-hours of Running + Pending (+ Init) pods at unit cost 1; failed requests are workload lines minus rows
//! with status code 200. Nothing here touches a cluster, so the report is tested on synthetic runs and can be
//! redrawn from a finished run's `data/` directory.

use std::fmt::Write as _;
use std::path::Path;

use plotters::coord::ranged1d::{IntoSegmentedCoord, SegmentValue};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::{Deserialize, Serialize};

use super::DemoError;
use crate::observe::timeline::Timeline;
use crate::workload::replay::RequestRecord;
use crate::workload::summary::percentile;

/// The eight panels: file stem and title.
pub const PANELS: [(&str, &str); 8] = [
    ("latency_cdf", "Latency CDF"),
    ("rps", "Requests per second"),
    ("running_pods", "Running pods"),
    ("accumulated_cost", "Accumulated cost"),
    ("avg_latency", "Average latency"),
    ("p99_latency", "P99 latency"),
    ("total_cost", "Total cost"),
    ("failed_requests", "Failed requests"),
];

const WIDTH: u32 = 800;
const HEIGHT: u32 = 480;

/// Pods of one strategy at one observer tick (`count_num_pods.py`'s row).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PodCount {
    /// Seconds on the records' clock.
    pub t: f64,
    /// Pods in phase Running (ready or not, terminating or not).
    pub running: u32,
    /// Pods in phase Pending.
    pub pending: u32,
    /// Pods still initialising (none in the simulated cluster; kept for the definition).
    pub init: u32,
}

impl PodCount {
    /// One count per timeline sample; the timeline's clock must be the records' clock.
    pub(crate) fn from_timeline(timeline: &Timeline) -> Vec<PodCount> {
        timeline
            .samples
            .iter()
            .map(|s| PodCount {
                t: s.t,
                running: s.pods.iter().filter(|p| p.phase == "Running").count() as u32,
                pending: s.pods.iter().filter(|p| p.phase == "Pending").count() as u32,
                init: 0,
            })
            .collect()
    }
}

/// What one strategy recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StrategyRun {
    /// `APA`, `KPA`, `HPA`.
    pub name: String,
    /// Lines of the workload file (the base of "failed requests").
    pub workload_lines: usize,
    /// The replay client's rows.
    pub records: Vec<RequestRecord>,
    /// Pod counts at 1 Hz.
    pub pods: Vec<PodCount>,
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// Strategy.
    pub strategy: String,
    /// Mean latency, s.
    pub avg_latency_s: f64,
    /// P99 latency, s.
    pub p99_latency_s: f64,
    /// Pod-hours.
    pub total_cost: f64,
    /// Workload lines without a 200 row.
    pub failed_requests: usize,
    /// Rows recorded.
    pub requests: usize,
    /// Most Running pods at any tick.
    pub peak_running_pods: u32,
}

/// The series derived from one strategy's data.
struct Derived {
    row: Row,
    sorted_latency: Vec<f64>,
    /// (second, success, failed).
    rps: Vec<(f64, u32, u32)>,
    /// (t, running).
    running: Vec<(f64, f64)>,
    /// (t, accumulated cost).
    cost: Vec<(f64, f64)>,
}

/// Mean of the latencies (0 without rows).
fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

fn derive(run: &StrategyRun) -> Derived {
    let t0 = run
        .records
        .iter()
        .map(|r| r.start_time)
        .fold(f64::INFINITY, f64::min);
    let t0 = if t0.is_finite() { t0 } else { 0.0 };
    let mut sorted_latency: Vec<f64> = run.records.iter().map(|r| r.latency).collect();
    sorted_latency.sort_by(f64::total_cmp);
    let successes = run
        .records
        .iter()
        .filter(|r| r.status_code == Some(200))
        .count();

    let mut buckets: std::collections::BTreeMap<i64, (u32, u32)> = Default::default();
    for r in &run.records {
        let entry = buckets
            .entry((r.start_time - t0).floor() as i64)
            .or_default();
        if r.status_code == Some(200) {
            entry.0 += 1;
        } else {
            entry.1 += 1;
        }
    }
    let rps = match (buckets.keys().next(), buckets.keys().next_back()) {
        (Some(&first), Some(&last)) => (first..=last)
            .map(|s| {
                let (ok, failed) = buckets.get(&s).copied().unwrap_or_default();
                (s as f64, ok, failed)
            })
            .collect(),
        _ => Vec::new(),
    };

    let mut cost = Vec::with_capacity(run.pods.len());
    let mut accumulated = 0.0;
    let mut previous: Option<f64> = None;
    for p in &run.pods {
        if let Some(prev) = previous {
            accumulated += f64::from(p.running + p.pending + p.init) * (p.t - prev) / 3600.0;
        }
        previous = Some(p.t);
        cost.push((p.t - t0, accumulated));
    }
    let running = run
        .pods
        .iter()
        .map(|p| (p.t - t0, f64::from(p.running)))
        .collect();
    Derived {
        row: Row {
            strategy: run.name.clone(),
            avg_latency_s: mean(&sorted_latency),
            p99_latency_s: percentile(&sorted_latency, 0.99).unwrap_or(0.0),
            total_cost: accumulated,
            failed_requests: run.workload_lines.saturating_sub(successes),
            requests: run.records.len(),
            peak_running_pods: run.pods.iter().map(|p| p.running).max().unwrap_or(0),
        },
        sorted_latency,
        rps,
        running,
        cost,
    }
}

/// The table rows of `runs`, in order.
pub fn rows(runs: &[StrategyRun]) -> Vec<Row> {
    runs.iter().map(|r| derive(r).row).collect()
}

/// `table.md`: strategy | avg latency | P99 latency | total cost | failed requests | requests.
pub fn table_markdown(rows: &[Row]) -> String {
    let mut out = String::from(
        "| Strategy | Average latency (s) | P99 latency (s) | Total cost (pod-hours) | Failed requests | Requests |\n\
         |---|---|---|---|---|---|\n",
    );
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {:.2} | {:.2} | {:.3} | {} | {} |",
            r.strategy,
            r.avg_latency_s,
            r.p99_latency_s,
            r.total_cost,
            r.failed_requests,
            r.requests
        );
    }
    out
}

/// A fixed colour per strategy (APA, KPA, HPA as in AIBrix's figure order), others from a palette.
fn color(index: usize, name: &str) -> RGBColor {
    match name {
        "APA" => RGBColor(31, 119, 180),
        "KPA" => RGBColor(255, 127, 14),
        "HPA" => RGBColor(44, 160, 44),
        _ => {
            let (r, g, b) = Palette99::pick(index + 3).to_rgba().rgb();
            RGBColor(r, g, b)
        }
    }
}

/// Half way to white (the failed-RPS series next to its strategy's success series).
fn lighter(c: RGBColor) -> RGBColor {
    let half = |v: u8| v / 2 + 128;
    RGBColor(half(c.0), half(c.1), half(c.2))
}

fn plot_err(e: impl std::fmt::Display) -> DemoError {
    DemoError::Plot(e.to_string())
}

/// A named, coloured line.
type Series = (String, RGBColor, Vec<(f64, f64)>);

/// Draws a line chart; `series` are (name, colour, points).
fn line_chart(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
) -> Result<String, DemoError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let points = series.iter().flat_map(|s| s.2.iter());
        let (mut x_max, mut y_max) = (1e-9_f64, 1e-9_f64);
        let mut x_min = f64::INFINITY;
        for &(x, y) in points {
            x_max = x_max.max(x);
            x_min = x_min.min(x);
            y_max = y_max.max(y);
        }
        let x_min = if x_min.is_finite() {
            x_min.min(0.0)
        } else {
            0.0
        };
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 24))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(x_min..x_max * 1.02, 0.0..y_max * 1.1)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 16))
            .draw()
            .map_err(plot_err)?;
        for (name, colour, data) in series {
            let style = ShapeStyle::from(*colour).stroke_width(2);
            let colour = *colour;
            chart
                .draw_series(LineSeries::new(data.iter().copied(), style))
                .map_err(plot_err)?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// Draws one bar per strategy with its value on top.
fn bar_chart(
    title: &str,
    y_desc: &str,
    bars: &[(String, RGBColor, f64)],
    decimals: usize,
) -> Result<String, DemoError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let top = bars.iter().map(|b| b.2).fold(0.0_f64, f64::max);
        // All zero (e.g. no failures): a 0..1 axis rather than a degenerate one.
        let y_max = if top > 0.0 { top * 1.2 } else { 1.0 };
        let names: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 24))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(64)
            // A segmented 0..k has k + 1 slots; one per bar.
            .build_cartesian_2d(
                (0..(bars.len() as i32 - 1).max(1)).into_segmented(),
                0.0..y_max,
            )
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("strategy")
            .y_desc(y_desc)
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                    names.get(*i as usize).cloned().unwrap_or_default()
                }
                SegmentValue::Last => String::new(),
            })
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 16))
            .draw()
            .map_err(plot_err)?;
        chart
            .draw_series(bars.iter().enumerate().filter(|(_, b)| b.2 > 0.0).map(
                |(i, (_, colour, value))| {
                    let mut bar = Rectangle::new(
                        [
                            (SegmentValue::Exact(i as i32), 0.0),
                            (SegmentValue::Exact(i as i32 + 1), *value),
                        ],
                        colour.filled(),
                    );
                    bar.set_margin(0, 0, 30, 30);
                    bar
                },
            ))
            .map_err(plot_err)?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, (_, _, value))| {
                Text::new(
                    format!("{value:.decimals$}"),
                    (SegmentValue::CenterOf(i as i32), *value + y_max * 0.01),
                    ("sans-serif", 16)
                        .into_font()
                        .color(&BLACK)
                        .pos(Pos::new(HPos::Center, VPos::Bottom)),
                )
            }))
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// The eight panels as SVG text, keyed by file stem, in [`PANELS`] order.
fn panels(runs: &[StrategyRun]) -> Result<Vec<(&'static str, String)>, DemoError> {
    let derived: Vec<Derived> = runs.iter().map(derive).collect();
    let colours: Vec<RGBColor> = runs
        .iter()
        .enumerate()
        .map(|(i, r)| color(i, &r.name))
        .collect();
    let named = |f: &dyn Fn(&Derived) -> Vec<(f64, f64)>| -> Vec<Series> {
        derived
            .iter()
            .zip(&colours)
            .map(|(d, c)| (d.row.strategy.clone(), *c, f(d)))
            .collect()
    };
    let cdf = named(&|d| {
        let n = d.sorted_latency.len() as f64;
        d.sorted_latency
            .iter()
            .enumerate()
            .map(|(i, l)| (*l, (i + 1) as f64 / n))
            .collect()
    });
    let mut rps = Vec::new();
    for (d, c) in derived.iter().zip(&colours) {
        rps.push((
            format!("{} success", d.row.strategy),
            *c,
            d.rps
                .iter()
                .map(|(t, ok, _)| (*t, f64::from(*ok)))
                .collect(),
        ));
        rps.push((
            format!("{} failed", d.row.strategy),
            lighter(*c),
            d.rps
                .iter()
                .map(|(t, _, failed)| (*t, f64::from(*failed)))
                .collect(),
        ));
    }
    let bars = |f: &dyn Fn(&Row) -> f64| -> Vec<(String, RGBColor, f64)> {
        derived
            .iter()
            .zip(&colours)
            .map(|(d, c)| (d.row.strategy.clone(), *c, f(&d.row)))
            .collect()
    };
    Ok(vec![
        (
            "latency_cdf",
            line_chart("Latency CDF", "latency (s)", "cumulative probability", &cdf)?,
        ),
        (
            "rps",
            line_chart(
                "Requests per second",
                "time (s)",
                "requests per second",
                &rps,
            )?,
        ),
        (
            "running_pods",
            line_chart(
                "Running pods",
                "time (s)",
                "running pods",
                &named(&|d| d.running.clone()),
            )?,
        ),
        (
            "accumulated_cost",
            line_chart(
                "Accumulated cost",
                "time (s)",
                "cost (pod-hours)",
                &named(&|d| d.cost.clone()),
            )?,
        ),
        (
            "avg_latency",
            bar_chart(
                "Average latency",
                "latency (s)",
                &bars(&|r| r.avg_latency_s),
                2,
            )?,
        ),
        (
            "p99_latency",
            bar_chart("P99 latency", "latency (s)", &bars(&|r| r.p99_latency_s), 2)?,
        ),
        (
            "total_cost",
            bar_chart(
                "Total cost",
                "cost (pod-hours)",
                &bars(&|r| r.total_cost),
                3,
            )?,
        ),
        (
            "failed_requests",
            bar_chart(
                "Failed requests",
                "failed requests",
                &bars(&|r| r.failed_requests as f64),
                0,
            )?,
        ),
    ])
}

/// Rasterises an SVG to PNG bytes with resvg; text uses the system fonts (`sans-serif` is mapped to the first
/// available of DejaVu Sans, Liberation Sans, Arial, or any installed family).
pub(crate) fn svg_to_png(
    svg: &str,
    fonts: &std::sync::Arc<resvg::usvg::fontdb::Database>,
) -> Result<Vec<u8>, DemoError> {
    let options = resvg::usvg::Options {
        fontdb: fonts.clone(),
        ..Default::default()
    };
    let tree =
        resvg::usvg::Tree::from_str(svg, &options).map_err(|e| DemoError::Png(e.to_string()))?;
    let size = tree.size().to_int_size();
    let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height())
        .ok_or_else(|| DemoError::Png("empty image".into()))?;
    pixmap.fill(resvg::tiny_skia::Color::WHITE);
    resvg::render(
        &tree,
        resvg::tiny_skia::Transform::default(),
        &mut pixmap.as_mut(),
    );
    pixmap
        .encode_png()
        .map_err(|e| DemoError::Png(e.to_string()))
}

/// The system fonts, with `sans-serif` bound to an installed family.
pub(crate) fn system_fonts() -> std::sync::Arc<resvg::usvg::fontdb::Database> {
    let mut db = resvg::usvg::fontdb::Database::new();
    db.load_system_fonts();
    let families: Vec<String> = db
        .faces()
        .flat_map(|f| f.families.iter().map(|(name, _)| name.clone()))
        .collect();
    let preferred = [
        "DejaVu Sans",
        "Liberation Sans",
        "Arial",
        "Noto Sans",
        "FreeSans",
    ];
    if let Some(family) = preferred
        .iter()
        .find(|p| families.iter().any(|f| f == *p))
        .map(|p| p.to_string())
        .or_else(|| families.first().cloned())
    {
        db.set_sans_serif_family(family);
    }
    std::sync::Arc::new(db)
}

fn write(path: &Path, bytes: impl AsRef<[u8]>) -> Result<(), DemoError> {
    std::fs::write(path, bytes).map_err(|source| DemoError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn index_html(rows: &[Row], title: &str) -> String {
    let mut out = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title>\n<style>body{{font-family:sans-serif;margin:2em}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #999;padding:4px 10px;text-align:right}}\
         img{{width:48%;min-width:400px}}</style></head><body>\n<h1>{title}</h1>\n<table>\n<tr><th>Strategy</th>\
         <th>Average latency (s)</th><th>P99 latency (s)</th><th>Total cost (pod-hours)</th><th>Failed requests</th>\
         <th>Requests</th></tr>\n"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{:.3}</td><td>{}</td><td>{}</td></tr>",
            r.strategy,
            r.avg_latency_s,
            r.p99_latency_s,
            r.total_cost,
            r.failed_requests,
            r.requests
        );
    }
    out.push_str("</table>\n<div>\n");
    for (stem, panel_title) in PANELS {
        let _ = writeln!(
            out,
            "<a href=\"{stem}.svg\"><img src=\"{stem}.png\" alt=\"{panel_title}\" title=\"{panel_title} (click for SVG)\"></a>"
        );
    }
    out.push_str("</div>\n</body></html>\n");
    out
}

/// Writes the report for `runs` into `dir`: `<panel>.svg` and `<panel>.png` for every panel of [`PANELS`],
/// `table.md`, `index.html` and `summary.json`. Returns the table rows.
pub fn write_report(runs: &[StrategyRun], dir: &Path, title: &str) -> Result<Vec<Row>, DemoError> {
    std::fs::create_dir_all(dir).map_err(|source| DemoError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let fonts = system_fonts();
    for (stem, svg) in panels(runs)? {
        write(&dir.join(format!("{stem}.svg")), &svg)?;
        write(&dir.join(format!("{stem}.png")), svg_to_png(&svg, &fonts)?)?;
    }
    let rows = rows(runs);
    write(&dir.join("table.md"), table_markdown(&rows))?;
    write(&dir.join("index.html"), index_html(&rows, title))?;
    let summary =
        serde_json::to_string_pretty(&rows).map_err(|e| DemoError::Data(e.to_string()))?;
    write(&dir.join("summary.json"), summary)?;
    Ok(rows)
}
