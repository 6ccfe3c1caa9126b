//! What a request names, checked against what this server serves: the model (a served name or a LoRA adapter
//! loaded now) and, for chat, the prompt the served model's chat template makes of the messages.
//!
//! The generation handlers ([`super::openai`]) and the tokenizer endpoints ([`super::admin`]) answer these two
//! questions the same way, as vLLM does: `/tokenize` counts exactly the prompt `/v1/chat/completions` would run.

use super::errors::ApiError;
use super::protocol::ChatMessage;
use super::state::AppState;
use crate::tokenizer::{ChatTurn, Tokenizer};

/// Resolves `model` to a served name or a loaded LoRA adapter; no model means the primary served name.
pub fn resolve_model(state: &AppState, model: Option<&str>) -> Result<String, ApiError> {
    let config = &state.config;
    match model {
        None => Ok(config.primary_model_name().to_string()),
        Some(name) if config.served_model_names.iter().any(|n| n == name) => Ok(name.to_string()),
        Some(name) if state.lora_loaded(name) => Ok(name.to_string()),
        Some(name) => Err(ApiError::model_not_found(name)),
    }
}

/// The prompt text of a chat request; `add_generation_prompt` defaults to true, as in vLLM.
pub fn render_chat(
    tokenizer: &Tokenizer,
    messages: &[ChatMessage],
    add_generation_prompt: Option<bool>,
) -> String {
    let texts: Vec<String> = messages.iter().map(|m| m.text()).collect();
    let turns: Vec<ChatTurn<'_>> = messages
        .iter()
        .zip(&texts)
        .map(|(m, text)| ChatTurn {
            role: &m.role,
            content: text,
        })
        .collect();
    tokenizer.render_chat(&turns, add_generation_prompt.unwrap_or(true))
}
