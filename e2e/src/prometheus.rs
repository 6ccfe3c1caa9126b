//! The Prometheus text exposition format (version 0.0.4), as a mock-vllm pod serves it on `/metrics`: metric
//! families declared by `# TYPE` lines, their kinds, and sample lines with labels.
//!
//! One parser, and one [`scrape`] (`GET` a pod's `/metrics` and parse it), for the whole harness: the metrics adapter reads a value as AIBrix does (a gauge or counter family's
//! first sample, [`crate::metrics_api::scrape::value`]) and the observer records gauges (a gauge or untyped family's
//! first sample, [`crate::observe::observer::gauges`]). Both need the declared kind, so that a counter or a
//! histogram is never read as a gauge; this module only parses and answers lookups, the reading rules stay with
//! their readers.
//!
//! A histogram or summary family `x` is exposed as samples `x_bucket`, `x_sum`, `x_count` (and `x` itself for
//! quantiles); [`Exposition::kind`] resolves those sample names to the family's kind. Malformed lines are skipped,
//! as Prometheus would fail the scrape but a reader here should still see the rest.

use std::collections::{BTreeMap, HashMap};

/// Label names to values, sorted by name.
pub(crate) type Labels = BTreeMap<String, String>;

/// A metric family's kind, from its `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// `gauge`: a value that goes up and down (vLLM's running and waiting requests, KV-cache usage).
    Gauge,
    /// `counter`: a running total (`…_total`).
    Counter,
    /// `histogram`: `_bucket{le=…}`, `_sum` and `_count` series.
    Histogram,
    /// `summary`: quantile samples plus `_sum` and `_count`.
    Summary,
    /// Declared `untyped`, declared with an unknown kind, or not declared at all.
    Untyped,
}

impl MetricKind {
    fn from_type_word(word: &str) -> Self {
        match word {
            "gauge" => Self::Gauge,
            "counter" => Self::Counter,
            "histogram" => Self::Histogram,
            "summary" => Self::Summary,
            _ => Self::Untyped,
        }
    }
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Empty for a sample line without `{…}`.
    pub labels: Labels,
    /// `+Inf`, `-Inf` and `NaN` are kept as the float values they spell.
    pub value: f64,
}

/// A parsed exposition: declared kinds by family name, and samples by sample name in exposition order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exposition {
    kinds: HashMap<String, MetricKind>,
    samples: HashMap<String, Vec<Sample>>,
}

impl Exposition {
    /// Parses the text format. Malformed lines are skipped; a family's first `# TYPE` line wins.
    pub fn parse(text: &str) -> Self {
        let mut out = Self::default();
        for line in text.lines() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut words = rest.split_whitespace();
                if let (Some(name), Some(kind)) = (words.next(), words.next()) {
                    out.kinds
                        .entry(name.to_string())
                        .or_insert(MetricKind::from_type_word(kind));
                }
                continue;
            }
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some((name, sample)) = parse_sample(line) {
                out.samples.entry(name).or_default().push(sample);
            }
        }
        out
    }

    /// The kind of the family that sample name `name` belongs to: its own `# TYPE`, else that of the histogram or
    /// summary it is a `_bucket`/`_sum`/`_count` series of, else [`MetricKind::Untyped`].
    pub fn kind(&self, name: &str) -> MetricKind {
        if let Some(kind) = self.kinds.get(name) {
            return *kind;
        }
        ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|suffix| name.strip_suffix(suffix))
            .filter_map(|family| self.kinds.get(family))
            .find(|kind| matches!(kind, MetricKind::Histogram | MetricKind::Summary))
            .copied()
            .unwrap_or(MetricKind::Untyped)
    }

    /// The samples named `name`, in exposition order (empty if there are none).
    pub fn samples(&self, name: &str) -> &[Sample] {
        self.samples.get(name).map_or(&[], Vec::as_slice)
    }
}

/// Parses `name{a="x",b="y"} value [timestamp]`.
fn parse_sample(line: &str) -> Option<(String, Sample)> {
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let name = &line[..name_end];
    if name.is_empty() {
        return None;
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(inner)?;
        labels = parsed;
        rest = after;
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().ok()?,
    };
    Some((name.to_string(), Sample { labels, value }))
}

