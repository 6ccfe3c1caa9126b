//! The HTTP API: vLLM's OpenAI-compatible routes over one engine.
//!
//! [`router`] builds the axum `Router` from an [`AppState`] (so tests can drive it with `oneshot`, without a
//! socket). Layout: [`openai`] (completions, chat, models), [`streaming`] (SSE frames), [`admin`] (health, metrics,
//! tokenizer, LoRA, test hooks), [`protocol`] (request types and checks), [`errors`] (vLLM's error envelope).
//!
//! Like vLLM's `AuthenticationMiddleware`, `--api-key` guards only paths under `/v1` and answers
//! `401 {"error": "Unauthorized"}`. Unknown paths and wrong methods get the envelope with the HTTP phrase.

pub mod admin;
pub mod errors;
pub mod openai;
pub mod protocol;
pub mod streaming;

use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::config::{EngineConfig, LoraModule};
use crate::engine::EngineHandle;
use crate::faults::Faults;
use crate::metrics::EngineMetrics;
use crate::tokenizer::Tokenizer;
use errors::ApiError;

/// Request bodies up to this size are accepted (long multi-prompt completions exceed axum's 2 MiB default).
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

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

async fn require_api_key(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(key) = state.config.args.api_key.as_deref() {
        let authorized = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == format!("Bearer {key}"));
        if !authorized {
            return (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error": "Unauthorized"})),
            )
                .into_response();
        }
    }
    next.run(request).await
}

async fn not_found() -> ApiError {
    ApiError::http(StatusCode::NOT_FOUND)
}

async fn method_not_allowed() -> ApiError {
    ApiError::http(StatusCode::METHOD_NOT_ALLOWED)
}

/// All routes over `state`.
pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .route("/v1/models", get(openai::models))
        .route("/v1/completions", post(openai::completions))
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/load_lora_adapter", post(admin::load_lora_adapter))
        .route("/v1/unload_lora_adapter", post(admin::unload_lora_adapter))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_api_key,
        ));
    Router::new()
        .merge(v1)
        .route("/health", get(admin::health))
        .route("/ping", get(admin::health).post(admin::health))
        .route("/version", get(admin::version))
        .route("/metrics", get(admin::metrics))
        .route("/tokenize", post(admin::tokenize))
        .route("/detokenize", post(admin::detokenize))
        .route(
            "/mock/faults",
            get(admin::get_faults).post(admin::set_faults),
        )
        .route("/mock/stats", get(admin::stats))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}
