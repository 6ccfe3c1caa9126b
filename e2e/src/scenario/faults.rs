//! Timed faults: a scenario's schedule of actions on its pods or node while the load runs.
//!
//! ```yaml
//! faults:
//!   - {after_phase: step, at_s: 5, pods: newest, mock_faults: {metrics: hang}}   # POST /mock/faults
//!   - {after_phase: step, at_s: 60, pods: "0", delete: true}                     # delete the oldest pod
//!   - {at_s: 0, startup_delay_s: 40}                    # pods created from now on load their model for 40 s
//! ```
//!
//! `at_s` counts from the start of `after_phase` (default: the first phase). `pods` picks by ordinal in creation
//! order (`"0"` is the oldest), `newest`, or `all` (the default); pods not Ready are skipped for `mock_faults`. The
//! model-load delay of later pods is set through the scenario node's `autoscale-harness.dev/startup-delay-s`
//! annotation, which the node agent reads when it starts a pod ([`STARTUP_DELAY_ANNOTATION`]).
//!
//! Every action that ran is returned as a [`FaultRecord`] with its time and target, and the report lists them, so a
//! verdict taken across a fault is read as such.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::Client;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::deploy::SELECTOR;
use crate::http_client::http_client;
use crate::k8s::pod::is_serving;
use crate::k8s::FIELD_MANAGER;

pub use crate::agent::pods::STARTUP_DELAY_ANNOTATION;

/// Which pods an action applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PodPick {
    /// Every pod of the target.
    #[default]
    All,
    /// The most recently created pod.
    Newest,
    /// The pod at this ordinal in creation order (as a string in YAML: `"0"`).
    #[serde(untagged)]
    Ordinal(String),
}

/// One scheduled action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultAction {
    /// The phase `at_s` counts from (default: the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_phase: Option<String>,
    /// Seconds after that phase starts.
    #[serde(default)]
    pub at_s: f64,
    /// Which pods.
    #[serde(default)]
    pub pods: PodPick,
    /// A body for the pods' `POST /mock/faults` (`metrics: hang|fail|ok`, `error_rate`, `extra_latency_ms` …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mock_faults: Option<Value>,
    /// Delete the picked pods (the ReplicaSet replaces them).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delete: bool,
    /// Model-load delay, seconds, of every pod created from then on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_delay_s: Option<f64>,
}

impl FaultAction {
    /// Checks that exactly one action is given and the ordinal (if any) is a number.
    pub(crate) fn check(&self, phases: &[String]) -> Result<(), String> {
        let actions = usize::from(self.mock_faults.is_some())
            + usize::from(self.delete)
            + usize::from(self.startup_delay_s.is_some());
        if actions != 1 {
            return Err(
                "a fault needs exactly one of `mock_faults`, `delete: true`, `startup_delay_s`"
                    .into(),
            );
        }
        if let Some(phase) = &self.after_phase {
            if !phases.contains(phase) {
                return Err(format!(
                    "fault after_phase `{phase}` is not a load phase ({})",
                    phases.join(", ")
                ));
            }
        }
        if let PodPick::Ordinal(o) = &self.pods {
            o.parse::<usize>().map_err(|_| {
                format!("fault pods `{o}`: give `all`, `newest` or an ordinal such as \"0\"")
            })?;
        }
        if self.at_s.is_nan() || self.at_s < 0.0 {
            return Err("fault at_s must be ≥ 0".into());
        }
        if let Some(d) = self.startup_delay_s {
            if d.is_nan() || d < 0.0 {
                return Err("fault startup_delay_s must be ≥ 0".into());
            }
        }
        Ok(())
    }

    /// One line for the report, e.g. "pod newest: mock_faults {"metrics":"hang"}".
    pub(crate) fn describe(&self) -> String {
        let pods = match &self.pods {
            PodPick::All => "all pods".to_string(),
            PodPick::Newest => "newest pod".to_string(),
            PodPick::Ordinal(o) => format!("pod #{o}"),
        };
        if let Some(body) = &self.mock_faults {
            format!("{pods}: /mock/faults {body}")
        } else if self.delete {
            format!("delete {pods}")
        } else {
            format!(
                "model load of new pods: {} s",
                self.startup_delay_s.unwrap_or_default()
            )
        }
    }
}

/// An action that ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRecord {
    /// Seconds since the scenario started (observer clock).
    pub t: f64,
    /// What was done.
    pub action: String,
    /// The pods it touched (empty for node-level actions).
    pub pods: Vec<String>,
    /// An error, if the action could not be carried out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Carries out one action now.
