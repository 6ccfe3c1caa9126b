//! The deviation catalogue: every known place where the pinned controller departs from its reference, once, with
//! the code that does it (`e2e/deviations.yaml`).
//!
//! A mark on an expectation is a claim about someone else's code, so it names a catalogue entry instead of carrying
//! its own explanation: `expected_failure: kpa-mean-as-total` (optionally followed by `: <detail for this
//! scenario>`). The entry says what the reference does, what the controller does and where (file and lines at the
//! pinned tag); the report and README list each entry once with the scenarios that show it. A test fails when a
//! mark names no entry, or when an entry cites a file or line the pinned module does not have.
//!
//! ```yaml
//! - id: kpa-mean-as-total
//!   kind: deviation            # or `race`: shows in some runs only, with the mechanism in `controller`
//!   strategies: [KPA]
//!   title: KPA sizes from the per-pod mean
//!   reference: desired = ceil(total / target)
//!   controller: desired = ceil(mean / target)
//!   code:
//!     - {file: pkg/controller/podautoscaler/algorithm/kpa.go, lines: "100-110", note: "…"}
//!   patches: [0001-kpa-mean-as-total.patch]   # e2e/go/aibrix-patches: what fixes it (controller_build.rs)
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::reference::Strategy;

/// One code location at the pinned tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Citation {
    /// Path relative to the AIBrix module root.
    pub file: String,
    /// A line (`"120"`) or a range (`"120-131"`).
    pub lines: String,
    /// What those lines do.
    #[serde(default)]
    pub note: String,
}

impl Citation {
    /// The first and last line cited.
    pub fn range(&self) -> Option<(usize, usize)> {
        let (a, b) = match self.lines.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (self.lines.trim(), self.lines.trim()),
        };
        let (a, b) = (a.parse().ok()?, b.parse().ok()?);
        (a >= 1 && a <= b).then_some((a, b))
    }

    /// `file:lines`.
    pub fn location(&self) -> String {
        format!("{}:{}", self.file, self.lines)
    }
}

/// What kind of departure an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviationKind {
    /// Always shows when a scenario exercises it (marks: `expected_failure`).
    #[default]
    Deviation,
    /// Shows in some runs only; `controller` names the race (marks: `intermittent`).
    Race,
}

/// One catalogue entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deviation {
    /// Stable id, used by marks.
    pub id: String,
    /// Deviation or race.
    #[serde(default)]
    pub kind: DeviationKind,
    /// Strategies it affects.
    pub strategies: Vec<Strategy>,
    /// One line.
    pub title: String,
    /// What the reference (Kubernetes HPA, Knative KPA, AIBrix's documented APA) does.
    pub reference: String,
    /// What the pinned controller does, and why.
    pub controller: String,
    /// Where, at the pinned tag.
    pub code: Vec<Citation>,
    /// The patches of `e2e/go/aibrix-patches` that make it disappear (the first is its own; a deviation may need
    /// another patch for every expectation to pass). A build carrying all of them is judged as fixed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<String>,
}

/// The catalogue could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    /// Unreadable.
    #[error("cannot read the deviation catalogue {path}: {source}")]
    Read {
        /// File.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Not valid.
    #[error("invalid deviation catalogue {path}: {message}")]
    Invalid {
        /// File.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// Every entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Catalogue {
    /// In file order.
    pub entries: Vec<Deviation>,
}

impl Catalogue {
    /// Reads and checks `e2e/deviations.yaml` (or another file).
    pub fn read(path: &Path) -> Result<Self, CatalogueError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| CatalogueError::Read {
            path: shown.clone(),
            source,
        })?;
        let entries: Vec<Deviation> =
            serde_yaml::from_str(&text).map_err(|e| CatalogueError::Invalid {
                path: shown.clone(),
                message: e.to_string(),
            })?;
        let catalogue = Self { entries };
        catalogue
            .check()
            .map_err(|message| CatalogueError::Invalid {
                path: shown,
                message,
            })?;
        Ok(catalogue)
    }

    fn check(&self) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for entry in &self.entries {
            if !seen.insert(entry.id.as_str()) {
                return Err(format!("id `{}` appears twice", entry.id));
            }
            if entry.code.is_empty() {
                return Err(format!(
                    "`{}` cites no code: a deviation is a claim about the controller's code",
                    entry.id
                ));
            }
            for c in &entry.code {
                if c.range().is_none() {
                    return Err(format!(
                        "`{}`: lines `{}` of {} are not `N` or `N-M`",
                        entry.id, c.lines, c.file
                    ));
                }
            }
        }
        Ok(())
    }

    /// The entry a mark's reason names (`<id>` or `<id>: detail`).
    pub fn entry_for(&self, reason: &str) -> Option<&Deviation> {
        let id = mark_id(reason);
        self.entries.iter().find(|e| e.id == id)
    }

    /// Checks every cited file and line range against the module source at `root` (the pinned AIBrix module);
    /// returns one message per bad citation.
    pub fn check_citations(&self, root: &Path) -> Vec<String> {
        let mut problems = Vec::new();
        for entry in &self.entries {
            for c in &entry.code {
                let path = root.join(&c.file);
                match std::fs::read_to_string(&path) {
                    Err(e) => problems.push(format!("{}: {}: {e}", entry.id, c.file)),
                    Ok(text) => {
                        let lines = text.lines().count();
                        if let Some((_, last)) = c.range() {
                            if last > lines {
                                problems.push(format!(
                                    "{}: {} has {lines} lines, cited {}",
                                    entry.id, c.file, c.lines
                                ));
                            }
                        }
                    }
                }
            }
        }
        problems
    }
}

