//! The PodAutoscaler(s) a scenario applies, in one of two forms:
//!
//! - **inline** fields (`min_replicas`, `max_replicas`, `metric`, `target_value`, `source`, `annotations`, and
//!   `extra_sources` for several metrics at once), from which the harness writes the PodAutoscaler a user would;
//! - **`manifest: <file>`** (relative to the scenarios directory): a PodAutoscaler YAML exactly as a user or AIBrix's
//!   documentation wrote it. Only `metadata.namespace` and `spec.scaleTargetRef.name` are rewritten (the latter
//!   unless `scale_target_name` says otherwise), so documented configurations run verbatim.
//!
//! `extra` lists further PodAutoscalers (manifest files) applied after the main one, e.g. a second PodAutoscaler on
//! the same Deployment. The main one is applied as raw JSON, so fields the typed [`PodAutoscaler`] does not know
//! (or values the controller rejects, such as an unparsable target) reach the API server as written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::reference::Strategy;
use crate::k8s::{MetricSource, PodAutoscaler};

/// One extra metric source of an inline PodAutoscaler.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// `targetMetric`.
    pub metric: String,
    /// `targetValue`.
    pub target_value: String,
    /// `metricSourceType` (`pod` by default).
    #[serde(default = "pod_source")]
    pub source: String,
    /// `path` of a `pod` source (default `/metrics`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `protocolType` of a `pod` source (default `http`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

/// The PodAutoscaler under test (inline fields, or `manifest`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct AutoscalerSpec {
    /// A PodAutoscaler YAML file (relative to the scenarios directory), applied as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<PathBuf>,
    /// `spec.minReplicas` (inline form; unset leaves the field out, which the controller reads as 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_replicas: Option<u32>,
    /// `spec.maxReplicas` (inline form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replicas: Option<u32>,
    /// `targetMetric` (canonical name: `num_requests_running`, `gpu_cache_usage_perc`, `cpu` …).
    #[serde(default)]
    pub metric: String,
    /// `targetValue`, as written (`"4"`, `"0.5"`, `"500m"` …).
    #[serde(default)]
    pub target_value: String,
    /// `metricSourceType` (`pod` by default; `resource` for cpu/memory, `custom`).
    #[serde(default = "pod_source")]
    pub source: String,
    /// `path` of a `pod` source (default `/metrics`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `protocolType` of a `pod` source (default `http`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Further entries of `spec.metricsSources`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_sources: Vec<SourceSpec>,
    /// PodAutoscaler annotations (cooldown windows, rates, tolerances, panic threshold).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// `spec.scaleTargetRef.name` (default: the scenario's Deployment); e.g. a Deployment that does not exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_target_name: Option<String>,
    /// Further PodAutoscaler manifests applied after this one (same rewriting), e.g. a second one on the target.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<PathBuf>,
}

fn pod_source() -> String {
    "pod".into()
}

/// What a scenario's autoscaler section turns into.
#[derive(Debug, Clone)]
pub(crate) struct BuiltAutoscalers {
    /// The main PodAutoscaler as JSON, exactly as it is applied.
    pub main: Value,
    /// The main one read as the typed resource, when its shape allows (reference parameters come from it).
    pub typed: Result<PodAutoscaler, String>,
    /// Extra PodAutoscalers, applied after the main one.
    pub extra: Vec<Value>,
}

