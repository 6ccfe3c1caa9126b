//! A Kubernetes cluster of the test's own: [`TestPlane`] is the control plane alone (for tests that play the
//! node's part themselves or only need the API server), [`TestCluster`] the whole local cluster (control plane,
//! in-process node agent, Service gateway) exactly as `autoscale-harness up` runs it.
//!
//! Both keep their state under a per-run [`temp_dir`](super::temp_dir) and remove it when stopped; a test that
//! fails before stopping leaves it behind for a look at the logs. Both deref to the library handle, so tests read
//! `plane.client` or `cluster.gateway` as they would with the library types.

use std::ops::Deref;
use std::path::PathBuf;
use std::time::Instant;

use e2e::agent::{AgentOptions, NodeSpec};
use e2e::cluster::binaries::Binaries;
use e2e::cluster::{ClusterPaths, ControlPlane, ControlPlaneOptions};
use e2e::gateway::GatewayOptions;
use e2e::local_cluster::{LocalCluster, LocalClusterOptions};

use super::{alive, temp_dir};

/// A control plane under `temp_dir(dir)`.
pub struct TestPlane {
    pub plane: ControlPlane,
    pub binaries: Binaries,
    /// When the plane began starting (after the binaries were ensured), for tests that report start-up time.
    pub started: Instant,
    root: PathBuf,
}

impl TestPlane {
    /// Starts cluster `name` with default options, building the pinned binaries first if they are missing.
    pub async fn start(dir: &str, name: &str) -> Self {
        let binaries = Binaries::ensure().await.expect("binaries build");
        let root = temp_dir(dir);
        let started = Instant::now();
        let plane = ControlPlane::start(
            ClusterPaths::new(&root, name),
            &binaries,
            &ControlPlaneOptions::default(),
        )
        .await
        .expect("control plane starts");
        Self {
            plane,
            binaries,
            started,
            root,
        }
    }

    /// Stops every process and removes the state directory.
    pub async fn stop(self) {
        self.plane.stop().await;
        std::fs::remove_dir_all(&self.root).ok();
    }

    /// [`stop`](Self::stop), then asserts that none of the plane's processes survived it.
    pub async fn stop_leaving_no_process(self) {
        let pids = self.plane.pids();
        self.stop().await;
        assert_gone(&pids);
    }
}

impl Deref for TestPlane {
    type Target = ControlPlane;

    fn deref(&self) -> &ControlPlane {
        &self.plane
    }
}

/// Options for a local cluster named `name` under `temp_dir(dir)`: one simulated node, pods on
/// `127.<second_octet>.x.y`, default control plane and gateway, no metrics adapter. Tests adjust the fields they
/// care about.
pub fn cluster_options(
    dir: &str,
    name: &str,
    node: NodeSpec,
    second_octet: u8,
) -> LocalClusterOptions {
    LocalClusterOptions {
        name: name.into(),
        state_root: temp_dir(dir),
        control_plane: ControlPlaneOptions::default(),
        agent: AgentOptions {
            nodes: vec![node],
            second_octet,
            ..AgentOptions::default()
        },
        gateway: GatewayOptions::default(),
        metrics_api: None,
    }
}

/// A local cluster started from [`cluster_options`].
pub struct TestCluster {
    pub cluster: LocalCluster,
    /// When the cluster began starting (after the binaries were ensured).
    pub started: Instant,
    root: PathBuf,
}

impl TestCluster {
    pub async fn start(options: LocalClusterOptions) -> Self {
        let binaries = Binaries::ensure().await.expect("binaries build");
        let started = Instant::now();
        let cluster = LocalCluster::start(&binaries, &options)
            .await
            .expect("local cluster starts");
        Self {
            cluster,
            started,
            root: options.state_root,
        }
    }

    /// Stops the gateway, the agent (its pods with it) and the control plane; removes the state directory.
    pub async fn stop(self) {
        let root = self.stop_keeping_state().await;
        std::fs::remove_dir_all(root).ok();
    }

    /// Stops everything but keeps the state directory (logs, and whatever the test wrote there), returned for the
    /// test to read or remove.
    pub async fn stop_keeping_state(self) -> PathBuf {
        self.cluster.stop().await;
        self.root
    }

    /// [`stop`](Self::stop), then asserts that none of the control plane's processes survived it.
    pub async fn stop_leaving_no_process(self) {
        let pids = self.cluster.plane.pids();
        self.stop().await;
        assert_gone(&pids);
    }
}

impl Deref for TestCluster {
    type Target = LocalCluster;

    fn deref(&self) -> &LocalCluster {
        &self.cluster
    }
}

/// Asserts that no process of `pids` (name, pid) is still running.
fn assert_gone(pids: &[(String, u32)]) {
    for (name, pid) in pids {
        assert!(!alive(*pid), "{name} ({pid}) still running after stop");
    }
}
