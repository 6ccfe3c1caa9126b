//! The harness's metrics adapter: `custom.metrics.k8s.io` (vLLM gauges per pod) and `metrics.k8s.io` (pod and
//! node cpu/memory) served to the real kube-apiserver, so that an AIBrix PodAutoscaler with `scalingStrategy: HPA`
//! (which becomes an `autoscaling/v2` HPA, `shared/reference/aibrix-autoscaler.md` §6) scales through the real
//! kube-controller-manager, and AIBrix's `resource`/`custom` metric sources (§5.4) have something to call.
//!
//! # What it owns
//! - An HTTPS server on `127.0.0.1:<free port>` ([`server`]): discovery, the custom metrics API ([`custom`]), the
//!   resource metrics API ([`resource`]), `/healthz`. Values come from scraping each pod's `/metrics`
//!   concurrently at request time ([`scrape`]); pods are found in a reflector over all Pods, filtered by the
//!   request's label selector ([`selector`]).
//! - Its registration ([`register`]): an `ExternalName` Service `kube-system/autoscale-harness-metrics` with
//!   `externalName: 127.0.0.1` and the `APIService`s that point at it. [`MetricsAdapter::stop`] deletes the
//!   APIServices *before* the server goes away: while a registered APIService is unavailable, discovery is partial
//!   and namespace deletion and the garbage collector degrade (`local-control-plane.md` §7.4).
//!
//! # Why `ExternalName` → `127.0.0.1`
//! The aggregator resolves an APIService's Service to `https://<externalName>:<APIService port>` when the Service
//! is of type `ExternalName`, and skips the endpoint checks it makes for ClusterIP Services (kube-aggregator
//! `remote_available_controller.go`, v0.34.12). There is no kube-proxy here and pod/loopback addresses are not valid
//! endpoints, so this is the one way to reach a process on loopback (kwokctl does the same for metrics-server;
//! `local-control-plane.md` §7.4). Everything stays on 127.0.0.0/8.
//!
//! # TLS and authentication (§7.3)
//! The aggregator always dials HTTPS and, with `insecureSkipTLSVerify: true`, accepts the self-signed certificate
//! made here with rcgen at start. ALPN offers `http/1.1` only (h2 would add the `h2` crate for no gain: the
//! aggregator's Go client falls back to HTTP/1.1). Client authentication is optional: with
//! [`MetricsAdapterOptions::client_ca_pem`] set (the cluster CA, which signed the front-proxy client certificate
//! the aggregator presents), a client certificate chained to it is required; without it no client certificate is
//! asked for, which is acceptable because the listener is on loopback only. The `X-Remote-User`/`X-Remote-Group`
//! headers (`system:kube-aggregator` for the availability probe) are recorded, not enforced.
//!
//! # Value scaling of the `*_perc` gauges
//! vLLM's `vllm:gpu_cache_usage_perc` (and `kv_cache_usage_perc`, `cpu_cache_usage_perc`) is a fraction, 0..1
//! ("1 means 100 percent usage"). AIBrix v0.7.0's HPA strategy writes the HPA target as
//! `AverageValue = int64(targetValue)` (`pkg/controller/podautoscaler/hpa_resources.go`): a fractional target such
//! as `"0.5"` becomes `0`, which the API server rejects (`averageValue: must be positive`), so on the HPA path only
//! integer targets exist, and AIBrix's HPA examples use `targetValue: "50"` (`samples/autoscaling/hpa.yaml`,
//! `benchmarks/scenarios/autoscaling/deepseek-llm-7b-chat/hpa.yaml`) and `"40"`
//! (`development/tutorials/podautoscaler/pa.yaml`), while its KPA/APA examples, which scrape pods directly, use
//! `"0.5"`. AIBrix ships no custom-metrics adapter; its own mock app (`development/app/app.py`) exports
//! `gpu_cache_usage_perc` as a percentage (`running / capacity * 100`). The adapter therefore serves the three
//! `*_perc` gauges multiplied by 100 by default ([`ServedMetric::scale`]), so that `targetValue: "50"` means
//! "50 % of the KV cache" as the examples intend; set the scale to 1 for a raw pass-through.
//!
//! # What the control plane asks for (observed with v1.34.12 and AIBrix v0.7.0, `tests/metrics_api.rs`)
//! - Aggregator: `GET /apis` with `Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,…`
//!   (404 → legacy discovery), then `GET /apis/<group>/<version>` (`X-Remote-User: system:kube-aggregator`, also
//!   the availability probe, `Go-http-client/1.1`), `GET /openapi/v2` and `/openapi/v3` (404 is fine).
//! - HPA (`kube-controller-manager/… /horizontal-pod-autoscaler`, `Accept: application/json, */*`):
//!   `GET /apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/%2A/<metric>?labelSelector=app%3Dmock-vllm`
//!   (the `*` arrives percent-encoded, no `metricLabelSelector`) and
//!   `GET /apis/metrics.k8s.io/v1beta1/namespaces/default/pods?labelSelector=app%3Dmock-vllm`.
//! - AIBrix `custom`/`resource` sources (`aibrix-controller-manager/v0.0.0`): the single-object forms
//!   `…/v1beta2/namespaces/{ns}/pods/{name}/<metric>` (no query) and `…/metrics.k8s.io/v1beta1/namespaces/{ns}/pods/{name}`.
//!
//! # Simulated resource usage
//! Pods are in-process simulations, so cpu and memory are modelled from the pod's own gauges; see
//! [`ResourceModel`].