/// Parses `a="x",b="y"}` (after the `{`), returning the labels and the text after the `}`.
fn parse_labels(mut text: &str) -> Option<(Labels, &str)> {
    let mut labels = BTreeMap::new();
    loop {
        text = text.trim_start_matches([' ', ',']);
        if let Some(after) = text.strip_prefix('}') {
            return Some((labels, after));
        }
        let eq = text.find('=')?;
        let key = text[..eq].trim().to_string();
        text = text[eq + 1..].trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = text.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break i,
                c => value.push(c),
            }
        };
        labels.insert(key, value);
        text = &text[end + 1..];
    }
}

/// Why a scrape failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ScrapeError {
    /// Connecting, timing out, reading.
    #[error("GET {url}: {source}")]
    Http {
        /// The URL.
        url: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// A non-2xx answer.
    #[error("GET {url}: status {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status.
        status: u16,
    },
}

/// `GET http://<ip>:<port><path>` and parse it.
pub(crate) async fn scrape(
    http: &reqwest::Client,
    ip: &str,
    port: u16,
    path: &str,
) -> Result<Exposition, ScrapeError> {
    let url = format!("http://{ip}:{port}{path}");
    let http_err = |source| ScrapeError::Http {
        url: url.clone(),
        source,
    };
    let response = http.get(&url).send().await.map_err(http_err)?;
    if !response.status().is_success() {
        return Err(ScrapeError::Status {
            status: response.status().as_u16(),
            url,
        });
    }
    let text = response.text().await.map_err(http_err)?;
    Ok(Exposition::parse(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="deepseek-llm-7b-chat"} 8.0
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="a"} 1234.0
# TYPE vllm:e2e_request_latency_seconds histogram
vllm:e2e_request_latency_seconds_bucket{le="1.0"} 3.0
vllm:e2e_request_latency_seconds_bucket{le="+Inf"} 4.0
vllm:e2e_request_latency_seconds_sum 2.5
vllm:e2e_request_latency_seconds_count 4
# TYPE vllm:odd_kind stateset
vllm:untyped 7
vllm:num_requests_running{engine="1"} 2 1700000000000
"#;

    #[test]
    fn kinds_come_from_type_lines_and_histogram_series_resolve_to_their_family() {
        let e = Exposition::parse(TEXT);
        assert_eq!(e.kind("vllm:num_requests_running"), MetricKind::Gauge);
        assert_eq!(e.kind("vllm:prompt_tokens_total"), MetricKind::Counter);
        assert_eq!(
            e.kind("vllm:e2e_request_latency_seconds"),
            MetricKind::Histogram
        );
        for series in ["_bucket", "_sum", "_count"] {
            assert_eq!(
                e.kind(&format!("vllm:e2e_request_latency_seconds{series}")),
                MetricKind::Histogram,
                "{series}"
            );
        }
        assert_eq!(e.kind("vllm:untyped"), MetricKind::Untyped);
        assert_eq!(e.kind("vllm:odd_kind"), MetricKind::Untyped);
        assert_eq!(e.kind("vllm:absent"), MetricKind::Untyped);
    }

    #[test]
    fn samples_keep_exposition_order_labels_and_special_values() {
        let e = Exposition::parse(TEXT);
        let running = e.samples("vllm:num_requests_running");
        assert_eq!(running.len(), 2);
        assert_eq!(running[0].value, 8.0);
        assert_eq!(running[0].labels["model_name"], "deepseek-llm-7b-chat");
        assert_eq!(running[1].value, 2.0, "a timestamp is not the value");
        let buckets = e.samples("vllm:e2e_request_latency_seconds_bucket");
        assert_eq!(buckets[1].labels["le"], "+Inf");
        assert_eq!(e.samples("vllm:absent"), &[]);
        let special = Exposition::parse("a +Inf\nb -Inf\nc NaN\n");
        assert_eq!(special.samples("a")[0].value, f64::INFINITY);
        assert_eq!(special.samples("b")[0].value, f64::NEG_INFINITY);
        assert!(special.samples("c")[0].value.is_nan());
    }

    #[test]
    fn label_values_with_escapes_and_braces() {
        let (name, sample) =
            parse_sample(r#"weird{path="a \"quoted\", {brace} \\ here",b="c"} 3e-05"#)
                .expect("parses");
        assert_eq!(name, "weird");
        assert_eq!(sample.labels["path"], r#"a "quoted", {brace} \ here"#);
        assert_eq!(sample.labels["b"], "c");
        assert!(parse_sample("name{a=\"unterminated} 1").is_none());
        assert!(parse_sample("novalue").is_none());
    }
}
