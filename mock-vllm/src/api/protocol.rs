//! Request bodies in vLLM's OpenAI-compatible shapes, the checks vLLM applies to them, and the JSON extractor.
//!
//! Plays `vllm/entrypoints/openai/protocol.py`. Integers are read as `i64` so that a negative `max_tokens` is a
//! *value* error with vLLM's message, not a type error. Sampling fields that only change which tokens a GPU would
//! pick (`temperature`, `top_p`, penalties …) are range-checked exactly as vLLM does and otherwise ignored. Unknown
//! fields are accepted, as vLLM does. [`VllmJson`] turns every body rejection (wrong content type, malformed JSON,
//! wrong field type, missing field) into a 400 in vLLM's envelope, naming the field.

use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::errors::ApiError;

/// vLLM's default `max_logprobs`.
pub const MAX_LOGPROBS: i64 = 20;

/// A JSON body parsed with vLLM's validation errors.
#[derive(Debug)]
pub struct VllmJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for VllmJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let media_type = content_type.split(';').next().unwrap_or("").trim();
        if media_type != "application/json" {
            return Err(ApiError::validation(
                "[\"Unsupported Media Type: Only 'application/json' is allowed\"]",
                None,
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                ApiError::validation(format!("could not read the body: {e}"), Some("body".into()))
            })?;
        parse_body(&bytes).map(VllmJson)
    }
}

/// Parses a JSON body, mapping errors to vLLM's 400 validation envelope.
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(&mut deserializer) {
        Ok(value) => {
            if let Err(e) = deserializer.end() {
                return Err(json_decode_error(&e));
            }
            Ok(value)
        }
        Err(error) => {
            let inner = error.inner();
            if inner.is_syntax() || inner.is_eof() {
                return Err(json_decode_error(inner));
            }
            let path = error.path().to_string();
            let location = if path == "." || path.is_empty() {
                "body".to_string()
            } else {
                format!("body.{path}")
            };
            // serde says "missing field `messages`"; keep it, and put the field path in `param`.
            let message = format!("1 validation error:\n  {location}\n    {inner}");
            let param = match inner.to_string().strip_prefix("missing field `") {
                Some(rest) => {
                    let field = rest.split('`').next().unwrap_or_default();
                    if location == "body" {
                        format!("body.{field}")
                    } else {
                        format!("{location}.{field}")
                    }
                }
                None => location,
            };
            Err(ApiError::validation(message, Some(param)))
        }
    }
}

fn json_decode_error(error: &serde_json::Error) -> ApiError {
    ApiError::validation(
        format!("1 validation error:\n  body\n    JSON decode error: {error}"),
        Some("body".into()),
    )
}

/// A string or a list of strings (`stop`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StringOrList {
    /// One string.
    One(String),
    /// Several.
    Many(Vec<String>),
}

/// `stream_options`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamOptions {
    /// Send a final usage chunk (default true when `stream_options` is given).
    pub include_usage: Option<bool>,
    /// Usage on every chunk.
    #[serde(default)]
    pub continuous_usage_stats: bool,
}

/// Message content: a string or a list of parts.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    /// Plain text.
    Text(String),
    /// Content parts; only `text` parts contribute tokens.
    Parts(Vec<ContentPart>),
}

/// One content part.
#[derive(Debug, Clone, Deserialize)]
pub struct ContentPart {
    /// `text`, `image_url` …
    #[serde(rename = "type")]
    pub kind: String,
    /// The text of a `text` part.
    pub text: Option<String>,
}

/// One chat message.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant`, `tool` …
    pub role: String,
    /// Content (may be null for assistant tool calls).
    pub content: Option<MessageContent>,
}

