//! The whole local cluster in one handle: the control plane processes plus, in this process, the node agent.
//!
//! [`LocalCluster::start`] is what `autoscale-harness up` runs (in a detached supervisor process) and what tests
//! and scenario runs use directly. [`ClusterState`] is the supervisor's state file, through which `status` and
//! `down` find a cluster started by another process.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::agent::{AgentError, AgentOptions, NodeAgent, NodeSpec};
use crate::cluster::binaries::Binaries;
use crate::cluster::{ClusterError, ClusterPaths, ControlPlane, ControlPlaneOptions, Ports};
use crate::gateway::{Gateway, GatewayError, GatewayOptions};
use crate::metrics_api::{MetricsAdapter, MetricsAdapterOptions, MetricsApiError};

/// Everything that describes a local cluster.
#[derive(Debug, Clone)]
pub struct LocalClusterOptions {
    /// Cluster name (its directory under `<state_root>/clusters/`).
    pub name: String,
    /// Where clusters keep their files (`.e2e` in the repository by default).
    pub state_root: PathBuf,
    /// Control-plane tunables.
    pub control_plane: ControlPlaneOptions,
    /// Simulated nodes.
    pub agent: AgentOptions,
    /// The Service gateway (what kube-proxy and NodePorts give in kind).
    pub gateway: GatewayOptions,
    /// The metrics adapter behind `custom.metrics.k8s.io` and `metrics.k8s.io` (what the HPA reads); `None` leaves
    /// those APIs unregistered (e.g. for a test that runs its own adapter).
    pub metrics_api: Option<MetricsAdapterOptions>,
}

impl LocalClusterOptions {
    /// What `up`, `run` and `demo` start: the given simulated nodes with pod addresses from
    /// `127.<second_octet>.0.0/16`, the default gateway, the metrics adapter, and the HPA sync period given.
    pub fn with_nodes(
        name: &str,
        state_root: &Path,
        hpa_sync_period: Duration,
        nodes: Vec<NodeSpec>,
        second_octet: u8,
    ) -> Self {
        Self {
            name: name.to_string(),
            state_root: state_root.to_path_buf(),
            control_plane: ControlPlaneOptions {
                hpa_sync_period,
                ..ControlPlaneOptions::default()
            },
            agent: AgentOptions {
                nodes,
                second_octet,
                ..AgentOptions::default()
            },
            gateway: GatewayOptions::default(),
            metrics_api: Some(MetricsAdapterOptions::default()),
        }
    }
}

/// Why the local cluster could not start.
#[derive(Debug, thiserror::Error)]
pub enum LocalClusterError {
    /// Control plane.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// Node agent.
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// Gateway.
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    /// Metrics adapter.
    #[error(transparent)]
    MetricsApi(#[from] MetricsApiError),
}

/// A running local cluster.
#[derive(Debug)]
pub struct LocalCluster {
    /// The control plane.
    pub plane: ControlPlane,
    /// The node agent.
    pub agent: NodeAgent,
    /// The Service gateway.
    pub gateway: Gateway,
    /// The metrics adapter, if started.
    pub metrics_api: Option<MetricsAdapter>,
    shutdown: CancellationToken,
}

impl LocalCluster {
    /// Starts the control plane, then the node agent.
    pub async fn start(
        binaries: &Binaries,
        options: &LocalClusterOptions,
    ) -> Result<Self, LocalClusterError> {
        let paths = ClusterPaths::new(&options.state_root, &options.name);
        let plane = ControlPlane::start(paths, binaries, &options.control_plane).await?;
        let shutdown = CancellationToken::new();
        let agent = match NodeAgent::start(
            plane.client.clone(),
            options.agent.clone(),
            mock_vllm::Tokenizer::new(),
            shutdown.child_token(),
        )
        .await
        {
            Ok(agent) => agent,
            Err(e) => {
                plane.stop().await;
                return Err(e.into());
            }
        };
        let gateway = match Gateway::start(
            plane.client.clone(),
            options.gateway.clone(),
            shutdown.child_token(),
        )
        .await
        {
            Ok(gateway) => gateway,
            Err(e) => {
                agent.stop(false).await;
                plane.stop().await;
                return Err(e.into());
            }
        };
        let metrics_api = match &options.metrics_api {
            None => Ok(None),
            Some(adapter_options) => MetricsAdapter::start(
                plane.client.clone(),
                adapter_options.clone(),
                shutdown.child_token(),
            )
            .await
            .map(Some),
        };
        let metrics_api = match metrics_api {
            Ok(adapter) => adapter,
            Err(e) => {
                gateway.stop().await;
                agent.stop(false).await;
                plane.stop().await;
                return Err(e.into());
            }
        };
        info!(name = %options.name, kubeconfig = %plane.paths.kubeconfig.display(), "local cluster up");
        Ok(Self {
            plane,
            agent,
            gateway,
            metrics_api,
            shutdown,
        })
    }

    /// Stops the metrics adapter (deregistering its APIServices first), the gateway, the agent (its pods stop
    /// with it) and the control plane.
    pub async fn stop(self) {
        if let Some(adapter) = self.metrics_api {
            if let Err(e) = adapter.stop().await {
                tracing::warn!(error = %e, "metrics adapter did not stop cleanly");
            }
        }
        self.shutdown.cancel();
        self.gateway.stop().await;
        self.agent.stop(false).await;
        self.plane.stop().await;
    }
}

/// The supervisor's state file (`<cluster dir>/state.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClusterState {
    /// Cluster name.
    pub name: String,
    /// The supervisor process.
    pub supervisor_pid: u32,
    /// `starting`, `ready` or `failed`.
    pub phase: String,
    /// Failure message, when `failed`.
    #[serde(default)]
    pub error: Option<String>,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// The API server URL.
    pub server: String,
    /// Component ports.
    pub ports: Option<Ports>,
    /// Component processes.
    #[serde(default)]
    pub components: Vec<(String, u32)>,
    /// Logs directory.
    pub logs: PathBuf,
    /// The pinned kubectl.
    #[serde(default)]
    pub kubectl: Option<PathBuf>,
}

impl ClusterState {
    /// Reads a state file; `None` if there is none or it is unreadable.
    pub fn read(path: &Path) -> Option<Self> {
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
    }

    /// Writes the state file atomically.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("json.tmp");
        std::fs::write(
            &tmp,
            serde_json::to_string_pretty(self).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(tmp, path)
    }

    /// True while the supervisor process exists.
    pub fn supervisor_alive(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.supervisor_pid))
            .is_ok_and(|s| !s.contains(") Z "))
    }
}
