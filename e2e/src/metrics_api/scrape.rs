//! Scraping a pod's Prometheus text exposition and reading a value from it as AIBrix does
//! (`aibrix-autoscaler.md` §5.4): the family must be declared `# TYPE … gauge` or `counter`, and its **first
//! sample** is the value, whatever its labels (optionally the first sample matching a `metricLabelSelector`).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::selector::Selector;

/// A Prometheus metric type (`# TYPE` line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// `gauge`.
    Gauge,
    /// `counter`.
    Counter,
    /// Anything else (`histogram`, `summary`, `untyped`, …).
    Other,
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

/// A parsed exposition: declared types and samples by sample name, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exposition {
    types: HashMap<String, MetricKind>,
    samples: HashMap<String, Vec<Sample>>,
}

impl Exposition {
    /// Parses the text format (version 0.0.4). Malformed lines are skipped.
    pub fn parse(text: &str) -> Self {
        let mut out = Self::default();
        for line in text.lines() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut words = rest.split_whitespace();
                if let (Some(name), Some(kind)) = (words.next(), words.next()) {
                    let kind = match kind {
                        "gauge" => MetricKind::Gauge,
                        "counter" => MetricKind::Counter,
                        _ => MetricKind::Other,
                    };
                    out.types.entry(name.to_string()).or_insert(kind);
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

    /// The value of gauge or counter `family`: its first sample, or the first one whose labels match
    /// `metric_selector`. `None` if the family is absent, of another type, or its value is NaN.
    pub fn value(&self, family: &str, metric_selector: Option<&Selector>) -> Option<f64> {
        match self.types.get(family)? {
            MetricKind::Gauge | MetricKind::Counter => {}
            MetricKind::Other => return None,
        }
        let samples = self.samples.get(family)?;
        let sample = match metric_selector.filter(|s| !s.is_empty()) {
            Some(selector) => samples.iter().find(|s| selector.matches(&s.labels))?,
            None => samples.first()?,
        };
        (!sample.value.is_nan()).then_some(sample.value)
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
fn parse_labels(mut text: &str) -> Option<(BTreeMap<String, String>, &str)> {
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
pub enum ScrapeError {
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

/// An HTTP client for scraping pods: no proxy (pod addresses are loopback), `timeout` per request.
pub fn scrape_client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .connect_timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
}

/// `GET http://<ip>:<port><path>` and parse it.
pub async fn scrape(
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
# HELP vllm:gpu_cache_usage_perc GPU KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{engine="0",model_name="a"} 0.25
vllm:gpu_cache_usage_perc{engine="1",model_name="b"} 0.75
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="a"} 1234.0
# TYPE vllm:e2e_request_latency_seconds histogram
vllm:e2e_request_latency_seconds_bucket{le="1.0"} 3.0
vllm:e2e_request_latency_seconds_sum 2.5
vllm:e2e_request_latency_seconds{x="y"} 1.0
vllm:untyped 7
# TYPE vllm:nan gauge
vllm:nan NaN
# TYPE weird gauge
weird{path="a \"quoted\", {brace} \\ here",b="c"} 3e-05 1700000000000
"#;

    #[test]
    fn first_sample_of_gauges_and_counters() {
        let e = Exposition::parse(TEXT);
        assert_eq!(e.value("vllm:num_requests_running", None), Some(8.0));
        assert_eq!(e.value("vllm:gpu_cache_usage_perc", None), Some(0.25));
        assert_eq!(e.value("vllm:prompt_tokens_total", None), Some(1234.0));
        assert_eq!(e.value("weird", None), Some(3e-05));
    }

    #[test]
    fn other_types_missing_families_and_nan_have_no_value() {
        let e = Exposition::parse(TEXT);
        assert_eq!(e.value("vllm:e2e_request_latency_seconds", None), None);
        assert_eq!(e.value("vllm:untyped", None), None, "no TYPE line: untyped");
        assert_eq!(e.value("vllm:absent", None), None);
        assert_eq!(e.value("vllm:nan", None), None);
    }

    #[test]
    fn metric_label_selector_picks_the_first_matching_sample() {
        let e = Exposition::parse(TEXT);
        let engine1 = Selector::parse("engine=1").expect("parses");
        assert_eq!(
            e.value("vllm:gpu_cache_usage_perc", Some(&engine1)),
            Some(0.75)
        );
        let none = Selector::parse("engine=9").expect("parses");
        assert_eq!(e.value("vllm:gpu_cache_usage_perc", Some(&none)), None);
        let empty = Selector::default();
        assert_eq!(
            e.value("vllm:gpu_cache_usage_perc", Some(&empty)),
            Some(0.25)
        );
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
