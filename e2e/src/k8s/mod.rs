//! The Kubernetes vocabulary every part of the harness shares: typed resources it reads and writes, and the
//! small rules (what "ready" means, how quantities and Go durations read) that must not be written twice.
//!
//! - [`podautoscaler`]: AIBrix's `PodAutoscaler` as a typed resource (spec, status, conditions, history).
//! - [`strategy`]: `HPA` / `KPA` / `APA`, the one strategy type of the harness.
//! - [`pod`]: pod readiness.
//! - [`quantity`], [`duration`]: Kubernetes quantities (`500m`, `2Gi`) and Go durations (`30s`, `1m30s`).
//! - [`apply`]: server-side apply under the harness's one field manager.
//! - [`wait`]: waiting for a number of objects to reach a state, by watching them.
//! - [`health`]: which aggregated APIs are down and what holds a Namespace in Terminating, for error messages.

pub mod apply;
pub mod duration;
pub mod health;
pub mod pod;
pub mod podautoscaler;
pub mod quantity;
pub mod strategy;
pub mod wait;

/// The field manager of everything the harness applies (server-side apply), and the `managed-by` label value.
pub const FIELD_MANAGER: &str = "autoscale-harness";

pub use podautoscaler::{MetricSource, PodAutoscaler, PodAutoscalerSpec, PodAutoscalerStatus};
pub use strategy::Strategy;
