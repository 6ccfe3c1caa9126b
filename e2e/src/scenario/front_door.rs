//! How a scenario run reaches its Services, and what that says about where its pods may go.
//!
//! - [`FrontDoor::Local`]: the local cluster. The harness's gateway plays kube-proxy and serves every NodePort
//!   Service on `127.0.0.1:<nodePort>`; each scenario has its own simulated 8-GPU node (pods are pinned to it with a
//!   `nodeSelector`), so scenarios run side by side without sharing capacity.
//! - [`FrontDoor::NodePort`]: any other cluster (kind, an existing one). A Service is reached at
//!   `http://<host>:<nodePort>`: for kind the host port mappings of `kind-config.yaml` (host `127.0.0.1`), for
//!   another cluster a node address reachable from here (port-forwarding is out of scope). The cluster's own nodes
//!   are shared, so pods are not pinned, and scenarios run one after another: side by side they would compete for
//!   the same GPUs and CPUs and judge each other's interference.
//!
//! Either way the runner waits until the Service answers before it starts the load: through the gateway's view of
//! ready pods locally, through `GET /health` on the NodePort elsewhere.

use std::time::{Duration, Instant};

use crate::gateway::{Gateway, ServiceKey};
use crate::http_client::http_client;

/// Where a scenario's Services are reached.
#[derive(Debug, Clone, Copy)]
pub enum FrontDoor<'a> {
    /// The local cluster's gateway (per-scenario simulated nodes, scenarios side by side).
    Local(&'a Gateway),
    /// NodePorts on `host` (shared nodes, scenarios one after another).
    NodePort {
        /// Host name or address the NodePorts are reached on.
        host: &'a str,
    },
}

impl FrontDoor<'_> {
    /// Whether each scenario has its own node (and its pods are pinned to it).
    pub(crate) fn pins_nodes(&self) -> bool {
        matches!(self, FrontDoor::Local(_))
    }

    /// Whether scenarios may run side by side.
    pub(crate) fn side_by_side(&self) -> bool {
        matches!(self, FrontDoor::Local(_))
    }

    /// Waits until `service` (NodePort `node_port`) serves at least `ready` pods, then returns the `host:port` to
    /// send requests to.
    pub(crate) async fn wait_serving(
        &self,
        service: &ServiceKey,
        node_port: u16,
        ready: usize,
        timeout: Duration,
    ) -> Result<String, String> {
        match self {
            FrontDoor::Local(gateway) => {
                if !gateway
                    .wait_until(timeout, |g| g.ready_pods(service).len() >= ready)
                    .await
                {
                    return Err("the gateway never saw the initial pods ready".into());
                }
                gateway
                    .address_of(service)
                    .map(|a| a.to_string())
                    .ok_or_else(|| format!("the gateway does not serve node port {node_port}"))
            }
            FrontDoor::NodePort { host } => {
                // The pods are Ready (the runner waited); this waits for the Service's endpoints and kube-proxy.
                let authority = format!("{host}:{node_port}");
                let url = format!("http://{authority}/health");
                let http = http_client(Duration::from_secs(2)).map_err(|e| e.to_string())?;
                let deadline = Instant::now() + timeout;
                loop {
                    let last = match http.get(&url).send().await {
                        Ok(r) if r.status().is_success() => return Ok(authority),
                        Ok(r) => format!("HTTP {}", r.status()),
                        Err(e) => e.to_string(),
                    };
                    if Instant::now() > deadline {
                        return Err(format!(
                            "{url} did not answer 200 within {} s (last: {last})",
                            timeout.as_secs()
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
    }
}
