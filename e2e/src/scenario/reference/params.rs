//! What the reference algorithms read from one PodAutoscaler: the `autoscaling.aibrix.ai/*` annotation keys, the
//! v0.7.0 defaults and fixed windows, and [`ScalingParams`], validated so that every simulator can rely on it.

use std::collections::BTreeMap;

use super::{parse_go_duration, DurationError, Strategy};
use crate::k8s::PodAutoscaler;
use serde::{Deserialize, Serialize};

/// `autoscaling.aibrix.ai/max-scale-up-rate`.
pub const MAX_SCALE_UP_RATE: &str = "autoscaling.aibrix.ai/max-scale-up-rate";
/// `autoscaling.aibrix.ai/max-scale-down-rate`.
pub const MAX_SCALE_DOWN_RATE: &str = "autoscaling.aibrix.ai/max-scale-down-rate";
/// `autoscaling.aibrix.ai/scale-up-tolerance`.
pub const SCALE_UP_TOLERANCE: &str = "autoscaling.aibrix.ai/scale-up-tolerance";
/// `autoscaling.aibrix.ai/scale-down-tolerance`.
pub const SCALE_DOWN_TOLERANCE: &str = "autoscaling.aibrix.ai/scale-down-tolerance";
/// `autoscaling.aibrix.ai/panic-threshold`.
pub const PANIC_THRESHOLD: &str = "autoscaling.aibrix.ai/panic-threshold";
/// `autoscaling.aibrix.ai/scale-up-cooldown-window`.
pub const SCALE_UP_COOLDOWN_WINDOW: &str = "autoscaling.aibrix.ai/scale-up-cooldown-window";
/// `autoscaling.aibrix.ai/scale-down-cooldown-window`.
pub const SCALE_DOWN_COOLDOWN_WINDOW: &str = "autoscaling.aibrix.ai/scale-down-cooldown-window";

/// v0.7.0's fixed stable (observe) window, seconds (reference §2).
pub const STABLE_WINDOW_S: f64 = 180.0;
/// v0.7.0's fixed panic window, seconds (reference §2).
pub const PANIC_WINDOW_S: f64 = 60.0;
/// The controller's periodic resync, seconds (reference §5.1).
pub const RESYNC_PERIOD_S: f64 = 10.0;
/// kube-controller-manager's default `--horizontal-pod-autoscaler-sync-period`, seconds.
pub const HPA_SYNC_PERIOD_S: f64 = 15.0;
/// kube-controller-manager's default `--horizontal-pod-autoscaler-tolerance`.
pub const HPA_TOLERANCE: f64 = 0.1;

/// The PodAutoscaler's parameters could not be turned into [`ScalingParams`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamsError {
    /// A float annotation is not a number.
    #[error("annotation {key}: {value:?} is not a number")]
    NotANumber {
        /// Annotation key.
        key: String,
        /// Its value.
        value: String,
    },
    /// A duration annotation is not a Go duration.
    #[error("annotation {key}: {source}")]
    Duration {
        /// Annotation key.
        key: String,
        /// Why.
        #[source]
        source: DurationError,
    },
    /// A value outside what the algorithms can model.
    #[error("{what} = {value} is out of range ({expected})")]
    OutOfRange {
        /// Which parameter.
        what: &'static str,
        /// Its value.
        value: f64,
        /// The valid range.
        expected: &'static str,
    },
    /// `minReplicas > maxReplicas` or `maxReplicas < 1`.
    #[error("invalid bounds: minReplicas {min}, maxReplicas {max}")]
    Bounds {
        /// `minReplicas`.
        min: i64,
        /// `maxReplicas`.
        max: i64,
    },
    /// A PodAutoscaler field is missing or malformed.
    #[error("PodAutoscaler {field}: {message}")]
    Field {
        /// JSON path of the field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// Everything the reference algorithms need from one PodAutoscaler (annotations + spec) and the harness.
///
/// Build with [`ScalingParams::new`] (AIBrix defaults) and [`ScalingParams::with_annotations`], or directly from a
/// PodAutoscaler object with [`ScalingParams::from_pod_autoscaler`]. All times are seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScalingParams {
    /// `spec.minReplicas` (1 when unset).
    pub min_replicas: i64,
    /// `spec.maxReplicas`.
    pub max_replicas: i64,
    /// `metricsSources[0].targetMetric`.
    pub target_metric: String,
    /// `metricsSources[0].targetValue`, parsed (per pod).
    pub target_value: f64,
    /// `scale-up-tolerance` (KPA, APA), default 0.1.
    pub scale_up_tolerance: f64,
    /// `scale-down-tolerance` (KPA, APA), default 0.1.
    pub scale_down_tolerance: f64,
    /// `max-scale-up-rate`, default 2.0.
    pub max_scale_up_rate: f64,
    /// `max-scale-down-rate`, default 2.0.
    pub max_scale_down_rate: f64,
    /// `panic-threshold` (KPA), default 2.0.
    pub panic_threshold: f64,
    /// `scale-up-cooldown-window`, default 0 s.
    pub scale_up_cooldown_s: f64,
    /// `scale-down-cooldown-window`, default 300 s.
    pub scale_down_cooldown_s: f64,
    /// Stable (observe) window: 180 s, fixed in v0.7.0.
    pub stable_window_s: f64,
    /// Panic window: 60 s, fixed in v0.7.0.
    pub panic_window_s: f64,
    /// KPA/APA decision period (the controller's resync), 10 s.
    pub resync_period_s: f64,
    /// kube-controller-manager's HPA sync period as the harness runs it (default 15 s).
    pub hpa_sync_period_s: f64,
    /// kube-controller-manager's HPA tolerance (default 0.1; the AIBrix tolerance annotations do not reach the HPA).
    pub hpa_tolerance: f64,
}

