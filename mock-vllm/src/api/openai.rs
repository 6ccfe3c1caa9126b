//! `/v1/chat/completions`, `/v1/completions` and `/v1/models`: from an OpenAI request to engine requests and back.
//!
//! Plays vLLM's `serving_chat.py` / `serving_completion.py`. A request is checked in vLLM's order (model, sampling
//! ranges, context length) before anything reaches the engine, so every client mistake is an ordinary JSON error
//! even when `stream` is set. Then it becomes a [`Job`]: one engine request per prompt × `n`, answered as one JSON
//! body (`collect`, here) or as SSE ([`super::streaming`]).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::stream::StreamExt;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::errors::ApiError;
use super::job::{usage_json, Endpoint, Job, PromptInput};
use super::models::{render_chat, resolve_model};
use super::protocol::{
    check_logprobs, ChatCompletionRequest, CheckedSampling, CompletionRequest, Prompt,
    SamplingFields, VllmJson,
};
use super::state::AppState;
use super::streaming;
use crate::engine::request::FinishReason;
use crate::engine::EngineEvent;

/// vLLM's default `max_tokens` for `/v1/completions`.
const COMPLETIONS_DEFAULT_MAX_TOKENS: i64 = 16;

/// Runs the job to completion and builds the non-streaming response body.
async fn collect(job: &Job, state: &AppState, arrival: Instant) -> Result<Value, ApiError> {
    let mut events = job.start(&state.engine, arrival)?;
    let mut tokens: Vec<Vec<u32>> = vec![Vec::new(); job.num_choices()];
    let mut reasons: Vec<Option<FinishReason>> = vec![None; job.num_choices()];
    while let Some((choice, event)) = events.next().await {
        match event {
            Some(EngineEvent::Token { token, finished }) => {
                tokens[choice].push(token);
                reasons[choice] = finished.map(|f| f.reason);
            }
            Some(EngineEvent::Finished(f)) => reasons[choice] = Some(f.reason),
            None => {}
        }
    }
    if reasons
        .iter()
        .any(|r| matches!(r, None | Some(FinishReason::Abort)))
    {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The request was aborted by the engine (server shutting down).",
        ));
    }
    let completion_tokens: u64 = tokens.iter().map(|t| t.len() as u64).sum();
    let choices: Vec<Value> = (0..job.num_choices())
        .map(|choice| {
            let mut text = state.tokenizer.decode(&tokens[choice]).unwrap_or_default();
            if let Some(echo) = &job.prompts[job.prompt_of(choice)].echo {
                text.insert_str(0, echo);
            }
            let reason = reasons[choice].map(FinishReason::as_str);
            match job.endpoint {
                Endpoint::Chat => json!({
                    "index": choice,
                    "message": {"role": "assistant", "content": text, "tool_calls": [], "reasoning_content": null},
                    "logprobs": null,
                    "finish_reason": reason,
                    "stop_reason": null,
                }),
                Endpoint::Completion => json!({
                    "index": choice,
                    "text": text,
                    "logprobs": null,
                    "finish_reason": reason,
                    "stop_reason": null,
                    "prompt_logprobs": null,
                }),
            }
        })
        .collect();
    let usage = usage_json(job.prompt_tokens(), completion_tokens);
    Ok(match job.endpoint {
        Endpoint::Chat => json!({
            "id": job.id, "object": "chat.completion", "created": job.created, "model": job.model,
            "choices": choices, "usage": usage, "prompt_logprobs": null, "kv_transfer_params": null,
        }),
        Endpoint::Completion => json!({
            "id": job.id, "object": "text_completion", "created": job.created, "model": job.model,
            "choices": choices, "usage": usage, "kv_transfer_params": null,
        }),
    })
}

