//! What the harness asks of a Pod: is it Ready, is it going away.
//!
//! Every part of the harness that counts pods (the scenario runner waiting for its initial replicas, the observer,
//! the gateway's endpoint table, `status`, the demo) must agree on what "ready" means, so it is decided here once:
//! the kubelet-style `Ready` condition is `True`. A pod that is being deleted may still report Ready for a moment
//! (its readiness probe has not failed yet); callers that count serving pods use [`is_serving`].

use k8s_openapi::api::core::v1::Pod;

/// The pod's `Ready` condition is `True`.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The pod has a deletion timestamp: it is terminating and about to stop serving.
pub(crate) fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// Ready and not terminating: the pods a Service would route new requests to.
pub fn is_serving(pod: &Pod) -> bool {
    is_ready(pod) && !is_terminating(pod)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn pod(ready: &str, deleting: bool) -> Pod {
        let mut pod = Pod {
            status: Some(PodStatus {
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: ready.into(),
                    ..PodCondition::default()
                }]),
                ..PodStatus::default()
            }),
            ..Pod::default()
        };
        if deleting {
            pod.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        }
        pod
    }

    #[test]
    fn readiness_is_the_ready_condition_and_serving_excludes_terminating_pods() {
        assert!(is_ready(&pod("True", false)) && is_serving(&pod("True", false)));
        assert!(is_ready(&pod("True", true)) && !is_serving(&pod("True", true)));
        assert!(!is_ready(&pod("False", false)) && !is_serving(&pod("False", false)));
        assert!(!is_ready(&Pod::default()));
    }
}