impl ScalingParams {
    /// AIBrix v0.7.0 defaults for the given bounds and target.
    pub fn new(
        min_replicas: i64,
        max_replicas: i64,
        target_metric: &str,
        target_value: f64,
    ) -> Self {
        Self {
            min_replicas,
            max_replicas,
            target_metric: target_metric.to_string(),
            target_value,
            scale_up_tolerance: 0.1,
            scale_down_tolerance: 0.1,
            max_scale_up_rate: 2.0,
            max_scale_down_rate: 2.0,
            panic_threshold: 2.0,
            scale_up_cooldown_s: 0.0,
            scale_down_cooldown_s: 300.0,
            stable_window_s: STABLE_WINDOW_S,
            panic_window_s: PANIC_WINDOW_S,
            resync_period_s: RESYNC_PERIOD_S,
            hpa_sync_period_s: HPA_SYNC_PERIOD_S,
            hpa_tolerance: HPA_TOLERANCE,
        }
    }

    /// Applies the `autoscaling.aibrix.ai/*` annotations of reference §3 (others are ignored), then validates.
    pub(crate) fn with_annotations(
        mut self,
        annotations: &BTreeMap<String, String>,
    ) -> Result<Self, ParamsError> {
        for (key, value) in annotations {
            let float = || {
                value
                    .trim()
                    .parse::<f64>()
                    .map_err(|_| ParamsError::NotANumber {
                        key: key.clone(),
                        value: value.clone(),
                    })
            };
            let duration = || {
                parse_go_duration(value)
                    .map(|d| d.as_secs_f64())
                    .map_err(|source| ParamsError::Duration {
                        key: key.clone(),
                        source,
                    })
            };
            match key.as_str() {
                MAX_SCALE_UP_RATE => self.max_scale_up_rate = float()?,
                MAX_SCALE_DOWN_RATE => self.max_scale_down_rate = float()?,
                SCALE_UP_TOLERANCE => self.scale_up_tolerance = float()?,
                SCALE_DOWN_TOLERANCE => self.scale_down_tolerance = float()?,
                PANIC_THRESHOLD => self.panic_threshold = float()?,
                SCALE_UP_COOLDOWN_WINDOW => self.scale_up_cooldown_s = duration()?,
                SCALE_DOWN_COOLDOWN_WINDOW => self.scale_down_cooldown_s = duration()?,
                _ => {}
            }
        }
        self.validate()?;
        Ok(self)
    }

    /// Reads a PodAutoscaler: `metadata.annotations`, `spec.minReplicas` (unset or, for HPA, 0 → 1),
    /// `spec.maxReplicas`, and the single `spec.metricsSources[]` entry (the reference models exactly one metric,
    /// as the admission webhook requires). The target value is read as the controller reads it: a float.
    pub(crate) fn from_pod_autoscaler(pa: &PodAutoscaler) -> Result<Self, ParamsError> {
        let spec = &pa.spec;
        let min = match spec.min_replicas {
            None => 1,
            Some(0) if spec.scaling_strategy == Strategy::Hpa => 1,
            Some(m) => i64::from(m),
        };
        // The reference models the first source; with several, the controller takes the highest recommendation,
        // which scenarios assert through the source that dominates.
        let Some(source) = spec.metrics_sources.first() else {
            return Err(ParamsError::Field {
                field: "spec.metricsSources",
                message: "no metric source".into(),
            });
        };
        let target = source
            .target_value
            .trim()
            .parse::<f64>()
            .map_err(|_| ParamsError::Field {
                field: "spec.metricsSources[0].targetValue",
                message: format!("{:?} is not a number", source.target_value),
            })?;
        Self::new(
            min,
            i64::from(spec.max_replicas),
            &source.target_metric,
            target,
        )
        .with_annotations(&pa.annotations())
    }

