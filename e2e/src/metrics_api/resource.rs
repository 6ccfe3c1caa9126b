//! `metrics.k8s.io/v1beta1`: `PodMetrics` and `NodeMetrics` derived from each pod's vLLM gauges with the
//! [`ResourceModel`] (the pods are in-process simulations; there is no cgroup to read).
//!
//! The HPA's `Resource` metric lists `…/namespaces/{ns}/pods?labelSelector=…` and sums container usage per pod
//! against the containers' requests; AIBrix's `resource` source gets `…/namespaces/{ns}/pods/{name}` and sums
//! containers (cpu in millicores, memory in bytes). A pod whose scrape fails is left out (missing, to the HPA).
//! A node's usage is the sum over its running pods that could be scraped.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Container, Node, Pod};
use kube::api::ListParams;
use kube::Api;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use mock_vllm::metrics::names;

use crate::prometheus::Exposition;

use super::options::ResourceModel;
use super::scrape::value;
use super::selector::Selector;
use super::state::AppState;
use super::status::ApiError;
use super::time::now_rfc3339;
use crate::k8s::duration::format_go_duration;
use crate::k8s::quantity::{format_quantity, parse_quantity};

/// The resource metrics API group.
pub const RESOURCE_GROUP: &str = "metrics.k8s.io";

const API_VERSION: &str = "metrics.k8s.io/v1beta1";

/// Usage of one container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ContainerMetrics {
    /// Container name.
    pub name: String,
    /// `cpu` and `memory` quantities.
    pub usage: BTreeMap<String, String>,
}

/// `PodMetrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PodMetrics {
    /// `PodMetrics` (absent in list items).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `metrics.k8s.io/v1beta1` (absent in list items).
    #[serde(
        default,
        rename = "apiVersion",
        skip_serializing_if = "Option::is_none"
    )]
    pub api_version: Option<String>,
    /// `name`, `namespace`, `labels`.
    pub metadata: Value,
    /// When it was read.
    pub timestamp: String,
    /// Go duration (`15s`).
    pub window: String,
    /// Per container.
    pub containers: Vec<ContainerMetrics>,
}

/// Usage of one pod under `model`: per container of the pod's spec, cpu cores and memory bytes.
///
/// See [`ResourceModel`] for the formulas; `running` and `kv_usage` come from the scrape (0 when absent).
pub(crate) fn pod_usage(
    pod: &Pod,
    exposition: &Exposition,
    model: &ResourceModel,
) -> Vec<(String, f64, f64)> {
    let running = value(exposition, names::NUM_REQUESTS_RUNNING, None)
        .unwrap_or(0.0)
        .max(0.0);
    let kv_usage = value(exposition, names::KV_CACHE_USAGE_PERC, None)
        .or_else(|| value(exposition, names::GPU_CACHE_USAGE_PERC, None))
        .unwrap_or(0.0)
        .clamp(0.0, 1.0);
    let load = if model.cpu_saturation_running > 0.0 {
        (running / model.cpu_saturation_running).min(1.0)
    } else {
        1.0
    };
    let fraction = model.cpu_idle_fraction + (1.0 - model.cpu_idle_fraction) * load;
    let memory = model.memory_base + kv_usage * model.memory_kv_span;
    let containers: &[Container] = pod.spec.as_ref().map_or(&[], |s| s.containers.as_slice());
    containers
        .iter()
        .map(|c| {
            let request = cpu_request(c).unwrap_or(model.default_cpu_request);
            (c.name.clone(), request * fraction, memory)
        })
        .collect()
}

/// A container's cpu request (else its limit, which defaults the request), in cores.
fn cpu_request(container: &Container) -> Option<f64> {
    let resources = container.resources.as_ref()?;
    let from = |list: &Option<
        BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    >| { list.as_ref()?.get("cpu").and_then(|q| parse_quantity(&q.0)) };
    from(&resources.requests).or_else(|| from(&resources.limits))
}

fn container_metrics(name: String, cpu: f64, memory: f64) -> ContainerMetrics {
    let mut usage = BTreeMap::new();
    usage.insert(
        "cpu".to_string(),
        format_quantity(cpu).unwrap_or_else(|| "0".into()),
    );
    usage.insert(
        "memory".to_string(),
        format_quantity(memory.round()).unwrap_or_else(|| "0".into()),
    );
    ContainerMetrics { name, usage }
}

