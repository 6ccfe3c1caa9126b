//! What a scenario is: a data file under `e2e/scenarios/` naming the strategy, the deployment, the
//! PodAutoscaler, the load over time, and the expectations.
//!
//! A scenario runs in its own namespace on its own simulated 8-GPU node, so the strategies (and the scenarios of
//! one strategy) run side by side in one cluster without disturbing each other. The Deployment is the repository's
//! `manifests/base/mock-vllm` with this file's overrides; the PodAutoscaler is built from the `autoscaler` section,
//! so a scenario reads like the AIBrix manifests it tests.
//!
//! ```yaml
//! name: kpa-running-step
//! strategy: KPA
//! description: A step of 16 concurrent clients on num_requests_running, target 4 per pod.
//! target: {replicas: 1, startup_delay_s: 5}
//! autoscaler:
//!   min_replicas: 1
//!   max_replicas: 8
//!   metric: num_requests_running
//!   target_value: "4"
//!   annotations: {autoscaling.aibrix.ai/scale-down-cooldown-window: "30s"}
//! load:
//!   request: {prompt_tokens: 200, max_tokens: 300}
//!   phases:
//!     - {name: baseline, duration_s: 20, concurrency: 1}
//!     - {name: step, duration_s: 200, concurrency: 16}
//! expectations:
//!   - {kind: within_bounds}
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use super::autoscaler::{AutoscalerSpec, SourceSpec};
use super::expect::ExpectationItem;
use super::faults::FaultAction;
pub use super::reference::Strategy;

/// A scenario file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// Unreadable file.
    #[error("cannot read scenario {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Not a valid scenario.
    #[error("invalid scenario {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The Deployment under test.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    /// Replicas at the start.
    #[serde(default = "one")]
    pub replicas: u32,
    /// Simulated model load of each new pod, seconds.
    #[serde(default = "default_startup_delay")]
    pub startup_delay_s: f64,
    /// Extra mock-vllm arguments (e.g. `--max-num-seqs=64`).
    #[serde(default)]
    pub extra_args: Vec<String>,
    /// Readiness probe period, seconds.
    #[serde(default = "one")]
    pub readiness_period_s: u32,
    /// Seconds after the first load phase starts before the PodAutoscaler is applied (its first readings then
    /// see the load, not clients still connecting).
    #[serde(default = "default_autoscaler_delay")]
    pub autoscaler_delay_s: f64,
}

fn default_autoscaler_delay() -> f64 {
    10.0
}

fn one() -> u32 {
    1
}

fn default_startup_delay() -> f64 {
    5.0
}

/// The shape of every request the load sends.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RequestShape {
    /// Prompt length in tokens (synthetic text of exactly this many tokens).
    pub prompt_tokens: u32,
    /// Generated tokens (`max_tokens` with `ignore_eos`).
    pub max_tokens: u32,
}

/// One stretch of constant load.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LoadPhase {
    /// Name (expectations refer to phases by name).
    pub name: String,
    /// Length in seconds.
    pub duration_s: f64,
    /// Closed loop: this many clients, each sending its next request when the previous one ends.
    #[serde(default)]
    pub concurrency: Option<u32>,
    /// Open loop: this many requests per second (Poisson arrivals), whatever the server does.
    #[serde(default)]
    pub rps: Option<f64>,
}

/// The load over time.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LoadSpec {
    /// Every request's shape.
    pub request: RequestShape,
    /// The phases, in order.
    pub phases: Vec<LoadPhase>,
}

