//! Server-sent events in vLLM's exact frame sequence.
//!
//! For each choice of a chat stream: a role chunk (`delta: {role: "assistant", content: ""}`) when its first token
//! is ready (not at arrival: the AIBrix client times TTFT from the first chunk with content), one content chunk per
//! engine step, `finish_reason` on the last content chunk. Completions streams have no role chunk and carry
//! `"usage": null` on every chunk. Then, if `stream_options.include_usage`, a usage chunk with `choices: []`, and
//! always `data: [DONE]`. A failure after the stream started is one `data: {"error": …}` frame, then `[DONE]`.
//!
//! The SSE body owns the engine streams: when the client disconnects, hyper drops the body, the
//! [`crate::engine::RequestStream`]s inside are dropped, and the engine aborts the requests and frees their blocks.

use std::convert::Infallible;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, BoxStream, StreamExt};
use serde_json::{json, Value};

use super::errors::ApiError;
use super::job::{usage_json, ChoiceEvent, Endpoint, Job};
use super::state::AppState;
use crate::engine::request::FinishReason;
use crate::engine::EngineEvent;

/// Per-stream progress needed to build frames.
struct StreamState {
    job: Arc<Job>,
    app: AppState,
    events: BoxStream<'static, ChoiceEvent>,
    started: Vec<bool>,
    generated: Vec<u64>,
    finished: usize,
    failed: bool,
    done: bool,
}

impl StreamState {
    fn chunk(&self, choices: Value, usage: Option<Value>) -> Value {
        let job = &self.job;
        let object = match job.endpoint {
            Endpoint::Chat => "chat.completion.chunk",
            Endpoint::Completion => "text_completion",
        };
        let mut chunk = json!({
            "id": job.id,
            "object": object,
            "created": job.created,
            "model": job.model,
            "choices": choices,
        });
        match usage {
            Some(usage) => chunk["usage"] = usage,
            None if job.endpoint == Endpoint::Completion => chunk["usage"] = Value::Null,
            None => {}
        }
        chunk
    }

    fn running_usage(&self) -> Option<Value> {
        self.job
            .continuous_usage
            .then(|| usage_json(self.job.prompt_tokens(), self.generated.iter().sum()))
    }

    fn choice(&self, index: usize, text: &str, finish: Option<FinishReason>) -> Value {
        let reason = finish.map(FinishReason::as_str);
        match self.job.endpoint {
            Endpoint::Chat => json!({
                "index": index,
                "delta": {"content": text},
                "logprobs": null,
                "finish_reason": reason,
                "stop_reason": null,
            }),
            Endpoint::Completion => json!({
                "index": index,
                "text": text,
                "logprobs": null,
                "finish_reason": reason,
                "stop_reason": null,
            }),
        }
    }

    /// Frames for one engine event.
    fn frames_for(&mut self, choice: usize, event: Option<EngineEvent>) -> Vec<Event> {
        let mut frames = Vec::new();
        let (token, finish) = match event {
            Some(EngineEvent::Token { token, finished }) => {
                (Some(token), finished.map(|f| f.reason))
            }
            Some(EngineEvent::Finished(f)) => (None, Some(f.reason)),
            None => (None, Some(FinishReason::Abort)),
        };
        if finish == Some(FinishReason::Abort) {
            self.failed = true;
            let error = ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The request was aborted by the engine (server shutting down).",
            );
            frames.push(data(&error.body()));
            return frames;
        }
        let mut text = token
            .map(|t| self.app.tokenizer.token_str(t).unwrap_or_default())
            .unwrap_or_default();
        if token.is_some() {
            self.generated[choice] += 1;
        }
        if !self.started[choice] {
            self.started[choice] = true;
            if self.job.endpoint == Endpoint::Chat {
                let role = json!([{
                    "index": choice,
                    "delta": {"role": "assistant", "content": ""},
                    "logprobs": null,
                    "finish_reason": null,
                }]);
                frames.push(data(&self.chunk(role, self.running_usage())));
            }
            if let Some(echo) = &self.job.prompts[self.job.prompt_of(choice)].echo {
                text.insert_str(0, echo);
            }
        }
        let choice_json = self.choice(choice, &text, finish);
        frames.push(data(
            &self.chunk(json!([choice_json]), self.running_usage()),
        ));
        if finish.is_some() {
            self.finished += 1;
        }
        frames
    }

    /// Frames after every choice has finished.
    fn closing_frames(&self) -> Vec<Event> {
        let mut frames = Vec::new();
        if self.job.include_usage && !self.failed {
            let usage = usage_json(self.job.prompt_tokens(), self.generated.iter().sum());
            frames.push(data(&self.chunk(json!([]), Some(usage))));
        }
        frames.push(Event::default().data("[DONE]"));
        frames
    }
}

fn data(value: &Value) -> Event {
    Event::default().data(value.to_string())
}

/// The SSE response for a started job.
pub fn sse_response(
    job: Arc<Job>,
    app: AppState,
    events: BoxStream<'static, ChoiceEvent>,
) -> Response {
    let choices = job.num_choices();
    let state = StreamState {
        job,
        app,
        events,
        started: vec![false; choices],
        generated: vec![0; choices],
        finished: 0,
        failed: false,
        done: false,
    };
    let frames = stream::unfold(state, |mut state| async move {
        if state.done {
            return None;
        }
        loop {
            if state.failed || state.finished == state.started.len() {
                state.done = true;
                let frames = state.closing_frames();
                return Some((stream::iter(frames), state));
            }
            match state.events.next().await {
                Some((choice, event)) => {
                    let frames = state.frames_for(choice, event);
                    if !frames.is_empty() {
                        return Some((stream::iter(frames), state));
                    }
                }
                None => {
                    // Every engine stream ended; anything unfinished was lost.
                    state.failed = state.finished < state.started.len();
                    state.done = true;
                    return Some((stream::iter(state.closing_frames()), state));
                }
            }
        }
    })
    .flatten()
    .map(Ok::<_, Infallible>);
    let mut response = Sse::new(frames).into_response();
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    response
}
