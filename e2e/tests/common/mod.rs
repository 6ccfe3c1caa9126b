//! What the integration tests share: one copy of each fixture and helper instead of one per test file.
//!
//! Every file in `tests/` is its own test binary and pulls this module in with `mod common;`, so each binary uses
//! only a subset of it and the rest would warn as dead code (hence the `allow` below). The parts:
//! - here: waiting on a condition, per-run temporary directories, the repository root, the harness binary;
//! - [`cluster`]: a control plane (or a whole local cluster) of the test's own, stopped cleanly;
//! - [`k8s`]: what the tests ask of the API server (ready mock-vllm pods, a schedulable node, the repository's
//!   manifests, PodAutoscaler objects);
//! - [`mock`]: in-process mock-vllm servers and a streaming client for them.
//!
//! `eventually` and `ready_pods` would also fit the library (the scenario runner has waits of the same shape); they
//! stay here while `e2e/src` is being reshaped.
#![allow(dead_code)]

pub mod cluster;
pub mod k8s;
pub mod mock;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

/// Whether process `pid` still runs (a zombie waiting to be reaped counts as gone).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

/// Polls `check` every 200 ms until it returns `Some`, or panics after `timeout` naming `what`.
///
/// Tests wait on observed conditions rather than fixed sleeps: a loaded 2-core machine makes every fixed sleep
/// either flaky or slow.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The directory `e2e-<name>-<pid>` under the system temp dir (the pid keeps parallel runs apart), created if
/// missing. It is not emptied: a cluster's state directory holds the pid registry through which the control plane
/// reaps processes an earlier crashed run left behind.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("e2e-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// The repository root (the workspace, one level above this crate).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `autoscale-harness` binary Cargo built for these tests.
pub fn harness() -> tokio::process::Command {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_autoscale-harness"))
}

/// Runs the harness with `command` (its arguments as one would type them, split on whitespace) followed by
/// `--flag path` pairs (paths may hold anything, so they are not part of the string) and waits for it to exit.
pub async fn run_harness(command: &str, paths: &[(&str, &Path)]) -> Output {
    let mut harness = harness();
    harness.args(command.split_whitespace());
    for (flag, path) in paths {
        harness.arg(flag).arg(path);
    }
    harness.output().await.expect("the harness runs")
}

/// An HTTP client that never goes through a proxy: every address the tests use is on 127.0.0.0/8.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("http client")
}
