//! What describes one local cluster before anything runs: where its files go, which loopback ports its
//! processes listen on, and the control plane's tunables.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::ClusterError;

/// Every file and directory of one cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterPaths {
    /// The cluster's directory: `<state root>/clusters/<name>`.
    pub dir: PathBuf,
    /// Certificates and keys.
    pub pki: PathBuf,
    /// Component logs (the artifacts a failed run is debugged from).
    pub logs: PathBuf,
    /// etcd's data directory.
    pub etcd_data: PathBuf,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// PIDs of running components (for recovery after a crash).
    pub pid_registry: PathBuf,
    /// The supervisor's state file.
    pub state: PathBuf,
}

impl ClusterPaths {
    /// The layout for cluster `name` under `state_root` (`.e2e` by default). The default cluster's kubeconfig is
    /// the well-known `<state_root>/kubeconfig`.
    pub fn new(state_root: &Path, name: &str) -> Self {
        let dir = state_root.join("clusters").join(name);
        let kubeconfig = if name == "default" {
            state_root.join("kubeconfig")
        } else {
            dir.join("kubeconfig")
        };
        Self {
            pki: dir.join("pki"),
            logs: dir.join("logs"),
            etcd_data: dir.join("etcd"),
            pid_registry: dir.join("pids.json"),
            state: dir.join("state.json"),
            kubeconfig,
            dir,
        }
    }
}

/// The loopback ports of one cluster.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Ports {
    /// etcd clients.
    pub etcd_client: u16,
    /// etcd peers.
    pub etcd_peer: u16,
    /// kube-apiserver (HTTPS).
    pub apiserver: u16,
    /// kube-controller-manager health (HTTPS).
    pub controller_manager: u16,
    /// kube-scheduler health (HTTPS).
    pub scheduler: u16,
    /// AIBrix controller metrics.
    pub aibrix_metrics: u16,
    /// AIBrix controller health probes.
    pub aibrix_health: u16,
}

impl Ports {
    /// Picks free ports on 127.0.0.1 (held open together so that they are distinct).
    pub(crate) fn pick() -> Result<Self, ClusterError> {
        let listeners: Vec<TcpListener> = (0..7)
            .map(|_| TcpListener::bind("127.0.0.1:0"))
            .collect::<Result<_, _>>()
            .map_err(ClusterError::Port)?;
        let port = |i: usize| {
            listeners[i]
                .local_addr()
                .map(|a| a.port())
                .map_err(ClusterError::Port)
        };
        Ok(Self {
            etcd_client: port(0)?,
            etcd_peer: port(1)?,
            apiserver: port(2)?,
            controller_manager: port(3)?,
            scheduler: port(4)?,
            aibrix_metrics: port(5)?,
            aibrix_health: port(6)?,
        })
    }
}

/// Tunables of the control plane.
#[derive(Debug, Clone)]
pub struct ControlPlaneOptions {
    /// `--horizontal-pod-autoscaler-sync-period` (Kubernetes default 15 s).
    pub hpa_sync_period: Duration,
    /// `--node-monitor-grace-period`.
    pub node_monitor_grace_period: Duration,
    /// How long each component may take to become healthy.
    pub health_timeout: Duration,
    /// Extra environment-free arguments for the AIBrix controller manager.
    pub aibrix_extra_args: Vec<String>,
}

impl Default for ControlPlaneOptions {
    fn default() -> Self {
        Self {
            hpa_sync_period: Duration::from_secs(15),
            node_monitor_grace_period: Duration::from_secs(50),
            health_timeout: Duration::from_secs(60),
            aibrix_extra_args: Vec::new(),
        }
    }
}