pub mod custom;
pub mod register;
pub mod resource;
pub mod scrape;
pub mod selector;
pub mod server;

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// The `ExternalName` Service the APIServices point at.
pub const SERVICE_NAME: &str = "autoscale-harness-metrics";
/// Its namespace.
pub const SERVICE_NAMESPACE: &str = "kube-system";
/// The custom metrics API group.
pub const CUSTOM_GROUP: &str = "custom.metrics.k8s.io";
/// The resource metrics API group.
pub const RESOURCE_GROUP: &str = "metrics.k8s.io";

/// Why the adapter could not start or stop.
#[derive(Debug, thiserror::Error)]
pub enum MetricsApiError {
    /// Binding the listener.
    #[error("binding {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Making the serving certificate or the TLS configuration.
    #[error("TLS setup: {0}")]
    Tls(String),
    /// A Kubernetes API call.
    #[error("Kubernetes API: {context}")]
    Kube {
        /// What we were doing.
        context: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// The pod reflector did not sync.
    #[error("the pod reflector did not sync within {0:?}")]
    ReflectorSync(Duration),
    /// An APIService did not become Available.
    #[error("APIService {name} not Available after {waited:?}: {reason}: {message}")]
    NotAvailable {
        /// The APIService.
        name: String,
        /// How long we waited.
        waited: Duration,
        /// Its `Available` condition's reason (or `NoCondition`).
        reason: String,
        /// Its `Available` condition's message.
        message: String,
    },
    /// The HTTP client for scraping.
    #[error("HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
}

/// One metric served by the custom metrics API.
#[derive(Debug, Clone, PartialEq)]
pub struct ServedMetric {
    /// The name the HPA asks for (AIBrix's canonical `targetMetric`, e.g. `gpu_cache_usage_perc`).
    pub name: String,
    /// The Prometheus family scraped from the pod (e.g. `vllm:gpu_cache_usage_perc`).
    pub family: String,
    /// Factor applied to the scraped value (100 turns a 0..1 fraction into a percentage).
    pub scale: f64,
}

impl ServedMetric {
    /// `name` served from `vllm:<name>`, unscaled.
    pub fn vllm(name: &str) -> Self {
        Self {
            name: name.to_string(),
            family: format!("vllm:{name}"),
            scale: 1.0,
        }
    }