fn random_id(prefix: &str) -> String {
    let value: u128 = rand::random();
    format!("{prefix}{value:032x}")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// vLLM's context-length checks; returns the effective cap on generated tokens.
pub fn check_context_length(
    max_model_len: u64,
    prompt_tokens: u64,
    max_tokens: Option<i64>,
) -> Result<u64, ApiError> {
    if prompt_tokens >= max_model_len {
        return Err(ApiError::bad_request(format!(
            "This model's maximum context length is {max_model_len} tokens. However, your request has \
             {prompt_tokens} input tokens. Please reduce the length of the input messages."
        ))
        .with_param("input_tokens"));
    }
    let room = max_model_len - prompt_tokens;
    match max_tokens {
        None => Ok(room),
        Some(max) if max as u64 > room => Err(ApiError::bad_request(format!(
            "'max_tokens' or 'max_completion_tokens' is too large: {max}. This model's maximum context length \
             is {max_model_len} tokens and your request has {prompt_tokens} input tokens \
             ({max} > {max_model_len} - {prompt_tokens})."
        ))
        .with_param("max_tokens")),
        Some(max) => Ok(max as u64),
    }
}

/// Applies the fault hooks: an injected error, then extra latency.
async fn apply_faults(state: &AppState) -> Result<(), ApiError> {
    if let Some(status) = state.faults.injected_error() {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return Err(ApiError::new(
            status,
            "Injected failure (mock-vllm fault injection).",
        ));
    }
    let extra = state.faults.extra_latency();
    if !extra.is_zero() {
        tokio::time::sleep(extra).await;
    }
    Ok(())
}

/// Shared tail of both endpoints: a request that failed its checks is answered at once; a valid one meets the
/// fault hooks, then runs as a JSON body or an SSE stream.
async fn run_job(
    state: AppState,
    job: Result<Job, ApiError>,
    stream: bool,
    headers: &HeaderMap,
    arrival: Instant,
) -> Response {
    let job = match job {
        Ok(job) => job,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = apply_faults(&state).await {
        return e.into_response();
    }
    let mut response = if stream {
        match job.start(&state.engine, arrival) {
            Ok(events) => streaming::sse_response(Arc::new(job), state, events),
            Err(e) => return e.into_response(),
        }
    } else {
        match collect(&job, &state, arrival).await {
            Ok(body) => Json(body).into_response(),
            Err(e) => return e.into_response(),
        }
    };
    if let Some(request_id) = headers.get("x-request-id") {
        response
            .headers_mut()
            .insert("x-request-id", request_id.clone());
    }
    response
}

fn checked_sampling(
    sampling: &SamplingFields,
    max_tokens: Option<i64>,
) -> Result<CheckedSampling, ApiError> {
    sampling.check(max_tokens)
}

/// `POST /v1/chat/completions`.
pub async fn chat_completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    VllmJson(request): VllmJson<ChatCompletionRequest>,
) -> Response {
    let arrival = Instant::now();
    let job = chat_job(&state, &request);
    run_job(state, job, request.sampling.stream, &headers, arrival).await
}

fn chat_job(state: &AppState, request: &ChatCompletionRequest) -> Result<Job, ApiError> {
    let model = resolve_model(state, request.model.as_deref())?;
    let max_tokens = request.max_completion_tokens.or(request.max_tokens);
    let sampling = checked_sampling(&request.sampling, max_tokens)?;
    if request.logprobs.unwrap_or(false) || request.top_logprobs.is_some() {
        check_logprobs(request.top_logprobs, "top_logprobs")?;
    }
    let prompt = render_chat(
        &state.tokenizer,
        &request.messages,
        request.add_generation_prompt,
    );
    let prompt_tokens = state.tokenizer.count(&prompt) as u64;
    let cap = check_context_length(state.config.max_model_len, prompt_tokens, max_tokens)?;
    let (include_usage, continuous_usage) = request.sampling.usage_options();
    Ok(Job {
        endpoint: Endpoint::Chat,
        id: random_id("chatcmpl-"),
        created: unix_now(),
        model,
        prompts: vec![PromptInput {
            tokens: prompt_tokens,
            echo: None,
        }],
        sampling,
        params_max_tokens: max_tokens.map(|m| m as u64),
        max_tokens: vec![cap],
        include_usage,
        continuous_usage,
    })
}

/// `POST /v1/completions`.
pub async fn completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    VllmJson(request): VllmJson<CompletionRequest>,
) -> Response {
    let arrival = Instant::now();
    let job = completion_job(&state, &request);
    run_job(state, job, request.sampling.stream, &headers, arrival).await
}

