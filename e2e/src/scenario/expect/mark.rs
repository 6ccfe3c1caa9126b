//! The one mark an expectation may carry about the pinned controller, and the one place where a verdict and that
//! mark become an [`Outcome`] and the note the report prints.
//!
//! A scenario file marks the expectation item itself, with at most one of:
//!
//! ```yaml
//! - {kind: reaches_at_least, replicas: 4, within_s: 90, after_phase: spike, expected_failure: "why it fails"}
//! - kind: steady_state
//!   phase: step
//!   settle_s: 150
//!   intermittent: >-
//!     why it fails in some runs and not in others
//! ```
//!
//! - `expected_failure`: a known deviation of the controller under test. A failure is reported as
//!   `expected-fail` (green), a pass as `UNEXPECTED-PASS` (red: the deviation may be fixed, so the stale mark gets
//!   noticed, as a strict xfail).
//! - `intermittent`: a known deviation that shows in some runs only (e.g. a race between the controller's
//!   reconciles and pod readiness). Judged and reported like any other, never gating.
//!
//! Runner and report only read what [`Mark::outcome`] and [`Mark::note`] return. Against a patched controller build
//! ([`crate::scenario::controller_build`]) a mark whose catalogue entry the build fixes is judged as no mark at all
//! ([`Mark::judged_on`]): the expectation must pass, and the note says so.

use serde::{Deserialize, Serialize};

use super::verdict::Outcome;

/// What a scenario knows in advance about one expectation's result against the pinned controller.
///
/// In YAML the mark is one of two optional keys on the expectation item (see the module doc); [`MarkKeys`] is that
/// form, and converting from it is where "at most one" is enforced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "MarkKeys", into = "MarkKeys")]
pub enum Mark {
    /// No mark: the verdict decides (pass or fail).
    #[default]
    Unmarked,
    /// `expected_failure: <reason>`.
    ExpectedFailure {
        /// The known deviation, as the report shows it.
        reason: String,
    },
    /// `intermittent: <reason>`.
    Intermittent {
        /// Why the result varies from run to run, and what a failure shows.
        reason: String,
    },
}

impl Mark {
    /// The outcome of a verdict that `passed` (or not) under this mark.
    pub fn outcome(&self, passed: bool) -> Outcome {
        match (self, passed) {
            (Mark::Unmarked, true) => Outcome::Pass,
            (Mark::Unmarked, false) => Outcome::Fail,
            (Mark::ExpectedFailure { .. }, false) => Outcome::ExpectedFail,
            (Mark::ExpectedFailure { .. }, true) => Outcome::UnexpectedPass,
            (Mark::Intermittent { .. }, _) => Outcome::Intermittent,
        }
    }

    /// The mark as it applies to a build that fixes the catalogue entries `fixed`: [`Mark::Unmarked`] when the
    /// entry it names is fixed (so a failure is a real failure), itself otherwise.
    pub fn judged_on(&self, fixed: &std::collections::BTreeSet<String>) -> &Mark {
        match self.reason() {
            Some(reason) if fixed.contains(crate::scenario::catalogue::mark_id(reason)) => {
                &Mark::Unmarked
            }
            _ => self,
        }
    }

    /// The reason as written, if marked.
    pub(crate) fn reason(&self) -> Option<&str> {
        match self {
            Mark::Unmarked => None,
            Mark::ExpectedFailure { reason } | Mark::Intermittent { reason } => Some(reason),
        }
    }

    /// The line the report adds under the verdict: the expected failure's reason, or for an intermittent mark
    /// `intermittent (held this run): <reason>` / `intermittent (failed this run): <reason>`.
    pub(crate) fn note(&self, passed: bool) -> Option<String> {
        match self {
            Mark::Unmarked => None,
            Mark::ExpectedFailure { reason } => Some(reason.clone()),
            Mark::Intermittent { reason } => {
                let this_run = if passed { "held" } else { "failed" };
                Some(format!("intermittent ({this_run} this run): {reason}"))
            }
        }
    }
}

/// The mark as it is written: two optional keys on the expectation item.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MarkKeys {
    /// Known deviation of the pinned controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_failure: Option<String>,
    /// Known run-to-run variation against the pinned controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intermittent: Option<String>,
}

/// An expectation item carries both `expected_failure` and `intermittent`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "an expectation takes at most one mark, `expected_failure` or `intermittent`, not both (expected_failure: \
     {expected_failure:?})"
)]
pub struct TwoMarks {
    /// The `expected_failure` reason, to point at the item.
    pub expected_failure: String,
}

impl TryFrom<MarkKeys> for Mark {
    type Error = TwoMarks;

    fn try_from(keys: MarkKeys) -> Result<Self, Self::Error> {
        match (keys.expected_failure, keys.intermittent) {
            (None, None) => Ok(Mark::Unmarked),
            (Some(reason), None) => Ok(Mark::ExpectedFailure { reason }),
            (None, Some(reason)) => Ok(Mark::Intermittent { reason }),
            (Some(expected_failure), Some(_)) => Err(TwoMarks { expected_failure }),
        }
    }
}

impl From<Mark> for MarkKeys {
    fn from(mark: Mark) -> Self {
        match mark {
            Mark::Unmarked => MarkKeys::default(),
            Mark::ExpectedFailure { reason } => MarkKeys {
                expected_failure: Some(reason),
                intermittent: None,
            },
            Mark::Intermittent { reason } => MarkKeys {
                expected_failure: None,
                intermittent: Some(reason),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_mark_decides_outcome_and_note() {
        let xfail = Mark::ExpectedFailure {
            reason: "known".into(),
        };
        let flaky = Mark::Intermittent {
            reason: "races".into(),
        };
        assert_eq!(Mark::Unmarked.outcome(true), Outcome::Pass);
        assert_eq!(Mark::Unmarked.outcome(false), Outcome::Fail);
        assert_eq!(Mark::Unmarked.note(false), None);
        assert_eq!(xfail.outcome(false), Outcome::ExpectedFail);
        assert_eq!(xfail.outcome(true), Outcome::UnexpectedPass);
        assert_eq!(xfail.note(true).as_deref(), Some("known"));
        assert_eq!(flaky.outcome(true), Outcome::Intermittent);
        assert_eq!(flaky.outcome(false), Outcome::Intermittent);
        let fixed: std::collections::BTreeSet<String> = ["kpa-mean-as-total".to_string()].into();
        let xfail = Mark::ExpectedFailure {
            reason: "kpa-mean-as-total: stays at 2".into(),
        };
        assert_eq!(xfail.judged_on(&fixed).outcome(false), Outcome::Fail);
        assert_eq!(xfail.judged_on(&fixed).outcome(true), Outcome::Pass);
        assert_eq!(
            xfail.judged_on(&Default::default()).outcome(false),
            Outcome::ExpectedFail
        );
        assert_eq!(flaky.judged_on(&fixed), &flaky);
        assert_eq!(
            flaky.note(true).as_deref(),
            Some("intermittent (held this run): races")
        );
        assert_eq!(
            flaky.note(false).as_deref(),
            Some("intermittent (failed this run): races")
        );
    }
}
