//! The suite's report: `summary.json` (one entry per scenario: strategy, name, outcome, duration, findings) for
//! machines, and `report.md` for people: a table of every scenario, then each finding that is not a plain pass
//! with its timeline excerpt and the controller log lines around it.

use std::fmt::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::catalogue::{mark_id, Catalogue, Deviation};
use super::controller_build::{ControllerBuild, Patch};
use super::expect::Outcome;
use super::run::ScenarioResult;

/// The whole suite.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SuiteReport {
    /// Wall time of the suite, seconds (cluster start to report).
    pub wall_time_s: f64,
    /// Versions under test.
    pub versions: std::collections::BTreeMap<String, String>,
    /// Counts by outcome.
    pub counts: Counts,
    /// One entry per scenario.
    pub scenarios: Vec<ScenarioResult>,
    /// Each known deviation once, with the findings of this run that show it.
    #[serde(default)]
    pub deviations: Vec<DeviationShown>,
    /// The controller build the run judged.
    #[serde(default)]
    pub build: BuildUnderTest,
    /// How the run chose a part of its tier (`--only a,b`, `--tags x`); `None` when it ran the whole tier. A
    /// comparison leaves out the scenarios a selection left out, instead of calling them missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<String>,
}

/// Which controller build a run judged, with its patches and what they fix.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BuildUnderTest {
    /// Pristine or patched.
    pub build: ControllerBuild,
    /// The patch series it carries (empty for the pristine build).
    #[serde(default)]
    pub patches: Vec<Patch>,
    /// The catalogue entries it fixes: their marks did not apply.
    #[serde(default)]
    pub fixed_deviations: std::collections::BTreeSet<String>,
}

impl BuildUnderTest {
    /// `pristine` or `patched (7 patches)`.
    pub fn label(&self) -> String {
        match self.build {
            ControllerBuild::Pristine => "pristine".into(),
            ControllerBuild::Patched => format!("patched ({} patches)", self.patches.len()),
        }
    }
}

/// A catalogue entry and where this run met it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviationShown {
    /// The entry.
    #[serde(flatten)]
    pub entry: Deviation,
    /// `(scenario, expectation, outcome)` of every marked finding that names it.
    pub shown_by: Vec<(String, String, Outcome)>,
    /// The build under test fixes it (its findings had to pass).
    #[serde(default)]
    pub fixed_on_build: bool,
}

/// Scenario counts by outcome.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Counts {
    /// Passed.
    pub pass: usize,
    /// Failed (unexpectedly).
    pub fail: usize,
    /// Failed as expected (known deviation).
    pub expected_fail: usize,
    /// Marked as expected to fail but passed.
    pub unexpected_pass: usize,
    /// Decided by an intermittent expectation (reported, not gating).
    pub intermittent: usize,
}

impl SuiteReport {
    /// Builds the report and its counts.
    pub fn new(
        wall_time_s: f64,
        mut versions: std::collections::BTreeMap<String, String>,
        scenarios: Vec<ScenarioResult>,
        catalogue: &Catalogue,
        build: BuildUnderTest,
    ) -> Self {
        let mut counts = Counts::default();
        for s in &scenarios {
            match s.outcome {
                Outcome::Pass => counts.pass += 1,
                Outcome::Fail => counts.fail += 1,
                Outcome::ExpectedFail => counts.expected_fail += 1,
                Outcome::UnexpectedPass => counts.unexpected_pass += 1,
                Outcome::Intermittent => counts.intermittent += 1,
            }
        }
        let deviations = catalogue
            .entries
            .iter()
            .map(|entry| DeviationShown {
                entry: entry.clone(),
                shown_by: scenarios
                    .iter()
                    .flat_map(|s| {
                        s.findings.iter().filter_map(|f| {
                            let reason = f.judgement.mark_reason.as_deref()?;
                            (mark_id(reason) == entry.id).then(|| {
                                (
                                    s.name.clone(),
                                    f.judgement.expectation.clone(),
                                    f.judgement.outcome,
                                )
                            })
                        })
                    })
                    .collect(),
                fixed_on_build: build.fixed_deviations.contains(&entry.id),
            })
            .filter(|d| !d.shown_by.is_empty())
            .collect();
        versions.insert("AIBRIX_BUILD".into(), build.label());
        Self {
            wall_time_s,
            versions,
            counts,
            scenarios,
            deviations,
            build,
            selection: None,
        }
    }