/// A scenario file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Unique name (also the namespace).
    pub name: String,
    /// Strategy under test.
    pub strategy: Strategy,
    /// What it checks, for the report.
    #[serde(default)]
    pub description: String,
    /// The Deployment.
    #[serde(default = "default_target")]
    pub target: TargetSpec,
    /// The PodAutoscaler.
    pub autoscaler: AutoscalerSpec,
    /// The load.
    pub load: LoadSpec,
    /// Tags for selecting tiers and subsets (`smoke`, `full`, a knob …); the strategy's name is implied.
    #[serde(default)]
    pub tags: Vec<String>,
    /// `exclusive`: the scenario disturbs the controller itself (e.g. a hanging `/metrics` holds AIBrix's single
    /// reconcile worker for its 10 s budget), so it runs alone after the side-by-side batch.
    #[serde(default)]
    pub isolation: Isolation,
    /// Timed actions on the pods or the node during the load ([`FaultAction`]).
    #[serde(default)]
    pub faults: Vec<FaultAction>,
    /// What must hold, each item with its mark if any (`expected_failure` or `intermittent`, see
    /// [`Mark`](super::expect::Mark)).
    pub expectations: Vec<ExpectationItem>,
    /// The directory the file was read from (manifests are relative to it).
    #[serde(skip)]
    pub dir: PathBuf,
}

/// Whether a scenario may share the cluster's controller with others at the same time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// Side by side with the others (the default).
    #[default]
    Shared,
    /// Alone, after the shared batch.
    Exclusive,
}

fn default_target() -> TargetSpec {
    TargetSpec {
        replicas: 1,
        startup_delay_s: default_startup_delay(),
        extra_args: Vec::new(),
        readiness_period_s: 1,
        autoscaler_delay_s: default_autoscaler_delay(),
    }
}