fn completion_job(state: &AppState, request: &CompletionRequest) -> Result<Job, ApiError> {
    let model = resolve_model(state, request.model.as_deref())?;
    let max_tokens = Some(request.max_tokens.unwrap_or(COMPLETIONS_DEFAULT_MAX_TOKENS));
    let sampling = checked_sampling(&request.sampling, max_tokens)?;
    check_logprobs(request.logprobs, "logprobs")?;
    let tokenizer = &state.tokenizer;
    let prompts: Vec<(u64, String)> = match &request.prompt {
        Prompt::Text(text) => vec![(tokenizer.count(text) as u64, text.clone())],
        Prompt::Texts(texts) => texts
            .iter()
            .map(|t| (tokenizer.count(t) as u64, t.clone()))
            .collect(),
        Prompt::Tokens(ids) => vec![token_prompt(state, ids)?],
        Prompt::TokenLists(lists) => lists
            .iter()
            .map(|ids| token_prompt(state, ids))
            .collect::<Result<_, _>>()?,
    };
    if prompts.is_empty() {
        return Err(ApiError::bad_request("Prompt cannot be empty").with_param("prompt"));
    }
    let mut caps = Vec::with_capacity(prompts.len());
    for (tokens, _) in &prompts {
        if *tokens == 0 {
            return Err(ApiError::bad_request("Prompt cannot be empty").with_param("prompt"));
        }
        caps.push(check_context_length(
            state.config.max_model_len,
            *tokens,
            max_tokens,
        )?);
    }
    let (include_usage, continuous_usage) = request.sampling.usage_options();
    Ok(Job {
        endpoint: Endpoint::Completion,
        id: random_id("cmpl-"),
        created: unix_now(),
        model,
        prompts: prompts
            .into_iter()
            .map(|(tokens, text)| PromptInput {
                tokens,
                echo: request.echo.then_some(text),
            })
            .collect(),
        sampling,
        params_max_tokens: request.max_tokens.map(|m| m as u64),
        max_tokens: caps,
        include_usage,
        continuous_usage,
    })
}

fn token_prompt(state: &AppState, ids: &[i64]) -> Result<(u64, String), ApiError> {
    let ids: Vec<u32> = ids
        .iter()
        .map(|&id| {
            u32::try_from(id)
                .map_err(|_| ApiError::bad_request(format!("Token id {id} is out of vocabulary")))
        })
        .collect::<Result<_, _>>()?;
    let text = state.tokenizer.decode(&ids).map_err(|e| {
        ApiError::bad_request(format!("Token id {} is out of vocabulary", e.0)).with_param("prompt")
    })?;
    Ok((ids.len() as u64, text))
}

/// `GET /v1/models`.
pub async fn models(State(state): State<AppState>) -> Json<Value> {
    let config = &state.config;
    let card = |id: &str, root: &str, parent: Option<&str>, max_model_len: Option<u64>| {
        json!({
            "id": id,
            "object": "model",
            "created": state.created,
            "owned_by": "vllm",
            "root": root,
            "parent": parent,
            "max_model_len": max_model_len,
            "permission": [{
                "id": random_id("modelperm-"),
                "object": "model_permission",
                "created": state.created,
                "allow_create_engine": false,
                "allow_sampling": true,
                "allow_logprobs": true,
                "allow_search_indices": false,
                "allow_view": true,
                "allow_fine_tuning": false,
                "organization": "*",
                "group": null,
                "is_blocking": false,
            }],
        })
    };
    let mut data: Vec<Value> = config
        .served_model_names
        .iter()
        .map(|name| card(name, &config.model, None, Some(config.max_model_len)))
        .collect();
    for lora in state.loras() {
        data.push(card(
            &lora.name,
            &lora.path,
            Some(config.primary_model_name()),
            None,
        ));
    }
    Json(json!({"object": "list", "data": data}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_length_errors_use_vllm_wording() {
        let err = check_context_length(4096, 4096, None).expect_err("prompt too long");
        assert_eq!(err.param.as_deref(), Some("input_tokens"));
        assert!(err.message.contains(
            "maximum context length is 4096 tokens. However, your request has 4096 input tokens"
        ));
        let err = check_context_length(4096, 100, Some(4000)).expect_err("too many");
        assert_eq!(err.param.as_deref(), Some("max_tokens"));
        assert!(
            err.message.contains("(4000 > 4096 - 100)"),
            "{}",
            err.message
        );
        assert_eq!(
            check_context_length(4096, 100, Some(3996)).expect("fits"),
            3996
        );
        assert_eq!(check_context_length(4096, 100, None).expect("fits"), 3996);
    }
}
