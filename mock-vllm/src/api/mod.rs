//! The HTTP API: vLLM's OpenAI-compatible routes over one engine.
//!
//! [`router`] builds the axum `Router` from an [`AppState`] (so tests can drive it with `oneshot`, without a
//! socket). This file only declares the modules, the routes and the API-key middleware.
//!
//! # Layout
//! Dependencies point down this list, never up:
//! - [`openai`] (completions, chat, models) and [`admin`] (health, metrics, tokenizer, LoRA, test hooks): the
//!   handlers.
//! - [`streaming`]: a started [`job::Job`] as SSE frames.
//! - [`job`]: a validated generation request and its engine requests; [`models`]: which model a request names and
//!   how chat messages become a prompt.
//! - [`protocol`] (request types and checks), [`errors`] (vLLM's error envelope), [`AppState`] (what every handler
//!   shares, in `state.rs`).
//!
//! Like vLLM's `AuthenticationMiddleware`, `--api-key` guards only paths under `/v1` and answers
//! `401 {"error": "Unauthorized"}`. Unknown paths and wrong methods get the envelope with the HTTP phrase.

pub mod admin;
pub mod errors;
pub mod job;
pub mod models;
pub mod openai;
pub mod protocol;
mod state;
pub mod streaming;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use errors::ApiError;
pub use state::{AppInner, AppState};

/// Request bodies up to this size are accepted (long multi-prompt completions exceed axum's 2 MiB default).
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

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