    /// The same metric with another scale factor.
    pub fn scaled(mut self, scale: f64) -> Self {
        self.scale = scale;
        self
    }
}

/// The vLLM gauges AIBrix autoscales on (`aibrix-autoscaler.md` §5.5), the three `*_perc` ones as percentages
/// (see the module documentation).
pub fn default_metrics() -> Vec<ServedMetric> {
    [
        ("gpu_cache_usage_perc", 100.0),
        ("kv_cache_usage_perc", 100.0),
        ("cpu_cache_usage_perc", 100.0),
        ("num_requests_running", 1.0),
        ("num_requests_waiting", 1.0),
        ("num_requests_swapped", 1.0),
        ("avg_prompt_throughput_toks_per_s", 1.0),
        ("avg_generation_throughput_toks_per_s", 1.0),
    ]
    .into_iter()
    .map(|(name, scale)| ServedMetric::vllm(name).scaled(scale))
    .collect()
}

/// How the resource metrics API derives cpu and memory usage for an in-process pod.
///
/// - **cpu** (per container): `request × (idle + (1 − idle) × min(1, running / saturation_running))`, where
///   `running` is the pod's `vllm:num_requests_running` and `request` the container's cpu request (else
///   [`Self::default_cpu_request`] cores). A vLLM server's host cpu goes to tokenizing, scheduling, detokenizing and
///   streaming, which grows with the number of sequences in flight; the model makes that monotone and saturating at
///   the container's request. The HPA's utilization is then `idle + (1 − idle) × min(1, running / saturation)`:
///   with the defaults, 5 % idle, 52.5 % at 8 running sequences, 100 % from 16.
/// - **memory** (per container): `memory_base + kv_usage × memory_kv_span` bytes, where `kv_usage` is the pod's
///   `vllm:kv_cache_usage_perc` (else `vllm:gpu_cache_usage_perc`), 0..1.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceModel {
    /// Fraction of the cpu request used by an idle server.
    pub cpu_idle_fraction: f64,
    /// Running sequences at which the cpu request is fully used.
    pub cpu_saturation_running: f64,
    /// Cores assumed for a container without a cpu request.
    pub default_cpu_request: f64,
    /// Memory of an idle server, bytes.
    pub memory_base: f64,
    /// Extra memory at a full KV cache, bytes.
    pub memory_kv_span: f64,
}

impl Default for ResourceModel {
    fn default() -> Self {
        Self {
            cpu_idle_fraction: 0.05,
            cpu_saturation_running: 16.0,
            default_cpu_request: 1.0,
            memory_base: 256.0 * 1024.0 * 1024.0,
            memory_kv_span: 512.0 * 1024.0 * 1024.0,
        }
    }
}

/// Tunables of the adapter.
#[derive(Debug, Clone)]
pub struct MetricsAdapterOptions {
    /// Listen address (loopback; the `ExternalName` Service says 127.0.0.1).
    pub bind: IpAddr,
    /// Listen port; 0 picks a free one.
    pub port: u16,
    /// The metrics served by `custom.metrics.k8s.io`.
    pub metrics: Vec<ServedMetric>,
    /// The cpu/memory model of `metrics.k8s.io`.
    pub resource_model: ResourceModel,
    /// Port of a pod's metrics endpoint when the pod has no `model.aibrix.ai/port` label.
    pub pod_metrics_port: u16,
    /// Path of a pod's metrics endpoint.
    pub pod_metrics_path: String,
    /// Timeout of one pod scrape.
    pub scrape_timeout: Duration,
    /// The `window` / `windowSeconds` reported with each value.
    pub window: Duration,
    /// Require client certificates chained to this CA (PEM), e.g. the cluster CA that signed the front-proxy client
    /// certificate. `None`: no client authentication (loopback only).
    pub client_ca_pem: Option<Vec<u8>>,
    /// Register `v1beta2.custom.metrics.k8s.io` (and serve the custom metrics API).
    pub register_custom: bool,
    /// Also register `v1beta1.custom.metrics.k8s.io` (served either way; the HPA only needs v1beta2).
    pub register_custom_v1beta1: bool,
    /// Register `v1beta1.metrics.k8s.io` (off where a real metrics-server owns it).
    pub register_resource: bool,
    /// How long to wait for each APIService to become Available.
    pub available_timeout: Duration,
    /// How many recent requests [`MetricsAdapter::requests`] keeps.
    pub request_log_capacity: usize,
}

impl Default for MetricsAdapterOptions {
    fn default() -> Self {
        Self {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            metrics: default_metrics(),
            resource_model: ResourceModel::default(),
            pod_metrics_port: 8000,
            pod_metrics_path: "/metrics".into(),
            scrape_timeout: Duration::from_secs(2),
            window: Duration::from_secs(15),
            client_ca_pem: None,
            register_custom: true,
            register_custom_v1beta1: false,
            register_resource: true,
            available_timeout: Duration::from_secs(30),
            request_log_capacity: 512,
        }
    }
}

/// A request the adapter answered (for tests and debugging: what the aggregator, the HPA and AIBrix asked for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedRequest {
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// `Accept` header.
    pub accept: Option<String>,
    /// `User-Agent` header.
    pub user_agent: Option<String>,
    /// `X-Remote-User` header (set by the aggregator).
    pub remote_user: Option<String>,
    /// Response status.
    pub status: u16,
    /// Items in a list response.
    pub items: Option<usize>,
}

/// The bounded log of [`ObservedRequest`]s.
#[derive(Debug, Clone)]
pub(crate) struct RequestLog {
    entries: Arc<Mutex<VecDeque<ObservedRequest>>>,
    capacity: usize,
}

