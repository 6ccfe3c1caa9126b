//! What every handler shares: the pod reflector's store, the Kubernetes client (nodes are listed live), the scrape
//! client and the served metrics, the resource model and the request log. Built once at start and handed to the
//! router behind an `Arc`; handlers only read it (the request log has its own lock).
//!
//! It also owns the two questions every handler asks: which running pods match a request, and what do they expose
//! right now (scraped concurrently at request time, failed scrapes left out).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::Store;
use kube::Client;
use tracing::debug;

use crate::prometheus::Exposition;

use super::error::MetricsApiError;
use super::options::{MetricsAdapterOptions, ResourceModel, ServedMetric};
use super::request_log::RequestLog;
use super::scrape::scrape_client;
use super::selector::Selector;
use crate::prometheus::scrape;

/// What a handler needs: the pods, the scraper, the served metrics and the resource model.
pub(crate) struct AppState {
    pub(crate) pods: Store<Pod>,
    pub(crate) client: Client,
    pub(crate) http: reqwest::Client,
    pub(crate) metrics: Vec<ServedMetric>,
    pub(crate) model: ResourceModel,
    pub(crate) pod_port: u16,
    pub(crate) pod_path: String,
    pub(crate) window: Duration,
    pub(crate) log: RequestLog,
}

impl AppState {
    pub(crate) fn new(
        pods: Store<Pod>,
        client: Client,
        options: &MetricsAdapterOptions,
        log: RequestLog,
    ) -> Result<Self, MetricsApiError> {
        Ok(Self {
            pods,
            client,
            http: scrape_client(options.scrape_timeout).map_err(MetricsApiError::HttpClient)?,
            metrics: options.metrics.clone(),
            model: options.resource_model.clone(),
            pod_port: options.pod_metrics_port,
            pod_path: options.pod_metrics_path.clone(),
            window: options.window,
            log,
        })
    }

    /// Running pods (phase `Running`, not being deleted, with a pod IP) in `namespace` (all if `None`) whose
    /// labels match `selector`, sorted by namespace and name.
    pub(crate) fn running_pods(
        &self,
        namespace: Option<&str>,
        selector: &Selector,
    ) -> Vec<Arc<Pod>> {
        let empty = BTreeMap::new();
        let mut pods: Vec<Arc<Pod>> = self
            .pods
            .state()
            .into_iter()
            .filter(|p| namespace.is_none_or(|ns| p.metadata.namespace.as_deref() == Some(ns)))
            .filter(|p| is_running(p))
            .filter(|p| selector.matches(p.metadata.labels.as_ref().unwrap_or(&empty)))
            .collect();
        pods.sort_by(|a, b| {
            (&a.metadata.namespace, &a.metadata.name)
                .cmp(&(&b.metadata.namespace, &b.metadata.name))
        });
        pods
    }

    /// The running pod `namespace/name`, if any.
    pub(crate) fn running_pod(&self, namespace: &str, name: &str) -> Option<Arc<Pod>> {
        self.pods
            .state()
            .into_iter()
            .find(|p| {
                p.metadata.namespace.as_deref() == Some(namespace)
                    && p.metadata.name.as_deref() == Some(name)
            })
            .filter(|p| is_running(p))
    }

    /// Scrapes every pod concurrently; pods whose scrape fails are left out.
    pub(crate) async fn scrape_all(&self, pods: Vec<Arc<Pod>>) -> Vec<(Arc<Pod>, Exposition)> {
        let scrapes = pods.into_iter().map(|pod| async move {
            let ip = pod.status.as_ref()?.pod_ip.clone()?;
            let port = pod
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("model.aibrix.ai/port"))
                .and_then(|p| p.parse().ok())
                .unwrap_or(self.pod_port);
            match scrape(&self.http, &ip, port, &self.pod_path).await {
                Ok(exposition) => Some((pod, exposition)),
                Err(error) => {
                    debug!(pod = ?pod.metadata.name, %error, "scrape failed; pod left out");
                    None
                }
            }
        });
        futures::future::join_all(scrapes)
            .await
            .into_iter()
            .flatten()
            .collect()
    }
}

fn is_running(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod.status.as_ref().is_some_and(|s| {
            s.phase.as_deref() == Some("Running")
                && s.pod_ip.as_deref().is_some_and(|ip| !ip.is_empty())
        })
}
