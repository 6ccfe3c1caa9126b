//! One node's pod workers, kept in step with the pod watcher's events: a kubelet's pod manager in miniature.
//!
//! [`Workers`] turns each watcher event into a decision and does no I/O itself, so the tests below drive it with
//! synthetic events and no cluster. The node's watch loop (`super::watch_pods`) carries out the decisions that need
//! the API or a task ([`Action`]): spawn [`super::pods::run_pod`], or confirm a deletion.
//!
//! Per event:
//! - a new pod (`Apply` / `InitApply`) gets a worker, unless it has finished (`Succeeded`, `Failed`) or is already
//!   terminating, in which case nothing of it runs here and its deletion is confirmed at once;
//! - a known pod that became terminating gets its grace period sent to its worker, which drains and stops;
//! - `Delete` (the pod is gone, e.g. force-deleted) stops its worker without drain.
//!
//! The watch can break (API server restart, expired resource version); the watcher then relists
//! (`Init`, `InitApply`…, `InitDone`) and pods deleted during the gap never produce a `Delete`. So at `InitDone`
//! every worker whose pod was not relisted ([`vanished`]) is stopped exactly as on a `Delete`: the worker's
//! `run_pod` sees its kill token, stops the server, releases the pod's address and removes it from the table.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher::Event;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::pods::Deletion;
use crate::k8s::pod::is_terminating;

/// The grace period of a terminating pod that does not state one (the API default).
const DEFAULT_GRACE_SECONDS: i64 = 30;

/// The agent's ends of one running pod worker.
struct Worker {
    /// Sends the grace period once the pod is terminating.
    deletion: watch::Sender<Deletion>,
    /// Stops the worker at once: the pod is gone, or the agent stops (a child of the agent's token).
    kill: CancellationToken,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("deletion", &*self.deletion.borrow())
            .field("killed", &self.kill.is_cancelled())
            .finish()
    }
}

/// What the watch loop must do for an event, beyond what [`Workers`] did itself.
#[derive(Debug)]
pub(crate) enum Action {
    /// Run this pod: spawn its worker with these ends.
    Start {
        pod: Box<Pod>,
        deletion: watch::Receiver<Deletion>,
        kill: CancellationToken,
    },
    /// The pod is terminating and nothing of it runs here (e.g. the agent restarted): confirm its deletion.
    ConfirmDeleted(Box<Pod>),
}

/// The workers of one node, by pod UID.
#[derive(Debug)]
pub(crate) struct Workers {
    shutdown: CancellationToken,
    running: HashMap<String, Worker>,
    /// Between `Init` and `InitDone`: the UIDs listed so far.
    relisted: Option<HashSet<String>>,
}

impl Workers {
    /// Workers' kill tokens are children of `shutdown`, so stopping the agent stops them all.
    pub(crate) fn new(shutdown: CancellationToken) -> Self {
        Self {
            shutdown,
            running: HashMap::new(),
            relisted: None,
        }
    }

    /// Applies one watcher event.
    pub(crate) fn handle(&mut self, event: Event<Pod>) -> Option<Action> {
        match event {
            Event::Init => {
                self.relisted = Some(HashSet::new());
                None
            }
            Event::InitApply(pod) => {
                if let (Some(listed), Some(uid)) = (&mut self.relisted, &pod.metadata.uid) {
                    listed.insert(uid.clone());
                }
                self.on_pod(pod)
            }
            Event::InitDone => {
                if let Some(listed) = self.relisted.take() {
                    for uid in vanished(self.running.keys(), &listed) {
                        info!(%uid, "pod deleted while the watch was down; stopping it");
                        self.stop(&uid);
                    }
                }
                None
            }
            Event::Apply(pod) => self.on_pod(pod),
            Event::Delete(pod) => {
                if let Some(uid) = &pod.metadata.uid {
                    self.stop(uid);
                }
                None
            }
        }
    }

    /// Forgets workers that were stopped or whose task has ended.
    pub(crate) fn prune(&mut self) {
        self.running
            .retain(|_, w| !w.kill.is_cancelled() && !w.deletion.is_closed());
    }

    /// Stops every worker (servers stop, no drain).
    pub(crate) fn stop_all(&self) {
        for worker in self.running.values() {
            worker.kill.cancel();
        }
    }

    fn stop(&mut self, uid: &str) {
        if let Some(worker) = self.running.remove(uid) {
            worker.kill.cancel();
        }
    }

    fn on_pod(&mut self, pod: Pod) -> Option<Action> {
        let uid = pod.metadata.uid.clone()?;
        let deleting = is_terminating(&pod);
        if let Some(worker) = self.running.get(&uid) {
            if deleting && worker.deletion.borrow().is_none() {
                let grace = pod
                    .metadata
                    .deletion_grace_period_seconds
                    .unwrap_or(DEFAULT_GRACE_SECONDS)
                    .max(0) as u64;
                let _ = worker.deletion.send(Some(Duration::from_secs(grace)));
            }
            return None;
        }
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed")) {
            return None;
        }
        if deleting {
            return Some(Action::ConfirmDeleted(Box::new(pod)));
        }
        let (deletion, deletion_rx) = watch::channel(None);
        let kill = self.shutdown.child_token();
        self.running.insert(
            uid,
            Worker {
                deletion,
                kill: kill.clone(),
            },
        );
        Some(Action::Start {
            pod: Box::new(pod),
            deletion: deletion_rx,
            kill,
        })
    }
}

