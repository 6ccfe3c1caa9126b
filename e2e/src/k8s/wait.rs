//! Waiting on Kubernetes state by watching it, not by polling a list on a timer.
//!
//! kube-runtime's `wait::await_condition` covers one named object (a CRD Established, a Deployment's ready
//! replicas); [`until_count`] covers the other common wait of the harness: "at least N objects of a selection are in
//! some state" (N ready pods). It keeps a reflector store fed by a `watcher` and re-counts after every event, so
//! it returns as soon as the API server reports the state, and the caller's timeout wraps the whole wait.

use std::fmt::Debug;
use std::time::Duration;

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::Resource;
use serde::de::DeserializeOwned;

/// Fewer objects than wanted matched before the timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{matched} matched before the timeout")]
pub(crate) struct TooFew {
    /// How many matched when the time ran out.
    pub matched: usize,
}

/// Watches the objects `api` lists under `config` (e.g. a label selector) until at least `count` of them satisfy
/// `matches`, or `timeout` passes. Watch errors are retried with kube's default backoff.
pub(crate) async fn until_count<K>(
    api: Api<K>,
    config: watcher::Config,
    count: usize,
    timeout: Duration,
    matches: impl Fn(&K) -> bool,
) -> Result<(), TooFew>
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (store, writer) = reflector::store();
    let stream = reflector(writer, watcher(api, config)).default_backoff();
    let mut matched = 0;
    let wait = async {
        let mut stream = std::pin::pin!(stream);
        while stream.next().await.is_some() {
            matched = store.state().iter().filter(|o| matches(o)).count();
            if matched >= count {
                return;
            }
        }
    };
    let finished = tokio::time::timeout(timeout, wait).await.is_ok();
    if finished && matched >= count {
        Ok(())
    } else {
        Err(TooFew { matched })
    }
}
