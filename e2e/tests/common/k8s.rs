//! What the cluster tests ask of the API server, all in the `default` namespace where they run the repository's
//! mock-vllm Deployment: its serving pods, a node ready to take them, the manifests applied with test timings, and
//! AIBrix PodAutoscaler objects written as a user would write them (JSON, not the library's typed resource, so
//! the tests check what the controller accepts from a plain manifest).

use std::time::Duration;

use e2e::cluster::apply::{read_manifests, set_container_arg, Applier};
use e2e::k8s::pod::is_serving;
use e2e::k8s::PodAutoscaler;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DynamicObject, ListParams};
use kube::discovery::ApiResource;
use kube::Client;
use serde_json::{json, Value};

use super::{eventually, repo};

/// The mock-vllm pods a Service would route to now (Ready and not terminating); empty if the list fails.
pub async fn ready_pods(client: &Client) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.list(&ListParams::default().labels("app=mock-vllm"))
        .await
        .map(|l| l.items.into_iter().filter(is_serving).collect())
        .unwrap_or_default()
}

/// Waits until node `name` advertises `gpus` allocatable GPUs and carries no taint: the lifecycle controller
/// removes the not-ready taint once it has seen the node Ready, and only then does the scheduler place pods on it.
pub async fn wait_for_gpu_node(client: &Client, name: &str, gpus: u32) {
    let nodes: Api<Node> = Api::all(client.clone());
    let gpus = gpus.to_string();
    eventually(
        &format!("node {name} with {gpus} GPUs and no taint"),
        Duration::from_secs(30),
        || async {
            let node = nodes.get(name).await.ok()?;
            let allocatable = node
                .status
                .as_ref()?
                .allocatable
                .as_ref()?
                .get("nvidia.com/gpu")?
                .0
                .clone();
            let tainted = node
                .spec
                .as_ref()?
                .taints
                .as_ref()
                .is_some_and(|t| !t.is_empty());
            (allocatable == gpus && !tainted).then_some(())
        },
    )
    .await;
}

/// Applies the repository's mock-vllm manifests (`manifests/base/mock-vllm`) with a `startup_delay_s` model load
/// instead of 40 s and a 1 s readiness probe period, and returns the applier for more objects.
pub async fn apply_mock_vllm(client: &Client, startup_delay_s: u64) -> Applier {
    // Its own kinds and the PodAutoscalers the tests add.
    let applier = Applier::for_groups(client.clone(), &["", "apps", "autoscaling.aibrix.ai"])
        .await
        .expect("discovery");
    let base = repo().join("manifests/base/mock-vllm");
    for mut object in read_manifests(&base).expect("manifests") {
        if object["kind"] == "Deployment" {
            let container = &mut object["spec"]["template"]["spec"]["containers"][0];
            set_container_arg(container, "startup-delay", startup_delay_s);
            container["readinessProbe"]["periodSeconds"] = json!(1);
        }
        applier.apply(&object, "default").await.expect("applied");
    }
    applier
}

/// A PodAutoscaler `name` in `default` scaling Deployment `target` with `strategy` between `min` and `max` on
/// `sources`.
pub fn pod_autoscaler(
    name: &str,
    target: &str,
    strategy: &str,
    (min, max): (u32, u32),
    sources: Value,
) -> Value {
    json!({
        "apiVersion": "autoscaling.aibrix.ai/v1alpha1", "kind": "PodAutoscaler",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "scalingStrategy": strategy, "minReplicas": min, "maxReplicas": max,
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "metricsSources": sources,
        },
    })
}

/// A `pod` metric source: AIBrix scrapes `metric` from every pod's `:8000/metrics` itself.
pub fn scraped_metric(metric: &str, target: &str) -> Value {
    json!({"metricSourceType": "pod", "protocolType": "http", "port": "8000", "path": "/metrics",
           "targetMetric": metric, "targetValue": target})
}

/// The PodAutoscalers of `default`, read untyped so a test sees the status exactly as the controller wrote it.
pub fn pod_autoscalers(client: &Client) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        "default",
        &ApiResource::erase::<PodAutoscaler>(&()),
    )
}
