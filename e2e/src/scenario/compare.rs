//! The proof that the suite's verdicts mean something: the same scenarios judged on the pristine controller and
//! on the patched one (`make e2e` then `make e2e AIBRIX=patched`, then `make e2e-compare`), finding by finding.
//!
//! Two things must hold for the suite to be trusted:
//! - every expectation marked with a deviation the patched build fixes failed on the pristine build (as expected)
//!   and passes on the patched one, so the expectation tells a broken controller from a fixed one;
//! - every other verdict is the same on both builds (an unmarked pass stays a pass, an intermittent mark whose race
//!   no patch removes may go either way), so the patches fix what they claim and nothing else moves.
//!
//! [`Comparison::markdown`] is the table README and the issue notes quote: per deviation, its patch (size, what it
//! changes), the scenarios that show it and the verdict on each build.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use super::catalogue::mark_id;
use super::controller_build::ControllerBuild;
use super::expect::Outcome;
use super::report::{ticked, SuiteReport};

/// One finding on both builds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FindingPair {
    /// Scenario.
    pub scenario: String,
    /// The expectation, as described.
    pub expectation: String,
    /// The catalogue entry its mark names, if marked.
    pub deviation: Option<String>,
    /// The patched build fixes that entry.
    pub fixed: bool,
    /// Outcome and whether the verdict held, on the pristine build.
    pub pristine: Option<(Outcome, bool)>,
    /// The same on the patched build.
    pub patched: Option<(Outcome, bool)>,
}

impl FindingPair {
    /// Why this pair breaks the proof, if it does.
    pub fn problem(&self) -> Option<String> {
        let (Some((p_outcome, p_held)), Some((q_outcome, q_held))) = (self.pristine, self.patched)
        else {
            return Some("judged on one build only".into());
        };
        if self.fixed {
            if !q_held {
                return Some("fails on the patched build, which fixes its deviation".into());
            }
            if p_held && p_outcome != Outcome::Intermittent {
                return Some(
                    "passes on the pristine build too: it does not tell the builds apart".into(),
                );
            }
            return None;
        }
        if p_outcome == Outcome::Intermittent && q_outcome == Outcome::Intermittent {
            return None;
        }
        (p_outcome != q_outcome || p_held != q_held).then(|| {
            format!(
                "verdict changed ({} → {})",
                label(p_outcome, p_held),
                label(q_outcome, q_held)
            )
        })
    }
}

fn label(outcome: Outcome, held: bool) -> String {
    match outcome {
        Outcome::Intermittent => format!("intermittent, {}", if held { "held" } else { "failed" }),
        other => other.label().to_string(),
    }
}

fn shown(v: Option<(Outcome, bool)>) -> String {
    v.map_or("not run".into(), |(o, h)| label(o, h))
}

/// The two runs side by side.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// Every finding of either run, pristine order first.
    pub pairs: Vec<FindingPair>,
    /// Scenarios that ran on one build only, or could not run on one.
    pub scenario_problems: Vec<String>,
}

impl Comparison {
    /// Pairs up the findings of two reports (by scenario and position: findings follow the scenario's
    /// expectations in order).
    pub fn new(pristine: &SuiteReport, patched: &SuiteReport) -> Self {
        let fixed = &patched.build.fixed_deviations;
        let mut pairs: BTreeMap<(String, usize), FindingPair> = BTreeMap::new();
        let mut order = Vec::new();
        let mut scenario_problems = Vec::new();
        for (build, report, other) in [
            (ControllerBuild::Pristine, pristine, patched),
            (ControllerBuild::Patched, patched, pristine),
        ] {
            for s in &report.scenarios {
                if let Some(e) = &s.error {
                    scenario_problems.push(format!(
                        "{} could not run on the {build} build: {e}",
                        s.name
                    ));
                }
                if !other.scenarios.iter().any(|o| o.name == s.name) {
                    scenario_problems.push(format!("{} ran on the {build} build only", s.name));
                }
                for (i, f) in s.findings.iter().enumerate() {
                    let key = (s.name.clone(), i);
                    let j = &f.judgement;
                    let pair = pairs.entry(key.clone()).or_insert_with(|| {
                        order.push(key.clone());
                        let deviation = j.mark_reason.as_deref().map(|r| mark_id(r).to_string());
                        FindingPair {
                            scenario: s.name.clone(),
                            expectation: j.expectation.clone(),
                            fixed: deviation.as_ref().is_some_and(|d| fixed.contains(d)),
                            deviation,
                            pristine: None,
                            patched: None,
                        }
                    });
                    let v = Some((j.outcome, j.verdict.passed));
                    match build {
                        ControllerBuild::Pristine => pair.pristine = v,
                        ControllerBuild::Patched => pair.patched = v,
                    }
                }
            }
        }
        let pairs = order.into_iter().filter_map(|k| pairs.remove(&k)).collect();
        Self {
            pairs,
            scenario_problems,
        }
    }

    /// Everything that breaks the proof.
    pub fn problems(&self) -> Vec<String> {
        self.scenario_problems
            .iter()
            .cloned()
            .chain(self.pairs.iter().filter_map(|p| {
                p.problem()
                    .map(|why| format!("{}: {}: {why}", p.scenario, p.expectation))
            }))
            .collect()
    }

