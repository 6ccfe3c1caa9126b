//! Everything besides generation: health, version, metrics, tokenizer endpoints, LoRA adapters, and the mock's
//! own test hooks under `/mock/`.
//!
//! `/health` and `/ping` answer 200 with an empty body while the engine loop runs, 503 once it has stopped.
//! `/metrics` renders the engine's registry unless fault injection says to fail or hang. The LoRA endpoints answer
//! in plain text as vLLM does (`Success: LoRA adapter '<name>' added successfully.`).

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::errors::ApiError;
use super::models::{render_chat, resolve_model};
use super::protocol::{DetokenizeRequest, LoraAdapterRequest, TokenizeRequest, VllmJson};
use super::state::AppState;
use crate::config::{LoraModule, MetricsFault};
use crate::engine::timing::StepTimeModel;
use crate::faults::FaultUpdate;

/// The vLLM release whose HTTP shapes the mock follows (error envelope of 0.10.1, legacy gauges still present).
pub const VLLM_COMPATIBLE_VERSION: &str = "0.10.1";

/// `GET /health`, `GET|POST /ping`.
pub async fn health(State(state): State<AppState>) -> StatusCode {
    if state.engine.is_alive() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// `GET /version`.
pub async fn version() -> Json<Value> {
    Json(json!({"version": VLLM_COMPATIBLE_VERSION, "mock_vllm": env!("CARGO_PKG_VERSION")}))
}

/// `GET /metrics`.
pub async fn metrics(State(state): State<AppState>) -> Response {
    loop {
        match state.faults.current().metrics {
            MetricsFault::Ok => break,
            MetricsFault::Fail => {
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "metrics unavailable (mock-vllm fault injection)\n",
                )
                    .into_response()
            }
            // Hang until the mode changes or the client gives up (it drops this future).
            MetricsFault::Hang => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// `POST /tokenize`.
pub async fn tokenize(
    State(state): State<AppState>,
    VllmJson(request): VllmJson<TokenizeRequest>,
) -> Result<Json<Value>, ApiError> {
    let (model, text, return_token_strs) = match &request {
        TokenizeRequest::Chat {
            model,
            messages,
            add_generation_prompt,
            return_token_strs,
        } => {
            let prompt = render_chat(&state.tokenizer, messages, *add_generation_prompt);
            (model, prompt, *return_token_strs)
        }
        TokenizeRequest::Completion {
            model,
            prompt,
            return_token_strs,
            ..
        } => (model, prompt.clone(), *return_token_strs),
    };
    resolve_model(&state, model.as_deref())?;
    let tokens = state.tokenizer.encode(&text);
    let token_strs: Option<Vec<String>> = return_token_strs.then(|| {
        tokens
            .iter()
            .map(|&t| state.tokenizer.token_str(t).unwrap_or_default())
            .collect()
    });
    Ok(Json(json!({
        "count": tokens.len(),
        "max_model_len": state.config.max_model_len,
        "tokens": tokens,
        "token_strs": token_strs,
    })))
}

/// `POST /detokenize`.
pub async fn detokenize(
    State(state): State<AppState>,
    VllmJson(request): VllmJson<DetokenizeRequest>,
) -> Result<Json<Value>, ApiError> {
    resolve_model(&state, request.model.as_deref())?;
    let ids = request
        .tokens
        .iter()
        .map(|&id| {
            u32::try_from(id).map_err(|_| {
                ApiError::bad_request(format!("Token id {id} is out of vocabulary"))
                    .with_param("tokens")
            })
        })
        .collect::<Result<Vec<u32>, _>>()?;
    let prompt = state.tokenizer.decode(&ids).map_err(|e| {
        ApiError::bad_request(format!("Token id {} is out of vocabulary", e.0)).with_param("tokens")
    })?;
    Ok(Json(json!({ "prompt": prompt })))
}

fn lora_disabled() -> ApiError {
    ApiError::bad_request("LoRA is not enabled: start the server with --enable-lora.")
}

/// `POST /v1/load_lora_adapter`.
pub async fn load_lora_adapter(
    State(state): State<AppState>,
    VllmJson(request): VllmJson<LoraAdapterRequest>,
) -> Result<Response, ApiError> {
    if !state.config.args.enable_lora {
        return Err(lora_disabled());
    }
    let (Some(name), Some(path)) = (request.lora_name, request.lora_path) else {
        return Err(ApiError::bad_request(
            "Both 'lora_name' and 'lora_path' must be provided.",
        ));
    };
    if state.config.served_model_names.contains(&name)
        || !state.add_lora(LoraModule {
            name: name.clone(),
            path,
        })
    {
        return Err(ApiError::bad_request(format!(
            "The lora adapter '{name}' has already been loaded."
        ))
        .with_param("lora_name"));
    }
    Ok(format!("Success: LoRA adapter '{name}' added successfully.").into_response())
}

/// `POST /v1/unload_lora_adapter`.
pub async fn unload_lora_adapter(
    State(state): State<AppState>,
    VllmJson(request): VllmJson<LoraAdapterRequest>,
) -> Result<Response, ApiError> {
    if !state.config.args.enable_lora {
        return Err(lora_disabled());
    }
    let Some(name) = request.lora_name else {
        return Err(ApiError::bad_request(
            "'lora_name' needs to be provided to unload a LoRA adapter.",
        ));
    };
    if !state.remove_lora(&name) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("The lora adapter '{name}' cannot be found."),
        )
        .with_param("lora_name"));
    }
    Ok(format!("Success: LoRA adapter '{name}' removed successfully.").into_response())
}

/// `GET /mock/faults`.
pub async fn get_faults(State(state): State<AppState>) -> Json<Value> {
    Json(json!(state.faults.current()))
}

/// `POST /mock/faults`: a partial update, e.g. `{"error_rate": 0.1}` or `{"metrics": "hang"}`.
pub async fn set_faults(
    State(state): State<AppState>,
    VllmJson(update): VllmJson<FaultUpdate>,
) -> Result<Json<Value>, ApiError> {
    state
        .faults
        .update(&update)
        .map(|config| Json(json!(config)))
        .map_err(|e| ApiError::bad_request(e.to_string()))
}

/// `GET /mock/stats`: the engine's state, its step lateness and the derived configuration.
pub async fn stats(State(state): State<AppState>) -> Json<Value> {
    let config = &state.config;
    Json(json!({
        "engine": state.engine.state(),
        "step_lateness": state.engine.lateness(),
        "config": {
            "model": config.model,
            "model_profile": config.model_profile.name,
            "gpu": config.gpu.name,
            "num_gpu_blocks": config.num_gpu_blocks,
            "block_size": config.args.block_size,
            "max_model_len": config.max_model_len,
            "max_num_seqs": config.args.max_num_seqs,
            "max_num_batched_tokens": config.max_num_batched_tokens,
            "chunked_prefill": config.args.enable_chunked_prefill,
            "step_time_model": StepTimeModel::from(&**config),
            "step_time_scale": config.args.step_time_scale,
        },
    }))
}