fn pod_metrics(
    pod: &Pod,
    exposition: &Exposition,
    state: &AppState,
    top_level: bool,
) -> PodMetrics {
    PodMetrics {
        kind: top_level.then(|| "PodMetrics".to_string()),
        api_version: top_level.then(|| API_VERSION.to_string()),
        metadata: json!({
            "name": pod.metadata.name, "namespace": pod.metadata.namespace,
            "labels": pod.metadata.labels.clone().unwrap_or_default(),
        }),
        timestamp: now_rfc3339(),
        window: format_go_duration(state.window),
        containers: pod_usage(pod, exposition, &state.model)
            .into_iter()
            .map(|(name, cpu, memory)| container_metrics(name, cpu, memory))
            .collect(),
    }
}

/// `APIResourceList` for `metrics.k8s.io/v1beta1`.
pub fn discovery() -> Value {
    json!({
        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": format!("{RESOURCE_GROUP}/v1beta1"),
        "resources": [
            {"name": "nodes", "singularName": "", "namespaced": false, "kind": "NodeMetrics", "verbs": ["get", "list"]},
            {"name": "pods", "singularName": "", "namespaced": true, "kind": "PodMetrics", "verbs": ["get", "list"]},
        ],
    })
}

fn selector(query: &BTreeMap<String, String>) -> Result<Selector, ApiError> {
    Selector::parse(query.get("labelSelector").map_or("", String::as_str))
        .map_err(|e| ApiError::bad_request(e.to_string()))
}

/// `GET …/[namespaces/{ns}/]pods?labelSelector=…` → `PodMetricsList`.
pub(crate) async fn list_pods(
    state: &AppState,
    namespace: Option<&str>,
    query: &BTreeMap<String, String>,
) -> Result<Value, ApiError> {
    let pods = state.running_pods(namespace, &selector(query)?);
    let items: Vec<PodMetrics> = state
        .scrape_all(pods)
        .await
        .iter()
        .map(|(pod, exposition)| pod_metrics(pod, exposition, state, false))
        .collect();
    Ok(json!({"kind": "PodMetricsList", "apiVersion": API_VERSION, "metadata": {}, "items": items}))
}

/// `GET …/namespaces/{ns}/pods/{name}` → `PodMetrics`.
pub(crate) async fn get_pod(
    state: &AppState,
    namespace: &str,
    name: &str,
) -> Result<Value, ApiError> {
    let not_found =
        || ApiError::not_found(format!("podmetrics.metrics.k8s.io \"{name}\" not found"));
    let pod = state.running_pod(namespace, name).ok_or_else(not_found)?;
    let scraped = state.scrape_all(vec![pod]).await;
    let (pod, exposition) = scraped.first().ok_or_else(not_found)?;
    Ok(json!(pod_metrics(pod, exposition, state, true)))
}