impl BuiltAutoscalers {
    /// The main PodAutoscaler's name.
    pub(crate) fn main_name(&self) -> String {
        self.main["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

impl AutoscalerSpec {
    /// Checks the section's form: a manifest, or the inline fields.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.manifest.is_some() {
            let inline = self.min_replicas.is_some()
                || self.max_replicas.is_some()
                || !self.metric.is_empty()
                || !self.target_value.is_empty()
                || !self.extra_sources.is_empty()
                || !self.annotations.is_empty();
            if inline {
                return Err("autoscaler: give either `manifest` or the inline fields (min_replicas, max_replicas, \
                            metric, target_value, annotations), not both"
                    .into());
            }
            return Ok(());
        }
        let Some(max) = self.max_replicas else {
            return Err("autoscaler.max_replicas is missing (or give `manifest: <file>`)".into());
        };
        if self.metric.is_empty() || self.target_value.is_empty() {
            return Err(
                "autoscaler.metric and autoscaler.target_value are required in the inline form"
                    .into(),
            );
        }
        if max > 8 {
            return Err("autoscaler.max_replicas is larger than the scenario node's 8 GPUs".into());
        }
        Ok(())
    }

    /// Builds the PodAutoscalers of a scenario in `namespace` on Deployment `deployment`, reading manifests relative
    /// to `dir`; `metrics_port` is the port of inline `pod` sources.
    pub(crate) fn build(
        &self,
        strategy: Strategy,
        namespace: &str,
        deployment: &str,
        metrics_port: u16,
        dir: &Path,
    ) -> Result<BuiltAutoscalers, String> {
        let target = self.scale_target_name.as_deref().unwrap_or(deployment);
        let main = match &self.manifest {
            Some(file) => {
                let mut value = read_manifest(&dir.join(file))?;
                rewrite(&mut value, namespace, Some(target));
                value
            }
            None => {
                let pa = self.inline(strategy, namespace, target, metrics_port);
                serde_json::to_value(&pa).map_err(|e| e.to_string())?
            }
        };
        let typed = serde_json::from_value::<PodAutoscaler>(main.clone())
            .map_err(|e| format!("the PodAutoscaler does not read as v1alpha1: {e}"));
        let extra = self
            .extra
            .iter()
            .map(|file| {
                let mut value = read_manifest(&dir.join(file))?;
                rewrite(&mut value, namespace, Some(deployment));
                Ok(value)
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(BuiltAutoscalers { main, typed, extra })
    }

    fn inline(
        &self,
        strategy: Strategy,
        namespace: &str,
        target: &str,
        metrics_port: u16,
    ) -> PodAutoscaler {
        let source = |source: &str,
                      metric: &str,
                      value: &str,
                      path: &Option<String>,
                      protocol: &Option<String>| {
            if source == "pod" {
                let mut s = MetricSource::pod_http(metrics_port, metric, value);
                if let Some(path) = path {
                    s.path = Some(path.clone());
                }
                if let Some(protocol) = protocol {
                    s.protocol_type = Some(protocol.clone());
                }
                s
            } else {
                MetricSource::api(source, metric, value)
            }
        };
        let mut sources = vec![source(
            &self.source,
            &self.metric,
            &self.target_value,
            &self.path,
            &self.protocol,
        )];
        sources.extend(
            self.extra_sources
                .iter()
                .map(|s| source(&s.source, &s.metric, &s.target_value, &s.path, &s.protocol)),
        );
        // `check` bounds max_replicas by the node's 8 GPUs, so both fit an i32.
        let replicas = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
        PodAutoscaler::for_deployment(
            super::run::TARGET,
            namespace,
            target,
            strategy,
            (
                self.min_replicas.map(replicas),
                self.max_replicas.map(replicas).unwrap_or(1),
            ),
            sources,
        )
        .with_annotations(&self.annotations)
    }
}

/// Reads one PodAutoscaler YAML file.
fn read_manifest(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read PodAutoscaler manifest {}: {e}", path.display()))?;
    let value: Value = serde_yaml::from_str(&text)
        .map_err(|e| format!("PodAutoscaler manifest {}: {e}", path.display()))?;
    if value["kind"] != "PodAutoscaler" || value["metadata"]["name"].as_str().is_none() {
        return Err(format!(
            "{}: expected one object of kind PodAutoscaler with metadata.name",
            path.display()
        ));
    }
    Ok(value)
}

/// Rewrites the namespace and (if given) the scale target's name; nothing else.
fn rewrite(value: &mut Value, namespace: &str, target: Option<&str>) {
    value["metadata"]["namespace"] = Value::from(namespace);
    if let Some(target) = target {
        if value["spec"]["scaleTargetRef"].is_object() {
            value["spec"]["scaleTargetRef"]["name"] = Value::from(target);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_runs_as_written_but_for_namespace_and_target() {
        let dir = std::env::temp_dir().join(format!("pa-manifest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(
            dir.join("pa.yaml"),
            "apiVersion: autoscaling.aibrix.ai/v1alpha1\nkind: PodAutoscaler\nmetadata:\n  name: docs-kpa\n  \
             namespace: default\n  annotations: {autoscaling.aibrix.ai/panic-threshold: \"3.0\"}\nspec:\n  \
             scalingStrategy: KPA\n  maxReplicas: 10\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, \
             name: llama}\n  metricsSources:\n  - {metricSourceType: pod, protocolType: http, port: '8000', path: \
             /metrics, targetMetric: gpu_cache_usage_perc, targetValue: '50'}\n",
        )
        .expect("write");
        let spec = AutoscalerSpec {
            manifest: Some("pa.yaml".into()),
            ..AutoscalerSpec::default()
        };
        spec.check().expect("valid");
        let built = spec
            .build(Strategy::Kpa, "ns1", "mock-vllm", 8000, &dir)
            .expect("builds");
        assert_eq!(built.main["metadata"]["namespace"], "ns1");
        assert_eq!(built.main["metadata"]["name"], "docs-kpa");
        assert_eq!(built.main["spec"]["scaleTargetRef"]["name"], "mock-vllm");
        assert_eq!(built.main["spec"]["maxReplicas"], 10);
        assert_eq!(
            built.main["metadata"]["annotations"]["autoscaling.aibrix.ai/panic-threshold"],
            "3.0"
        );
        let typed = built.typed.expect("typed");
        assert_eq!(typed.spec.metrics_sources[0].target_value, "50");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn inline_sources_and_forms_are_checked() {
        let spec = AutoscalerSpec {
            max_replicas: Some(4),
            metric: "num_requests_running".into(),
            target_value: "4".into(),
            source: "pod".into(),
            extra_sources: vec![SourceSpec {
                metric: "gpu_cache_usage_perc".into(),
                target_value: "0.5".into(),
                source: "pod".into(),
                path: None,
                protocol: None,
            }],
            ..AutoscalerSpec::default()
        };
        spec.check().expect("valid");
        let built = spec
            .build(Strategy::Apa, "ns", "mock-vllm", 8000, Path::new("."))
            .expect("builds");
        let typed = built.typed.expect("typed");
        assert_eq!(typed.spec.metrics_sources.len(), 2);
        assert_eq!(typed.spec.min_replicas, None);
        let both = AutoscalerSpec {
            manifest: Some("x.yaml".into()),
            ..spec.clone()
        };
        assert!(both.check().expect_err("both forms").contains("not both"));
        let none = AutoscalerSpec::default();
        assert!(none.check().expect_err("nothing").contains("max_replicas"));
    }
}
