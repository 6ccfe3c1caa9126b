//! `compare`: the pristine and the patched run of the suite side by side (`make e2e-compare` after `make e2e` and
//! `make e2e AIBRIX=patched`). Writes `comparison.md` (and `comparison.json`) and fails when an expectation marked
//! with a fixed deviation does not fail on the pristine build and pass on the patched one, or when any other
//! verdict changed.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use e2e::scenario::compare::Comparison;
use e2e::scenario::controller_build::ControllerBuild;
use e2e::scenario::report::SuiteReport;

use super::run::default_report_dir;

/// `compare` options.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// Report directory of the pristine run.
    #[arg(long, default_value = default_report_dir(ControllerBuild::Pristine))]
    pristine: PathBuf,
    /// Report directory of the patched run.
    #[arg(long, default_value = default_report_dir(ControllerBuild::Patched))]
    patched: PathBuf,
    /// Where the comparison goes (`comparison.md`, `comparison.json`) [default: the pristine report directory].
    #[arg(long)]
    out: Option<PathBuf>,
}

fn read(dir: &std::path::Path, build: ControllerBuild) -> anyhow::Result<SuiteReport> {
    let path = dir.join("summary.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no {build} run to compare: cannot read {} (run `make e2e{}` first)",
            path.display(),
            if build == ControllerBuild::Patched {
                " AIBRIX=patched"
            } else {
                ""
            }
        )
    })?;
    let report: SuiteReport = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a suite summary", path.display()))?;
    if report.build.build != build {
        bail!(
            "{} is a run of the {} build, expected the {build} one",
            path.display(),
            report.build.build
        );
    }
    Ok(report)
}

/// `compare`.
pub fn run(args: CompareArgs) -> anyhow::Result<()> {
    let pristine = read(&args.pristine, ControllerBuild::Pristine)?;
    let patched = read(&args.patched, ControllerBuild::Patched)?;
    let comparison = Comparison::new(&pristine, &patched);
    let out = args.out.unwrap_or(args.pristine);
    std::fs::create_dir_all(&out)?;
    let markdown = comparison.markdown(&pristine, &patched);
    std::fs::write(out.join("comparison.md"), &markdown)?;
    std::fs::write(
        out.join("comparison.json"),
        serde_json::to_string_pretty(&comparison)?,
    )?;
    println!("{markdown}");
    let problems = comparison.problems();
    if !problems.is_empty() {
        bail!(
            "{} finding(s) break the pristine/patched proof (see {})",
            problems.len(),
            out.join("comparison.md").display()
        );
    }
    Ok(())
}