/// `GET …/nodes[/{name}]` → `NodeMetricsList` or `NodeMetrics`.
pub(crate) async fn list_nodes(
    state: &AppState,
    name: Option<&str>,
    query: &BTreeMap<String, String>,
) -> Result<Value, ApiError> {
    let nodes_api: Api<Node> = Api::all(state.client.clone());
    let mut params = ListParams::default();
    let label_selector = query.get("labelSelector").cloned().unwrap_or_default();
    if !label_selector.is_empty() {
        params = params.labels(&label_selector);
    }
    if let Some(name) = name {
        params = params.fields(&format!("metadata.name={name}"));
    }
    let nodes = nodes_api
        .list(&params)
        .await
        .map_err(|e| ApiError::internal(format!("listing nodes: {e}")))?;
    let node_names: Vec<String> = nodes
        .items
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    let pods: Vec<Arc<Pod>> = state
        .running_pods(None, &Selector::default())
        .into_iter()
        .filter(|p| {
            p.spec
                .as_ref()
                .and_then(|s| s.node_name.as_ref())
                .is_some_and(|n| node_names.contains(n))
        })
        .collect();
    let mut sums: BTreeMap<String, (f64, f64)> =
        node_names.iter().map(|n| (n.clone(), (0.0, 0.0))).collect();
    for (pod, exposition) in state.scrape_all(pods).await {
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        let entry = sums.entry(node).or_default();
        for (_, cpu, memory) in pod_usage(&pod, &exposition, &state.model) {
            entry.0 += cpu;
            entry.1 += memory;
        }
    }
    let timestamp = now_rfc3339();
    let window = format_go_duration(state.window);
    let node_metrics = |node: &Node, top_level: bool| {
        let node_name = node.metadata.name.clone().unwrap_or_default();
        let (cpu, memory) = sums.get(&node_name).copied().unwrap_or_default();
        let mut value = json!({
            "metadata": {"name": node_name, "labels": node.metadata.labels.clone().unwrap_or_default()},
            "timestamp": timestamp, "window": window,
            "usage": {
                "cpu": format_quantity(cpu).unwrap_or_else(|| "0".into()),
                "memory": format_quantity(memory.round()).unwrap_or_else(|| "0".into()),
            },
        });
        if top_level {
            value["kind"] = json!("NodeMetrics");
            value["apiVersion"] = json!(API_VERSION);
        }
        value
    };
    match name {
        Some(name) => nodes
            .items
            .first()
            .map(|n| node_metrics(n, true))
            .ok_or_else(|| {
                ApiError::not_found(format!("nodemetrics.metrics.k8s.io \"{name}\" not found"))
            }),
        None => {
            let items: Vec<Value> = nodes.items.iter().map(|n| node_metrics(n, false)).collect();
            Ok(
                json!({"kind": "NodeMetricsList", "apiVersion": API_VERSION, "metadata": {}, "items": items}),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(cpu_request: Option<&str>) -> Pod {
        let resources = cpu_request.map(|cpu| json!({"requests": {"cpu": cpu, "memory": "1Gi"}}));
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "vllm", "resources": resources.unwrap_or(json!({}))}]},
        }))
        .expect("pod")
    }

    fn gauges(running: f64, kv: f64) -> Exposition {
        let (r, k) = (names::NUM_REQUESTS_RUNNING, names::KV_CACHE_USAGE_PERC);
        Exposition::parse(&format!(
            "# TYPE {r} gauge\n{r}{{engine=\"0\"}} {running}\n# TYPE {k} gauge\n{k}{{engine=\"0\"}} {kv}\n"
        ))
    }

    #[test]
    fn cpu_is_monotone_in_running_requests_and_saturates_at_the_request() {
        let model = ResourceModel::default();
        let cpu = |running: f64| pod_usage(&pod(Some("1")), &gauges(running, 0.0), &model)[0].1;
        assert!((cpu(0.0) - 0.05).abs() < 1e-9);
        assert!((cpu(8.0) - 0.525).abs() < 1e-9);
        assert!((cpu(16.0) - 1.0).abs() < 1e-9);
        assert!((cpu(64.0) - 1.0).abs() < 1e-9);
        let mut last = 0.0;
        for running in 0..20 {
            let now = cpu(f64::from(running));
            assert!(now >= last);
            last = now;
        }
        let half = pod_usage(&pod(Some("500m")), &gauges(16.0, 0.0), &model)[0].1;
        assert!((half - 0.5).abs() < 1e-9, "scales with the request");
        let default = pod_usage(&pod(None), &gauges(16.0, 0.0), &model)[0].1;
        assert!((default - model.default_cpu_request).abs() < 1e-9);
    }

    #[test]
    fn memory_grows_with_kv_usage() {
        let model = ResourceModel::default();
        let memory = |kv: f64| pod_usage(&pod(Some("1")), &gauges(0.0, kv), &model)[0].2;
        assert_eq!(memory(0.0), model.memory_base);
        assert_eq!(memory(0.5), model.memory_base + 0.5 * model.memory_kv_span);
        assert_eq!(
            memory(7.0),
            model.memory_base + model.memory_kv_span,
            "clamped"
        );
    }

    #[test]
    fn container_usage_is_quantities() {
        let c = container_metrics("vllm".into(), 0.525, 268_435_456.4);
        assert_eq!(c.usage["cpu"], "525m");
        assert_eq!(c.usage["memory"], "268435456");
    }

    #[test]
    fn discovery_has_pods_and_nodes() {
        let doc = discovery();
        assert_eq!(doc["groupVersion"], "metrics.k8s.io/v1beta1");
        let kinds: Vec<&str> = doc["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .map(|r| r["kind"].as_str().expect("kind"))
            .collect();
        assert_eq!(kinds, ["NodeMetrics", "PodMetrics"]);
    }
}