    /// Parameters for a PodAutoscaler the reference cannot model (an invalid spec on purpose): the defaults, with
    /// whatever bounds and metric can be read, so that status expectations can still be judged.
    pub(crate) fn fallback(pa: &serde_json::Value) -> Self {
        let spec = &pa["spec"];
        let max = spec["maxReplicas"].as_i64().unwrap_or(1).max(1);
        let min = spec["minReplicas"].as_i64().unwrap_or(1).clamp(0, max);
        let metric = spec["metricsSources"][0]["targetMetric"]
            .as_str()
            .unwrap_or_default();
        Self::new(min, max, metric, 1.0)
    }

    /// Checks that the parameters are within what the algorithms model.
    pub fn validate(&self) -> Result<(), ParamsError> {
        if self.min_replicas < 0 || self.max_replicas < 1 || self.min_replicas > self.max_replicas {
            return Err(ParamsError::Bounds {
                min: self.min_replicas,
                max: self.max_replicas,
            });
        }
        let checks: [(&'static str, f64, bool, &'static str); 11] = [
            (
                "targetValue",
                self.target_value,
                self.target_value > 0.0,
                "> 0",
            ),
            (
                "scale-up-tolerance",
                self.scale_up_tolerance,
                (0.0..1.0).contains(&self.scale_up_tolerance),
                "[0, 1)",
            ),
            (
                "scale-down-tolerance",
                self.scale_down_tolerance,
                (0.0..1.0).contains(&self.scale_down_tolerance),
                "[0, 1)",
            ),
            (
                "max-scale-up-rate",
                self.max_scale_up_rate,
                self.max_scale_up_rate >= 1.0,
                ">= 1",
            ),
            (
                "max-scale-down-rate",
                self.max_scale_down_rate,
                self.max_scale_down_rate >= 1.0,
                ">= 1",
            ),
            (
                "panic-threshold",
                self.panic_threshold,
                self.panic_threshold > 0.0,
                "> 0",
            ),
            (
                "scale-up-cooldown-window",
                self.scale_up_cooldown_s,
                self.scale_up_cooldown_s >= 0.0,
                ">= 0",
            ),
            (
                "scale-down-cooldown-window",
                self.scale_down_cooldown_s,
                self.scale_down_cooldown_s >= 0.0,
                ">= 0",
            ),
            (
                "stable window",
                self.stable_window_s,
                self.stable_window_s > 0.0,
                "> 0",
            ),
            (
                "panic window",
                self.panic_window_s,
                self.panic_window_s > 0.0 && self.panic_window_s <= self.stable_window_s,
                "(0, stable window]",
            ),
            (
                "decision periods",
                self.resync_period_s.min(self.hpa_sync_period_s),
                self.resync_period_s > 0.0 && self.hpa_sync_period_s > 0.0,
                "> 0",
            ),
        ];
        for (what, value, ok, expected) in checks {
            if !ok || !value.is_finite() {
                return Err(ParamsError::OutOfRange {
                    what,
                    value,
                    expected,
                });
            }
        }
        Ok(())
    }

    /// The per-pod target the strategy actually compares with (reference §6): the HPA gets the *integer part* of
    /// `targetValue` as its `AverageValue` (`ceil` for cpu utilization, × 1 MiB for memory); KPA and APA use the
    /// value as written.
    pub(crate) fn effective_target(&self, strategy: Strategy) -> f64 {
        match strategy {
            Strategy::Hpa => match self.target_metric.to_ascii_lowercase().as_str() {
                "cpu" => self.target_value.ceil(),
                "memory" => self.target_value.trunc() * 1_048_576.0,
                _ => self.target_value.trunc(),
            },
            Strategy::Kpa | Strategy::Apa => self.target_value,
        }
    }

