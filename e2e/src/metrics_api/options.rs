//! What the adapter serves and how: the custom metrics it exposes (AIBrix's canonical names over vLLM's gauges),
//! the model that turns a pod's gauges into cpu and memory for `metrics.k8s.io`, and the adapter's tunables.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use mock_vllm::metrics::names;

/// The prefix of vLLM's metric families; AIBrix's canonical metric names are the families without it.
const VLLM_PREFIX: &str = "vllm:";

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
            family: format!("{VLLM_PREFIX}{name}"),
            scale: 1.0,
        }
    }

    /// The vLLM family `family` (a [`names`] constant) served under its canonical name (without `vllm:`),
    /// unscaled.
    pub(crate) fn from_family(family: &str) -> Self {
        Self {
            name: family
                .strip_prefix(VLLM_PREFIX)
                .unwrap_or(family)
                .to_string(),
            family: family.to_string(),
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
/// (see the [`metrics_api`](super) documentation).
pub fn default_metrics() -> Vec<ServedMetric> {
    [
        (names::GPU_CACHE_USAGE_PERC, 100.0),
        (names::KV_CACHE_USAGE_PERC, 100.0),
        (names::CPU_CACHE_USAGE_PERC, 100.0),
        (names::NUM_REQUESTS_RUNNING, 1.0),
        (names::NUM_REQUESTS_WAITING, 1.0),
        (names::NUM_REQUESTS_SWAPPED, 1.0),
        (names::AVG_PROMPT_THROUGHPUT, 1.0),
        (names::AVG_GENERATION_THROUGHPUT, 1.0),
    ]
    .into_iter()
    .map(|(family, scale)| ServedMetric::from_family(family).scaled(scale))
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
    /// How many recent requests [`super::MetricsAdapter::requests`] keeps.
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
