//! What judging needs besides the timeline: the scenario's load phases on the timeline's clock ([`Phase`]) and the
//! PodAutoscaler's bounds and parameters ([`EvalContext`]). The runner builds one per scenario; tests build them by
//! hand.

use serde::{Deserialize, Serialize};

use super::verdict::Verdict;
use crate::scenario::reference::{ScalingParams, Strategy};

/// A load phase in timeline time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// The phase's name in the scenario.
    pub name: String,
    /// Start, seconds since the scenario started.
    pub start: f64,
    /// End (exclusive), seconds since the scenario started.
    pub end: f64,
}

impl Phase {
    #[cfg(test)]
    /// Consecutive phases from `(name, duration)` pairs, the first starting at `start`.
    pub(crate) fn sequence<'a>(
        start: f64,
        phases: impl IntoIterator<Item = (&'a str, f64)>,
    ) -> Vec<Phase> {
        let mut t = start;
        phases
            .into_iter()
            .map(|(name, duration)| {
                let phase = Phase {
                    name: name.to_string(),
                    start: t,
                    end: t + duration,
                };
                t += duration;
                phase
            })
            .collect()
    }
}

/// What an evaluation needs besides the timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalContext {
    /// The scenario's load phases.
    pub phases: Vec<Phase>,
    /// `minReplicas` as the controller applies it.
    pub min_replicas: i64,
    /// `maxReplicas`.
    pub max_replicas: i64,
    /// The PodAutoscaler's parameters (its bounds are overridden by the two fields above).
    pub params: ScalingParams,
    /// The strategy under test.
    pub strategy: Strategy,
    /// The name of the PodAutoscaler under test (status expectations default to it).
    pub podautoscaler: String,
    /// The deviation catalogue entries the controller build under test fixes (empty for the pristine build):
    /// marks naming them are judged as ordinary expectations ([`super::Mark::judged_on`]).
    pub fixed_deviations: std::collections::BTreeSet<String>,
}

impl EvalContext {
    /// A context whose bounds are the parameters' own.
    pub fn new(strategy: Strategy, params: ScalingParams, phases: Vec<Phase>) -> Self {
        Self {
            phases,
            min_replicas: params.min_replicas,
            max_replicas: params.max_replicas,
            params,
            strategy,
            podautoscaler: crate::deploy::TARGET.to_string(),
            fixed_deviations: Default::default(),
        }
    }

    /// The phase called `name`.
    pub fn phase(&self, name: &str) -> Option<&Phase> {
        self.phases.iter().find(|p| p.name == name)
    }

    /// The parameters with this context's bounds.
    pub(crate) fn scaling_params(&self) -> ScalingParams {
        ScalingParams {
            min_replicas: self.min_replicas,
            max_replicas: self.max_replicas,
            ..self.params.clone()
        }
    }

    pub(super) fn metric<'a>(&'a self, metric: &'a Option<String>) -> &'a str {
        metric.as_deref().unwrap_or(&self.params.target_metric)
    }

    pub(super) fn unknown_phase(&self, name: &str) -> Verdict {
        let known: Vec<&str> = self.phases.iter().map(|p| p.name.as_str()).collect();
        Verdict::failed(format!(
            "unknown phase `{name}` (phases: {})",
            known.join(", ")
        ))
    }
}
