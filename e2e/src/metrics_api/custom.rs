//! `custom.metrics.k8s.io`: per-pod vLLM gauges (`local-control-plane.md` §7.1).
//!
//! - `GET …/namespaces/{ns}/pods/*/{metric}?labelSelector=…[&metricLabelSelector=…]` (the HPA's `Pods` metric):
//!   a `MetricValueList` with one item per running pod that matches the selector and has a value; an empty list
//!   when there are none (the HPA then reports "no metrics returned from custom metrics API").
//! - `GET …/namespaces/{ns}/pods/{name}/{metric}` (AIBrix's `custom` source, `GetForObject`): exactly one item, or
//!   404 — client-go's check is `len(items) != 1` → error.
//!
//! A value is the first sample of the pod's `family` (e.g. `vllm:gpu_cache_usage_perc`) times the metric's scale,
//! as a quantity string (`460m`, `46`). `metric.selector` is always `null` (the HPA does not read it).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::prometheus::Exposition;

use super::options::ServedMetric;
use super::scrape;
use super::selector::Selector;
use super::state::AppState;
use super::status::ApiError;
use super::time::now_rfc3339;
use crate::k8s::quantity::format_quantity;

/// The custom metrics API group.
pub const CUSTOM_GROUP: &str = "custom.metrics.k8s.io";

/// The two versions of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersion {
    /// `v1beta1` (item field `metricName`, `window`).
    V1beta1,
    /// `v1beta2` (item field `metric: {name, selector}`, `windowSeconds`), what kube-controller-manager prefers.
    V1beta2,
}

impl ApiVersion {
    /// The version named by a request path's segment, if it is one of the two served.
    pub(crate) fn from_segment(segment: &str) -> Option<Self> {
        match segment {
            "v1beta1" => Some(Self::V1beta1),
            "v1beta2" => Some(Self::V1beta2),
            _ => None,
        }
    }

    /// `v1beta1` / `v1beta2`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1beta1 => "v1beta1",
            Self::V1beta2 => "v1beta2",
        }
    }
}

/// `ObjectReference` of the described pod.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribedObject {
    /// `Pod`.
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// `/v1`, as custom-metrics-apiserver writes it for core kinds.
    pub api_version: String,
}

/// `MetricIdentifier` (v1beta2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricIdentifier {
    /// The metric's name.
    pub name: String,
    /// Its label selector (`null` here).
    pub selector: Option<Value>,
}

/// One `MetricValue` (v1beta2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricValue {
    /// The pod.
    pub described_object: DescribedObject,
    /// The metric.
    pub metric: MetricIdentifier,
    /// When it was read (RFC 3339).
    pub timestamp: String,
    /// The window the value covers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_seconds: Option<i64>,
    /// The value, a quantity string.
    pub value: String,
}

/// `MetricValueList` (v1beta2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricValueList {
    /// `MetricValueList`.
    pub kind: String,
    /// `custom.metrics.k8s.io/v1beta2`.
    pub api_version: String,
    /// Empty list metadata.
    pub metadata: Value,
    /// The values.
    pub items: Vec<MetricValue>,
}

/// One `MetricValue` (v1beta1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MetricValueV1beta1 {
    /// The pod.
    pub described_object: DescribedObject,
    /// The metric's name.
    pub metric_name: String,
    /// When it was read.
    pub timestamp: String,
    /// The window, seconds (JSON `window`).
    #[serde(default, rename = "window", skip_serializing_if = "Option::is_none")]
    pub window_seconds: Option<i64>,
    /// The value.
    pub value: String,
    /// Label selector (`null`).
    pub selector: Option<Value>,
}

