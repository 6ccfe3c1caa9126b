//! The harness's metrics adapter: `custom.metrics.k8s.io` (vLLM gauges per pod) and `metrics.k8s.io` (pod and
//! node cpu/memory) served to the real kube-apiserver, so that an AIBrix PodAutoscaler with `scalingStrategy: HPA`
//! (which becomes an `autoscaling/v2` HPA, `shared/reference/aibrix-autoscaler.md` §6) scales through the real
//! kube-controller-manager, and AIBrix's `resource`/`custom` metric sources (§5.4) have something to call.
//!
//! # What it owns
//! - An HTTPS server on `127.0.0.1:<free port>`: discovery, the custom metrics API ([`custom`]), the resource
//!   metrics API ([`resource`]), `/healthz`. Values come from scraping each pod's `/metrics` concurrently at
//!   request time ([`scrape`]); pods are found in a reflector over all Pods, filtered by the request's label
//!   selector ([`selector`]).
//!
//!   The module graph is a tree, leaves first: `options`, `error`, `request_log`, `status` (the `metav1.Status`
//!   error) and `time` know nothing of the server; `state` is what handlers share (pods, scraper, options, request
//!   log); [`custom`] and [`resource`] are handlers over `state` and `status`; `routes` is the axum `Router` that
//!   maps paths onto them and records every request; `tls` accepts HTTPS connections and serves the router. This
//!   file wires them together in [`MetricsAdapter::start`].
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
mod error;
mod options;
pub mod register;
mod request_log;
pub mod resource;
mod routes;
pub mod scrape;
pub mod selector;
mod state;
mod status;
mod time;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use custom::CUSTOM_GROUP;
pub use error::MetricsApiError;
pub use options::{default_metrics, MetricsAdapterOptions, ResourceModel, ServedMetric};
pub use register::{SERVICE_NAME, SERVICE_NAMESPACE};
pub use request_log::ObservedRequest;
pub use resource::RESOURCE_GROUP;

use request_log::RequestLog;

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
        let state = state::AppState::new(pods, client.clone(), &options, log.clone())?;
        let app = routes::router(Arc::new(state));
        let (addr, server_task) = tls::serve(&options, app, stop.clone()).await?;
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
