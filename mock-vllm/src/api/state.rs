//! The state every handler shares: the validated configuration, the engine handle, the tokenizer, the fault hooks,
//! the metric registry, and the LoRA adapters loaded at run time.
//!
//! It sits at the bottom of `api/`: the handlers, the SSE encoder and model resolution read it; it reads none of
//! them. [`AppState`] is a cheap clone around an `Arc`, as axum's `State` extractor clones it per request. The
//! adapter list is behind a std `RwLock`: it is never held across an `.await`, and a poisoned lock is still read
//! (a list of names cannot be left half-written).

use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::{EngineConfig, LoraModule};
use crate::engine::EngineHandle;
use crate::faults::Faults;
use crate::metrics::EngineMetrics;
use crate::tokenizer::Tokenizer;

/// What every handler shares: a cheap clone around an `Arc`.
#[derive(Clone, Debug)]
pub struct AppState(Arc<AppInner>);

/// The shared parts.
#[derive(Debug)]
pub struct AppInner {
    /// Validated configuration.
    pub config: Arc<EngineConfig>,
    /// The engine.
    pub engine: EngineHandle,
    /// Token counting and text.
    pub tokenizer: Tokenizer,
    /// Fault-injection hooks.
    pub faults: Arc<Faults>,
    /// The metric registry behind `/metrics`.
    pub metrics: EngineMetrics,
    /// Unix time the server started (model cards' `created`).
    pub created: u64,
    loras: RwLock<Vec<LoraModule>>,
}

impl std::ops::Deref for AppState {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

impl AppState {
    /// Shared state over a running engine.
    pub fn new(
        config: Arc<EngineConfig>,
        engine: EngineHandle,
        tokenizer: Tokenizer,
        faults: Arc<Faults>,
        metrics: EngineMetrics,
    ) -> Self {
        let loras = RwLock::new(config.lora_modules.clone());
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self(Arc::new(AppInner {
            config,
            engine,
            tokenizer,
            faults,
            metrics,
            created,
            loras,
        }))
    }

    /// Loaded LoRA adapters.
    pub fn loras(&self) -> Vec<LoraModule> {
        self.loras.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// True if `name` is a loaded adapter.
    pub fn lora_loaded(&self, name: &str) -> bool {
        self.loras
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|l| l.name == name)
    }

    /// Adds an adapter; false if the name is taken.
    pub fn add_lora(&self, lora: LoraModule) -> bool {
        let mut loras = self.loras.write().unwrap_or_else(|p| p.into_inner());
        if loras.iter().any(|l| l.name == lora.name) {
            return false;
        }
        loras.push(lora);
        true
    }

    /// Removes an adapter; false if unknown.
    pub fn remove_lora(&self, name: &str) -> bool {
        let mut loras = self.loras.write().unwrap_or_else(|p| p.into_inner());
        let before = loras.len();
        loras.retain(|l| l.name != name);
        loras.len() != before
    }
}
