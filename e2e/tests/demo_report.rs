//! The demo report generator on a synthetic recorded run: every panel exists as SVG (well-formed, with its axis
//! titles and series names) and PNG (decodable, non-trivial); `table.md` has one row per strategy with the mean,
//! the pandas-style P99, the pod-hour cost and the failed count computed here independently; `index.html`
//! references every image.

mod common;

use e2e::demo::report::{write_report, PodCount, StrategyRun, PANELS};
use e2e::workload::replay::RequestRecord;

use common::temp_dir;

fn record(id: u64, start: f64, latency: f64, ok: bool) -> RequestRecord {
    let mut r = RequestRecord::new(id, start, 1_700_000_000.0 + start);
    r.latency = latency;
    r.end_time = start + latency;
    r.status_code = Some(if ok { 200 } else { 503 });
    r.status = if ok { "success" } else { "error" }.into();
    r
}

/// A strategy with `n` requests at 2 per second, latencies a deterministic function of `scale`, every `fail_every`th
/// one failed, and pods stepping 1 → `peak` → 1 over 60 s (plus one Pending pod at 10–19 s).
fn run(name: &str, n: u64, scale: f64, fail_every: u64, peak: u32) -> StrategyRun {
    let records = (0..n)
        .map(|i| {
            let latency = scale * (1.0 + ((i * 37) % 101) as f64 / 10.0);
            record(i, 5.0 + i as f64 * 0.5, latency, i % fail_every != 0)
        })
        .collect();
    let pods = (0..=60)
        .map(|t| PodCount {
            t: 5.0 + t as f64,
            running: if (20..40).contains(&t) { peak } else { 1 },
            pending: u32::from((10..20).contains(&t)),
            init: 0,
        })
        .collect();
    StrategyRun {
        name: name.into(),
        workload_lines: n as usize + 3,
        records,
        pods,
    }
}

/// pandas' `quantile(q)` with linear interpolation.
fn pandas_quantile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let pos = q * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

#[test]
fn the_report_has_every_panel_the_table_and_the_page() {
    let runs = vec![
        run("APA", 120, 1.0, 7, 4),
        run("KPA", 100, 0.8, 10, 5),
        run("HPA", 90, 1.5, 30, 6),
    ];
    let dir = temp_dir("demo-report-test");
    // Nothing from an earlier run may stand in for a file the report failed to write.
    let _ = std::fs::remove_dir_all(&dir);
    let rows = write_report(&runs, &dir, "test report").expect("report written");
    assert_eq!(rows.len(), 3);

    // Panels: both formats, non-trivial.
    let series_names = ["APA", "KPA", "HPA"];
    for (stem, title) in PANELS {
        let svg_path = dir.join(format!("{stem}.svg"));
        let svg = std::fs::read_to_string(&svg_path)
            .unwrap_or_else(|e| panic!("{}: {e}", svg_path.display()));
        let doc = resvg::usvg::roxmltree::Document::parse(&svg)
            .unwrap_or_else(|e| panic!("{stem}.svg: {e}"));
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        let texts: Vec<String> = doc
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .map(|n| {
                n.descendants()
                    .filter(|t| t.is_text())
                    .filter_map(|t| t.text())
                    .collect::<String>()
                    .trim()
                    .to_string()
            })
            .collect();
        assert!(
            texts.iter().any(|t| t == title),
            "{stem}.svg lacks its title {title:?}: {texts:?}"
        );
        for name in series_names {
            assert!(
                texts.iter().any(|t| t.starts_with(name)),
                "{stem}.svg lacks series {name}: {texts:?}"
            );
        }
        let axis = match stem {
            "latency_cdf" => vec!["latency (s)", "cumulative probability"],
            "rps" => vec!["time (s)", "requests per second"],
            "running_pods" => vec!["time (s)", "running pods"],
            "accumulated_cost" => vec!["time (s)", "cost (pod-hours)"],
            "total_cost" => vec!["strategy", "cost (pod-hours)"],
            "failed_requests" => vec!["strategy", "failed requests"],
            _ => vec!["strategy", "latency (s)"],
        };
        for a in axis {
            assert!(
                texts.iter().any(|t| t == a),
                "{stem}.svg lacks axis title {a:?}"
            );
        }
        if stem == "rps" {
            assert!(
                texts.iter().any(|t| t == "KPA success") && texts.iter().any(|t| t == "HPA failed")
            );
        }

        let png = std::fs::read(dir.join(format!("{stem}.png"))).expect("png");
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{stem}.png signature"
        );
        assert!(png.len() > 10_000, "{stem}.png is only {} bytes", png.len());
        let pixmap = resvg::tiny_skia::Pixmap::decode_png(&png).expect("png decodes");
        assert_eq!((pixmap.width(), pixmap.height()), (800, 480));
        // Not blank: a good share of pixels are not white.
        let inked = pixmap
            .pixels()
            .iter()
            .filter(|p| p.red() < 200 || p.green() < 200 || p.blue() < 200)
            .count();
        assert!(inked > 2_000, "{stem}.png has only {inked} inked pixels");
    }

    // The table, against numbers computed here.
    let table = std::fs::read_to_string(dir.join("table.md")).expect("table.md");
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2 + runs.len(), "{table}");
    assert!(lines[0].contains("Average latency") && lines[0].contains("P99 latency"));
    for (run, line) in runs.iter().zip(&lines[2..]) {
        let latencies: Vec<f64> = run.records.iter().map(|r| r.latency).collect();
        let avg = latencies.iter().sum::<f64>() / latencies.len() as f64;
        let p99 = pandas_quantile(&latencies, 0.99);
        let ok = run
            .records
            .iter()
            .filter(|r| r.status_code == Some(200))
            .count();
        let failed = run.workload_lines - ok;
        // 60 one-second steps: 1 pod for 30 s, 1 running + 1 pending for 10 s, `peak` for 20 s.
        let peak = run.pods.iter().map(|p| p.running).max().expect("pods");
        let pod_seconds: f64 = run
            .pods
            .windows(2)
            .map(|w| f64::from(w[1].running + w[1].pending))
            .sum();
        let cost = pod_seconds / 3600.0;
        assert!((cost - f64::from(30 + 2 * 10 + peak * 20) / 3600.0).abs() < 1e-12);
        let expected = format!(
            "| {} | {avg:.2} | {p99:.2} | {cost:.3} | {failed} | {} |",
            run.name,
            run.records.len()
        );
        assert_eq!(*line, expected);
    }

    // The page.
    let html = std::fs::read_to_string(dir.join("index.html")).expect("index.html");
    for (stem, _) in PANELS {
        assert!(
            html.contains(&format!("src=\"{stem}.png\"")),
            "index.html lacks {stem}.png"
        );
        assert!(
            html.contains(&format!("href=\"{stem}.svg\"")),
            "index.html lacks {stem}.svg"
        );
    }
    for run in &runs {
        assert!(html.contains(&format!("<td>{}</td>", run.name)));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn pandas_quantile_matches_known_values() {
    // pandas.Series([1, 2, 3, 4]).quantile(0.99) == 3.97
    assert!((pandas_quantile(&[4.0, 1.0, 3.0, 2.0], 0.99) - 3.97).abs() < 1e-12);
}
