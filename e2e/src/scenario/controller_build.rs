//! Which build of the pinned AIBrix controller a run judges: the pristine release, or the same release with this
//! project's patch series (`e2e/go/aibrix-patches/NNNN-<deviation id>.patch`, built by `e2e/go/build.sh`).
//!
//! The patched build is what makes an `expected_failure` trustworthy: each catalogue entry names the patches that
//! fix it (`patches:` in `e2e/deviations.yaml`), so on the patched build every mark naming a fixed entry is judged
//! as an ordinary expectation that must pass. A failure there is a real failure: the patch or the expectation is
//! wrong. Marks whose entry is not fixed by the build (a race no patch removes) keep their meaning.

use std::collections::BTreeSet;
use std::path::Path;

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use super::catalogue::Catalogue;

/// A build of the controller under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControllerBuild {
    /// The release as published (e2e/versions.env).
    #[default]
    Pristine,
    /// The release with every patch of `e2e/go/aibrix-patches` applied.
    Patched,
}

impl ControllerBuild {
    /// `pristine` / `patched`.
    pub fn name(self) -> &'static str {
        match self {
            ControllerBuild::Pristine => "pristine",
            ControllerBuild::Patched => "patched",
        }
    }

    /// The catalogue entries this build fixes: those whose every patch the build carries.
    pub fn fixed_deviations(self, catalogue: &Catalogue, series: &[Patch]) -> BTreeSet<String> {
        if self == ControllerBuild::Pristine {
            return BTreeSet::new();
        }
        let carried: BTreeSet<&str> = series.iter().map(|p| p.file.as_str()).collect();
        catalogue
            .entries
            .iter()
            .filter(|e| {
                !e.patches.is_empty() && e.patches.iter().all(|p| carried.contains(p.as_str()))
            })
            .map(|e| e.id.clone())
            .collect()
    }
}

impl std::fmt::Display for ControllerBuild {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One patch of the series, as the report describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Patch {
    /// File name, e.g. `0001-kpa-mean-as-total.patch`.
    pub file: String,
    /// The deviation its first line says it fixes (`Fixes deviation <id> (...)`).
    pub fixes: Option<String>,
    /// The explanation under the first line, joined into one paragraph.
    pub summary: String,
    /// Files it changes (module-relative).
    pub files: Vec<String>,
    /// Lines added.
    pub added: usize,
    /// Lines removed.
    pub removed: usize,
}

impl Patch {
    /// Reads one zero-context patch: a header (first line `Fixes deviation <id> ...`, then the explanation), then
    /// `--- a/…` / `+++ b/…` file sections.
    pub fn parse(file: &str, text: &str) -> Patch {
        let mut lines = text.lines();
        let first = lines.next().unwrap_or_default();
        let fixes = first
            .strip_prefix("Fixes deviation ")
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_string);
        let mut summary = Vec::new();
        let mut files = Vec::new();
        let (mut added, mut removed) = (0, 0);
        let mut in_diff = false;
        for line in lines {
            if let Some(path) = line.strip_prefix("+++ b/") {
                files.push(path.trim().to_string());
                in_diff = true;
            } else if line.starts_with("--- a/") || line.starts_with("@@") {
                in_diff = true;
            } else if in_diff && line.starts_with('+') {
                added += 1;
            } else if in_diff && line.starts_with('-') {
                removed += 1;
            } else if !in_diff && !line.trim().is_empty() {
                summary.push(line.trim());
            }
        }
        Patch {
            file: file.to_string(),
            fixes,
            summary: summary.join(" "),
            files,
            added,
            removed,
        }
    }

    /// Every `NNNN-*.patch` of `dir`, in order.
    pub fn read_series(dir: &Path) -> std::io::Result<Vec<Patch>> {
        let mut names: Vec<String> = std::fs::read_dir(dir)?
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| {
                n.ends_with(".patch") && n.len() > 5 && n[..4].bytes().all(|b| b.is_ascii_digit())
            })
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|name| {
                let text = std::fs::read_to_string(dir.join(&name))?;
                Ok(Patch::parse(&name, &text))
            })
            .collect()
    }

    /// `+A −R in f1, f2` (file names without their directories).
    pub fn size(&self) -> String {
        let files: Vec<&str> = self
            .files
            .iter()
            .map(|f| f.rsplit('/').next().unwrap_or(f))
            .collect();
        format!("+{} −{} in {}", self.added, self.removed, files.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repository_series() -> Vec<Patch> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("go")
            .join("aibrix-patches");
        Patch::read_series(&dir).expect("e2e/go/aibrix-patches")
    }

    #[test]
    fn a_patch_header_and_its_size_are_read() {
        let p = Patch::parse(
            "0009-x.patch",
            "Fixes deviation x-y (e2e/deviations.yaml).\n\nIt does\nthis.\n\n--- a/pkg/a.go\n+++ b/pkg/a.go\n\
             @@ -3 +3,2 @@\n-old\n+new\n+more\n",
        );
        assert_eq!(p.fixes.as_deref(), Some("x-y"));
        assert_eq!(p.summary, "It does this.");
        assert_eq!(p.files, vec!["pkg/a.go"]);
        assert_eq!((p.added, p.removed), (2, 1));
        assert_eq!(p.size(), "+2 −1 in a.go");
    }

    #[test]
    fn every_patch_names_the_deviation_of_its_file_name_and_stays_small() {
        let series = repository_series();
        assert!(!series.is_empty());
        for p in &series {
            let id = p
                .fixes
                .as_deref()
                .unwrap_or_else(|| panic!("{}: no `Fixes deviation <id>` line", p.file));
            assert!(
                p.file[5..].trim_end_matches(".patch") == id,
                "{}: names `{id}`, its file name another deviation",
                p.file
            );
            assert!(!p.files.is_empty(), "{}: changes no file", p.file);
            assert!(
                p.added + p.removed <= 20,
                "{}: {} is not a targeted fix",
                p.file,
                p.size()
            );
        }
    }

    #[test]
    fn every_deviation_is_fixed_on_the_patched_build_and_none_on_the_pristine_one() {
        let catalogue =
            Catalogue::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("deviations.yaml"))
                .expect("catalogue");
        let series = repository_series();
        let fixed = ControllerBuild::Patched.fixed_deviations(&catalogue, &series);
        for entry in &catalogue.entries {
            if entry.kind == super::super::catalogue::DeviationKind::Deviation {
                assert!(
                    fixed.contains(&entry.id),
                    "`{}` has no patch in e2e/go/aibrix-patches",
                    entry.id
                );
            }
            for p in &entry.patches {
                assert!(
                    series.iter().any(|s| &s.file == p),
                    "`{}` names {p}, which is not a patch of the series",
                    entry.id
                );
            }
        }
        for p in &series {
            let id = p.fixes.as_deref().unwrap_or_default();
            assert!(
                catalogue
                    .entries
                    .iter()
                    .any(|e| e.id == id && e.patches.contains(&p.file)),
                "{} fixes `{id}`, whose catalogue entry does not list it",
                p.file
            );
        }
        assert!(ControllerBuild::Pristine
            .fixed_deviations(&catalogue, &series)
            .is_empty());
    }
}
