//! Child processes of the control plane: spawned with a log file each, in their own process group, killed with
//! their parent, stopped in reverse start order.
//!
//! Three layers make sure no process outlives the harness:
//! 1. [`ProcessGroup::stop_all`]: SIGTERM to each child's process group in reverse start order, a bounded wait,
//!    then SIGKILL (what `down`, Ctrl-C and a finished test do).
//! 2. `Drop` of [`ProcessGroup`] SIGKILLs whatever is left (a panic, an early return).
//! 3. `PR_SET_PDEATHSIG`: the kernel SIGKILLs a child when the harness process dies, even by SIGKILL.
//!
//! And a PID registry file next to the logs lets the next `up` find and kill the leftovers of a harness that was
//! killed in a way none of the above could handle (a reboot of the parent's PID namespace aside).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use tokio::process::{Child, Command};
use tracing::{info, warn};

/// A process could not be started or died.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// Spawning failed.
    #[error("cannot start {name} ({program})")]
    Spawn {
        /// Component.
        name: String,
        /// Executable.
        program: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The log file could not be created.
    #[error("cannot create log file {path}")]
    Log {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A component exited while it should be running.
    #[error("{name} exited ({status}); last lines of {log}:\n{tail}")]
    Exited {
        /// Component.
        name: String,
        /// Exit status.
        status: String,
        /// Its log file.
        log: PathBuf,
        /// The end of its log.
        tail: String,
    },
}

/// What to run.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    /// Component name (log file `<name>.log`).
    pub name: String,
    /// Executable.
    pub program: PathBuf,
    /// Arguments.
    pub args: Vec<String>,
}

/// One registered process, as the PID registry stores it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Registered {
    /// Component name.
    pub name: String,
    /// Process id (also its process group id).
    pub pid: u32,
    /// Executable, to recognise the process before killing a PID that may have been reused.
    pub program: PathBuf,
}

struct Running {
    spec: ProcessSpec,
    child: Child,
    log: PathBuf,
}

/// The running children of one cluster.
pub struct ProcessGroup {
    running: Vec<Running>,
    log_dir: PathBuf,
    registry: PathBuf,
}

impl std::fmt::Debug for ProcessGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.running.iter().map(|r| r.spec.name.as_str()).collect();
        f.debug_struct("ProcessGroup")
            .field("running", &names)
            .finish()
    }
}

impl ProcessGroup {
    /// An empty group logging to `log_dir`, registering PIDs in `registry`.
    pub fn new(log_dir: impl Into<PathBuf>, registry: impl Into<PathBuf>) -> Self {
        Self {
            running: Vec::new(),
            log_dir: log_dir.into(),
            registry: registry.into(),
        }
    }

    /// Kills processes left in `registry` by a previous harness that died, and clears the file. Returns what it
    /// killed.
    pub fn reap_leftovers(registry: &Path) -> Vec<Registered> {
        let Ok(text) = std::fs::read_to_string(registry) else {
            return Vec::new();
        };
        let entries: Vec<Registered> = serde_json::from_str(&text).unwrap_or_default();
        let mut killed = Vec::new();
        for entry in entries {
            if process_runs(entry.pid, &entry.program) {
                warn!(name = %entry.name, pid = entry.pid, "killing a leftover process from an earlier run");
                let _ = killpg(Pid::from_raw(entry.pid as i32), Signal::SIGKILL);
                killed.push(entry);
            }
        }
        let _ = std::fs::remove_file(registry);
        killed
    }

    /// Starts a process with stdout and stderr appended to `<log_dir>/<name>.log`.
    pub fn spawn(&mut self, spec: ProcessSpec) -> Result<u32, ProcessError> {
        std::fs::create_dir_all(&self.log_dir).map_err(|source| ProcessError::Log {
            path: self.log_dir.clone(),
            source,
        })?;
        let log = self.log_dir.join(format!("{}.log", spec.name));
        let open = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .map_err(|source| ProcessError::Log {
                    path: log.clone(),
                    source,
                })
        };
        let (stdout, stderr) = (open()?, open()?);
        let mut command = Command::new(&spec.program);
        command
            .args(&spec.args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0)
            .kill_on_drop(true);
        die_with_parent(&mut command);
        let child = command.spawn().map_err(|source| ProcessError::Spawn {
            name: spec.name.clone(),
            program: spec.program.clone(),
            source,
        })?;
        let pid = child.id().unwrap_or_default();
        info!(name = %spec.name, pid, log = %log.display(), "started");
        self.running.push(Running { spec, child, log });
        self.save_registry();
        Ok(pid)
    }

    fn save_registry(&self) {
        let entries: Vec<Registered> = self
            .running
            .iter()
            .filter_map(|r| {
                Some(Registered {
                    name: r.spec.name.clone(),
                    pid: r.child.id()?,
                    program: r.spec.program.clone(),
                })
            })
            .collect();
        if let Ok(text) = serde_json::to_string_pretty(&entries) {
            let _ = std::fs::write(&self.registry, text);
        }
    }

    /// PIDs of the running children, in start order.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.running
            .iter()
            .filter_map(|r| Some((r.spec.name.clone(), r.child.id()?)))
            .collect()
    }

    /// The log file of a component.
    pub(crate) fn log_of(&self, name: &str) -> Option<&Path> {
        self.running
            .iter()
            .find(|r| r.spec.name == name)
            .map(|r| r.log.as_path())
    }

    /// An error for the first child that has exited, if any.
    pub(crate) fn check_alive(&mut self) -> Result<(), ProcessError> {
        for running in &mut self.running {
            if let Ok(Some(status)) = running.child.try_wait() {
                return Err(ProcessError::Exited {
                    name: running.spec.name.clone(),
                    status: status.to_string(),
                    log: running.log.clone(),
                    tail: tail(&running.log, 20),
                });
            }
        }
        Ok(())
    }

    /// Stops every child in reverse start order: SIGTERM to its process group, up to `grace`, then SIGKILL.
    pub(crate) async fn stop_all(&mut self, grace: Duration) {
        while let Some(mut running) = self.running.pop() {
            let name = running.spec.name.clone();
            if let Some(pid) = running.child.id() {
                let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGTERM);
                match tokio::time::timeout(grace, running.child.wait()).await {
                    Ok(_) => info!(%name, pid, "stopped"),
                    Err(_) => {
                        warn!(%name, pid, "did not stop within {grace:?}; killing");
                        let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
                        let _ = running.child.wait().await;
                    }
                }
            }
            self.save_registry();
        }
        let _ = std::fs::remove_file(&self.registry);
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        for running in &self.running {
            if let Some(pid) = running.child.id() {
                let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
        }
    }
}