    /// True when nothing unexpected happened.
    pub fn ok(&self) -> bool {
        self.counts.fail == 0 && self.counts.unexpected_pass == 0
    }

    /// Writes `summary.json` and `report.md` into `dir`.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(
            dir.join("summary.json"),
            serde_json::to_string_pretty(self).map_err(std::io::Error::other)?,
        )?;
        std::fs::write(dir.join("report.md"), self.markdown())
    }

    /// The one-table summary (also printed at the end of a run).
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "| Strategy | Scenario | Outcome | Duration | Expectations |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|");
        for s in &self.scenarios {
            let tally: Vec<String> = s
                .findings
                .iter()
                .map(|f| {
                    format!(
                        "{} {}",
                        f.judgement.outcome.label(),
                        f.judgement.expectation
                    )
                })
                .collect();
            let detail = match &s.error {
                Some(e) => format!("could not run: {e}"),
                None => tally.join("<br>"),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.0} s | {} |",
                s.strategy,
                s.name,
                s.outcome.label(),
                s.duration_s,
                detail
            );
        }
        out
    }

    /// One line per unexpected result (a failed or unexpectedly passing finding, or a scenario that could not
    /// run) with its verdict, so a CI log alone says what went wrong; empty when the run is clean.
    pub fn unexpected(&self) -> Vec<String> {
        let mut out = Vec::new();
        for s in &self.scenarios {
            if let Some(e) = &s.error {
                out.push(format!("{} {}: could not run: {e}", s.strategy, s.name));
            }
            for f in &s.findings {
                let j = &f.judgement;
                if matches!(j.outcome, Outcome::Fail | Outcome::UnexpectedPass) {
                    out.push(format!(
                        "{} {}: {} {}: {}",
                        s.strategy,
                        s.name,
                        j.outcome.label(),
                        j.expectation,
                        j.verdict.summary
                    ));
                }
            }
        }
        out
    }

    /// The deviation catalogue as far as this run showed it: each entry once, with its code and scenarios.
    pub fn deviation_table(&self) -> String {
        let mut out = String::new();
        if self.deviations.is_empty() {
            return out;
        }
        let _ = writeln!(
            out,
            "\n## Deviations from the reference\n\n| Deviation | Reference | Controller | Code (pinned tag) | Shown by (this run) | On this build |\n|---|---|---|---|---|---|"
        );
        for d in &self.deviations {
            let code = ticked(d.entry.code.iter().map(|c| c.location()), "<br>");
            let shown: Vec<String> = d
                .shown_by
                .iter()
                .map(|(s, e, o)| format!("{s}: {e} ({})", o.label()))
                .collect();
            let on_build = if d.fixed_on_build {
                format!("fixed by {}: must pass", d.entry.patches.join(" + "))
            } else if d.entry.patches.is_empty() {
                "no patch (marks apply)".into()
            } else {
                format!("present (fixed by {})", d.entry.patches.join(" + "))
            };
            let _ = writeln!(
                out,
                "| **{}** ({:?}): {} | {} | {} | {} | {} | {} |",
                d.entry.id,
                d.entry.kind,
                d.entry.title,
                d.entry.reference,
                d.entry.controller,
                code,
                shown.join("<br>"),
                on_build
            );
        }
        out
    }

    /// The human report.
    pub(crate) fn markdown(&self) -> String {
        let mut out = String::new();
        let c = &self.counts;
        let _ = writeln!(out, "# Autoscaling e2e report\n");
        let versions: Vec<String> = self
            .versions
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(out, "Under test: {}.\n", versions.join(", "));
        let _ = writeln!(
            out,
            "{} scenarios in {:.0} s: {} passed, {} failed, {} expected failures, {} unexpected passes, {} \
             intermittent.\n",
            self.scenarios.len(),
            self.wall_time_s,
            c.pass,
            c.fail,
            c.expected_fail,
            c.unexpected_pass,
            c.intermittent
        );
        if !self.build.patches.is_empty() {
            let _ = writeln!(
                out,
                "Controller build: **{}**; marks naming {} do not apply (those expectations must pass).\n\n\
                 | Patch | Fixes | Size | What it changes |\n|---|---|---|---|",
                self.build.label(),
                ticked(&self.build.fixed_deviations, ", ")
            );
            for p in &self.build.patches {
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} | {} |",
                    p.file,
                    p.fixes.as_deref().unwrap_or("-"),
                    p.size(),
                    p.summary
                );
            }
            out.push('\n');
        }
        out.push_str(&self.table());
        out.push_str(&self.deviation_table());
        for s in &self.scenarios {
            if !s.faults.is_empty() {
                let _ = writeln!(out, "\n## Faults injected in {}\n", s.name);
                for f in &s.faults {
                    let _ = writeln!(
                        out,
                        "- t={:.0} s: {} [{}]{}",
                        f.t,
                        f.action,
                        f.pods.join(", "),
                        f.error
                            .as_ref()
                            .map(|e| format!(" (error: {e})"))
                            .unwrap_or_default()
                    );
                }
            }
        }
        for s in &self.scenarios {
            let notable: Vec<_> = s
                .findings
                .iter()
                .filter(|f| f.judgement.outcome != Outcome::Pass)
                .collect();
            if notable.is_empty() && s.error.is_none() {
                continue;
            }
            let _ = writeln!(
                out,
                "\n## {} ({})\n\n{}\n",
                s.name, s.strategy, s.description
            );
            if let Some(e) = &s.error {
                let _ = writeln!(out, "Could not run: {e}\n");
            }
            for f in notable {
                let j = &f.judgement;
                let _ = writeln!(out, "### {}: {}\n", j.outcome.label(), j.expectation);
                let _ = writeln!(out, "{}\n", j.verdict.summary);
                if let Some(reason) = &j.expected_failure {
                    let _ = writeln!(out, "Known deviation: {reason}\n");
                }
                if !j.verdict.excerpt.is_empty() {
                    let _ = writeln!(
                        out,
                        "| t (s) | spec.replicas | ready | pending | desired | offered load |"
                    );
                    let _ = writeln!(out, "|---|---|---|---|---|---|");
                    for sample in &j.verdict.excerpt {
                        let load = match (sample.load.concurrency, sample.load.rps) {
                            (Some(c), _) => format!("{c} clients"),
                            (_, Some(r)) => format!("{r:.1} req/s"),
                            _ => "idle".into(),
                        };
                        let _ = writeln!(
                            out,
                            "| {:.0} | {} | {} | {} | {} | {} |",
                            sample.t,
                            sample.spec_replicas.map_or("-".into(), |r| r.to_string()),
                            sample.ready_pods,
                            sample.pending_pods,
                            sample
                                .autoscaler
                                .desired_scale
                                .map_or("-".into(), |d| d.to_string()),
                            load
                        );
                    }
                    out.push('\n');
                }
                if !f.controller_log.is_empty() {
                    let _ = writeln!(out, "Controller log around it:\n\n```");
                    for line in &f.controller_log {
                        let _ = writeln!(out, "{line}");
                    }
                    let _ = writeln!(out, "```\n");
                }
            }
        }
        out
    }
}

/// Each item as inline code, joined by `sep`: `` `a`, `b` ``.
pub(crate) fn ticked<T: std::fmt::Display>(
    items: impl IntoIterator<Item = T>,
    sep: &str,
) -> String {
    items
        .into_iter()
        .map(|item| format!("`{item}`"))
        .collect::<Vec<_>>()
        .join(sep)
}