impl RequestLog {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: Arc::new(Mutex::new(VecDeque::with_capacity(capacity.min(1024)))),
            capacity,
        }
    }

    pub(crate) fn push(&self, request: ObservedRequest) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.capacity.max(1) {
            entries.pop_front();
        }
        entries.push_back(request);
    }

    pub(crate) fn snapshot(&self) -> Vec<ObservedRequest> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.iter().cloned().collect()
    }
}

/// A running, registered metrics adapter.
pub struct MetricsAdapter {
    addr: SocketAddr,
    client: Client,
    api_services: Vec<String>,
    log: RequestLog,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    stopped: bool,
}

impl std::fmt::Debug for MetricsAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsAdapter")
            .field("addr", &self.addr)
            .field("api_services", &self.api_services)
            .finish_non_exhaustive()
    }
}

impl MetricsAdapter {
    /// Syncs a pod reflector, binds the HTTPS server, registers the Service and APIServices (server-side apply,
    /// field manager `autoscale-harness`) and waits until every APIService is `Available=True`. Cancelling
    /// `shutdown` stops the server (without unregistering; call [`Self::stop`] for an orderly end).
    pub async fn start(
        client: Client,
        options: MetricsAdapterOptions,
        shutdown: CancellationToken,
    ) -> Result<Self, MetricsApiError> {
        let stop = shutdown.child_token();
        let mut tasks = Vec::new();
        let (pods, reflector_task) = pod_reflector(client.clone(), stop.clone());
        tasks.push(reflector_task);
        let sync = Duration::from_secs(30);
        if tokio::time::timeout(sync, pods.wait_until_ready())
            .await
            .map_or(true, |r| r.is_err())
        {
            stop.cancel();
            return Err(MetricsApiError::ReflectorSync(sync));
        }

        let log = RequestLog::new(options.request_log_capacity);
        let state = server::AppState::new(pods, client.clone(), &options, log.clone())?;
        let (addr, server_task) = server::serve(&options, state, stop.clone()).await?;
        tasks.push(server_task);
        info!(%addr, "metrics adapter listening");

        let mut adapter = Self {
            addr,
            client,
            api_services: Vec::new(),
            log,
            stop,
            tasks,
            stopped: false,
        };
        let wanted = register::api_services(&options);
        adapter.api_services = wanted.iter().map(|s| s.name()).collect();
        let registered = register::register(
            &adapter.client,
            addr.port(),
            &wanted,
            options.available_timeout,
        )
        .await;
        if let Err(e) = registered {
            if let Err(cleanup) = adapter.shutdown().await {
                warn!(error = %cleanup, "cleaning up after a failed registration");
            }
            adapter.stopped = true;
            return Err(e);
        }
        info!(%addr, api_services = ?adapter.api_services, "metrics adapter registered and available");
        Ok(adapter)
    }

    /// The listen address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Names of the registered APIServices.
    pub fn api_services(&self) -> &[String] {
        &self.api_services
    }

    /// The most recent requests, oldest first.
    pub fn requests(&self) -> Vec<ObservedRequest> {
        self.log.snapshot()
    }

    /// Deletes the APIServices and the Service, then stops the server.
    pub async fn stop(mut self) -> Result<(), MetricsApiError> {
        let result = self.shutdown().await;
        self.stopped = true;
        result
    }

    async fn shutdown(&mut self) -> Result<(), MetricsApiError> {
        let result = register::unregister(&self.client, &self.api_services).await;
        self.stop.cancel();
        for task in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        result
    }
}

impl Drop for MetricsAdapter {
    fn drop(&mut self) {
        if !self.stopped {
            warn!(
                api_services = ?self.api_services,
                "metrics adapter dropped without stop(): its APIServices stay registered and become unavailable"
            );
        }
        self.stop.cancel();
    }
}

/// A reflector over every Pod of the cluster, run until `stop`.
fn pod_reflector(client: Client, stop: CancellationToken) -> (Store<Pod>, JoinHandle<()>) {
    use futures::StreamExt;
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(
        writer,
        watcher(Api::<Pod>::all(client), watcher::Config::default()),
    )
    .default_backoff()
    .touched_objects();
    let task = tokio::spawn(async move {
        tokio::pin!(stream);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                next = stream.next() => match next {
                    Some(Ok(_)) => {}
                    Some(Err(error)) => warn!(%error, "pod watch error (retrying)"),
                    None => break,
                },
            }
        }
    });
    (reader, task)
}
