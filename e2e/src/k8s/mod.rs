//! The Kubernetes vocabulary every part of the harness shares: typed resources it reads and writes, and the
//! small rules (what "ready" means, how quantities and Go durations read) that must not be written twice.
//!
//! - [`podautoscaler`]: AIBrix's `PodAutoscaler` as a typed resource (spec, status, conditions, history).
//! - [`pod`]: pod readiness.
//! - [`wait`]: waiting for a number of objects to reach a state, by watching them.

pub mod pod;
pub mod podautoscaler;
pub mod wait;

pub use podautoscaler::{MetricSource, PodAutoscaler, PodAutoscalerSpec, PodAutoscalerStatus};
