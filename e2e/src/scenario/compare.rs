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
    /// Scenarios left out because one run chose a part of the suite (its `selection`) without them.
    pub not_compared: Vec<String>,
    /// Patches of the patched build that no compared finding judged: no finding marked with a deviation the patch
    /// fixes failed as expected on the pristine build and passed on the patched one. A selection must still judge
    /// every patch.
    pub unjudged_patches: Vec<String>,
}

impl Comparison {
    /// Pairs up the findings of two reports (by scenario and position: findings follow the scenario's
    /// expectations in order).
    pub fn new(pristine: &SuiteReport, patched: &SuiteReport) -> Self {
        let fixed = &patched.build.fixed_deviations;
        let mut pairs: BTreeMap<(String, usize), FindingPair> = BTreeMap::new();
        let mut order = Vec::new();
        let mut scenario_problems = Vec::new();
        let mut not_compared = Vec::new();
        for (build, report, other) in [
            (ControllerBuild::Pristine, pristine, patched),
            (ControllerBuild::Patched, patched, pristine),
        ] {
            for s in &report.scenarios {
                if !other.scenarios.iter().any(|o| o.name == s.name) {
                    if let Some(selection) = &other.selection {
                        not_compared.push(format!(
                            "{} (the {} run chose `{selection}`)",
                            s.name, other.build.build
                        ));
                        continue;
                    }
                    scenario_problems.push(format!("{} ran on the {build} build only", s.name));
                }
                if let Some(e) = &s.error {
                    scenario_problems.push(format!(
                        "{} could not run on the {build} build: {e}",
                        s.name
                    ));
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
        let pairs: Vec<FindingPair> = order.into_iter().filter_map(|k| pairs.remove(&k)).collect();
        // A patch is judged when a finding marked with a deviation it fixes (alone or with others) failed as
        // expected on the pristine build and passes on the patched one. A race's finding does not count: it may
        // hold on the pristine build too, so it need not tell the builds apart.
        let patches_of = |id: &str| {
            patched
                .deviations
                .iter()
                .chain(&pristine.deviations)
                .find(|d| d.entry.id == id)
                .map(|d| d.entry.patches.clone())
                .unwrap_or_default()
        };
        let judged: std::collections::BTreeSet<String> = pairs
            .iter()
            .filter(|p| {
                p.fixed
                    && p.problem().is_none()
                    && p.pristine == Some((Outcome::ExpectedFail, false))
            })
            .filter_map(|p| p.deviation.as_deref())
            .flat_map(patches_of)
            .collect();
        let unjudged_patches = patched
            .build
            .patches
            .iter()
            .map(|p| p.file.clone())
            .filter(|f| !judged.contains(f))
            .collect();
        Self {
            pairs,
            scenario_problems,
            not_compared,
            unjudged_patches,
        }
    }

    /// Everything that breaks the proof.
    pub fn problems(&self) -> Vec<String> {
        self.scenario_problems
            .iter()
            .cloned()
            .chain(self.unjudged_patches.iter().map(|p| {
                format!("{p}: no compared finding judged it (an expected failure of a deviation it fixes that passes on the patched build)")
            }))
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
            pristine
                .scenarios
                .iter()
                .filter(|s| patched.scenarios.iter().any(|o| o.name == s.name))
                .count(),
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
        if !self.not_compared.is_empty() {
            let _ = writeln!(
                out,
                "\n## Not compared\n\n{} scenario(s) ran on one build only, because the other run chose a part of \
                 the suite; {} of the {} patches were judged on the rest.\n",
                self.not_compared.len(),
                patched.build.patches.len() - self.unjudged_patches.len(),
                patched.build.patches.len()
            );
            for s in &self.not_compared {
                let _ = writeln!(out, "- {s}");
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

    /// A suite report of `scenarios` (name, outcome, passed, mark) as `summary.json` holds it.
    fn report(
        build: &str,
        selection: Option<&str>,
        scenarios: &[(&str, &str, bool, Option<&str>)],
    ) -> SuiteReport {
        let patch = |file: &str| serde_json::json!({"file": file, "fixes": null, "summary": "", "files": [], "added": 1, "removed": 0});
        let entry = |id: &str, patches: &[&str]| {
            serde_json::json!({"id": id, "kind": "deviation", "strategies": ["KPA"], "title": "", "reference": "",
                "controller": "", "code": [], "patches": patches, "shown_by": []})
        };
        let patched = build == "patched";
        serde_json::from_value(serde_json::json!({
            "wall_time_s": 1.0,
            "versions": {},
            "counts": {"pass": 0, "fail": 0, "expected_fail": 0, "unexpected_pass": 0, "intermittent": 0},
            "scenarios": scenarios.iter().map(|(name, outcome, passed, mark)| serde_json::json!({
                "name": name, "strategy": "KPA", "description": "", "outcome": outcome, "duration_s": 1.0,
                "timeline": "", "findings": [{
                    "expectation": "e", "outcome": outcome, "expected_failure": mark, "mark_reason": mark,
                    "verdict": {"passed": passed, "summary": "", "excerpt": [], "at": null},
                    "controller_log": []
                }]
            })).collect::<Vec<_>>(),
            "deviations": [entry("a", &["0001-a.patch"]), entry("b", &["0002-b.patch", "0001-a.patch"])],
            "build": {
                "build": build,
                "patches": if patched { vec![patch("0001-a.patch"), patch("0002-b.patch")] } else { vec![] },
                "fixed_deviations": if patched { vec!["a", "b"] } else { vec![] },
            },
            "selection": selection,
        }))
        .expect("a suite report")
    }

    #[test]
    fn a_selection_leaves_scenarios_out_but_every_patch_must_be_judged() {
        let pristine = report(
            "pristine",
            None,
            &[
                ("sa", "expected_fail", false, Some("a")),
                ("sb", "expected_fail", false, Some("b")),
                ("plain", "pass", true, None),
            ],
        );
        // The patched run chose `sb` only: `sa` and `plain` are not compared, and `b` needs both patches.
        let both = report(
            "patched",
            Some("--tags cover"),
            &[("sb", "pass", true, Some("b"))],
        );
        let c = Comparison::new(&pristine, &both);
        assert_eq!(c.problems(), Vec::<String>::new());
        assert_eq!(c.not_compared.len(), 2, "{:?}", c.not_compared);
        // The patched run chose `sa` only: 0002 is judged by no finding.
        let half = report(
            "patched",
            Some("--only sa"),
            &[("sa", "pass", true, Some("a"))],
        );
        let c = Comparison::new(&pristine, &half);
        assert_eq!(c.unjudged_patches, vec!["0002-b.patch".to_string()]);
        assert_eq!(c.problems().len(), 1, "{:?}", c.problems());
        // A fixed finding that fails on the patched build judges nothing.
        let failing = report(
            "patched",
            Some("--only sb"),
            &[("sb", "fail", false, Some("b"))],
        );
        let c = Comparison::new(&pristine, &failing);
        assert_eq!(c.unjudged_patches.len(), 2);
        // Without a selection, a scenario missing from one run is a problem.
        let missing = report("patched", None, &[("sb", "pass", true, Some("b"))]);
        let c = Comparison::new(&pristine, &missing);
        assert!(
            c.problems()
                .iter()
                .any(|p| p.contains("sa ran on the pristine build only")),
            "{:?}",
            c.problems()
        );
    }
}