/// `APIResourceList` for `custom.metrics.k8s.io/<version>`: one `pods/<metric>` entry per served metric.
pub fn discovery(version: ApiVersion, metrics: &[ServedMetric]) -> Value {
    let resources: Vec<Value> = metrics
        .iter()
        .map(|m| {
            json!({"name": format!("pods/{}", m.name), "singularName": "", "namespaced": true,
                   "kind": "MetricValueList", "verbs": ["get"]})
        })
        .collect();
    json!({
        "kind": "APIResourceList", "apiVersion": "v1",
        "groupVersion": format!("{CUSTOM_GROUP}/{}", version.as_str()),
        "resources": resources,
    })
}

/// The value of `metric` for one scraped pod: first sample × scale, as a quantity.
pub(crate) fn pod_value(
    metric: &ServedMetric,
    exposition: &Exposition,
    metric_selector: Option<&Selector>,
) -> Option<String> {
    scrape::value(exposition, &metric.family, metric_selector)
        .and_then(|v| format_quantity(v * metric.scale))
}

/// A `MetricValueList` of `version` from `(namespace, pod, value)` triples.
pub(crate) fn value_list(
    version: ApiVersion,
    metric: &str,
    values: &[(String, String, String)],
    timestamp: &str,
    window_seconds: i64,
) -> Value {
    let described = |namespace: &str, name: &str| DescribedObject {
        kind: "Pod".into(),
        namespace: namespace.into(),
        name: name.into(),
        api_version: "/v1".into(),
    };
    let items: Vec<Value> = values
        .iter()
        .map(|(namespace, name, value)| match version {
            ApiVersion::V1beta2 => json!(MetricValue {
                described_object: described(namespace, name),
                metric: MetricIdentifier {
                    name: metric.into(),
                    selector: None,
                },
                timestamp: timestamp.into(),
                window_seconds: Some(window_seconds),
                value: value.clone(),
            }),
            ApiVersion::V1beta1 => json!(MetricValueV1beta1 {
                described_object: described(namespace, name),
                metric_name: metric.into(),
                timestamp: timestamp.into(),
                window_seconds: Some(window_seconds),
                value: value.clone(),
                selector: None,
            }),
        })
        .collect();
    json!({
        "kind": "MetricValueList",
        "apiVersion": format!("{CUSTOM_GROUP}/{}", version.as_str()),
        "metadata": {},
        "items": items,
    })
}

