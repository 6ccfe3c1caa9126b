//! The node heartbeat: a `coordination.k8s.io/v1` Lease in `kube-node-lease`, renewed every 10 s.
//!
//! This is what keeps the node `Ready` in the node lifecycle controller's eyes (a kubelet renews at a quarter of
//! the 40 s lease duration). The Lease is owned by the Node, so deleting the node deletes it.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use kube::api::Api;
use kube::Client;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::k8s::apply::server_side_apply;

/// Lease duration, as a kubelet sets it.
pub(crate) const LEASE_DURATION_SECONDS: i32 = 40;
/// Renewal period: a quarter of the duration.
pub(crate) const RENEW_EVERY: Duration = Duration::from_secs(10);

fn lease(node: &str, node_uid: &str) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(node.to_string()),
            namespace: Some("kube-node-lease".into()),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Node".into(),
                name: node.to_string(),
                uid: node_uid.to_string(),
                ..OwnerReference::default()
            }]),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(node.to_string()),
            lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
            renew_time: Some(MicroTime(k8s_openapi::jiff::Timestamp::now())),
            ..LeaseSpec::default()
        }),
    }
}

/// Renews once (server-side apply creates it the first time).
pub(crate) async fn renew(client: &Client, node: &str, node_uid: &str) -> Result<(), kube::Error> {
    let api: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let mut object = lease(node, node_uid);
    object.metadata.managed_fields = None;
    server_side_apply(&api, node, &object).await.map(|_| ())
}

/// Renews every [`RENEW_EVERY`] until `shutdown`.
pub(crate) async fn keep_renewing(
    client: Client,
    node: String,
    node_uid: String,
    shutdown: CancellationToken,
) {
    loop {
        if let Err(e) = renew(&client, &node, &node_uid).await {
            warn!(%node, error = %e, "lease renewal failed");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(RENEW_EVERY) => {}
        }
    }
}
