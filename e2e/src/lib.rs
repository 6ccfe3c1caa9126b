//! The end-to-end harness for LLM autoscalers: a real Kubernetes control plane on one machine, fleets of
//! mock-vllm pods, workloads, scenarios with assertions, and reports.
//!
//! # Layout
//! - [`agent`]: the node agent that plays the kubelet, running mock-vllm pods in-process on loopback addresses.
//! - [`cluster`]: the control plane as local processes (binaries, PKI, supervision, manifests apply).
//! - [`demo`]: the HPA / KPA / APA comparison experiment and its report (plots, table, HTML).
//! - [`deploy`]: the one deployment path of `run` and `demo`: a tailored mock-vllm target, its PodAutoscaler, its observer.
//! - [`gateway`]: NodePort Services served on loopback, routed to ready pods (kube-proxy's part).
//! - [`http_client`]: the one constructor of plain HTTP clients (no proxy, a timeout, errors reported).
//! - [`k8s`]: the shared Kubernetes layer: the typed PodAutoscaler and the one Strategy type, pod readiness,
//!   quantities and Go durations, watch-based waits.
//! - [`local_cluster`]: the whole local cluster in one handle (control plane, node agent, gateway, metrics adapter).
//! - [`metrics_api`]: the metrics adapter (`custom.metrics.k8s.io`, `metrics.k8s.io`) the HPA reads, registered with the aggregator.
//! - [`paths`]: where the repository is at run time (scenarios, manifests, build script), never the build machine's.
//! - [`prometheus`]: the Prometheus text format pods expose (families, kinds, samples, labels), parsed once for all readers.
//! - [`observe`]: the scenario timeline (replicas, pods, autoscaler status, pod metrics, offered load) and its observer.
//! - [`scenario`]: scenario expectations and the reference HPA/KPA/APA algorithms they are judged against.
//! - [`versions`]: the pinned versions of every external component (`e2e/versions.env`, compiled in).
//! - [`workload`]: AIBrix-compatible workload files (generate, read, write) and the open/closed-loop replay client.

pub mod agent;
pub mod cluster;
pub mod demo;
pub mod deploy;
pub mod error_chain;
pub mod gateway;
pub mod http_client;
pub mod k8s;
pub mod local_cluster;
pub mod metrics_api;
pub mod observe;
pub mod paths;
pub mod prometheus;
pub mod scenario;
pub mod versions;
pub mod workload;
