//! The pod status a kubelet would write, built from what the agent knows about one pod.
//!
//! A pod worker ([`super::pods`]) only says where the pod is in its life ([`Phase`]); this module turns that into
//! the full `status` merge patch (phase, addresses, the five kubelet conditions, one status per container), so the
//! shape of what other controllers read (the endpoints controller, the autoscalers, `kubectl get pods`) is decided
//! in one place.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{json, Value};
use tracing::warn;

/// The current time as the API server writes it (RFC 3339).
pub(super) fn now() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

fn condition(type_: &str, ok: bool, at: &str) -> Value {
    json!({"type": type_, "status": if ok { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": at})
}

/// Writes one pod's status; holds what does not change over the pod's life.
pub(super) struct StatusWriter {
    pub(super) api: Api<Pod>,
    pub(super) name: String,
    pub(super) host_ip: String,
    pub(super) start_time: String,
    /// `(name, image)` of every container, in spec order.
    pub(super) containers: Vec<(String, String)>,
    pub(super) uid: String,
}

/// Where a pod is in its life.
pub(super) enum Phase<'a> {
    /// Accepted; its containers are being created (`Pending`).
    Creating,
    /// The "process" runs on `ip`; `ready` is the readiness probe's verdict.
    Running {
        ip: Ipv4Addr,
        started_at: &'a str,
        ready: bool,
    },
    /// The first container cannot start: `message` says why (`Pending`, `CrashLoopBackOff`).
    CrashLoop { message: &'a str },
}

impl StatusWriter {
    /// Merge-patches `status` for `phase`; a failure is logged (the pod may be gone already), not returned.
    pub(super) async fn write(&self, phase: Phase<'_>) {
        let at = now();
        let (pod_phase, ip, ready, started) = match &phase {
            Phase::Creating | Phase::CrashLoop { .. } => ("Pending", None, false, false),
            Phase::Running { ip, ready, .. } => ("Running", Some(ip.to_string()), *ready, true),
        };
        let container_statuses: Vec<Value> = self
            .containers
            .iter()
            .enumerate()
            .map(|(i, (name, image))| {
                let state = match &phase {
                    Phase::Creating => json!({"waiting": {"reason": "ContainerCreating"}}),
                    Phase::CrashLoop { message } if i == 0 => {
                        json!({"waiting": {"reason": "CrashLoopBackOff", "message": message}})
                    }
                    Phase::CrashLoop { .. } => json!({"waiting": {"reason": "PodInitializing"}}),
                    Phase::Running { started_at, .. } => {
                        json!({"running": {"startedAt": started_at}})
                    }
                };
                json!({
                    "name": name, "image": image, "imageID": format!("harness://{image}"),
                    "containerID": format!("harness://{}/{name}", self.uid),
                    "ready": ready, "started": started, "restartCount": 0, "state": state,
                })
            })
            .collect();
        let mut status = json!({
            "phase": pod_phase,
            "hostIP": self.host_ip,
            "hostIPs": [{"ip": self.host_ip}],
            "startTime": self.start_time,
            "conditions": [
                condition("PodReadyToStartContainers", started, &at),
                condition("Initialized", true, &at),
                condition("Ready", ready, &at),
                condition("ContainersReady", ready, &at),
                condition("PodScheduled", true, &at),
            ],
            "containerStatuses": container_statuses,
        });
        if let Some(ip) = ip {
            status["podIP"] = json!(ip);
            status["podIPs"] = json!([{"ip": ip}]);
        }
        let patch = json!({ "status": status });
        if let Err(e) = self
            .api
            .patch_status(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            // The pod may be gone already (force-deleted); nothing to report then.
            warn!(pod = %self.name, error = %e, "status update failed");
        }
    }
}