/// The last `lines` lines of a file.
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// True if `pid` runs `program` (checked through /proc so that a reused PID is never killed).
fn process_runs(pid: u32, program: &Path) -> bool {
    let program = std::fs::canonicalize(program).unwrap_or_else(|_| program.to_path_buf());
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|exe| {
            // A binary rebuilt while running shows as "<path> (deleted)".
            let exe = exe
                .to_string_lossy()
                .trim_end_matches(" (deleted)")
                .to_string();
            Path::new(&exe) == program
        })
        .unwrap_or(false)
}

/// Asks the kernel to SIGKILL the child when the thread that spawned it (a tokio worker, which lives as long as
/// the runtime) goes away.
#[allow(unsafe_code)]
fn die_with_parent(command: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec and only makes the prctl(2) system call, which is
    // async-signal-safe; it allocates nothing and touches no lock.
    unsafe {
        command.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, script: &str) -> ProcessSpec {
        ProcessSpec {
            name: name.into(),
            program: PathBuf::from("/bin/sh"),
            args: vec!["-c".into(), script.into()],
        }
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("processes-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        dir
    }

    fn alive(pid: u32) -> bool {
        std::fs::metadata(format!("/proc/{pid}")).is_ok()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z "))
    }

    #[tokio::test]
    async fn stop_all_ends_children_and_their_own_children() {
        let dir = temp_dir("stop");
        let mut group = ProcessGroup::new(dir.join("logs"), dir.join("pids.json"));
        // SIGTERM goes to the whole process group: the shell and its `sleep` child both end.
        let pid = group
            .spawn(spec("sleeper", "echo hello; sleep 300 & wait"))
            .expect("spawned");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(alive(pid));
        assert!(dir.join("pids.json").is_file());
        group.stop_all(Duration::from_secs(5)).await;
        assert!(!alive(pid));
        assert!(!dir.join("pids.json").exists());
        assert!(std::fs::read_to_string(dir.join("logs/sleeper.log"))
            .expect("log")
            .contains("hello"));
        // No `sleep 300` of ours is left: the child's process group (its own pid) is empty of it. Looking
        // machine-wide would fail on anyone else's `sleep 300`.
        let leftovers = std::process::Command::new("pgrep")
            .args(["-g", &pid.to_string(), "-f", "sleep 300"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap_or_default();
        assert!(leftovers.trim().is_empty(), "leftover: {leftovers}");
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn a_child_that_ignores_sigterm_is_killed_after_the_grace() {
        let dir = temp_dir("stubborn");
        let mut group = ProcessGroup::new(dir.join("logs"), dir.join("pids.json"));
        let pid = group
            .spawn(spec(
                "stubborn",
                "trap '' TERM; while true; do sleep 0.1; done",
            ))
            .expect("spawned");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = std::time::Instant::now();
        group.stop_all(Duration::from_millis(300)).await;
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert!(!alive(pid));
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn an_exited_child_is_reported_with_its_log() {
        let dir = temp_dir("exit");
        let mut group = ProcessGroup::new(dir.join("logs"), dir.join("pids.json"));
        group
            .spawn(spec("crasher", "echo 'bad flag --foo'; exit 3"))
            .expect("spawned");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let err = group.check_alive().expect_err("exited");
        let text = err.to_string();
        assert!(
            text.contains("crasher") && text.contains("bad flag --foo"),
            "{text}"
        );
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn leftovers_of_a_dead_harness_are_reaped() {
        let dir = temp_dir("reap");
        let registry = dir.join("pids.json");
        let mut group = ProcessGroup::new(dir.join("logs"), &registry);
        // `; true` keeps the shell itself running (a lone command would be exec'd in its place).
        let pid = group
            .spawn(spec("orphan", "sleep 301; true"))
            .expect("spawned");
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Simulate a crash: the registry stays behind, the group is forgotten without running Drop.
        std::mem::forget(group);
        let killed = ProcessGroup::reap_leftovers(&registry);
        assert_eq!(killed.len(), 1);
        assert_eq!(killed[0].pid, pid);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!alive(pid));
        assert!(!registry.exists());
        std::fs::remove_dir_all(dir).ok();
    }
}