impl ChatMessage {
    /// The message text, parts concatenated.
    pub fn text(&self) -> String {
        match &self.content {
            None => String::new(),
            Some(MessageContent::Text(text)) => text.clone(),
            Some(MessageContent::Parts(parts)) => parts
                .iter()
                .filter(|p| p.kind == "text")
                .filter_map(|p| p.text.as_deref())
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

/// Sampling fields shared by chat and completions.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SamplingFields {
    /// Number of choices.
    pub n: Option<i64>,
    /// Generate no fewer tokens than this.
    pub min_tokens: Option<i64>,
    /// Ignore EOS: generate exactly the cap.
    pub ignore_eos: Option<bool>,
    /// Seed of the generated text.
    pub seed: Option<i64>,
    /// Sampling temperature (range-checked, otherwise ignored).
    pub temperature: Option<f64>,
    /// Nucleus sampling (range-checked, otherwise ignored).
    pub top_p: Option<f64>,
    /// Top-k (range-checked, otherwise ignored).
    pub top_k: Option<i64>,
    /// Min-p (range-checked, otherwise ignored).
    pub min_p: Option<f64>,
    /// Presence penalty (range-checked, otherwise ignored).
    pub presence_penalty: Option<f64>,
    /// Frequency penalty (range-checked, otherwise ignored).
    pub frequency_penalty: Option<f64>,
    /// Repetition penalty (range-checked, otherwise ignored).
    pub repetition_penalty: Option<f64>,
    /// Stop strings (accepted; synthetic text never matches them).
    pub stop: Option<StringOrList>,
    /// Stop token ids (accepted).
    pub stop_token_ids: Option<Vec<i64>>,
    /// Stream the answer as SSE.
    #[serde(default)]
    pub stream: bool,
    /// Streaming options.
    pub stream_options: Option<StreamOptions>,
    /// Accepted and ignored.
    pub user: Option<String>,
}

/// `POST /v1/chat/completions`.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatCompletionRequest {
    /// Served model name or LoRA adapter; the first served name when absent.
    pub model: Option<String>,
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Cap on generated tokens (preferred over `max_tokens`).
    pub max_completion_tokens: Option<i64>,
    /// Cap on generated tokens (legacy name).
    pub max_tokens: Option<i64>,
    /// Return log probabilities (accepted; `logprobs` is null in responses).
    pub logprobs: Option<bool>,
    /// Top log probabilities per token.
    pub top_logprobs: Option<i64>,
    /// Add the assistant prefix to the rendered prompt.
    pub add_generation_prompt: Option<bool>,
    /// Sampling and streaming fields.
    #[serde(flatten)]
    pub sampling: SamplingFields,
}

/// A completions prompt: text, texts, token ids, or lists of token ids.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    /// One text prompt.
    Text(String),
    /// Several text prompts.
    Texts(Vec<String>),
    /// One prompt as token ids.
    Tokens(Vec<i64>),
    /// Several prompts as token ids.
    TokenLists(Vec<Vec<i64>>),
}

/// `POST /v1/completions`.
#[derive(Debug, Clone, Deserialize)]
pub struct CompletionRequest {
    /// Served model name or LoRA adapter; the first served name when absent.
    pub model: Option<String>,
    /// The prompt(s).
    pub prompt: Prompt,
    /// Cap on generated tokens (vLLM default 16 for completions).
    pub max_tokens: Option<i64>,
    /// Number of log probabilities (accepted; `logprobs` is null in responses).
    pub logprobs: Option<i64>,
    /// Prepend the prompt to the output.
    #[serde(default)]
    pub echo: bool,
    /// Accepted and ignored.
    pub suffix: Option<String>,
    /// Sampling and streaming fields.
    #[serde(flatten)]
    pub sampling: SamplingFields,
}

/// Validated sampling limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckedSampling {
    /// Choices per prompt.
    pub n: u64,
    /// Minimum generated tokens.
    pub min_tokens: u64,
    /// Exact-length generation.
    pub ignore_eos: bool,
    /// Text seed.
    pub seed: Option<u64>,
}

