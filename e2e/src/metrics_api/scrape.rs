//! The client that scrapes pods' Prometheus text exposition, and reading a value from it as AIBrix does
//! (`aibrix-autoscaler.md` §5.4): the family must be declared `# TYPE … gauge` or `counter`, and its **first
//! sample** is the value, whatever its labels (optionally the first sample matching a `metricLabelSelector`).
//! Fetching and parsing the text format is [`crate::prometheus`]'s.

use std::time::Duration;

use crate::http_client::{http_client_with, HttpClientError, HttpClientOptions};
use crate::prometheus::{Exposition, MetricKind};

use super::selector::Selector;

/// The value of gauge or counter `family`: its first sample, or the first one whose labels match
/// `metric_selector`. `None` if the family is absent, of another type, or its value is NaN.
pub fn value(
    exposition: &Exposition,
    family: &str,
    metric_selector: Option<&Selector>,
) -> Option<f64> {
    match exposition.kind(family) {
        MetricKind::Gauge | MetricKind::Counter => {}
        MetricKind::Histogram | MetricKind::Summary | MetricKind::Untyped => return None,
    }
    let samples = exposition.samples(family);
    let sample = match metric_selector.filter(|s| !s.is_empty()) {
        Some(selector) => samples.iter().find(|s| selector.matches(&s.labels))?,
        None => samples.first()?,
    };
    (!sample.value.is_nan()).then_some(sample.value)
}

/// An HTTP client for scraping pods: `timeout` per request and per connection, idle connections kept 30 s.
pub(crate) fn scrape_client(timeout: Duration) -> Result<reqwest::Client, HttpClientError> {
    http_client_with(HttpClientOptions {
        connect_timeout: Some(timeout),
        pool_idle_timeout: Some(Duration::from_secs(30)),
        ..HttpClientOptions::timeout(timeout)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mock_vllm::metrics::names;

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
        assert_eq!(value(&e, names::NUM_REQUESTS_RUNNING, None), Some(8.0));
        assert_eq!(value(&e, names::GPU_CACHE_USAGE_PERC, None), Some(0.25));
        assert_eq!(value(&e, names::PROMPT_TOKENS, None), Some(1234.0));
        assert_eq!(value(&e, "weird", None), Some(3e-05));
    }

    #[test]
    fn other_types_missing_families_and_nan_have_no_value() {
        let e = Exposition::parse(TEXT);
        assert_eq!(value(&e, names::E2E_REQUEST_LATENCY, None), None);
        assert_eq!(
            value(&e, "vllm:untyped", None),
            None,
            "no TYPE line: untyped"
        );
        assert_eq!(value(&e, "vllm:absent", None), None);
        assert_eq!(value(&e, "vllm:nan", None), None);
    }

    #[test]
    fn metric_label_selector_picks_the_first_matching_sample() {
        let e = Exposition::parse(TEXT);
        let engine1 = Selector::parse("engine=1").expect("parses");
        assert_eq!(
            value(&e, names::GPU_CACHE_USAGE_PERC, Some(&engine1)),
            Some(0.75)
        );
        let none = Selector::parse("engine=9").expect("parses");
        assert_eq!(value(&e, names::GPU_CACHE_USAGE_PERC, Some(&none)), None);
        let empty = Selector::default();
        assert_eq!(
            value(&e, names::GPU_CACHE_USAGE_PERC, Some(&empty)),
            Some(0.25)
        );
    }
}
