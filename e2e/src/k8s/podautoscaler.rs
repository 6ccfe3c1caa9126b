//! AIBrix's `PodAutoscaler` (`autoscaling.aibrix.ai/v1alpha1`) as a typed Kubernetes resource.
//!
//! The harness writes PodAutoscalers (scenarios, the demo), reads their status (the observer) and turns their
//! spec into reference parameters (`ScalingParams`). One typed resource serves all three, as kube-rs's controller
//! examples do with `#[derive(CustomResource)]`, instead of JSON built in several places and parsed back.
//!
//! The fields mirror `api/autoscaling/v1alpha1/podautoscaler_types.go` at the pinned AIBrix tag (see
//! `AIBRIX_VERSION` in `e2e/versions.env`). Optional fields are `Option`s skipped when unset, so what the harness
//! applies is exactly what a user would write; the CRD itself comes from the AIBrix module, so no schema is
//! generated here. Status types are lenient (every field optional) because the controller fills them in over
//! time and a reader must not fail on a half-written status.
//!
//! Field docs are given where they add to the CRD's own field name; the rest are the Go type's fields as named.
#![allow(missing_docs)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::CustomResource;
use serde::{Deserialize, Serialize};

use super::strategy::Strategy;

/// `spec` of a PodAutoscaler.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "autoscaling.aibrix.ai",
    version = "v1alpha1",
    kind = "PodAutoscaler",
    namespaced,
    status = "PodAutoscalerStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct PodAutoscalerSpec {
    /// The workload to scale (needs a `/scale` subresource: Deployment, StatefulSet, ReplicaSet).
    pub scale_target_ref: ObjectReference,
    /// A role of a StormService/RoleSet target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_target_selector: Option<SubTargetSelector>,
    /// Lower bound; unset means 1 for KPA/APA, and for HPA the value is copied only when > 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_replicas: Option<i32>,
    pub max_replicas: i32,
    /// The controller scales on the highest recommendation over all sources; the webhook allows exactly one.
    #[serde(default)]
    pub metrics_sources: Vec<MetricSource>,
    pub scaling_strategy: Strategy,
}

/// `spec.subTargetSelector`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubTargetSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_name: Option<String>,
}

/// One entry of `spec.metricsSources`: where a metric comes from and its per-pod target.
///
/// `metricSourceType` is `pod` (scrape each pod's `protocolType://ip:port/path`), `resource` (`metrics.k8s.io`,
/// `cpu` or `memory`), `custom` (`custom.metrics.k8s.io`), `external` (or its deprecated alias `domain`). It stays
/// a string so that specs the controller rejects can still be written and observed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricSource {
    pub metric_source_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_type: Option<String>,
    /// The metrics port of each pod; a string in the CRD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `host:port` of an external metrics service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The canonical metric name (`num_requests_running`, `gpu_cache_usage_perc`, `cpu`, …).
    pub target_metric: String,
    /// The per-pod target as the user wrote it (`"4"`, `"0.5"`, `"500m"`): the controller parses it as a float.
    pub target_value: String,
}

impl MetricSource {
    /// A `pod` source scraping `http://<pod>:<port>/metrics`, as the AIBrix samples configure vLLM pods.
    pub(crate) fn pod_http(port: u16, target_metric: &str, target_value: &str) -> Self {
        Self {
            metric_source_type: "pod".into(),
            protocol_type: Some("http".into()),
            port: Some(port.to_string()),
            path: Some("/metrics".into()),
            target_metric: target_metric.into(),
            target_value: target_value.into(),
            ..Self::default()
        }
    }

    /// A source read through a Kubernetes metrics API (`resource` or `custom`): no port, path or protocol.
    pub fn api(source_type: &str, target_metric: &str, target_value: &str) -> Self {
        Self {
            metric_source_type: source_type.into(),
            target_metric: target_metric.into(),
            target_value: target_value.into(),
            ..Self::default()
        }
    }
}

/// `status` of a PodAutoscaler, as the controller writes it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodAutoscalerStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_time: Option<String>,
    /// Replicas the controller wants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_scale: Option<i64>,
    /// KPA/APA: the target's `spec.replicas` at decision time; HPA: the HPA's `status.currentReplicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual_scale: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<StatusCondition>,
    /// The last (at most five) scaling decisions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scaling_history: Vec<ScalingDecision>,
}