impl SamplingFields {
    /// vLLM's `SamplingParams` range checks (ValueError → 400 `BadRequestError`).
    pub fn check(&self, max_tokens: Option<i64>) -> Result<CheckedSampling, ApiError> {
        let n = self.n.unwrap_or(1);
        if n < 1 {
            return Err(
                ApiError::bad_request(format!("n must be at least 1, got {n}.")).with_param("n"),
            );
        }
        if let Some(max) = max_tokens {
            if max < 1 {
                return Err(ApiError::bad_request(format!(
                    "max_tokens must be at least 1, got {max}."
                ))
                .with_param("max_tokens"));
            }
        }
        let min_tokens = self.min_tokens.unwrap_or(0);
        if min_tokens < 0 {
            return Err(ApiError::bad_request(format!(
                "min_tokens must be greater than or equal to 0, got {min_tokens}."
            ))
            .with_param("min_tokens"));
        }
        if let Some(max) = max_tokens {
            if min_tokens > max {
                return Err(ApiError::bad_request(format!(
                    "min_tokens must be less than or equal to max_tokens={max}, got {min_tokens}."
                ))
                .with_param("min_tokens"));
            }
        }
        if let Some(t) = self.temperature {
            if t < 0.0 || !t.is_finite() {
                return Err(ApiError::bad_request(format!(
                    "temperature must be non-negative, got {t}."
                ))
                .with_param("temperature"));
            }
        }
        if let Some(p) = self.top_p {
            if !(p > 0.0 && p <= 1.0) {
                return Err(
                    ApiError::bad_request(format!("top_p must be in (0, 1], got {p}."))
                        .with_param("top_p"),
                );
            }
        }
        if let Some(k) = self.top_k {
            if k < -1 {
                return Err(ApiError::bad_request(format!(
                    "top_k must be -1 (disable), 0 (disable), or at least 1, got {k}."
                ))
                .with_param("top_k"));
            }
        }
        if let Some(p) = self.min_p {
            if !(0.0..=1.0).contains(&p) {
                return Err(
                    ApiError::bad_request(format!("min_p must be in [0, 1], got {p}."))
                        .with_param("min_p"),
                );
            }
        }
        for (name, value) in [
            ("presence_penalty", self.presence_penalty),
            ("frequency_penalty", self.frequency_penalty),
        ] {
            if let Some(v) = value {
                if !(-2.0..=2.0).contains(&v) {
                    return Err(ApiError::bad_request(format!(
                        "{name} must be in [-2, 2], got {v}."
                    ))
                    .with_param(name));
                }
            }
        }
        if let Some(r) = self.repetition_penalty {
            if !(r > 0.0 && r.is_finite()) {
                return Err(ApiError::bad_request(format!(
                    "repetition_penalty must be greater than zero, got {r}."
                ))
                .with_param("repetition_penalty"));
            }
        }
        Ok(CheckedSampling {
            n: n as u64,
            min_tokens: min_tokens as u64,
            ignore_eos: self.ignore_eos.unwrap_or(false),
            // A negative seed is still a seed; reinterpret its bits.
            seed: self.seed.map(|s| s as u64),
        })
    }

    /// Whether the stream ends with a usage chunk, and whether every chunk carries usage.
    pub fn usage_options(&self) -> (bool, bool) {
        match &self.stream_options {
            None => (false, false),
            Some(o) => (o.include_usage.unwrap_or(true), o.continuous_usage_stats),
        }
    }
}

/// Rejects `logprobs`/`top_logprobs` above vLLM's `max_logprobs`.
pub fn check_logprobs(requested: Option<i64>, field: &str) -> Result<(), ApiError> {
    match requested {
        Some(n) if n < 0 => Err(ApiError::bad_request(format!(
            "`{field}` must be a positive value."
        ))
        .with_param(field)),
        Some(n) if n > MAX_LOGPROBS => Err(ApiError::bad_request(format!(
            "Requested sample logprobs of {n}, which is greater than max allowed: {MAX_LOGPROBS}"
        ))
        .with_param(field)),
        _ => Ok(()),
    }
}