/// The UIDs of running workers whose pods a relist did not return: deleted while the watch was down.
pub(crate) fn vanished<'a>(
    running: impl IntoIterator<Item = &'a String>,
    listed: &HashSet<String>,
) -> Vec<String> {
    let mut gone: Vec<String> = running
        .into_iter()
        .filter(|uid| !listed.contains(*uid))
        .cloned()
        .collect();
    gone.sort();
    gone
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn pod(uid: &str) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = Some(format!("pod-{uid}"));
        pod.metadata.namespace = Some("default".into());
        pod.metadata.uid = Some(uid.into());
        pod
    }

    fn terminating(uid: &str, grace: i64) -> Pod {
        let mut pod = pod(uid);
        pod.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        pod.metadata.deletion_grace_period_seconds = Some(grace);
        pod
    }

    /// Applies `event` and expects a `Start`; returns the worker's ends as its `run_pod` would hold them.
    fn started(
        workers: &mut Workers,
        event: Event<Pod>,
    ) -> (watch::Receiver<Deletion>, CancellationToken) {
        match workers.handle(event) {
            Some(Action::Start { deletion, kill, .. }) => (deletion, kill),
            other => panic!("expected a start, got {other:?}"),
        }
    }

    fn uids(workers: &Workers) -> Vec<String> {
        let mut uids: Vec<String> = workers.running.keys().cloned().collect();
        uids.sort();
        uids
    }

    #[test]
    fn workers_missing_from_a_relist_are_the_vanished_ones() {
        let running = ["a".to_string(), "b".to_string(), "c".to_string()];
        let listed = HashSet::from(["b".to_string(), "d".to_string()]);
        assert_eq!(vanished(&running, &listed), vec!["a", "c"]);
        assert!(vanished(&running, &running.iter().cloned().collect()).is_empty());
        assert_eq!(vanished(&running, &HashSet::new()).len(), 3);
        assert!(vanished([].iter(), &listed).is_empty());
    }

    #[test]
    fn a_relist_stops_the_workers_of_pods_deleted_during_the_watch_gap() {
        let mut workers = Workers::new(CancellationToken::new());
        // First list: a and b; then c arrives on the watch.
        assert!(workers.handle(Event::Init).is_none());
        let (_a_rx, a_kill) = started(&mut workers, Event::InitApply(pod("a")));
        let (_b_rx, b_kill) = started(&mut workers, Event::InitApply(pod("b")));
        assert!(workers.handle(Event::InitDone).is_none());
        let (_c_rx, c_kill) = started(&mut workers, Event::Apply(pod("c")));
        assert_eq!(uids(&workers), ["a", "b", "c"]);

        // The watch breaks; b and c are deleted meanwhile; the relist returns a and a new pod d.
        assert!(workers.handle(Event::Init).is_none());
        assert!(workers.handle(Event::InitApply(pod("a"))).is_none());
        let (_d_rx, d_kill) = started(&mut workers, Event::InitApply(pod("d")));
        assert!(
            !b_kill.is_cancelled() && !c_kill.is_cancelled(),
            "nothing is stopped before the relist is complete"
        );
        assert!(workers.handle(Event::InitDone).is_none());
        assert!(b_kill.is_cancelled() && c_kill.is_cancelled());
        assert!(!a_kill.is_cancelled() && !d_kill.is_cancelled());
        assert_eq!(uids(&workers), ["a", "d"]);
    }

    #[test]
    fn pod_events_start_drain_and_stop_workers() {
        let shutdown = CancellationToken::new();
        let mut workers = Workers::new(shutdown.clone());
        let (a_rx, a_kill) = started(&mut workers, Event::Apply(pod("a")));
        // An update of a running pod changes nothing; the deletion request carries the grace period once.
        assert!(workers.handle(Event::Apply(pod("a"))).is_none());
        assert!(workers.handle(Event::Apply(terminating("a", 5))).is_none());
        assert!(workers.handle(Event::Apply(terminating("a", 1))).is_none());
        assert_eq!(*a_rx.borrow(), Some(Duration::from_secs(5)));
        assert!(!a_kill.is_cancelled(), "a terminating pod drains");
        // Gone from the API: stopped at once.
        assert!(workers.handle(Event::Delete(pod("a"))).is_none());
        assert!(a_kill.is_cancelled());
        assert!(uids(&workers).is_empty());

        // Terminating and not running here: confirm the deletion. Finished pods are left alone.
        assert!(matches!(
            workers.handle(Event::Apply(terminating("b", 30))),
            Some(Action::ConfirmDeleted(p)) if p.metadata.uid.as_deref() == Some("b")
        ));
        let mut done = pod("c");
        done.status = Some(PodStatus {
            phase: Some("Succeeded".into()),
            ..PodStatus::default()
        });
        assert!(workers.handle(Event::Apply(done)).is_none());
        assert!(uids(&workers).is_empty());

        // A worker whose task ended is forgotten; the agent's shutdown reaches the others.
        let (d_rx, _d_kill) = started(&mut workers, Event::Apply(pod("d")));
        let (_e_rx, e_kill) = started(&mut workers, Event::Apply(pod("e")));
        drop(d_rx);
        workers.prune();
        assert_eq!(uids(&workers), ["e"]);
        shutdown.cancel();
        assert!(e_kill.is_cancelled());
    }
}