/// A `metav1.Condition` read leniently (the controller may leave fields empty).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusCondition {
    #[serde(default, rename = "type")]
    pub type_: String,
    #[serde(default)]
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

/// One entry of `status.scalingHistory`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScalingDecision {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    #[serde(default)]
    pub previous_scale: i64,
    #[serde(default)]
    pub new_scale: i64,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub success: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl PodAutoscaler {
    /// A PodAutoscaler named `name` in `namespace` scaling the Deployment `deployment`.
    pub(crate) fn for_deployment(
        name: &str,
        namespace: &str,
        deployment: &str,
        strategy: Strategy,
        (min_replicas, max_replicas): (Option<i32>, i32),
        metrics_sources: Vec<MetricSource>,
    ) -> Self {
        let mut pa = PodAutoscaler::new(
            name,
            PodAutoscalerSpec {
                scale_target_ref: ObjectReference {
                    api_version: Some("apps/v1".into()),
                    kind: Some("Deployment".into()),
                    name: Some(deployment.into()),
                    ..ObjectReference::default()
                },
                sub_target_selector: None,
                min_replicas,
                max_replicas,
                metrics_sources,
                scaling_strategy: strategy,
            },
        );
        pa.metadata.namespace = Some(namespace.into());
        pa
    }

    /// Sets `metadata.annotations` (the `autoscaling.aibrix.ai/*` knobs); an empty map leaves them unset.
    pub(crate) fn with_annotations(mut self, annotations: &BTreeMap<String, String>) -> Self {
        self.metadata.annotations = (!annotations.is_empty()).then(|| annotations.clone());
        self
    }

    /// The annotations, or an empty map.
    pub(crate) fn annotations(&self) -> BTreeMap<String, String> {
        self.metadata.annotations.clone().unwrap_or_default()
    }

    /// The status condition of the given type, if the controller has written it.
    pub fn condition(&self, type_: &str) -> Option<&StatusCondition> {
        self.status
            .as_ref()?
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::Resource;

    #[test]
    fn a_pod_autoscaler_serializes_as_a_user_would_write_it() {
        let pa = PodAutoscaler::for_deployment(
            "mock-vllm",
            "ns",
            "mock-vllm",
            Strategy::Kpa,
            (Some(1), 8),
            vec![MetricSource::pod_http(8000, "num_requests_running", "4")],
        );
        let value = serde_json::to_value(&pa).expect("serializes");
        assert_eq!(
            value,
            serde_json::json!({
                "apiVersion": "autoscaling.aibrix.ai/v1alpha1",
                "kind": "PodAutoscaler",
                "metadata": {"name": "mock-vllm", "namespace": "ns"},
                "spec": {
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "mock-vllm"},
                    "minReplicas": 1,
                    "maxReplicas": 8,
                    "metricsSources": [{"metricSourceType": "pod", "protocolType": "http", "port": "8000",
                                        "path": "/metrics", "targetMetric": "num_requests_running",
                                        "targetValue": "4"}],
                    "scalingStrategy": "KPA",
                },
            })
        );
        assert_eq!(PodAutoscaler::plural(&()), "podautoscalers");
        assert_eq!(PodAutoscaler::group(&()), "autoscaling.aibrix.ai");
    }

    #[test]
    fn a_half_written_status_reads() {
        let pa: PodAutoscaler = serde_json::from_value(serde_json::json!({
            "apiVersion": "autoscaling.aibrix.ai/v1alpha1",
            "kind": "PodAutoscaler",
            "metadata": {"name": "x", "namespace": "ns"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "x"}, "maxReplicas": 4,
                     "metricsSources": [], "scalingStrategy": "APA"},
            "status": {"actualScale": 2, "conditions": [{"type": "ValidSpec", "status": "True"}],
                       "scalingHistory": [{"previousScale": 1, "newScale": 2, "reason": "above target",
                                           "success": true}]},
        }))
        .expect("parses");
        let status = pa.status.as_ref().expect("status");
        assert_eq!(status.actual_scale, Some(2));
        assert_eq!(status.desired_scale, None);
        assert_eq!(status.scaling_history[0].new_scale, 2);
        assert_eq!(
            pa.condition("ValidSpec").map(|c| c.status.as_str()),
            Some("True")
        );
    }
}
