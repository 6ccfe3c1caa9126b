//! The pinned control-plane binaries: versions from `e2e/versions.env`, built by `e2e/go/build.sh`.
//!
//! Every external version lives in `e2e/versions.env` (compiled in here, so the harness and the Go build can
//! never disagree). Building is the script's job: it runs `go build` on the committed wrapper modules and caches
//! the results by version, so the first `up` on a machine takes minutes and every later one nothing. This module
//! runs the script (its progress lines go to the terminal) and reads back where everything is.

use std::path::PathBuf;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::versions::parse_env;
use tokio::process::Command;

/// Why the binaries are not available.
#[derive(Debug, thiserror::Error)]
pub enum BinariesError {
    /// The repository (and so the build script) could not be found.
    #[error(transparent)]
    Repository(#[from] crate::paths::PathError),
    /// The build script could not be run.
    #[error("cannot run {script}")]
    Run {
        /// The script.
        script: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The build failed.
    #[error("building the control-plane binaries failed ({status}); see the build.sh lines above")]
    Build {
        /// Exit status.
        status: String,
    },
    /// The script's summary lacks a key.
    #[error("build.sh did not report {0}")]
    Missing(&'static str),
}

/// Where each binary is.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// etcd.
    pub etcd: PathBuf,
    /// kube-apiserver.
    pub kube_apiserver: PathBuf,
    /// kube-controller-manager.
    pub kube_controller_manager: PathBuf,
    /// kube-scheduler.
    pub kube_scheduler: PathBuf,
    /// kubectl, for people (`autoscale-harness status` prints how to use it).
    pub kubectl: PathBuf,
    /// The AIBrix controller manager the cluster runs (the pristine build unless [`Binaries::with_patched_aibrix`]).
    pub aibrix_controller_manager: PathBuf,
    /// The same release built with the patch series of `e2e/go/aibrix-patches`.
    pub aibrix_controller_manager_patched: PathBuf,
    /// Hash of the patch series (the patched build's cache key).
    pub aibrix_patches_key: String,
    /// The PodAutoscaler CRD of the same AIBrix release.
    pub podautoscaler_crd: PathBuf,
}

impl Binaries {
    /// Builds whatever is missing (cached by version) and returns the paths. Progress goes to stderr.
    pub async fn ensure() -> Result<Self, BinariesError> {
        let script = crate::paths::build_script()?;
        let mut child = Command::new("bash")
            .arg(&script)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| BinariesError::Run {
                script: script.clone(),
                source,
            })?;
        let stderr = child.stderr.take();
        let relay = tokio::spawn(async move {
            if let Some(stderr) = stderr {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    eprintln!("{line}");
                }
            }
        });
        let output = child
            .wait_with_output()
            .await
            .map_err(|source| BinariesError::Run { script, source })?;
        let _ = relay.await;
        if !output.status.success() {
            return Err(BinariesError::Build {
                status: output.status.to_string(),
            });
        }
        Self::from_summary(&String::from_utf8_lossy(&output.stdout))
    }

    /// The same binaries with the patched AIBrix controller in place of the pristine one.
    pub fn with_patched_aibrix(mut self) -> Self {
        self.aibrix_controller_manager = self.aibrix_controller_manager_patched.clone();
        self
    }

    fn from_summary(text: &str) -> Result<Self, BinariesError> {
        let summary = parse_env(text);
        let dir = |key: &'static str| {
            summary
                .get(key)
                .map(PathBuf::from)
                .ok_or(BinariesError::Missing(key))
        };
        let kubernetes = dir("KUBERNETES_BIN_DIR")?;
        Ok(Self {
            etcd: dir("ETCD_BIN_DIR")?.join("etcd"),
            kube_apiserver: kubernetes.join("kube-apiserver"),
            kube_controller_manager: kubernetes.join("kube-controller-manager"),
            kube_scheduler: kubernetes.join("kube-scheduler"),
            kubectl: kubernetes.join("kubectl"),
            aibrix_controller_manager: dir("AIBRIX_BIN_DIR")?.join("aibrix-controller-manager"),
            aibrix_controller_manager_patched: dir("AIBRIX_PATCHED_BIN_DIR")?
                .join("aibrix-controller-manager"),
            aibrix_patches_key: summary
                .get("AIBRIX_PATCHES_KEY")
                .cloned()
                .ok_or(BinariesError::Missing("AIBRIX_PATCHES_KEY"))?,
            podautoscaler_crd: dir("AIBRIX_PODAUTOSCALER_CRD_PATH")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::versions::versions;

    #[test]
    fn versions_are_pinned_in_one_file() {
        let v = versions();
        for key in ["KUBERNETES_VERSION", "ETCD_VERSION", "AIBRIX_VERSION"] {
            assert!(
                v.get(key).is_some_and(|s| s.starts_with('v')),
                "{key} missing"
            );
        }
        assert!(
            v["KUBERNETES_VERSION"].starts_with("v1.34."),
            "matches k8s-openapi's v1_34 feature"
        );
        assert_eq!(v["AIBRIX_VERSION"], "v0.7.0");
    }

    #[test]
    fn the_build_summary_is_parsed() {
        let b = Binaries::from_summary(
            "KUBERNETES_BIN_DIR=/c/kubernetes-v1.34.12\nETCD_BIN_DIR=/c/etcd-v3.6.16\nAIBRIX_BIN_DIR=/c/aibrix-v0.7.0\n\
             AIBRIX_PATCHED_BIN_DIR=/c/aibrix-v0.7.0-patched-abc\nAIBRIX_PATCHES_KEY=abc\n\
             AIBRIX_PODAUTOSCALER_CRD_PATH=/m/aibrix/crd.yaml\n",
        )
        .expect("complete");
        assert_eq!(
            b.kube_apiserver,
            PathBuf::from("/c/kubernetes-v1.34.12/kube-apiserver")
        );
        assert_eq!(b.etcd, PathBuf::from("/c/etcd-v3.6.16/etcd"));
        let patched = b.with_patched_aibrix();
        assert_eq!(
            patched.aibrix_controller_manager,
            PathBuf::from("/c/aibrix-v0.7.0-patched-abc/aibrix-controller-manager")
        );
        assert_eq!(patched.aibrix_patches_key, "abc");
        assert!(Binaries::from_summary("KUBERNETES_BIN_DIR=/x\n").is_err());
    }
}
