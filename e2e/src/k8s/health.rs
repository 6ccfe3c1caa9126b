//! Why a cluster's API is only partly there: aggregated APIs (APIServices) that are not Available, and the
//! conditions a Namespace stuck in Terminating carries. While any registered APIService is unavailable, full API
//! discovery fails and the namespace controller cannot finish deleting any namespace
//! (`NamespaceDeletionDiscoveryFailure`), so "API discovery failed" or "namespace not deleted after 180 s" alone
//! hides the one fact that matters: which aggregated API is down, and what the aggregator said about it.

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};

/// One line per APIService whose `Available` condition is not `True`: `name: Reason: message`.
pub async fn unavailable_apiservices(client: &Client) -> Result<Vec<String>, kube::Error> {
    let api: Api<APIService> = Api::all(client.clone());
    let list = api.list(&ListParams::default()).await?;
    Ok(list
        .items
        .iter()
        .filter_map(|service| {
            let available = service
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "Available"));
            match available {
                Some(c) if c.status == "True" => None,
                Some(c) => Some(format!(
                    "{}: {}: {}",
                    service.name_any(),
                    c.reason.as_deref().unwrap_or("no reason"),
                    c.message.as_deref().unwrap_or("no message")
                )),
                None => Some(format!(
                    "{}: no Available condition yet",
                    service.name_any()
                )),
            }
        })
        .collect())
}

/// The conditions of a Namespace that say why it is not gone yet (`status: True`), `Type: message`.
pub fn stuck_namespace_conditions(namespace: &Namespace) -> Vec<String> {
    namespace
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .map(|conditions| {
            conditions
                .iter()
                .filter(|c| c.status == "True")
                .map(|c| format!("{}: {}", c.type_, c.message.as_deref().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default()
}

/// A sentence for an error message: the unavailable APIServices, or nothing when all are Available (or the list
/// itself fails: the caller's own error says enough then).
pub async fn apiservice_note(client: &Client) -> String {
    match unavailable_apiservices(client).await {
        Ok(down) if !down.is_empty() => format!("; unavailable APIServices: {}", down.join("; ")),
        _ => String::new(),
    }
}

/// Waits until every APIService served by a Service (an aggregated API, not one of the API server's own) answers
/// its discovery through the API server, or `timeout` passes; the error lists each that did not, with its last
/// answer. `Available: True` is not enough: once, on kind, both metrics APIServices stayed Available while the
/// aggregator answered 404 for them without forwarding a request to the adapter, and every scenario after that
/// failed on discovery or on a namespace that could not be deleted.
pub async fn aggregated_apis_answer(
    client: &Client,
    timeout: std::time::Duration,
) -> Result<Vec<String>, String> {
    let api: Api<APIService> = Api::all(client.clone());
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let mut answered = Vec::new();
        let mut failing = Vec::new();
        match api.list(&ListParams::default()).await {
            Ok(list) => {
                let served = list.items.iter().filter_map(|service| {
                    let spec = service.spec.as_ref()?;
                    spec.service.as_ref()?;
                    Some((service, spec))
                });
                for (service, spec) in served {
                    let group_version = format!(
                        "{}/{}",
                        spec.group.as_deref().unwrap_or_default(),
                        spec.version.as_deref().unwrap_or_default()
                    );
                    match client.list_api_group_resources(&group_version).await {
                        Ok(_) => answered.push(group_version),
                        Err(e) => failing.push(format!(
                            "{group_version} (APIService {}): {}",
                            service.name_any(),
                            crate::error_chain::error_chain(&e)
                        )),
                    }
                }
            }
            Err(e) => failing.push(format!(
                "listing APIServices: {}",
                crate::error_chain::error_chain(&e)
            )),
        }
        if failing.is_empty() {
            return Ok(answered);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(failing.join("; "));
        }
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_terminating_namespace_says_what_holds_it() {
        let namespace: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "docs-hpa-sample"},
            "status": {"phase": "Terminating", "conditions": [
                {"type": "NamespaceDeletionDiscoveryFailure", "status": "True",
                 "message": "Discovery failed for some groups, 1 failing: unable to retrieve the complete list of server APIs: custom.metrics.k8s.io/v1beta2: stale GroupVersion discovery"},
                {"type": "NamespaceDeletionContentFailure", "status": "False", "message": "All content successfully deleted"}
            ]}
        }))
        .expect("a Namespace");
        let held = stuck_namespace_conditions(&namespace);
        assert_eq!(held.len(), 1, "{held:?}");
        assert!(held[0].starts_with("NamespaceDeletionDiscoveryFailure: Discovery failed"));
    }
}
