//! The one way a target under test gets into a cluster, shared by the scenario runner and the demo.
//!
//! A *target* is a namespace holding the repository's mock-vllm Deployment and NodePort Service, tailored to the
//! run (replicas, node pinning, simulated model load, extra mock-vllm arguments, readiness period, NodePort), then
//! a PodAutoscaler scaling it and an observer recording it. Both `run` and `demo` follow the same steps:
//!
//! 1. [`Target::apply`]: the namespace, then the tailored manifests, server-side applied;
//! 2. [`wait_for_pods`]: a watch on the target's pods until enough of them count as ready;
//! 3. [`apply_podautoscaler`]: the typed PodAutoscaler, server-side applied (the caller chooses when);
//! 4. [`start_observer`]: the observer on the target's Deployment, pods and PodAutoscaler.
//!
//! Waiting is a watch ([`crate::k8s::wait`]), as kube-rs's examples wait for an observed state, not a list polled
//! on a timer; the timeout wraps the whole wait.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::Api;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::cluster::apply::{read_manifests, set_container_arg, Applier};
use crate::cluster::ClusterError;
use crate::k8s::apply::server_side_apply;
use crate::k8s::wait::{self, TooFew};
use crate::k8s::PodAutoscaler;
use crate::observe::observer::{LoadGauge, Observer, ObserverConfig};

/// The Deployment, Service and PodAutoscaler name in every target namespace.
pub const TARGET: &str = "mock-vllm";
/// The model the pods serve (the manifest's `--served-model-name`).
pub const MODEL: &str = "deepseek-llm-7b-chat";
/// The label selector of the target's pods (the manifest's `app` label).
pub(crate) const SELECTOR: &str = "app=mock-vllm";
/// The pods' serving and metrics port (the manifest's container port).
pub(crate) const METRICS_PORT: u16 = 8000;

/// How the repository's mock-vllm manifests are tailored for one target.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The namespace everything goes into.
    pub namespace: String,
    /// `spec.replicas` of the Deployment.
    pub replicas: u32,
    /// Pin the pods to this node (`kubernetes.io/hostname` node selector); `None` lets the scheduler choose.
    pub node: Option<String>,
    /// `--startup-delay` of mock-vllm (the simulated model load); `None` keeps the manifest's.
    pub startup_delay_s: Option<f64>,
    /// Appended to mock-vllm's arguments.
    pub extra_args: Vec<String>,
    /// The readiness probe's `periodSeconds`; `None` keeps the manifest's.
    pub readiness_period_s: Option<u32>,
    /// The Service's `nodePort`.
    pub node_port: u16,
}

impl Target {
    /// The Deployment and Service of the kustomization at `manifests`, tailored.
    pub fn objects(&self, manifests: &Path) -> Result<Vec<serde_json::Value>, ClusterError> {
        let mut objects = read_manifests(manifests)?;
        for object in &mut objects {
            self.tailor(object);
        }
        Ok(objects)
    }

    fn tailor(&self, object: &mut serde_json::Value) {
        object["metadata"]["namespace"] = json!(self.namespace);
        match object["kind"].as_str() {
            Some("Deployment") => {
                object["spec"]["replicas"] = json!(self.replicas);
                let pod = &mut object["spec"]["template"]["spec"];
                if let Some(node) = &self.node {
                    pod["nodeSelector"] = json!({"kubernetes.io/hostname": node});
                }
                let container = &mut pod["containers"][0];
                if let Some(delay) = self.startup_delay_s {
                    set_container_arg(container, "startup-delay", delay);
                }
                if !self.extra_args.is_empty() {
                    let mut args: Vec<serde_json::Value> =
                        container["args"].as_array().cloned().unwrap_or_default();
                    args.extend(self.extra_args.iter().map(|a| json!(a)));
                    container["args"] = json!(args);
                }
                if let Some(period) = self.readiness_period_s {
                    container["readinessProbe"]["periodSeconds"] = json!(period);
                }
            }
            Some("Service") => object["spec"]["ports"][0]["nodePort"] = json!(self.node_port),
            _ => {}
        }
    }

    /// Server-side applies the namespace, then the tailored Deployment and Service.
    pub async fn apply(&self, client: &Client, manifests: &Path) -> Result<(), ClusterError> {
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let namespace =
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}});
        server_side_apply(&namespaces, &self.namespace, &namespace)
            .await
            .map_err(|source| ClusterError::Kube {
                context: format!("applying Namespace {}", self.namespace),
                source,
            })?;
        let objects = self.objects(manifests)?;
        let applier = Applier::for_objects(client.clone(), &objects).await?;
        for object in &objects {
            applier.apply(object, &self.namespace).await?;
        }
        Ok(())
    }
}

/// Server-side applies a PodAutoscaler (in its own namespace) and returns what the API server stored.
pub(crate) async fn apply_podautoscaler(
    client: &Client,
    pa: &PodAutoscaler,
) -> Result<PodAutoscaler, ClusterError> {
    let name = pa.name_any();
    let api: Api<PodAutoscaler> = match pa.namespace() {
        Some(namespace) => Api::namespaced(client.clone(), &namespace),
        None => Api::default_namespaced(client.clone()),
    };
    server_side_apply(&api, &name, pa)
        .await
        .map_err(|source| ClusterError::Kube {
            context: format!("applying PodAutoscaler {name}"),
            source,
        })
}

