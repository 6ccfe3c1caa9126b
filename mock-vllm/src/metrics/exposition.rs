//! The text exposition, written the way vLLM's Python `prometheus_client` writes it rather than the way the Rust
//! `prometheus` crate's encoder does: every value and bucket bound prints as a Python float (`0.0`, `8.0`,
//! `1e-05`, `le="1.0"`), and a family is its `# HELP` and `# TYPE` lines followed by its samples, histograms as
//! `_bucket`/`_count`/`_sum`. Scrapers that compare strings (AIBrix's preStop hook greps for a literal `0.0`) see
//! what a real vLLM serves.

use std::fmt::Write;

use prometheus::proto::{MetricFamily, MetricType};

/// A float as Python's `repr` prints it (`0.0`, `8.0`, `0.4623`, `1e-05`, `1e+16`), with the non-finite values
/// spelled as Prometheus spells them (`+Inf`, `-Inf`, `NaN`).
pub fn python_float(value: f64) -> String {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let magnitude = value.abs();
    if value != 0.0 && !(1e-4..1e16).contains(&magnitude) {
        // Rust's `{:e}` gives "1e-5"; Python writes at least two exponent digits with a sign.
        let s = format!("{value:e}");
        return match s.split_once('e') {
            Some((mantissa, exponent)) => {
                let (sign, digits) = match exponent.strip_prefix('-') {
                    Some(d) => ('-', d),
                    None => ('+', exponent),
                };
                format!("{mantissa}e{sign}{digits:0>2}")
            }
            None => s,
        };
    }
    if value.fract() == 0.0 {
        format!("{value:.1}")
    } else {
        format!("{value}")
    }
}

fn write_labels(out: &mut String, labels: &[(&str, &str)]) {
    if labels.is_empty() {
        return;
    }
    out.push('{');
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let escaped = value
            .replace('\\', "\\\\")
            .replace('\n', "\\n")
            .replace('"', "\\\"");
        let _ = write!(out, "{name}=\"{escaped}\"");
    }
    out.push('}');
}

/// Text format 0.0.4, in `prometheus_client`'s style (see the module doc). Families print in the order given.
pub fn encode_python_style(families: &[MetricFamily]) -> String {
    let mut out = String::with_capacity(16 * 1024);
    for family in families {
        let name = family.name();
        let help = family.help().replace('\\', "\\\\").replace('\n', "\\n");
        let kind = match family.get_field_type() {
            MetricType::COUNTER => "counter",
            MetricType::GAUGE => "gauge",
            MetricType::HISTOGRAM => "histogram",
            MetricType::SUMMARY => "summary",
            MetricType::UNTYPED => "untyped",
        };
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for metric in family.get_metric() {
            let labels: Vec<(&str, &str)> = metric
                .get_label()
                .iter()
                .map(|l| (l.name(), l.value()))
                .collect();
            match family.get_field_type() {
                MetricType::HISTOGRAM => {
                    let h = metric.get_histogram();
                    for bucket in h.get_bucket() {
                        let le = python_float(bucket.upper_bound());
                        let mut with_le = labels.clone();
                        with_le.push(("le", &le));
                        out.push_str(name);
                        out.push_str("_bucket");
                        write_labels(&mut out, &with_le);
                        let _ =
                            writeln!(out, " {}", python_float(bucket.cumulative_count() as f64));
                    }
                    let mut with_inf = labels.clone();
                    with_inf.push(("le", "+Inf"));
                    out.push_str(name);
                    out.push_str("_bucket");
                    write_labels(&mut out, &with_inf);
                    let count = python_float(h.get_sample_count() as f64);
                    let _ = writeln!(out, " {count}");
                    out.push_str(name);
                    out.push_str("_count");
                    write_labels(&mut out, &labels);
                    let _ = writeln!(out, " {count}");
                    out.push_str(name);
                    out.push_str("_sum");
                    write_labels(&mut out, &labels);
                    let _ = writeln!(out, " {}", python_float(h.get_sample_sum()));
                }
                kind => {
                    let value = match kind {
                        MetricType::COUNTER => metric.get_counter().get_value(),
                        _ => metric.get_gauge().get_value(),
                    };
                    out.push_str(name);
                    write_labels(&mut out, &labels);
                    let _ = writeln!(out, " {}", python_float(value));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_python() {
        assert_eq!(python_float(0.0), "0.0");
        assert_eq!(python_float(8.0), "8.0");
        assert_eq!(python_float(0.4623), "0.4623");
        assert_eq!(python_float(0.001), "0.001");
        assert_eq!(python_float(1e-5), "1e-05");
        assert_eq!(python_float(2560.0), "2560.0");
        assert_eq!(python_float(1e16), "1e+16");
        assert_eq!(python_float(f64::INFINITY), "+Inf");
    }
}