    /// How often the strategy decides: the HPA sync period for HPA, the controller's resync for KPA/APA.
    pub(crate) fn decision_period_s(&self, strategy: Strategy) -> f64 {
        match strategy {
            Strategy::Hpa => self.hpa_sync_period_s,
            Strategy::Kpa | Strategy::Apa => self.resync_period_s,
        }
    }

    pub(super) fn clamp(&self, replicas: i64) -> i64 {
        replicas.clamp(self.min_replicas, self.max_replicas)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// A PodAutoscaler from its JSON (the parts the reference reads, plus what the type requires).
    fn pa(value: Value) -> PodAutoscaler {
        let mut value = value;
        value["apiVersion"] = json!("autoscaling.aibrix.ai/v1alpha1");
        value["kind"] = json!("PodAutoscaler");
        value["metadata"]["name"] = json!("mock-vllm");
        value["spec"]["scaleTargetRef"] = json!({"kind": "Deployment", "name": "mock-vllm"});
        serde_json::from_value(value).expect("a PodAutoscaler")
    }

    #[test]
    fn params_come_from_annotations_and_the_pod_autoscaler() {
        let pa_json = json!({
            "metadata": {"annotations": {
                MAX_SCALE_UP_RATE: "4",
                SCALE_DOWN_COOLDOWN_WINDOW: "1m30s",
                SCALE_UP_COOLDOWN_WINDOW: "0s",
                PANIC_THRESHOLD: "3.0",
                "unrelated/annotation": "x",
            }},
            "spec": {"scalingStrategy": "KPA", "maxReplicas": 8,
                     "metricsSources": [{"metricSourceType": "pod", "targetMetric": "gpu_cache_usage_perc", "targetValue": "0.5"}]},
        });
        let p = ScalingParams::from_pod_autoscaler(&pa(pa_json.clone())).expect("valid");
        assert_eq!((p.min_replicas, p.max_replicas), (1, 8));
        assert_eq!(p.target_metric, "gpu_cache_usage_perc");
        assert_eq!(p.target_value, 0.5);
        assert_eq!(p.max_scale_up_rate, 4.0);
        assert_eq!(p.max_scale_down_rate, 2.0);
        assert_eq!(p.panic_threshold, 3.0);
        assert_eq!(p.scale_down_cooldown_s, 90.0);
        assert_eq!((p.stable_window_s, p.panic_window_s), (180.0, 60.0));

        let mut hpa = pa_json.clone();
        hpa["spec"]["scalingStrategy"] = json!("HPA");
        hpa["spec"]["minReplicas"] = json!(0);
        let p = ScalingParams::from_pod_autoscaler(&pa(hpa)).expect("valid");
        assert_eq!(p.min_replicas, 1, "the HPA gets minReplicas only when > 0");
        assert_eq!(
            p.effective_target(Strategy::Hpa),
            0.0,
            "the HPA's AverageValue is the integer part"
        );
        assert_eq!(p.effective_target(Strategy::Kpa), 0.5);

        let mut bad = pa_json.clone();
        bad["metadata"]["annotations"][SCALE_DOWN_COOLDOWN_WINDOW] = json!("5 minutes");
        let err = ScalingParams::from_pod_autoscaler(&pa(bad)).expect_err("bad duration");
        assert!(
            err.to_string().contains("scale-down-cooldown-window"),
            "{err}"
        );
        let mut bad = pa_json.clone();
        bad["metadata"]["annotations"][MAX_SCALE_DOWN_RATE] = json!("fast");
        assert!(matches!(
            ScalingParams::from_pod_autoscaler(&pa(bad)),
            Err(ParamsError::NotANumber { .. })
        ));
        let mut bad = pa_json.clone();
        bad["spec"]["minReplicas"] = json!(9);
        assert!(matches!(
            ScalingParams::from_pod_autoscaler(&pa(bad)),
            Err(ParamsError::Bounds { .. })
        ));
        let mut bad = pa_json;
        bad["spec"]["metricsSources"] = json!([]);
        assert!(ScalingParams::from_pod_autoscaler(&pa(bad.clone())).is_err());
        bad["spec"]["metricsSources"] =
            json!([{"metricSourceType": "pod", "targetMetric": "x", "targetValue": "fast"}]);
        let err = ScalingParams::from_pod_autoscaler(&pa(bad)).expect_err("not a number");
        assert!(
            err.to_string().contains("\"fast\" is not a number"),
            "{err}"
        );
        assert!("XPA".parse::<Strategy>().is_err());
        assert_eq!("apa".parse::<Strategy>(), Ok(Strategy::Apa));
    }
}