impl Scenario {
    /// Reads and checks one scenario file.
    pub fn read(path: &Path) -> Result<Self, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut scenario: Scenario =
            serde_yaml::from_str(&text).map_err(|e| SpecError::Invalid {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        scenario.dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        scenario.check().map_err(|message| SpecError::Invalid {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(scenario)
    }

    /// Every `*.yaml` scenario of a directory, sorted by file name.
    pub fn read_dir(dir: &Path) -> Result<Vec<Self>, SpecError> {
        let entries = std::fs::read_dir(dir).map_err(|source| SpecError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect();
        paths.sort();
        paths.iter().map(|p| Self::read(p)).collect()
    }

    fn check(&self) -> Result<(), String> {
        let dns_label = |s: &str| {
            !s.is_empty()
                && s.len() <= 63
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !s.starts_with('-')
                && !s.ends_with('-')
        };
        if !dns_label(&self.name) {
            return Err(format!(
                "name `{}` must be a DNS label (it becomes the namespace)",
                self.name
            ));
        }
        self.autoscaler.check()?;
        let phases: Vec<String> = self.load.phases.iter().map(|p| p.name.clone()).collect();
        for fault in &self.faults {
            fault.check(&phases)?;
        }
        for tag in &self.tags {
            if tag.is_empty() || tag.contains(',') || tag.contains(char::is_whitespace) {
                return Err(format!("tag `{tag}` must be one word without commas"));
            }
        }
        if self.load.phases.is_empty() {
            return Err("load.phases is empty".into());
        }
        for phase in &self.load.phases {
            if phase.concurrency.is_some() == phase.rps.is_some() {
                return Err(format!(
                    "phase `{}` needs exactly one of concurrency or rps",
                    phase.name
                ));
            }
            if phase.duration_s.is_nan() || phase.duration_s <= 0.0 {
                return Err(format!(
                    "phase `{}` needs a positive duration_s",
                    phase.name
                ));
            }
        }
        Ok(())
    }

    /// Total load time.
    pub fn duration_s(&self) -> f64 {
        self.load.phases.iter().map(|p| p.duration_s).sum()
    }

    /// Every tag of the scenario: its own, plus the strategy in lower case (`hpa`, `kpa`, `apa`).
    pub fn all_tags(&self) -> Vec<String> {
        let mut tags = self.tags.clone();
        tags.push(self.strategy.to_string().to_lowercase());
        tags
    }

    /// Whether the scenario carries any of `tags`.
    pub fn has_any_tag(&self, tags: &[String]) -> bool {
        let own = self.all_tags();
        tags.iter().any(|t| own.contains(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
name: kpa-running-step
strategy: KPA
target: {replicas: 1, startup_delay_s: 5}
autoscaler:
  min_replicas: 1
  max_replicas: 8
  metric: num_requests_running
  target_value: "4"
  annotations: {autoscaling.aibrix.ai/scale-down-cooldown-window: "30s"}
load:
  request: {prompt_tokens: 200, max_tokens: 300}
  phases:
    - {name: baseline, duration_s: 20, concurrency: 1}
    - {name: step, duration_s: 200, concurrency: 16}
expectations: []
"#;

    #[test]
    fn a_scenario_parses_and_builds_its_podautoscaler() {
        let scenario: Scenario = serde_yaml::from_str(EXAMPLE).expect("parses");
        scenario.check().expect("valid");
        assert_eq!(scenario.duration_s(), 220.0);
        let built = scenario
            .autoscaler
            .build(
                scenario.strategy,
                &scenario.name,
                "mock-vllm",
                8000,
                Path::new("."),
            )
            .expect("builds");
        let pa = built.typed.expect("typed");
        assert_eq!(pa.spec.scaling_strategy, Strategy::Kpa);
        assert_eq!(pa.spec.metrics_sources[0].port.as_deref(), Some("8000"));
        assert_eq!(pa.metadata.namespace.as_deref(), Some("kpa-running-step"));
        assert_eq!(
            pa.annotations()["autoscaling.aibrix.ai/scale-down-cooldown-window"],
            "30s"
        );
        assert_eq!(scenario.all_tags(), vec!["kpa".to_string()]);
        assert!(scenario.has_any_tag(&["kpa".into(), "smoke".into()]));
    }

    #[test]
    fn invalid_scenarios_say_what_to_fix() {
        let bad = EXAMPLE.replace("max_replicas: 8", "max_replicas: 9");
        let scenario: Scenario = serde_yaml::from_str(&bad).expect("parses");
        assert!(scenario
            .check()
            .expect_err("invalid")
            .contains("max_replicas"));
        let bad = EXAMPLE.replace("concurrency: 16", "concurrency: 16, rps: 2");
        let scenario: Scenario = serde_yaml::from_str(&bad).expect("parses");
        assert!(scenario
            .check()
            .expect_err("invalid")
            .contains("exactly one"));
        assert!(serde_yaml::from_str::<Scenario>(
            &EXAMPLE.replace("strategy: KPA", "strategy: XPA")
        )
        .is_err());
    }

    #[test]
    fn marks_sit_on_the_expectation_they_qualify() {
        let ok = EXAMPLE.replace(
            "expectations: []",
            "expectations:\n  - {kind: within_bounds, intermittent: races}",
        );
        let scenario: Scenario = serde_yaml::from_str(&ok).expect("parses");
        scenario.check().expect("valid");
        assert_eq!(
            scenario.expectations[0].mark,
            super::super::expect::Mark::Intermittent {
                reason: "races".into()
            }
        );
        // The former top-level list is no longer accepted, so an old file cannot silently lose its marks.
        let old = EXAMPLE.replace(
            "expectations: []",
            "expectations:\n  - {kind: within_bounds}\nintermittent:\n  - {kind: within_bounds, reason: races}",
        );
        let err = serde_yaml::from_str::<Scenario>(&old).expect_err("top-level intermittent");
        assert!(
            err.to_string().contains("unknown field `intermittent`"),
            "{err}"
        );
    }

    #[test]
    fn the_repository_scenarios_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        if dir.is_dir() {
            let scenarios = Scenario::read_dir(&dir).expect("every scenario file is valid");
            let names: std::collections::HashSet<&str> =
                scenarios.iter().map(|s| s.name.as_str()).collect();
            assert_eq!(names.len(), scenarios.len(), "scenario names are unique");
        }
    }
}
