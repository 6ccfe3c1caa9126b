//! The end-to-end harness for LLM autoscalers: a real Kubernetes control plane on one machine, fleets of
//! mock-vllm pods, workloads, scenarios with assertions, and reports.
//!
//! # Layout
//! - [`cluster`]: the control plane as local processes (binaries, PKI, supervision).
//! - [`workload`]: AIBrix-compatible workload files (generate, read, write) and the open/closed-loop replay client.

pub mod cluster;
pub mod workload;
