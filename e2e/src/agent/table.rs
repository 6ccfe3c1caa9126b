//! The agent's table of pods it runs: address, readiness and engine handle per pod UID.
//!
//! A cheap-to-clone handle around a std `Mutex` (never held across `.await`). Tests and the harness read it to
//! find a pod's in-process engine (its state, its fault hooks) without going through HTTP.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use mock_vllm::engine::EngineHandle;

/// One pod as the agent runs it.
#[derive(Debug, Clone)]
pub struct PodRecord {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
    /// Node.
    pub node: String,
    /// Loopback address.
    pub ip: Option<Ipv4Addr>,
    /// Serving port.
    pub port: u16,
    /// Readiness as last reported.
    pub ready: bool,
    /// The in-process engine, once serving.
    pub engine: Option<EngineHandle>,
}

/// Shared pod table.
#[derive(Debug, Clone, Default)]
pub struct PodTable(Arc<Mutex<HashMap<String, PodRecord>>>);

impl PodTable {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, PodRecord>) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Inserts or replaces a record.
    pub(crate) fn upsert(&self, record: PodRecord) {
        self.with(|t| t.insert(record.uid.clone(), record));
    }

    /// Sets readiness.
    pub(crate) fn set_ready(&self, uid: &str, ready: bool) {
        self.with(|t| t.get_mut(uid).map(|r| r.ready = ready));
    }

    /// Attaches the engine handle.
    pub(crate) fn set_engine(&self, uid: &str, engine: EngineHandle) {
        self.with(|t| t.get_mut(uid).map(|r| r.engine = Some(engine)));
    }

    /// Removes a record.
    pub fn remove(&self, uid: &str) {
        self.with(|t| t.remove(uid));
    }

    /// A snapshot, sorted by namespace and name.
    pub(crate) fn snapshot(&self) -> Vec<PodRecord> {
        let mut all: Vec<PodRecord> = self.with(|t| t.values().cloned().collect());
        all.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        all
    }
}