    /// The comparison for people: per deviation, its patches and verdicts; then every other verdict that changed.
    pub fn markdown(&self, pristine: &SuiteReport, patched: &SuiteReport) -> String {
        let mut out = String::new();
        let problems = self.problems();
        let _ = writeln!(
            out,
            "# Pristine vs patched controller\n\nThe same {} scenarios on both builds ({} findings): {}.\n",
            pristine.scenarios.len(),
            self.pairs.len(),
            if problems.is_empty() {
                "every expectation marked with a fixed deviation failed on the pristine build and passes on the \
                 patched one, and no other verdict changed"
                    .to_string()
            } else {
                format!("{} problem(s), listed at the end", problems.len())
            }
        );
        let _ = writeln!(
            out,
            "| Deviation | Patch | Size | What the patch changes | Scenario: expectation | Pristine | Patched |\n\
             |---|---|---|---|---|---|---|"
        );
        for d in &pristine.deviations {
            let id = &d.entry.id;
            let rows: Vec<&FindingPair> = self
                .pairs
                .iter()
                .filter(|p| p.deviation.as_deref() == Some(id.as_str()))
                .collect();
            // The entry's own patch is its first; the others are what it also needs.
            let own = d
                .entry
                .patches
                .first()
                .and_then(|file| patched.build.patches.iter().find(|p| &p.file == file));
            let column = |cell: &dyn Fn(&FindingPair) -> String| {
                rows.iter()
                    .map(|p| cell(p))
                    .collect::<Vec<_>>()
                    .join("<br>")
            };
            let _ = writeln!(
                out,
                "| **{id}** ({:?}) | {} | {} | {} | {} | {} | {} |",
                d.entry.kind,
                if d.entry.patches.is_empty() {
                    "none".to_string()
                } else {
                    ticked(&d.entry.patches, " + ")
                },
                own.map_or("-".into(), |p| p.size()),
                own.map_or("-".into(), |p| p.summary.clone()),
                column(&|p| format!("{}: {}", p.scenario, p.expectation)),
                column(&|p| shown(p.pristine)),
                column(&|p| shown(p.patched)),
            );
        }
        let others: Vec<&FindingPair> = self.pairs.iter().filter(|p| !p.fixed).collect();
        let changed: Vec<&&FindingPair> = others.iter().filter(|p| p.problem().is_some()).collect();
        let _ = writeln!(
            out,
            "\n## Every other verdict\n\n{} findings are not marked with a fixed deviation; {} changed between the \
             builds.\n",
            others.len(),
            changed.len()
        );
        if !changed.is_empty() {
            let _ = writeln!(
                out,
                "| Scenario | Expectation | Pristine | Patched |\n|---|---|---|---|"
            );
            for p in changed {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} |",
                    p.scenario,
                    p.expectation,
                    shown(p.pristine),
                    shown(p.patched)
                );
            }
        }
        if !problems.is_empty() {
            let _ = writeln!(out, "\n## Problems\n");
            for p in &problems {
                let _ = writeln!(out, "- {p}");
            }
        }
        let _ = writeln!(
            out,
            "\nRuns: pristine {:.0} s ({}), patched {:.0} s ({}).",
            pristine.wall_time_s,
            pristine.build.label(),
            patched.wall_time_s,
            patched.build.label()
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(fixed: bool, p: (Outcome, bool), q: (Outcome, bool)) -> FindingPair {
        FindingPair {
            scenario: "s".into(),
            expectation: "e".into(),
            deviation: Some("d".into()),
            fixed,
            pristine: Some(p),
            patched: Some(q),
        }
    }

    #[test]
    fn a_fixed_deviation_must_fail_before_and_pass_after() {
        use Outcome::*;
        assert_eq!(
            pair(true, (ExpectedFail, false), (Pass, true)).problem(),
            None
        );
        assert!(pair(true, (ExpectedFail, false), (Fail, false))
            .problem()
            .is_some_and(|p| p.contains("fails on the patched build")));
        assert!(pair(true, (UnexpectedPass, true), (Pass, true))
            .problem()
            .is_some_and(|p| p.contains("does not tell the builds apart")));
        // A race mark the patches remove: it may have held on the pristine build in this run.
        assert_eq!(
            pair(true, (Intermittent, true), (Pass, true)).problem(),
            None
        );
    }

    #[test]
    fn other_verdicts_must_not_move() {
        use Outcome::*;
        assert_eq!(pair(false, (Pass, true), (Pass, true)).problem(), None);
        assert_eq!(
            pair(false, (Intermittent, true), (Intermittent, false)).problem(),
            None
        );
        assert!(pair(false, (Pass, true), (Fail, false)).problem().is_some());
        assert!(pair(false, (ExpectedFail, false), (UnexpectedPass, true))
            .problem()
            .is_some());
        let mut once = pair(false, (Pass, true), (Pass, true));
        once.patched = None;
        assert!(once.problem().is_some());
    }
}
