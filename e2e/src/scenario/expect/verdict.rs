//! How a check ends: its [`Verdict`] (held or not, one summary line, the evidence), the [`Outcome`] once its mark is
//! applied, the [`Judgement`] the report shows, and [`overall`], the one ordering that turns a scenario's outcomes
//! into the scenario's. Also the few text helpers every summary line uses, so that numbers read the same everywhere.

use serde::{Deserialize, Serialize};

use super::timeline_query::excerpt;
use crate::observe::timeline::{Sample, Timeline};

/// The judgement of one expectation on one timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Whether the expectation held.
    pub passed: bool,
    /// One human-readable line for the report.
    pub summary: String,
    /// The samples that matter (at most [`EXCERPT_SAMPLES`], change points kept).
    pub excerpt: Vec<Sample>,
    /// The time range that matters, for cutting the controller log.
    pub at: Option<(f64, f64)>,
}

impl Verdict {
    pub(super) fn failed(summary: String) -> Self {
        Self {
            passed: false,
            summary,
            excerpt: Vec::new(),
            at: None,
        }
    }

    pub(super) fn new(passed: bool, summary: String, timeline: &Timeline, at: (f64, f64)) -> Self {
        Self {
            passed,
            summary,
            excerpt: excerpt(timeline, at.0, at.1),
            at: Some(at),
        }
    }
}

/// How an expectation ended, given whether it was expected to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Held, as expected.
    Pass,
    /// Did not hold, unexpectedly.
    Fail,
    /// Did not hold, as recorded in `expected_failure`.
    ExpectedFail,
    /// Held although marked `expected_failure`: the deviation may be fixed; remove the mark.
    UnexpectedPass,
    /// Marked intermittent by its scenario (a known deviation that shows in some runs and not in others, e.g. a
    /// race between the controller's reconciles and pod readiness): reported with its verdict, never gating.
    Intermittent,
}

impl Outcome {
    /// `pass`, `FAIL`, `expected-fail`, `UNEXPECTED-PASS`.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "FAIL",
            Outcome::ExpectedFail => "expected-fail",
            Outcome::UnexpectedPass => "UNEXPECTED-PASS",
            Outcome::Intermittent => "intermittent",
        }
    }

    /// True for the outcomes that keep a run green (`Pass`, `ExpectedFail`). An unexpected pass is not green, so a
    /// stale `expected_failure` mark gets noticed (strict xfail).
    pub fn is_ok(self) -> bool {
        matches!(
            self,
            Outcome::Pass | Outcome::ExpectedFail | Outcome::Intermittent
        )
    }
}

/// A scenario's outcome from its expectations' outcomes: the worst one wins, in the order fail > unexpected-pass >
/// expected-fail > intermittent > pass (no expectations: pass).
pub fn overall(outcomes: impl IntoIterator<Item = Outcome>) -> Outcome {
    let rank = |o: Outcome| match o {
        Outcome::Pass => 0,
        Outcome::Intermittent => 1,
        Outcome::ExpectedFail => 2,
        Outcome::UnexpectedPass => 3,
        Outcome::Fail => 4,
    };
    outcomes
        .into_iter()
        .max_by_key(|o| rank(*o))
        .unwrap_or(Outcome::Pass)
}

/// An expectation's verdict with its outcome, as the report shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    /// [`Expectation::describe`](super::Expectation::describe).
    pub expectation: String,
    /// Pass / fail / expected-fail / unexpected-pass.
    pub outcome: Outcome,
    /// What the expectation's mark says, for the report ([`Mark::note`](super::Mark::note)): the reason it was
    /// expected to fail, or `intermittent (held|failed this run): <reason>`. The field keeps its historical name,
    /// which `summary.json` readers know.
    pub expected_failure: Option<String>,
    /// The mark's reason as written (its first word names the deviation catalogue entry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark_reason: Option<String>,
    /// The controller build under test fixes the deviation the mark names, so the mark did not apply.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fixed_on_build: bool,
    /// The verdict.
    pub verdict: Verdict,
}

/// Seconds for limits: `90`, `1.5`.
pub(super) fn secs(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x:.1}")
    }
}

pub(super) fn plural(n: i64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

pub(super) fn range_text(range: &std::ops::RangeInclusive<i64>) -> String {
    if range.start() == range.end() {
        range.start().to_string()
    } else {
        format!("{}..={}", range.start(), range.end())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_outcome_wins() {
        assert_eq!(
            overall([Outcome::Pass, Outcome::ExpectedFail]),
            Outcome::ExpectedFail
        );
        assert_eq!(
            overall([Outcome::UnexpectedPass, Outcome::Fail, Outcome::Pass]),
            Outcome::Fail
        );
        assert_eq!(overall([]), Outcome::Pass);
        assert_eq!(
            overall([Outcome::Pass, Outcome::Intermittent]),
            Outcome::Intermittent
        );
        assert!(Outcome::Intermittent.is_ok() && !Outcome::UnexpectedPass.is_ok());
    }
}
