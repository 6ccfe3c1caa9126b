//! A picture of a generated workload: requests per second and prompt/output lengths over time, as SVG.
//!
//! Owned here so the generator stays free of drawing code. Three stacked panels share the time axis (seconds):
//! the target rate of each interval with the realized arrivals per interval, then the target prompt and output
//! lengths with the realized mean length per interval. Only plotters' SVG backend is compiled in (no font or
//! bitmap dependencies), so PNG is not offered; `.svg` opens in any browser.

use std::path::Path;

use plotters::prelude::*;

use super::generate::GeneratedWorkload;
use super::WorkloadError;

/// Per-interval series realized by a workload: arrivals per second and mean lengths.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Realized {
    /// Interval start times, seconds.
    pub time_s: Vec<f64>,
    /// Requests per second in each interval.
    pub rps: Vec<f64>,
    /// Mean prompt length per interval (`None` where there were no requests with a length).
    pub prompt_len: Vec<Option<f64>>,
    /// Mean output length per interval.
    pub output_len: Vec<Option<f64>>,
}

impl Realized {
    /// Buckets `workload`'s requests into its intervals.
    pub fn of(workload: &GeneratedWorkload) -> Self {
        let interval = workload.interval_ms.max(1);
        let span = workload.trace.span_ms();
        let len = ((span / interval) as usize + 1).max(workload.rps.len());
        let mut count = vec![0usize; len];
        let mut prompt = vec![(0.0, 0usize); len];
        let mut output = vec![(0.0, 0usize); len];
        for entry in &workload.trace.entries {
            let i = ((entry.timestamp / interval) as usize).min(len - 1);
            for r in &entry.requests {
                count[i] += 1;
                if let Some(p) = r.prompt_length {
                    prompt[i].0 += p as f64;
                    prompt[i].1 += 1;
                }
                if let Some(o) = r.output_length {
                    output[i].0 += o as f64;
                    output[i].1 += 1;
                }
            }
        }
        let mean = |(sum, n): (f64, usize)| (n > 0).then(|| sum / n as f64);
        let per_second = 1000.0 / interval as f64;
        Self {
            time_s: (0..len)
                .map(|i| (i as u64 * interval) as f64 / 1000.0)
                .collect(),
            rps: count.iter().map(|&c| c as f64 * per_second).collect(),
            prompt_len: prompt.into_iter().map(mean).collect(),
            output_len: output.into_iter().map(mean).collect(),
        }
    }
}

/// Title, y unit, target points, generated points.
type Panel<'a> = (&'a str, &'a str, Vec<(f64, f64)>, Vec<(f64, f64)>);

fn plot_error(e: impl std::fmt::Display) -> WorkloadError {
    WorkloadError::Plot(e.to_string())
}

/// Draws `workload` to `path` (must end in `.svg`).
pub fn plot_svg(workload: &GeneratedWorkload, path: &Path) -> Result<(), WorkloadError> {
    let is_svg = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("svg"));
    if !is_svg {
        return Err(WorkloadError::Plot(format!(
            "{}: only SVG output is supported; name the file *.svg",
            path.display()
        )));
    }
    let realized = Realized::of(workload);
    let interval_s = workload.interval_ms as f64 / 1000.0;
    let target = |series: &[f64]| -> Vec<(f64, f64)> {
        series
            .iter()
            .enumerate()
            .map(|(i, &v)| (i as f64 * interval_s, v))
            .collect()
    };
    let observed = |series: &[Option<f64>]| -> Vec<(f64, f64)> {
        series
            .iter()
            .zip(&realized.time_s)
            .filter_map(|(v, &t)| v.map(|v| (t, v)))
            .collect()
    };
    let x_max = realized
        .time_s
        .last()
        .copied()
        .unwrap_or(0.0)
        .max(interval_s);

    let root = SVGBackend::new(path, (1000, 900)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let panels = root.split_evenly((3, 1));

    let rps_observed: Vec<(f64, f64)> = realized
        .time_s
        .iter()
        .copied()
        .zip(realized.rps.iter().copied())
        .collect();
    let panels_data: [Panel<'_>; 3] = [
        (
            "Requests per second",
            "RPS",
            target(&workload.rps),
            rps_observed,
        ),
        (
            "Prompt length (tokens)",
            "tokens",
            workload
                .prompt_len
                .as_deref()
                .map(target)
                .unwrap_or_default(),
            observed(&realized.prompt_len),
        ),
        (
            "Output length (tokens)",
            "tokens",
            workload
                .completion_len
                .as_deref()
                .map(target)
                .unwrap_or_default(),
            observed(&realized.output_len),
        ),
    ];
    for (area, (title, unit, target, observed)) in panels.iter().zip(panels_data) {
        let y_max = target
            .iter()
            .chain(&observed)
            .map(|p| p.1)
            .fold(1.0_f64, f64::max)
            * 1.1;
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("time (s)")
            .y_desc(unit)
            .draw()
            .map_err(plot_error)?;
        // The realized series first, the target drawn over it; an empty series gets no legend entry.
        let series = [
            (observed, ShapeStyle::from(BLUE.mix(0.6)), "generated", BLUE),
            (target, RED.stroke_width(2), "target", RED),
        ];
        for (points, style, label, color) in series {
            if points.is_empty() {
                continue;
            }
            chart
                .draw_series(LineSeries::new(points, style))
                .map_err(plot_error)?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(plot_error)?;
    }
    root.present().map_err(plot_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::generate::{generate, GenerateConfig};
    use crate::workload::patterns::{Pattern, StepShape};

    #[test]
    fn draws_an_svg_and_refuses_other_formats() {
        let tokenizer = mock_vllm::Tokenizer::new();
        let mut config = GenerateConfig::new(
            30_000,
            Pattern::parse_steps("1,4,8", StepShape::Hold).expect("steps"),
        );
        config.prompt_len = Some(Pattern::Constant(16.0));
        config.completion_len = Some(Pattern::Constant(8.0));
        let workload = generate(&config, None, &tokenizer).expect("generates");
        let realized = Realized::of(&workload);
        assert_eq!(
            realized.rps.iter().sum::<f64>() as usize,
            workload.trace.num_requests()
        );
        let dir = std::env::temp_dir().join(format!("e2e-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let svg = dir.join("workload.svg");
        plot_svg(&workload, &svg).expect("plots");
        let text = std::fs::read_to_string(&svg).expect("written");
        assert!(text.starts_with("<svg") && text.contains("Requests per second"));
        assert!(plot_svg(&workload, &dir.join("workload.png")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
