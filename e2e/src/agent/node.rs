//! The Node object: registration with GPU capacity, and the periodic status refresh a kubelet does.
//!
//! A node is created with its status (capacity = allocatable: cpu, memory, pods, ephemeral-storage and
//! `nvidia.com/gpu`), `Ready=True` and the pressure conditions false, and all `nodeInfo` strings set. The
//! `TaintNodesByCondition` admission plugin adds `node.kubernetes.io/not-ready:NoSchedule` at creation; the node
//! lifecycle controller removes it once it sees `Ready=True`, after which the scheduler places pods here. The
//! heartbeat proper is the Lease ([`super::lease`]); the status is refreshed every minute like a kubelet does.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeStatus,
    NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::AgentError;

/// Status refresh period (the Lease is the fast heartbeat).
const STATUS_REFRESH: Duration = Duration::from_secs(60);

/// One simulated node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    /// Node name.
    pub name: String,
    /// `nvidia.com/gpu` capacity.
    pub gpus: u32,
    /// CPU cores.
    pub cpus: u32,
    /// Memory in GiB.
    pub memory_gib: u32,
    /// Maximum pods.
    pub max_pods: u32,
    /// Extra node labels.
    pub labels: BTreeMap<String, String>,
}

impl NodeSpec {
    /// A node with `gpus` GPUs and generous CPU, memory and pod capacity.
    pub fn gpu_node(name: impl Into<String>, gpus: u32) -> Self {
        Self {
            name: name.into(),
            gpus,
            cpus: 64,
            memory_gib: 512,
            max_pods: 110,
            labels: BTreeMap::new(),
        }
    }
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

fn conditions() -> Vec<NodeCondition> {
    let condition = |type_: &str, status: &str, reason: &str, message: &str| NodeCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(now()),
        last_transition_time: Some(now()),
    };
    vec![
        condition(
            "Ready",
            "True",
            "KubeletReady",
            "autoscale-harness node agent is posting ready status",
        ),
        condition(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        condition(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
        ),
        condition(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        ),
    ]
}

/// The Node object for `spec`, status included.
pub(crate) fn node_object(spec: &NodeSpec, host_ip: &str, kubelet_version: &str) -> Node {
    let mut labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), spec.name.clone()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        ("kubernetes.io/arch".to_string(), "amd64".to_string()),
        ("type".to_string(), "autoscale-harness".to_string()),
    ]);
    labels.extend(spec.labels.clone());
    let capacity = BTreeMap::from([
        ("cpu".to_string(), Quantity(spec.cpus.to_string())),
        (
            "memory".to_string(),
            Quantity(format!("{}Gi", spec.memory_gib)),
        ),
        ("pods".to_string(), Quantity(spec.max_pods.to_string())),
        ("ephemeral-storage".to_string(), Quantity("100Gi".into())),
        (
            "nvidia.com/gpu".to_string(),
            Quantity(spec.gpus.to_string()),
        ),
    ]);
    Node {
        metadata: ObjectMeta {
            name: Some(spec.name.clone()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                "node.alpha.kubernetes.io/ttl".to_string(),
                "0".to_string(),
            )])),
            ..ObjectMeta::default()
        },
        spec: None,
        status: Some(NodeStatus {
            allocatable: Some(capacity.clone()),
            capacity: Some(capacity),
            conditions: Some(conditions()),
            addresses: Some(vec![
                NodeAddress {
                    type_: "InternalIP".into(),
                    address: host_ip.into(),
                },
                NodeAddress {
                    type_: "Hostname".into(),
                    address: spec.name.clone(),
                },
            ]),
            daemon_endpoints: Some(NodeDaemonEndpoints {
                kubelet_endpoint: Some(DaemonEndpoint { port: 10250 }),
            }),
            node_info: Some(NodeSystemInfo {
                architecture: "amd64".into(),
                boot_id: spec.name.clone(),
                container_runtime_version: "autoscale-harness://in-process".into(),
                kernel_version: "loopback".into(),
                kube_proxy_version: kubelet_version.into(),
                kubelet_version: kubelet_version.into(),
                machine_id: spec.name.clone(),
                operating_system: "linux".into(),
                os_image: "autoscale-harness node agent".into(),
                system_uuid: spec.name.clone(),
                ..NodeSystemInfo::default()
            }),
            ..NodeStatus::default()
        }),
    }
}

/// Creates the node (or takes over an existing one of the same name) and returns its UID.
pub async fn register(client: &Client, node: &Node) -> Result<String, AgentError> {
    let api: Api<Node> = Api::all(client.clone());
    let name = node.metadata.name.clone().unwrap_or_default();
    let created = match api.create(&PostParams::default(), node).await {
        Ok(created) => created,
        Err(kube::Error::Api(e)) if e.code == 409 => {
            warn!(node = %name, "node exists (an earlier agent?): taking it over");
            let status = json!({ "status": node.status });
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await
                .map_err(|source| AgentError::kube(format!("updating node {name}"), source))?
        }
        Err(source) => return Err(AgentError::kube(format!("creating node {name}"), source)),
    };
    info!(node = %name, "registered");
    Ok(created.metadata.uid.unwrap_or_default())
}

/// Refreshes the node's conditions every minute until `shutdown`.
pub(crate) async fn refresh_status(client: Client, name: String, shutdown: CancellationToken) {
    let api: Api<Node> = Api::all(client);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(STATUS_REFRESH) => {}
        }
        let status = json!({ "status": { "conditions": conditions() } });
        if let Err(e) = api
            .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&status))
            .await
        {
            warn!(node = %name, error = %e, "node status refresh failed");
        }
    }
}

/// Deletes the node (on `down`), ignoring "not found".
pub(crate) async fn deregister(client: &Client, name: &str) {
    let api: Api<Node> = Api::all(client.clone());
    match api.delete(name, &Default::default()).await {
        Ok(_) | Err(kube::Error::Api(_)) => {}
        Err(e) => warn!(node = %name, error = %e, "node deletion failed"),
    }
}