/// The tag of the scenarios that together judge every patch of the series (`make e2e-patched-cover`, the patched
/// tier CI runs when the whole patched suite does not fit its time).
pub const PATCH_COVER_TAG: &str = "patch-cover";

/// The catalogue id a mark's reason starts with.
pub fn mark_id(reason: &str) -> &str {
    reason.split(':').next().unwrap_or_default().trim()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::expect::Mark;
    use crate::scenario::spec::Scenario;

    fn repository_catalogue() -> Catalogue {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deviations.yaml");
        Catalogue::read(&path).expect("e2e/deviations.yaml is valid")
    }

    #[test]
    fn citations_read_lines_and_ranges() {
        let c = |lines: &str| Citation {
            file: "a.go".into(),
            lines: lines.into(),
            note: String::new(),
        };
        assert_eq!(c("12").range(), Some((12, 12)));
        assert_eq!(c("12-20").range(), Some((12, 20)));
        assert_eq!(c("20-12").range(), None);
        assert_eq!(c("x").range(), None);
        assert_eq!(
            mark_id("kpa-mean-as-total: 24 running stay at 3"),
            "kpa-mean-as-total"
        );
    }

    #[test]
    fn every_mark_of_the_repository_names_a_catalogue_entry_of_its_kind() {
        let catalogue = repository_catalogue();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let scenarios = Scenario::read_dir(&dir).expect("scenarios");
        let mut used = std::collections::HashSet::new();
        for scenario in &scenarios {
            for item in &scenario.expectations {
                let (reason, kind) = match &item.mark {
                    Mark::Unmarked => continue,
                    Mark::ExpectedFailure { reason } => (reason, DeviationKind::Deviation),
                    Mark::Intermittent { reason } => (reason, DeviationKind::Race),
                };
                let entry = catalogue.entry_for(reason).unwrap_or_else(|| {
                    panic!(
                        "{}: mark `{reason}` names no entry of e2e/deviations.yaml",
                        scenario.name
                    )
                });
                assert_eq!(
                    entry.kind, kind,
                    "{}: `{}` is a {:?} entry, marked with the other mark",
                    scenario.name, entry.id, entry.kind
                );
                assert!(
                    entry.strategies.contains(&scenario.strategy),
                    "{}: `{}` is not listed for {}",
                    scenario.name,
                    entry.id,
                    scenario.strategy
                );
                used.insert(entry.id.clone());
            }
        }
        for entry in &catalogue.entries {
            assert!(
                used.contains(&entry.id),
                "catalogue entry `{}` is shown by no scenario",
                entry.id
            );
        }
    }

    /// `make e2e-patched-cover` (CI) runs the scenarios tagged [`PATCH_COVER_TAG`] only (to fit CI's time): together
    /// their `expected_failure` marks must name a deviation of every patch of the series, so each patch is judged
    /// on every run.
    #[test]
    fn the_patch_cover_scenarios_judge_every_patch() {
        let catalogue = repository_catalogue();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let scenarios = Scenario::read_dir(&root.join("scenarios")).expect("scenarios");
        let series =
            crate::scenario::controller_build::Patch::read_series(&root.join("go/aibrix-patches"))
                .expect("patch series");
        let mut covered = std::collections::BTreeSet::new();
        for scenario in scenarios
            .iter()
            .filter(|s| s.has_any_tag(&[PATCH_COVER_TAG.to_string()]))
        {
            for item in &scenario.expectations {
                // Only an expected failure tells the builds apart on every run (a race may hold on both).
                let Mark::ExpectedFailure { reason } = &item.mark else {
                    continue;
                };
                if let Some(entry) = catalogue.entry_for(reason) {
                    covered.extend(entry.patches.iter().cloned());
                }
            }
        }
        let missing: Vec<&str> = series
            .iter()
            .map(|p| p.file.as_str())
            .filter(|f| !covered.contains(*f))
            .collect();
        assert!(
            missing.is_empty(),
            "no scenario tagged `{PATCH_COVER_TAG}` judges {missing:?}: tag one whose marks name their deviation"
        );
    }

    #[test]
    fn every_citation_exists_in_the_pinned_module_when_it_is_here() {
        let catalogue = repository_catalogue();
        let Some(root) = crate::versions::aibrix_module_dir() else {
            eprintln!("the AIBrix module is not in the Go module cache; citations not checked");
            return;
        };
        let problems = catalogue.check_citations(&root);
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}
