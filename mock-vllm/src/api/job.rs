//! A validated generation request (a [`Job`]) and how it runs on the engine: one engine request per prompt × `n`,
//! merged into one stream of [`ChoiceEvent`]s.
//!
//! Both answers read from here: the JSON body in [`super::openai`] and the SSE frames in [`super::streaming`]. So
//! the job, its choice events and the usage object live apart from either, and neither has to import the other.

use axum::http::StatusCode;
use futures::stream::{self, BoxStream, StreamExt};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::errors::ApiError;
use super::protocol::CheckedSampling;
use crate::engine::{EngineEvent, EngineHandle, GenerateRequest, RequestStream};

/// Which endpoint a job answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/v1/chat/completions`.
    Chat,
    /// `/v1/completions`.
    Completion,
}

/// One prompt of a job.
#[derive(Debug, Clone)]
pub struct PromptInput {
    /// Length in tokens.
    pub tokens: u64,
    /// Text prepended to the output with `echo`.
    pub echo: Option<String>,
}

/// A validated request, ready to run.
#[derive(Debug, Clone)]
pub struct Job {
    /// Chooses the JSON shapes: chat completion or text completion.
    pub endpoint: Endpoint,
    /// `chatcmpl-…` / `cmpl-…`.
    pub id: String,
    /// Unix seconds.
    pub created: u64,
    /// The model name the client used.
    pub model: String,
    /// Prompts (chat has one).
    pub prompts: Vec<PromptInput>,
    /// Sampling limits.
    pub sampling: CheckedSampling,
    /// `max_tokens` as sent.
    pub params_max_tokens: Option<u64>,
    /// Effective caps, per prompt.
    pub max_tokens: Vec<u64>,
    /// Final usage chunk.
    pub include_usage: bool,
    /// Usage on every chunk.
    pub continuous_usage: bool,
}

/// One engine output tagged with its choice index; `None` if the engine went away before finishing that choice.
pub type ChoiceEvent = (usize, Option<EngineEvent>);

impl Job {
    /// Number of choices (prompts × n).
    pub fn num_choices(&self) -> usize {
        self.prompts.len() * self.sampling.n as usize
    }

    /// The prompt index of a choice.
    pub fn prompt_of(&self, choice: usize) -> usize {
        choice / self.sampling.n as usize
    }

    /// Prompt tokens counted once per prompt.
    pub fn prompt_tokens(&self) -> u64 {
        self.prompts.iter().map(|p| p.tokens).sum()
    }

    /// Starts one engine request per choice and merges their events. Each choice's events end with its final
    /// one, or with `None` if the engine stopped first.
    pub(crate) fn start(
        &self,
        engine: &EngineHandle,
        arrival: Instant,
    ) -> Result<BoxStream<'static, ChoiceEvent>, ApiError> {
        let mut streams: Vec<BoxStream<'static, ChoiceEvent>> =
            Vec::with_capacity(self.num_choices());
        for choice in 0..self.num_choices() {
            let prompt = self.prompt_of(choice);
            let request = GenerateRequest {
                prompt_tokens: self.prompts[prompt].tokens,
                max_tokens: self.max_tokens[prompt],
                params_max_tokens: self.params_max_tokens,
                min_tokens: self.sampling.min_tokens,
                ignore_eos: self.sampling.ignore_eos,
                seed: self.sampling.seed.map(|s| s.wrapping_add(choice as u64)),
                params_n: (choice % self.sampling.n as usize == 0).then_some(self.sampling.n),
                arrival,
            };
            let engine_stream = engine.generate(request).map_err(|e| {
                tracing::error!(error = %e, "engine unavailable");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "The engine is not running.",
                )
            })?;
            streams.push(choice_stream(choice, engine_stream));
        }
        Ok(stream::select_all(streams).boxed())
    }
}

fn choice_stream(choice: usize, engine_stream: RequestStream) -> BoxStream<'static, ChoiceEvent> {
    stream::unfold(Some(engine_stream), move |state| async move {
        let mut engine_stream = state?;
        match engine_stream.recv().await {
            Some(event) => {
                let done = event.is_final();
                Some(((choice, Some(event)), (!done).then_some(engine_stream)))
            }
            // The engine went away without finishing this request.
            None => Some(((choice, None), None)),
        }
    })
    .boxed()
}

/// The OpenAI usage object.
pub fn usage_json(prompt_tokens: u64, completion_tokens: u64) -> Value {
    json!({
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "completion_tokens": completion_tokens,
        "prompt_tokens_details": null,
    })
}