/// `POST /tokenize`: completion form or chat form.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum TokenizeRequest {
    /// Chat messages, rendered with the chat template.
    Chat {
        /// Model to check.
        model: Option<String>,
        /// The conversation.
        messages: Vec<ChatMessage>,
        /// Add the assistant prefix.
        add_generation_prompt: Option<bool>,
        /// Also return each token's text.
        #[serde(default)]
        return_token_strs: bool,
    },
    /// A text prompt.
    Completion {
        /// Model to check.
        model: Option<String>,
        /// The text.
        prompt: String,
        /// Accepted (the tokenizer adds no BOS).
        add_special_tokens: Option<bool>,
        /// Also return each token's text.
        #[serde(default)]
        return_token_strs: bool,
    },
}

/// `POST /detokenize`.
#[derive(Debug, Clone, Deserialize)]
pub struct DetokenizeRequest {
    /// Model to check.
    pub model: Option<String>,
    /// Token ids.
    pub tokens: Vec<i64>,
}

/// `POST /v1/load_lora_adapter` and `/v1/unload_lora_adapter`.
#[derive(Debug, Clone, Deserialize)]
pub struct LoraAdapterRequest {
    /// Adapter name (the `model` clients will send).
    pub lora_name: Option<String>,
    /// Adapter path (load only).
    pub lora_path: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_errors_name_the_field() {
        let err = parse_body::<ChatCompletionRequest>(br#"{"model":"m"}"#).expect_err("missing");
        assert_eq!(err.param.as_deref(), Some("body.messages"));
        assert_eq!(err.kind, "Bad Request");
        let err = parse_body::<ChatCompletionRequest>(br#"{"messages":[],"max_tokens":"ten"}"#)
            .expect_err("type");
        assert!(err.message.contains("max_tokens"), "{}", err.message);
        let err = parse_body::<ChatCompletionRequest>(br#"{"messages": ["#).expect_err("syntax");
        assert!(err.message.contains("JSON decode error"), "{}", err.message);
        assert_eq!(err.status.as_u16(), 400);
    }

    #[test]
    fn prompts_of_every_shape_parse() {
        for body in [
            r#"{"prompt":"hi"}"#,
            r#"{"prompt":["a","b"]}"#,
            r#"{"prompt":[1,2,3]}"#,
            r#"{"prompt":[[1,2],[3]]}"#,
        ] {
            parse_body::<CompletionRequest>(body.as_bytes()).expect(body);
        }
    }

    #[test]
    fn sampling_ranges_follow_vllm() {
        let bad = [
            (r#"{"n":0}"#, "n must be at least 1"),
            (r#"{"temperature":-1}"#, "temperature must be non-negative"),
            (r#"{"top_p":0}"#, "top_p must be in (0, 1]"),
            (r#"{"top_k":-5}"#, "top_k"),
            (
                r#"{"presence_penalty":3}"#,
                "presence_penalty must be in [-2, 2]",
            ),
            (r#"{"repetition_penalty":0}"#, "repetition_penalty"),
            (r#"{"min_tokens":-1}"#, "min_tokens"),
        ];
        for (body, expected) in bad {
            let fields: SamplingFields = serde_json::from_str(body).expect("parses");
            let err = fields.check(None).expect_err(body);
            assert!(err.message.contains(expected), "{body}: {}", err.message);
            assert_eq!(err.kind, "BadRequestError");
        }
        let fields: SamplingFields = serde_json::from_str(r#"{"min_tokens":20}"#).expect("parses");
        assert!(fields.check(Some(10)).is_err());
        assert!(fields.check(Some(0)).is_err());
        assert_eq!(fields.check(Some(30)).expect("ok").min_tokens, 20);
    }
}
