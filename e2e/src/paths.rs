//! Where the repository is, found at run time.
//!
//! The harness reads files that live in the repository (the scenario files, the mock-vllm manifests, the Go build
//! script). Baking `CARGO_MANIFEST_DIR` into the binary would point an installed or containerised binary at the
//! build machine's checkout, so the root is looked up when it is needed, in this order:
//!
//! 1. `$AUTOSCALE_HARNESS_ROOT`, if set (a container, a CI job, a binary run from elsewhere);
//! 2. the nearest ancestor of the current directory that holds `e2e/versions.env` (running from the checkout);
//! 3. the nearest ancestor of the executable that holds it (`target/release/autoscale-harness` inside a checkout).
//!
//! Test code may still use `CARGO_MANIFEST_DIR`: tests always run from the source tree.

use std::path::{Path, PathBuf};

/// The variable that names the repository root.
pub(crate) const ROOT_VARIABLE: &str = "AUTOSCALE_HARNESS_ROOT";

/// The file whose presence marks the repository root.
const MARKER: &str = "e2e/versions.env";

/// The repository root could not be found.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    /// `$AUTOSCALE_HARNESS_ROOT` is set but does not hold the marker file.
    #[error("{ROOT_VARIABLE}={0} is not the autoscale-harness repository (no {MARKER} there)")]
    BadVariable(PathBuf),
    /// Neither the current directory nor the executable is inside the repository.
    #[error(
        "cannot find the autoscale-harness repository (no {MARKER} above the current directory or the \
         executable): run from inside the repository or set {ROOT_VARIABLE}"
    )]
    NotFound,
}

/// The repository root (see the module doc for the search order).
pub(crate) fn repo_root() -> Result<PathBuf, PathError> {
    let variable = std::env::var_os(ROOT_VARIABLE).map(PathBuf::from);
    let cwd = std::env::current_dir().ok();
    let exe = std::env::current_exe().ok();
    resolve(variable.as_deref(), cwd.as_deref(), exe.as_deref())
}

/// The search itself, with its inputs passed in so that it can be tested without touching the process.
fn resolve(
    variable: Option<&Path>,
    cwd: Option<&Path>,
    exe: Option<&Path>,
) -> Result<PathBuf, PathError> {
    if let Some(root) = variable.filter(|v| !v.as_os_str().is_empty()) {
        return if root.join(MARKER).is_file() {
            Ok(root.to_path_buf())
        } else {
            Err(PathError::BadVariable(root.to_path_buf()))
        };
    }
    [cwd, exe]
        .into_iter()
        .flatten()
        .find_map(|start| {
            start
                .ancestors()
                .find(|dir| dir.join(MARKER).is_file())
                .map(Path::to_path_buf)
        })
        .ok_or(PathError::NotFound)
}

/// The directory of scenario files (`e2e/scenarios`).
pub fn scenarios_dir() -> Result<PathBuf, PathError> {
    Ok(repo_root()?.join("e2e").join("scenarios"))
}

/// The deviation catalogue (`e2e/deviations.yaml`).
pub fn deviations_file() -> Result<PathBuf, PathError> {
    Ok(repo_root()?.join("e2e").join("deviations.yaml"))
}

/// The repository's mock-vllm kustomization (`manifests/base/mock-vllm`).
pub fn mock_vllm_manifests() -> Result<PathBuf, PathError> {
    Ok(repo_root()?
        .join("manifests")
        .join("base")
        .join("mock-vllm"))
}

/// The patch series of the patched AIBrix build (`e2e/go/aibrix-patches`).
pub fn aibrix_patches_dir() -> Result<PathBuf, PathError> {
    Ok(repo_root()?.join("e2e").join("go").join("aibrix-patches"))
}

/// The script that builds the pinned control-plane binaries (`e2e/go/build.sh`).
pub(crate) fn build_script() -> Result<PathBuf, PathError> {
    Ok(repo_root()?.join("e2e").join("go").join("build.sh"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkout() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the crate is in a workspace")
            .to_path_buf()
    }

    #[test]
    fn the_variable_wins_and_must_point_at_the_repository() {
        let root = checkout();
        let elsewhere = std::env::temp_dir();
        assert_eq!(
            resolve(Some(&root), Some(&elsewhere), None).expect("found"),
            root
        );
        assert!(matches!(
            resolve(Some(&elsewhere), Some(&root), None),
            Err(PathError::BadVariable(_))
        ));
    }

    #[test]
    fn the_root_is_found_above_the_current_directory_then_the_executable() {
        let root = checkout();
        let inside = root.join("e2e").join("src");
        assert_eq!(resolve(None, Some(&inside), None).expect("found"), root);
        let exe = root
            .join("target")
            .join("release")
            .join("autoscale-harness");
        let elsewhere = Path::new("/");
        assert_eq!(
            resolve(None, Some(elsewhere), Some(&exe)).expect("found"),
            root
        );
        let error = resolve(None, Some(elsewhere), Some(elsewhere)).expect_err("not found");
        assert!(error.to_string().contains(ROOT_VARIABLE));
    }
}