/// Server-side applies a PodAutoscaler given as JSON (a manifest as written) in `namespace`.
pub(crate) async fn apply_podautoscaler_json(
    client: &Client,
    namespace: &str,
    pa: &serde_json::Value,
) -> Result<PodAutoscaler, ClusterError> {
    let name = pa["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let api: Api<PodAutoscaler> = Api::namespaced(client.clone(), namespace);
    server_side_apply(&api, &name, pa)
        .await
        .map_err(|source| ClusterError::Kube {
            context: format!("applying PodAutoscaler {name}"),
            source,
        })
}

/// Deletes a target's namespace (everything in it goes with it) and waits until the API server has removed it, or
/// `timeout` passes. Returns false when there was none. On a cluster scenarios share one after another (kind, an
/// existing cluster) this frees the CPU the last scenario's pods requested, and it clears what an aborted earlier
/// run left under the same name, before the next scenario applies its own.
pub async fn delete_namespace(
    client: &Client,
    namespace: &str,
    timeout: Duration,
) -> Result<bool, ClusterError> {
    use kube::api::DeleteParams;
    use kube::runtime::wait::{await_condition, conditions};
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let kube_error = |source| ClusterError::Kube {
        context: format!("deleting Namespace {namespace}"),
        source,
    };
    let Some(existing) = namespaces.get_opt(namespace).await.map_err(kube_error)? else {
        return Ok(false);
    };
    let uid = existing.uid().unwrap_or_default();
    if existing.metadata.deletion_timestamp.is_none() {
        match namespaces
            .delete(namespace, &DeleteParams::foreground())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(true),
            Err(e) => return Err(kube_error(e)),
        }
    }
    let waited = tokio::time::timeout(
        timeout,
        await_condition(namespaces.clone(), namespace, conditions::is_deleted(&uid)),
    )
    .await
    .map_err(|_| "timed out".to_string())
    .and_then(|watched| watched.map_err(|e| e.to_string()));
    if let Err(mut reason) = waited {
        // Say what holds it: its own conditions, and any aggregated API that is down (the usual cause).
        if let Ok(Some(stuck)) = namespaces.get_opt(namespace).await {
            let held = crate::k8s::health::stuck_namespace_conditions(&stuck);
            if !held.is_empty() {
                reason.push_str(&format!("; its conditions: {}", held.join("; ")));
            }
        }
        reason.push_str(&crate::k8s::health::apiservice_note(client).await);
        return Err(ClusterError::Wait {
            what: format!("waiting for Namespace {namespace} to be deleted"),
            after: timeout,
            reason,
        });
    }
    Ok(true)
}

/// Watches the target pods of `namespace` until `count` of them satisfy `ready` (e.g.
/// [`crate::k8s::pod::is_serving`]), or `timeout` passes.
pub(crate) async fn wait_for_pods(
    client: &Client,
    namespace: &str,
    count: usize,
    timeout: Duration,
    ready: fn(&Pod) -> bool,
) -> Result<(), TooFew> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    wait::until_count(
        pods,
        watcher::Config::default().labels(SELECTOR),
        count,
        timeout,
        ready,
    )
    .await
}

/// Starts the observer on a target: its Deployment, pods and PodAutoscaler (all named [`TARGET`]) once a second,
/// appending to `output` as it goes.
pub(crate) fn start_observer(
    client: &Client,
    namespace: &str,
    podautoscaler: &str,
    output: Option<PathBuf>,
    gauge: Arc<LoadGauge>,
) -> Observer {
    Observer::start(
        client.clone(),
        ObserverConfig {
            namespace: namespace.to_string(),
            deployment: TARGET.to_string(),
            podautoscaler: podautoscaler.to_string(),
            selector: SELECTOR.into(),
            metrics_port: METRICS_PORT,
            interval: Duration::from_secs(1),
            output,
        },
        gauge,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifests() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/base/mock-vllm")
    }

    #[test]
    fn a_target_tailors_the_repository_manifests() {
        let target = Target {
            namespace: "ns".into(),
            replicas: 3,
            node: Some("node-a".into()),
            startup_delay_s: Some(2.5),
            extra_args: vec!["--max-num-seqs=64".into()],
            readiness_period_s: Some(1),
            node_port: 31001,
        };
        let objects = target.objects(&manifests()).expect("manifests read");
        let deployment = &objects[0];
        assert_eq!(deployment["metadata"]["namespace"], "ns");
        assert_eq!(deployment["spec"]["replicas"], 3);
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(pod["nodeSelector"]["kubernetes.io/hostname"], "node-a");
        let args: Vec<&str> = pod["containers"][0]["args"]
            .as_array()
            .expect("args")
            .iter()
            .filter_map(|a| a.as_str())
            .collect();
        assert_eq!(
            args[args.len() - 2..],
            ["--startup-delay=2.5", "--max-num-seqs=64"]
        );
        assert_eq!(pod["containers"][0]["readinessProbe"]["periodSeconds"], 1);
        assert_eq!(objects[1]["spec"]["ports"][0]["nodePort"], 31001);
    }

    #[test]
    fn an_untailored_target_keeps_the_manifest_values() {
        let target = Target {
            namespace: "demo".into(),
            replicas: 1,
            node: None,
            startup_delay_s: None,
            extra_args: Vec::new(),
            readiness_period_s: None,
            node_port: 31500,
        };
        let original = read_manifests(&manifests()).expect("manifests read");
        let objects = target.objects(&manifests()).expect("manifests read");
        let (before, after) = (
            &original[0]["spec"]["template"]["spec"],
            &objects[0]["spec"]["template"]["spec"],
        );
        assert_eq!(before["containers"], after["containers"]);
        assert!(after.get("nodeSelector").is_none());
    }
}
