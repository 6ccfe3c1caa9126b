//! The node agent: plays the kubelet for simulated GPU nodes, running each mock-vllm pod in this process.
//!
//! For every node it registers the Node (with `nvidia.com/gpu` capacity, [`node`]), keeps it Ready with Lease
//! heartbeats ([`lease`]), and watches the pods bound to it (`spec.nodeName`). [`workers`] keeps one worker per
//! pod in step with that watch, relists included. Each worker ([`pods`]) starts the mock-vllm server the pod's
//! container describes on the pod's own loopback address ([`addresses`]), writes pod status as a kubelet does
//! ([`status`]), and drains and confirms deletion. [`table`] records what runs where.
//!
//! Plays what KWOK's node controller and virtual-kubelet do, minus containers: the workload is in-process.
//! Shutdown: the agent's token stops every worker (servers stop, no drain) and the node loops.

pub mod addresses;
pub mod lease;
pub mod node;
pub mod pods;
mod status;
pub mod table;
mod workers;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::watcher;
use kube::runtime::WatchStreamExt;
use kube::Client;
use mock_vllm::Tokenizer;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

use addresses::LoopbackAllocator;
pub use node::NodeSpec;
use pods::NodeContext;
pub use table::{PodRecord, PodTable};
use workers::{Action, Workers};

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// An API call failed.
    #[error("Kubernetes API: {context}")]
    Kube {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
}

impl AgentError {
    fn kube(context: impl Into<String>, source: kube::Error) -> Self {
        Self::Kube {
            context: context.into(),
            source,
        }
    }
}

/// What the agent simulates.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// The nodes.
    pub nodes: Vec<NodeSpec>,
    /// Pod addresses come from 127.`second_octet`.0.0/16 (one range per agent, so clusters side by side differ).
    pub second_octet: u8,
    /// Reported kubelet version.
    pub kubelet_version: String,
}

impl Default for AgentOptions {
    fn default() -> Self {
        Self {
            nodes: vec![NodeSpec::gpu_node("gpu-node-0", 8)],
            second_octet: 10,
            kubelet_version: crate::versions::versions()
                .get("KUBERNETES_VERSION")
                .cloned()
                .unwrap_or_else(|| "v1.34.0".into()),
        }
    }
}

/// A running agent.
pub struct NodeAgent {
    table: PodTable,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    client: Client,
    nodes: Vec<String>,
}

impl std::fmt::Debug for NodeAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeAgent")
            .field("nodes", &self.nodes)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for NodeContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeContext")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl NodeAgent {
    /// Registers the nodes, starts their heartbeats and pod watchers. Returns once every node is registered and
    /// its first Lease written.
    pub async fn start(
        client: Client,
        options: AgentOptions,
        tokenizer: Tokenizer,
        shutdown: CancellationToken,
    ) -> Result<Self, AgentError> {
        let table = PodTable::default();
        let addresses = Arc::new(Mutex::new(LoopbackAllocator::new(options.second_octet)));
        let mut tasks = Vec::new();
        let host_ip = "127.0.0.1".to_string();
        for spec in &options.nodes {
            let object = node::node_object(spec, &host_ip, &options.kubelet_version);
            let uid = node::register(&client, &object).await?;
            lease::renew(&client, &spec.name, &uid)
                .await
                .map_err(|e| AgentError::kube(format!("writing the lease of {}", spec.name), e))?;
            tasks.push(tokio::spawn(lease::keep_renewing(
                client.clone(),
                spec.name.clone(),
                uid,
                shutdown.clone(),
            )));
            tasks.push(tokio::spawn(node::refresh_status(
                client.clone(),
                spec.name.clone(),
                shutdown.clone(),
            )));
            let ctx = NodeContext {
                client: client.clone(),
                node: spec.name.clone(),
                host_ip: host_ip.clone(),
                tokenizer: tokenizer.clone(),
                addresses: addresses.clone(),
                table: table.clone(),
            };
            let span = tracing::info_span!("node", name = %spec.name);
            tasks.push(tokio::spawn(
                watch_pods(ctx, shutdown.clone()).instrument(span),
            ));
        }
        info!(nodes = options.nodes.len(), "node agent running");
        Ok(Self {
            table,
            shutdown,
            tasks,
            client,
            nodes: options.nodes.iter().map(|n| n.name.clone()).collect(),
        })
    }

    /// The pods this agent runs.
    pub fn pods(&self) -> Vec<PodRecord> {
        self.table.snapshot()
    }

    /// The shared pod table.
    pub fn table(&self) -> &PodTable {
        &self.table
    }

    /// Stops every pod and node loop; with `deregister`, also deletes the Node objects.
    pub async fn stop(self, deregister: bool) {
        self.shutdown.cancel();
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        if deregister {
            for name in &self.nodes {
                node::deregister(&self.client, name).await;
            }
        }
    }
}

/// Watches the pods bound to one node and keeps one worker per pod UID ([`workers`] decides, this loop acts).
async fn watch_pods(ctx: NodeContext, shutdown: CancellationToken) {
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={}", ctx.node));
    // A failed watch is retried after kube-runtime's default backoff (exponential from 0.8 s to 30 s, with
    // jitter, reset after two quiet minutes); a retry that has to relist ends in `InitDone`, where `Workers`
    // stops the pods deleted meanwhile.
    let mut events = watcher::watcher(api, config).default_backoff().boxed();
    let mut workers = Workers::new(shutdown.clone());
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => break,
            event = events.next() => event,
        };
        match event {
            Some(Ok(event)) => match workers.handle(event) {
                Some(Action::Start {
                    pod,
                    deletion,
                    kill,
                }) => {
                    tokio::spawn(pods::run_pod(ctx.clone(), *pod, deletion, kill));
                }
                Some(Action::ConfirmDeleted(pod)) => {
                    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
                    let name = pod.metadata.name.clone().unwrap_or_default();
                    let uid = pod.metadata.uid.clone().unwrap_or_default();
                    if let Err(e) = pods::delete_now(&ctx.client, &namespace, &name, &uid).await {
                        debug!(pod = %name, error = %e, "confirming the deletion failed");
                    }
                }
                None => {}
            },
            Some(Err(e)) => warn!(error = %e, "pod watch error; retrying after a backoff"),
            None => break,
        }
        workers.prune();
    }
    workers.stop_all();
}