/// `GET …/namespaces/{namespace}/pods/{name}/{metric}`, `name` being a pod or `*`.
pub(crate) async fn get(
    state: &AppState,
    version: ApiVersion,
    namespace: &str,
    name: &str,
    metric: &str,
    query: &BTreeMap<String, String>,
) -> Result<Value, ApiError> {
    let served = state
        .metrics
        .iter()
        .find(|m| m.name == metric)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "the server could not find the metric {metric} for pods"
            ))
        })?;
    let parse = |key: &str| {
        Selector::parse(query.get(key).map_or("", String::as_str))
            .map_err(|e| ApiError::bad_request(e.to_string()))
    };
    let metric_selector = parse("metricLabelSelector")?;
    let pods: Vec<Arc<Pod>> = if name == "*" {
        state.running_pods(Some(namespace), &parse("labelSelector")?)
    } else {
        state.running_pod(namespace, name).into_iter().collect()
    };
    let scraped = state.scrape_all(pods).await;
    let values: Vec<(String, String, String)> = scraped
        .iter()
        .filter_map(|(pod, exposition)| {
            let value = pod_value(served, exposition, Some(&metric_selector))?;
            Some((
                pod.metadata.namespace.clone().unwrap_or_default(),
                pod.metadata.name.clone().unwrap_or_default(),
                value,
            ))
        })
        .collect();
    if name != "*" && values.len() != 1 {
        return Err(ApiError::not_found(format!(
            "the server could not find the metric {metric} for pods {name}"
        )));
    }
    Ok(value_list(
        version,
        metric,
        &values,
        &now_rfc3339(),
        state.window.as_secs().max(1) as i64,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics_api::options::default_metrics;
    use mock_vllm::metrics::names;

    #[test]
    fn v1beta2_list_has_the_shape_the_hpa_decodes() {
        let list = value_list(
            ApiVersion::V1beta2,
            "gpu_cache_usage_perc",
            &[("default".into(), "mock-vllm-abc".into(), "46".into())],
            "2026-01-01T00:00:00Z",
            15,
        );
        let expected = json!({
            "kind": "MetricValueList", "apiVersion": "custom.metrics.k8s.io/v1beta2", "metadata": {},
            "items": [{
                "describedObject": {"kind": "Pod", "namespace": "default", "name": "mock-vllm-abc", "apiVersion": "/v1"},
                "metric": {"name": "gpu_cache_usage_perc", "selector": null},
                "timestamp": "2026-01-01T00:00:00Z", "windowSeconds": 15, "value": "46",
            }],
        });
        assert_eq!(list, expected);
        let typed: MetricValueList = serde_json::from_value(list).expect("decodes");
        assert_eq!(typed.items[0].metric.name, "gpu_cache_usage_perc");
    }

    #[test]
    fn v1beta1_list_uses_metric_name_and_window() {
        let list = value_list(
            ApiVersion::V1beta1,
            "num_requests_running",
            &[("ns".into(), "p".into(), "8".into())],
            "2026-01-01T00:00:00Z",
            15,
        );
        assert_eq!(list["apiVersion"], "custom.metrics.k8s.io/v1beta1");
        let item = &list["items"][0];
        assert_eq!(item["metricName"], "num_requests_running");
        assert_eq!(item["window"], 15);
        assert!(item.get("metric").is_none());
        assert!(item["selector"].is_null());
    }

    #[test]
    fn empty_list_is_still_a_list() {
        let list = value_list(ApiVersion::V1beta2, "m", &[], "t", 15);
        assert_eq!(list["items"], json!([]));
    }

    #[test]
    fn discovery_lists_every_metric_as_a_pods_subresource() {
        let doc = discovery(ApiVersion::V1beta2, &default_metrics());
        assert_eq!(doc["groupVersion"], "custom.metrics.k8s.io/v1beta2");
        let names: Vec<&str> = doc["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .map(|r| r["name"].as_str().expect("name"))
            .collect();
        for metric in [
            "gpu_cache_usage_perc",
            "kv_cache_usage_perc",
            "num_requests_running",
            "num_requests_waiting",
            "num_requests_swapped",
            "cpu_cache_usage_perc",
            "avg_prompt_throughput_toks_per_s",
            "avg_generation_throughput_toks_per_s",
        ] {
            assert!(
                names.contains(&format!("pods/{metric}").as_str()),
                "{metric}"
            );
        }
        assert_eq!(doc["resources"][0]["namespaced"], true);
        assert_eq!(doc["resources"][0]["verbs"], json!(["get"]));
    }

    #[test]
    fn perc_gauges_are_served_as_percentages_and_counts_as_is() {
        let (g, r) = (names::GPU_CACHE_USAGE_PERC, names::NUM_REQUESTS_RUNNING);
        let exposition = Exposition::parse(&format!(
            "# TYPE {g} gauge\n{g}{{engine=\"0\"}} 0.4612\n# TYPE {r} gauge\n{r}{{engine=\"0\"}} 8.0\n"
        ));
        let metrics = default_metrics();
        let get = |name: &str| metrics.iter().find(|m| m.name == name).expect("served");
        assert_eq!(
            pod_value(get("gpu_cache_usage_perc"), &exposition, None).as_deref(),
            Some("46120m")
        );
        assert_eq!(
            pod_value(
                &ServedMetric::vllm("gpu_cache_usage_perc"),
                &exposition,
                None
            )
            .as_deref(),
            Some("461m"),
            "scale 1 passes the fraction through"
        );
        assert_eq!(
            pod_value(get("num_requests_running"), &exposition, None).as_deref(),
            Some("8")
        );
        assert_eq!(
            pod_value(get("num_requests_waiting"), &exposition, None),
            None
        );
    }
}