pub(crate) async fn apply(
    client: &Client,
    namespace: &str,
    node: Option<&str>,
    action: &FaultAction,
    t: f64,
) -> FaultRecord {
    let mut record = FaultRecord {
        t,
        action: action.describe(),
        pods: Vec::new(),
        error: None,
    };
    if let Some(delay) = action.startup_delay_s {
        record.error = match node {
            Some(node) => set_startup_delay(client, node, delay).await.err(),
            None => Some(
                "no scenario node on this cluster: the model-load delay cannot be changed".into(),
            ),
        };
        return record;
    }
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut pods = match pods_api.list(&ListParams::default().labels(SELECTOR)).await {
        Ok(list) => list.items,
        Err(e) => {
            record.error = Some(format!("listing pods: {e}"));
            return record;
        }
    };
    pods.retain(|p| p.metadata.deletion_timestamp.is_none());
    pods.sort_by(|a, b| {
        let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
        created(a)
            .cmp(&created(b))
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
    let picked: Vec<Pod> = match &action.pods {
        PodPick::All => pods,
        PodPick::Newest => pods.pop().into_iter().collect(),
        PodPick::Ordinal(o) => {
            let i = o.parse::<usize>().unwrap_or(usize::MAX);
            pods.into_iter().nth(i).into_iter().collect()
        }
    };
    if picked.is_empty() {
        record.error = Some("no pod matched".into());
        return record;
    }
    let mut errors = Vec::new();
    for pod in &picked {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let result = if let Some(body) = &action.mock_faults {
            post_faults(pod, body).await
        } else {
            pods_api
                .delete(&name, &DeleteParams::default())
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        };
        match result {
            Ok(()) => record.pods.push(name),
            Err(e) => errors.push(format!("{name}: {e}")),
        }
    }
    if !errors.is_empty() {
        record.error = Some(errors.join("; "));
    }
    record
}

async fn post_faults(pod: &Pod, body: &Value) -> Result<(), String> {
    if !is_serving(pod) {
        return Err("not Ready (skipped)".into());
    }
    let ip = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .ok_or("no pod IP")?;
    let port = crate::deploy::METRICS_PORT;
    let http = http_client(Duration::from_secs(5)).map_err(|e| e.to_string())?;
    let response = http
        .post(format!("http://{ip}:{port}/mock/faults"))
        .json(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        return Err(format!("/mock/faults answered {status}: {text}"));
    }
    Ok(())
}

async fn set_startup_delay(client: &Client, node: &str, seconds: f64) -> Result<(), String> {
    let nodes: Api<Node> = Api::all(client.clone());
    let patch =
        json!({"metadata": {"annotations": {STARTUP_DELAY_ANNOTATION: format!("{seconds}")}}});
    nodes
        .patch(
            node,
            &PatchParams::apply(&format!("{FIELD_MANAGER}-faults")).force(),
            &Patch::Apply(json!({
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": node, "annotations": patch["metadata"]["annotations"]},
            })),
        )
        .await
        .map(drop)
        .map_err(|e| format!("annotating node {node}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_items_parse_and_are_checked() {
        let phases = vec!["quiet".to_string(), "step".to_string()];
        let items: Vec<FaultAction> = serde_yaml::from_str(
            "- {after_phase: step, at_s: 5, pods: newest, mock_faults: {metrics: hang}}\n\
             - {after_phase: step, at_s: 60, pods: \"0\", delete: true}\n\
             - {at_s: 0, startup_delay_s: 40}\n",
        )
        .expect("parses");
        for item in &items {
            item.check(&phases).expect("valid");
        }
        assert_eq!(items[0].pods, PodPick::Newest);
        assert_eq!(items[1].pods, PodPick::Ordinal("0".into()));
        assert_eq!(items[2].pods, PodPick::All);
        assert_eq!(items[1].describe(), "delete pod #0");
        let two = FaultAction {
            delete: true,
            ..items[2].clone()
        };
        assert!(two.check(&phases).expect_err("two").contains("exactly one"));
        let bad_phase = FaultAction {
            after_phase: Some("nope".into()),
            ..items[0].clone()
        };
        assert!(bad_phase
            .check(&phases)
            .expect_err("phase")
            .contains("nope"));
        let bad_pick = FaultAction {
            pods: PodPick::Ordinal("first".into()),
            ..items[0].clone()
        };
        assert!(bad_pick
            .check(&phases)
            .expect_err("pick")
            .contains("ordinal"));
    }
}
