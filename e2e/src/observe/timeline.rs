//! The timeline: what the observer records once per tick, as JSONL, and what expectations are judged on.
//!
//! One [`Sample`] per tick (1 s by default) holds everything an autoscaling assertion may need: the target's
//! `spec.replicas` (what the autoscaler decided), ready / pending / terminating pods, the PodAutoscaler's status and
//! conditions, the generated HPA's status (HPA strategy), each pod's vLLM gauges as scraped from `/metrics`, and
//! the load the workload driver was offering at that moment. Events (the PodAutoscaler's and the HPA's) are
//! collected separately as [`TimelineEvent`]s. Times are seconds since the scenario started.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// One pod at one tick.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PodSample {
    /// Pod name.
    pub name: String,
    /// `Pending`, `Running` …
    pub phase: String,
    /// Ready condition.
    pub ready: bool,
    /// Being deleted.
    pub terminating: bool,
    /// vLLM gauges by canonical name (`num_requests_running`, `gpu_cache_usage_perc` …), when scraped.
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
}

/// The PodAutoscaler's status at one tick.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AutoscalerSample {
    /// `status.desiredScale`.
    pub desired_scale: Option<i64>,
    /// `status.actualScale`.
    pub actual_scale: Option<i64>,
    /// Condition type → status (`True`/`False`/`Unknown`).
    #[serde(default)]
    pub conditions: BTreeMap<String, String>,
    /// Condition type → reason, where the controller gave one.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reasons: BTreeMap<String, String>,
}

/// The generated HPA's status at one tick (HPA strategy only).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HpaSample {
    /// `status.currentReplicas`.
    pub current_replicas: Option<i64>,
    /// `status.desiredReplicas`.
    pub desired_replicas: Option<i64>,
    /// Current metric values the HPA saw, by metric name (quantities parsed to numbers).
    #[serde(default)]
    pub current_metrics: BTreeMap<String, f64>,
}

/// The load offered at one tick.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadSample {
    /// Closed-loop concurrency (clients), if closed loop.
    pub concurrency: Option<u32>,
    /// Open-loop request rate (requests/s), if open loop.
    pub rps: Option<f64>,
    /// Requests in flight from the driver's side.
    pub in_flight: u64,
    /// Requests completed so far.
    pub completed: u64,
    /// Requests failed so far.
    pub failed: u64,
}

/// Everything observed at one tick.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the scenario started.
    pub t: f64,
    /// The target Deployment's `spec.replicas`.
    pub spec_replicas: Option<i64>,
    /// Pods Ready.
    pub ready_pods: u32,
    /// Pods Pending (unscheduled or loading).
    pub pending_pods: u32,
    /// Pods being deleted.
    pub terminating_pods: u32,
    /// The pods.
    #[serde(default)]
    pub pods: Vec<PodSample>,
    /// The PodAutoscaler.
    #[serde(default)]
    pub autoscaler: AutoscalerSample,
    /// The generated HPA, if any.
    #[serde(default)]
    pub hpa: Option<HpaSample>,
    /// The offered load.
    #[serde(default)]
    pub load: LoadSample,
}

impl Sample {
    /// Sum of a metric over Ready pods that reported it.
    pub(crate) fn metric_total(&self, metric: &str) -> f64 {
        self.pods
            .iter()
            .filter(|p| p.ready && !p.terminating)
            .filter_map(|p| p.metrics.get(metric))
            .sum()
    }
}

/// An event about the PodAutoscaler or its HPA.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TimelineEvent {
    /// Seconds since the scenario started (last timestamp of the event).
    pub t: f64,
    /// Involved object kind.
    pub kind: String,
    /// Involved object name.
    #[serde(default)]
    pub object: String,
    /// `reason` (e.g. `SuccessfulRescale`).
    pub reason: String,
    /// `message`.
    pub message: String,
    /// Occurrences.
    pub count: i32,
}

/// A scenario's whole record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// Samples in time order.
    pub samples: Vec<Sample>,
    /// Events in time order.
    pub events: Vec<TimelineEvent>,
    /// The objects as they were when the load ended (every PodAutoscaler and HPA of the namespace).
    #[serde(default)]
    pub final_state: FinalState,
    /// The controller's decisions for the PodAutoscaler under test, from its log (KPA/APA).
    #[serde(default)]
    pub decisions: Vec<super::decisions::ControllerDecision>,
}

/// One status condition as the controller wrote it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConditionSnapshot {
    /// `type`.
    pub type_: String,
    /// `status`.
    pub status: String,
    /// `reason`.
    pub reason: String,
    /// `message`.
    pub message: String,
}

/// A PodAutoscaler at the end of the scenario.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PodAutoscalerSnapshot {
    /// Name.
    pub name: String,
    /// `status.desiredScale`.
    pub desired_scale: Option<i64>,
    /// `status.actualScale`.
    pub actual_scale: Option<i64>,
    /// `status.conditions`.
    pub conditions: Vec<ConditionSnapshot>,
    /// `status.scalingHistory` entries as `previous → new (reason)`.
    pub scaling_history: Vec<String>,
}

/// An HPA at the end of the scenario.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HpaSnapshot {
    /// Name.
    pub name: String,
    /// `spec.minReplicas`.
    pub min_replicas: Option<i64>,
    /// `spec.maxReplicas`.
    pub max_replicas: i64,
    /// `spec.metrics[]` as `type/name target=…` (e.g. `Pods/gpu_cache_usage_perc averageValue=50`).
    pub metrics: Vec<String>,
    /// Owner kinds/names (`PodAutoscaler/mock-vllm`).
    pub owners: Vec<String>,
    /// `spec.behavior` as JSON, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behavior: Option<serde_json::Value>,
}

/// Every PodAutoscaler and HPA of a scenario's namespace when its load ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FinalState {
    /// The PodAutoscalers.
    pub podautoscalers: Vec<PodAutoscalerSnapshot>,
    /// The HPAs.
    pub hpas: Vec<HpaSnapshot>,
}

impl Timeline {
    /// Samples with `from <= t < to`.
    pub fn between(&self, from: f64, to: f64) -> impl Iterator<Item = &Sample> {
        self.samples.iter().filter(move |s| s.t >= from && s.t < to)
    }

    /// Writes the samples as JSONL (one line per tick) and the events as `<stem>.events.jsonl`.
    pub(crate) fn write_jsonl(&self, path: &Path) -> std::io::Result<()> {
        let mut text = String::new();
        for sample in &self.samples {
            text.push_str(&serde_json::to_string(sample).map_err(std::io::Error::other)?);
            text.push('\n');
        }
        std::fs::write(path, text)?;
        let mut events = String::new();
        for event in &self.events {
            events.push_str(&serde_json::to_string(event).map_err(std::io::Error::other)?);
            events.push('\n');
        }
        std::fs::write(path.with_extension("events.jsonl"), events)?;
        let final_state =
            serde_json::to_string_pretty(&self.final_state).map_err(std::io::Error::other)?;
        std::fs::write(path.with_extension("final.json"), final_state)?;
        let mut decisions = String::new();
        for decision in &self.decisions {
            decisions.push_str(&serde_json::to_string(decision).map_err(std::io::Error::other)?);
            decisions.push('\n');
        }
        std::fs::write(path.with_extension("decisions.jsonl"), decisions)
    }
}
