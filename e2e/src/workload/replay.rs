//! The replay client: sends a workload to an OpenAI-compatible server, open loop or closed loop, and records
//! one row per request in AIBrix's client format (`workloads.md` §6).
//!
//! This module owns request timing, so its clock rules are the contract:
//! - **Open loop** ([`replay`]): request i is due at `trace_start + floor(timestamp_i × time_scale)` ms, whatever
//!   the server does; a slow server never delays later sends. Due times hang off one monotonic base instant.
//!   Request tasks are spawned a short lookahead before their due time (memory holds only what is in flight or
//!   about to be) and wait for their tokio timer (`sleep_until`; tokio's wheel ticks every 1 ms, so ~1 ms late)
//!   or, with the default [`Dispatcher::Hybrid`], a nudge from a waker thread that `nanosleep`s to each due time
//!   (~0.1–0.2 ms late), whichever comes first; the timer covers for the thread when the CPUs are
//!   oversubscribed. `send_error_ms` = actual dispatch instant (when the request task runs) − scheduled instant.
//! - **Closed loop** ([`replay_closed_loop`]): `concurrency` workers each send the next request of the workload
//!   (cycling; timestamps ignored) as soon as their previous one finished, until the duration is over.
//! - **Measurement** (AIBrix's streaming clock): `dispatch` is taken just before the request is sent; `first` is
//!   the arrival of the first chunk whose `delta.content` (chat; or `reasoning_content`) or `text` (completions)
//!   is present and not null — as AIBrix does, so vLLM's role chunk (`content: ""`, sent when the first token is
//!   ready) counts; `end` is the end of the stream. `latency = end − dispatch`, `ttft = first − dispatch`,
//!   `tpot = (end − first) / completion_tokens` (AIBrix's definition; [`super::summary`] also reports vLLM's
//!   `/ (tokens − 1)`), `throughput = completion_tokens / latency`. Token counts come from the usage chunk
//!   (`stream_options.include_usage` is always requested). Non-streaming rows have `ttft = tpot = null`.
//! - **Times in records** are seconds since [`ReplayConfig::time_base`] (default: when the replay starts), a
//!   monotonic clock that an in-process observer can share; `start_unix` is the wall-clock start for humans.
//! - **Failures never abort the run**: a connection error, an HTTP error status (body kept as the message), an
//!   error frame inside a stream, a malformed or truncated stream, or the per-request timeout each become an
//!   error row. `status_code` is the HTTP status for completed exchanges and error statuses, and `null` when no
//!   complete response arrived (so `status_code == 200` ⇔ success, as AIBrix's plots assume).
//! - **Cancellation** (Ctrl-C): no new request is sent; requests in flight get [`ReplayConfig::cancel_grace`]
//!   to finish, then are recorded as `Cancelled`; requests never sent write nothing (as AIBrix's
//!   `--duration-limit`). Everything collected is returned.
//!
//! Requests follow AIBrix's client: a chat request with one user message (or a completions prompt),
//! `temperature: 0`, and `max_tokens` from `--output-token-limit`; with [`ReplayConfig::send_output_length`] a
//! positive workload output length becomes `max_tokens = min_tokens = min(length, limit)` (AIBrix after v0.7.0).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::trace::{ScheduledRequest, Trace};

/// Which OpenAI endpoint to call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiKind {
    /// `POST /v1/chat/completions` with one user message (AIBrix's client).
    #[default]
    Chat,
    /// `POST /v1/completions` with the prompt as text.
    Completions,
}

impl ApiKind {
    fn path(self) -> &'static str {
        match self {
            Self::Chat => "/v1/chat/completions",
            Self::Completions => "/v1/completions",
        }
    }
}

/// How the open-loop client waits for each request's due time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dispatcher {
    /// Tokio timers plus a waker thread: each request task waits for its tokio timer *or* a nudge from a
    /// dedicated thread that sleeps (`nanosleep`) to each due time, whichever comes first. On a quiet machine the
    /// thread wins (~0.1–0.2 ms late); when the CPUs are oversubscribed and the thread is not scheduled in time,
    /// the timer still fires (~1 ms late).
    #[default]
    Hybrid,
    /// Tokio timers only: tokio's 1 ms timer wheel makes sends ~1 ms late on average.
    Tokio,
}

/// How to send requests.
#[derive(Debug, Clone)]
pub struct ReplayConfig {
    /// Server base URL (`http://127.0.0.1:8000`), or a full `/v1/...completions` URL.
    pub endpoint: String,
    /// The `model` of every request.
    pub model: String,
    /// Sent as `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
    /// Chat or completions.
    pub api: ApiKind,
    /// Stream responses (SSE); needed for TTFT and TPOT.
    pub stream: bool,
    /// Per-request limit on the whole exchange (connect, headers, body).
    pub timeout: Duration,
    /// Multiplies workload timestamps (0.5 replays twice as fast).
    pub time_scale: f64,
    /// Caps `max_tokens`.
    pub output_token_limit: Option<u64>,
    /// Send the workload's output length as `max_tokens` = `min_tokens`.
    pub send_output_length: bool,
    /// After cancellation, how long requests in flight may still finish.
    pub cancel_grace: Duration,
    /// Extra headers on every request (e.g. AIBrix's `routing-strategy`).
    pub headers: Vec<(String, String)>,
    /// Zero of the records' `start_time`/`end_time`/`scheduled_time`; `None` for the replay's start.
    pub time_base: Option<std::time::Instant>,
    /// Open loop: how send times are kept.
    pub dispatcher: Dispatcher,
    /// Open loop: request tasks are spawned this long before their due time.
    pub lookahead: Duration,
    /// Open loop: the first request is due this long after the replay starts (lets its task be ready).
    pub start_delay: Duration,
}

impl ReplayConfig {
    /// Streaming chat against `endpoint` with AIBrix's defaults (60 s timeout, time scale 1, no token limit).
    pub fn new(endpoint: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            model: model.into(),
            api_key: None,
            api: ApiKind::Chat,
            stream: true,
            timeout: Duration::from_secs(60),
            time_scale: 1.0,
            output_token_limit: None,
            send_output_length: false,
            cancel_grace: Duration::from_secs(5),
            headers: Vec::new(),
            time_base: None,
            dispatcher: Dispatcher::default(),
            lookahead: Duration::from_millis(500),
            start_delay: Duration::from_millis(20),
        }
    }

    /// The URL requests go to.
    pub fn url(&self) -> Result<String, ReplayError> {
        let endpoint = self.endpoint.trim();
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(ReplayError::Config(format!(
                "endpoint {endpoint:?} must start with http:// or https:// (for example http://127.0.0.1:8000)"
            )));
        }
        if endpoint.ends_with("/completions") {
            return Ok(endpoint.to_string());
        }
        Ok(format!(
            "{}{}",
            endpoint.trim_end_matches('/'),
            self.api.path()
        ))
    }

    fn check(&self) -> Result<(), ReplayError> {
        self.url()?;
        if !(self.time_scale >= 0.0 && self.time_scale.is_finite()) {
            return Err(ReplayError::Config(format!(
                "time scale must be a finite number >= 0, got {}",
                self.time_scale
            )));
        }
        if self.timeout.is_zero() {
            return Err(ReplayError::Config(
                "the request timeout must be > 0".into(),
            ));
        }
        if self.model.trim().is_empty() {
            return Err(ReplayError::Config("the model name is empty".into()));
        }
        Ok(())
    }
}

/// Closed-loop settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClosedLoopConfig {
    /// Requests in flight at all times.
    pub concurrency: usize,
    /// No request is started after this much time.
    pub duration: Duration,
}

/// Why a replay could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// Settings that cannot work.
    #[error("invalid replay settings: {0}")]
    Config(String),
    /// The workload has no requests.
    #[error("the workload has no requests")]
    EmptyWorkload,
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client")]
    Client(#[source] reqwest::Error),
}

/// Counters passed to the progress callback.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayProgress {
    /// Requests in the workload (open loop) or `None` (closed loop).
    pub total: Option<usize>,
    /// Requests dispatched so far.
    pub sent: usize,
    /// Requests finished (recorded) so far.
    pub completed: usize,
    /// Of those, failures.
    pub failed: usize,
    /// Time since the replay started.
    pub elapsed: Duration,
}

/// One request's outcome: AIBrix's client row plus the harness's timing fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Position in the workload (open loop) or send order (closed loop).
    pub request_id: u64,
    /// `"success"` or `"error"`.
    pub status: String,
    /// HTTP status of a complete response or an error response; `null` when none arrived.
    pub status_code: Option<u16>,
    /// What was sent: the chat messages, or the completions prompt.
    pub input: Value,
    /// Generated text.
    pub output: String,
    /// Prompt tokens (server usage; 0 on error).
    pub prompt_tokens: u64,
    /// Completion tokens (server usage; 0 on error).
    pub output_tokens: u64,
    /// Sum of the two.
    pub total_tokens: u64,
    /// End − dispatch, seconds.
    pub latency: f64,
    /// Output tokens per second of latency.
    pub throughput: f64,
    /// Dispatch, seconds since the time base.
    pub start_time: f64,
    /// End (or error), seconds since the time base.
    pub end_time: f64,
    /// Dispatch, Unix seconds.
    pub start_unix: f64,
    /// Time to first token, seconds (streaming successes).
    pub ttft: Option<f64>,
    /// (End − first) / output tokens, seconds (streaming successes).
    pub tpot: Option<f64>,
    /// When the request was due, seconds since the time base (open loop).
    pub scheduled_time: Option<f64>,
    /// Dispatch − due, milliseconds (open loop).
    pub send_error_ms: Option<f64>,
    /// Error class: `HttpStatus`, `ConnectError`, `RequestError`, `StreamError`, `ServerError`, `Timeout`,
    /// `Cancelled`.
    pub error_type: Option<String>,
    /// Error details (an HTTP error's body).
    pub error_message: Option<String>,
    /// The `target-pod` response header (AIBrix gateway).
    pub target_pod: Option<String>,
    /// The `request-id` (or `x-request-id`) response header.
    pub target_request_id: Option<String>,
    /// The workload's session id.
    pub session_id: Option<String>,
}

impl RequestRecord {
    /// An empty error row for request `id` dispatched at `start_time` (seconds since the base).
    pub fn new(request_id: u64, start_time: f64, start_unix: f64) -> Self {
        Self {
            request_id,
            status: "error".into(),
            status_code: None,
            input: Value::Null,
            output: String::new(),
            prompt_tokens: 0,
            output_tokens: 0,
            total_tokens: 0,
            latency: 0.0,
            throughput: 0.0,
            start_time,
            end_time: start_time,
            start_unix,
            ttft: None,
            tpot: None,
            scheduled_time: None,
            send_error_ms: None,
            error_type: None,
            error_message: None,
            target_pod: None,
            target_request_id: None,
            session_id: None,
        }
    }

    /// True for a successful request.
    pub fn is_success(&self) -> bool {
        self.status == "success"
    }
}

/// A request ready to send.
struct Prepared {
    id: u64,
    body: Vec<u8>,
    input: Value,
    session_id: Option<String>,
    prompt_length: Option<u64>,
}

/// What every request task shares.
struct Shared {
    client: reqwest::Client,
    url: String,
    headers: HeaderMap,
    config: ReplayConfig,
    base: Instant,
    base_unix: f64,
    sent: AtomicUsize,
}

impl Shared {
    fn new(config: &ReplayConfig) -> Result<Self, ReplayError> {
        config.check()?;
        let url = config.url()?;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(key) = &config.api_key {
            let value = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
                ReplayError::Config("the API key is not a valid header value".into())
            })?;
            headers.insert(AUTHORIZATION, value);
        }
        for (name, value) in &config.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| ReplayError::Config(format!("{name:?} is not a header name")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| ReplayError::Config(format!("{value:?} is not a header value")))?;
            headers.insert(name, value);
        }
        let client = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(usize::MAX)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .connect_timeout(config.timeout)
            .build()
            .map_err(ReplayError::Client)?;
        let now = Instant::now();
        let base = config.time_base.map_or(now, Instant::from_std);
        let unix_now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let base_unix = unix_now - now.saturating_duration_since(base).as_secs_f64()
            + base.saturating_duration_since(now).as_secs_f64();
        Ok(Self {
            client,
            url,
            headers,
            config: config.clone(),
            base,
            base_unix,
            sent: AtomicUsize::new(0),
        })
    }

    /// Seconds since the time base (negative before it).
    fn seconds(&self, t: Instant) -> f64 {
        if t >= self.base {
            (t - self.base).as_secs_f64()
        } else {
            -(self.base - t).as_secs_f64()
        }
    }

    fn prepare(&self, id: u64, request: &super::trace::TraceRequest) -> Prepared {
        let config = &self.config;
        let forced = request
            .output_length
            .filter(|&n| config.send_output_length && n > 0)
            .map(|n| config.output_token_limit.map_or(n, |limit| n.min(limit)));
        let input = match config.api {
            ApiKind::Chat => json!([{"role": "user", "content": request.prompt}]),
            ApiKind::Completions => Value::String(request.prompt.clone()),
        };
        let mut body = json!({
            "model": config.model,
            "temperature": 0,
            "stream": config.stream,
        });
        match config.api {
            ApiKind::Chat => body["messages"] = input.clone(),
            ApiKind::Completions => body["prompt"] = input.clone(),
        }
        if config.stream {
            body["stream_options"] = json!({"include_usage": true});
        }
        if let Some(n) = forced {
            body["max_tokens"] = json!(n);
            body["min_tokens"] = json!(n);
        } else if let Some(limit) = config.output_token_limit {
            body["max_tokens"] = json!(limit);
        }
        Prepared {
            id,
            body: body.to_string().into_bytes(),
            input,
            session_id: request.session_id.clone(),
            prompt_length: request.prompt_length,
        }
    }

    /// Sends one request and records the outcome; `hard` cancels it (recorded as `Cancelled`).
    async fn exchange(
        &self,
        prepared: Prepared,
        dispatch: Instant,
        hard: &CancellationToken,
    ) -> RequestRecord {
        let start_time = self.seconds(dispatch);
        let mut record = RequestRecord::new(prepared.id, start_time, self.base_unix + start_time);
        record.input = prepared.input;
        record.session_id = prepared.session_id;
        let body = prepared.body;
        let outcome = tokio::select! {
            outcome = tokio::time::timeout(self.config.timeout, self.send(body)) => match outcome {
                Ok(outcome) => outcome,
                Err(_) => Outcome::failed(
                    None,
                    "Timeout",
                    format!("no complete response within {:.3} s", self.config.timeout.as_secs_f64()),
                ),
            },
            _ = hard.cancelled() => Outcome::failed(
                None,
                "Cancelled",
                "cancelled by the client before the response completed".into(),
            ),
        };
        let end = Instant::now();
        record.end_time = self.seconds(end);
        record.latency = (end - dispatch).as_secs_f64();
        record.target_pod = outcome.target_pod;
        record.target_request_id = outcome.target_request_id;
        match outcome.result {
            Ok(done) => {
                record.status = "success".into();
                record.status_code = Some(done.status);
                record.output = done.output;
                record.prompt_tokens = done
                    .prompt_tokens
                    .or(prepared.prompt_length)
                    .unwrap_or_default();
                record.output_tokens = done.completion_tokens;
                record.total_tokens = record.prompt_tokens + record.output_tokens;
                if record.latency > 0.0 {
                    record.throughput = record.output_tokens as f64 / record.latency;
                }
                if let Some(first) = done.first {
                    record.ttft = Some((first - dispatch).as_secs_f64());
                    if record.output_tokens > 0 {
                        let end_of_stream = done.end.unwrap_or(end);
                        record.tpot = Some(
                            end_of_stream.saturating_duration_since(first).as_secs_f64()
                                / record.output_tokens as f64,
                        );
                    }
                }
                if let Some(end_of_stream) = done.end {
                    record.end_time = self.seconds(end_of_stream);
                    record.latency = (end_of_stream - dispatch).as_secs_f64();
                }
            }
            Err(failure) => {
                record.status_code = failure.status;
                record.error_type = Some(failure.kind.into());
                record.error_message = Some(failure.message);
            }
        }
        record
    }

    async fn send(&self, body: Vec<u8>) -> Outcome {
        let response = match self
            .client
            .post(&self.url)
            .headers(self.headers.clone())
            .body(body)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => {
                let kind = if e.is_connect() {
                    "ConnectError"
                } else if e.is_timeout() {
                    "Timeout"
                } else {
                    "RequestError"
                };
                return Outcome::failed(None, kind, error_chain(&e));
            }
        };
        let status = response.status();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let target_pod = header("target-pod");
        let target_request_id = header("request-id").or_else(|| header("x-request-id"));
        let mut outcome = if !status.is_success() {
            let text = match response.bytes().await {
                Ok(b) => String::from_utf8_lossy(&b[..b.len().min(4096)]).into_owned(),
                Err(e) => format!("(body unreadable: {})", error_chain(&e)),
            };
            Outcome::failed(
                Some(status.as_u16()),
                "HttpStatus",
                format!("HTTP {status}: {text}"),
            )
        } else if self.config.stream {
            read_stream(response, self.config.api, status.as_u16()).await
        } else {
            read_body(response, self.config.api, status.as_u16()).await
        };
        outcome.target_pod = target_pod;
        outcome.target_request_id = target_request_id;
        outcome
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

/// A finished exchange.
struct Completed {
    status: u16,
    output: String,
    prompt_tokens: Option<u64>,
    completion_tokens: u64,
    first: Option<Instant>,
    end: Option<Instant>,
}

struct Failure {
    status: Option<u16>,
    kind: &'static str,
    message: String,
}

struct Outcome {
    result: Result<Completed, Failure>,
    target_pod: Option<String>,
    target_request_id: Option<String>,
}

impl Outcome {
    fn failed(status: Option<u16>, kind: &'static str, message: String) -> Self {
        Self {
            result: Err(Failure {
                status,
                kind,
                message,
            }),
            target_pod: None,
            target_request_id: None,
        }
    }

    fn ok(done: Completed) -> Self {
        Self {
            result: Ok(done),
            target_pod: None,
            target_request_id: None,
        }
    }
}

/// The usage object's counts.
fn usage(value: &Value) -> Option<(Option<u64>, u64)> {
    let usage = value.get("usage")?.as_object()?;
    let completion = usage.get("completion_tokens")?.as_u64()?;
    Some((
        usage.get("prompt_tokens").and_then(Value::as_u64),
        completion,
    ))
}

/// The text of a chunk's first choice, if present and not null.
fn chunk_text(chunk: &Value, api: ApiKind) -> Option<&str> {
    let choice = chunk.get("choices")?.as_array()?.first()?;
    match api {
        ApiKind::Chat => {
            let delta = choice.get("delta")?;
            delta
                .get("content")
                .and_then(Value::as_str)
                .or_else(|| delta.get("reasoning_content").and_then(Value::as_str))
        }
        ApiKind::Completions => choice.get("text").and_then(Value::as_str),
    }
}

/// Parses SSE frames as they arrive.
#[derive(Default)]
struct SseState {
    buffer: Vec<u8>,
    output: String,
    first: Option<Instant>,
    usage: Option<(Option<u64>, u64)>,
    content_chunks: u64,
    done: bool,
}

impl SseState {
    /// Feeds received bytes; returns an error message for an error frame or a malformed one.
    fn feed(
        &mut self,
        bytes: &[u8],
        now: Instant,
        api: ApiKind,
    ) -> Result<(), (&'static str, String)> {
        self.buffer.extend_from_slice(bytes);
        while let Some(newline) = self.buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buffer.drain(..=newline).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            let Some(data) = line.strip_prefix("data:") else {
                continue; // blank separators, comments, `event:`/`id:` fields
            };
            let data = data.trim_start();
            if data == "[DONE]" {
                self.done = true;
                return Ok(());
            }
            let chunk: Value = serde_json::from_str(data).map_err(|e| {
                (
                    "StreamError",
                    format!("malformed SSE data ({e}): {}", truncate(data, 200)),
                )
            })?;
            if let Some(error) = chunk.get("error") {
                let message = error
                    .get("message")
                    .and_then(Value::as_str)
                    .map_or_else(|| error.to_string(), str::to_string);
                return Err((
                    "ServerError",
                    format!("error frame in the stream: {message}"),
                ));
            }
            if let Some(text) = chunk_text(&chunk, api) {
                if self.first.is_none() {
                    self.first = Some(now);
                }
                if !text.is_empty() {
                    self.content_chunks += 1;
                    self.output.push_str(text);
                }
            }
            if let Some(u) = usage(&chunk) {
                self.usage = Some(u);
            }
        }
        Ok(())
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

async fn read_stream(mut response: reqwest::Response, api: ApiKind, status: u16) -> Outcome {
    let mut state = SseState::default();
    loop {
        match response.chunk().await {
            Ok(Some(bytes)) => {
                if let Err((kind, message)) = state.feed(&bytes, Instant::now(), api) {
                    return Outcome::failed(None, kind, format!("after HTTP {status}: {message}"));
                }
                if state.done {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                return Outcome::failed(
                    None,
                    "StreamError",
                    format!("after HTTP {status}: {}", error_chain(&e)),
                )
            }
        }
    }
    let end = Instant::now();
    if !state.done {
        return Outcome::failed(
            None,
            "StreamError",
            format!("after HTTP {status}: the stream ended without data: [DONE]"),
        );
    }
    let (prompt_tokens, completion_tokens) = state.usage.unwrap_or((None, state.content_chunks));
    Outcome::ok(Completed {
        status,
        output: state.output,
        prompt_tokens,
        completion_tokens,
        first: state.first,
        end: Some(end),
    })
}

async fn read_body(response: reqwest::Response, api: ApiKind, status: u16) -> Outcome {
    let bytes = match response.bytes().await {
        Ok(b) => b,
        Err(e) => {
            return Outcome::failed(
                None,
                "StreamError",
                format!("after HTTP {status}: {}", error_chain(&e)),
            )
        }
    };
    let end = Instant::now();
    let body: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            return Outcome::failed(
                None,
                "StreamError",
                format!("after HTTP {status}: body is not JSON: {e}"),
            )
        }
    };
    let output = body
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .and_then(|c| match api {
            ApiKind::Chat => c.get("message").and_then(|m| m.get("content")),
            ApiKind::Completions => c.get("text"),
        })
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let (prompt_tokens, completion_tokens) = usage(&body).unwrap_or((None, 0));
    Outcome::ok(Completed {
        status,
        output,
        prompt_tokens,
        completion_tokens,
        first: None,
        end: Some(end),
    })
}

/// Replays `trace` open loop: each request is sent at its timestamp, whatever the server does.
///
/// Returns the records of every request that was sent, sorted by `request_id`. `progress` is called from this
/// future (not from the request tasks) whenever a request finishes and at least every 100 ms.
pub async fn replay(
    trace: &Trace,
    config: &ReplayConfig,
    cancel: CancellationToken,
    mut progress: impl FnMut(&ReplayProgress),
) -> Result<Vec<RequestRecord>, ReplayError> {
    let schedule: Vec<ScheduledRequest> = trace.scheduled();
    if schedule.is_empty() {
        return Err(ReplayError::EmptyWorkload);
    }
    let total = schedule.len();
    let shared = Arc::new(Shared::new(config)?);
    let started = Instant::now();
    let trace_start = started + config.start_delay;
    let time_scale = config.time_scale;
    let plan: Vec<(Instant, ScheduledRequest)> = schedule
        .into_iter()
        .map(|r| {
            let offset_ms = (r.timestamp_ms as f64 * time_scale).floor();
            (trace_start + Duration::from_secs_f64(offset_ms / 1000.0), r)
        })
        .collect();
    info!(
        requests = total,
        span_s = trace.span_ms() as f64 * time_scale / 1000.0,
        url = %shared.url,
        dispatcher = ?config.dispatcher,
        "open-loop replay"
    );
    let soft = cancel.child_token();
    let hard = CancellationToken::new();
    let (tx, mut rx) = mpsc::unbounded_channel::<RequestRecord>();
    let dispatch = Dispatch {
        shared: shared.clone(),
        soft: soft.clone(),
        hard: hard.clone(),
        tx,
    };
    let waker = match config.dispatcher {
        Dispatcher::Tokio => None,
        Dispatcher::Hybrid => {
            let (nudges, due_times) = std::sync::mpsc::channel();
            let soft = soft.clone();
            std::thread::Builder::new()
                .name("replay-waker".into())
                .spawn(move || waker_thread(&due_times, &soft))
                .map_err(|e| ReplayError::Config(format!("cannot start the waker thread: {e}")))?;
            Some(nudges)
        }
    };
    tokio::spawn(dispatch.run(plan, config.lookahead, waker));

    let mut records = Vec::with_capacity(total);
    let mut counters = ReplayProgress {
        total: Some(total),
        ..ReplayProgress::default()
    };
    let mut stopping: Option<Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = soft.cancelled(), if stopping.is_none() => {
                let sent = shared.sent.load(Ordering::Relaxed);
                warn!(sent, unsent = total - sent, "cancelled: no new requests; waiting for requests in flight");
                stopping = Some(Instant::now() + config.cancel_grace);
            }
            _ = async { if let Some(deadline) = stopping { sleep_until(deadline).await } }, if stopping.is_some() && !hard.is_cancelled() => {
                warn!(in_flight = shared.sent.load(Ordering::Relaxed) - records.len(), "grace period over: cancelling requests in flight");
                hard.cancel();
            }
            received = rx.recv() => match received {
                Some(record) => {
                    counters.completed += 1;
                    if !record.is_success() {
                        counters.failed += 1;
                        debug!(id = record.request_id, error = ?record.error_message, "request failed");
                    }
                    records.push(record);
                    counters.sent = shared.sent.load(Ordering::Relaxed);
                    counters.elapsed = started.elapsed();
                    progress(&counters);
                }
                // The dispatcher and every request task have finished.
                None => break,
            },
            _ = tick.tick() => {
                counters.sent = shared.sent.load(Ordering::Relaxed);
                counters.elapsed = started.elapsed();
                progress(&counters);
            }
        }
    }
    counters.sent = shared.sent.load(Ordering::Relaxed);
    counters.elapsed = started.elapsed();
    progress(&counters);
    records.sort_by_key(|r| r.request_id);
    Ok(records)
}

/// What an open-loop dispatcher needs; request tasks hold clones of `tx`, so the collector sees the channel
/// close once the dispatcher and every task are done.
struct Dispatch {
    shared: Arc<Shared>,
    soft: CancellationToken,
    hard: CancellationToken,
    tx: mpsc::UnboundedSender<RequestRecord>,
}

impl Dispatch {
    /// Sends `prepared` (due `at`), dispatched now; the record goes to the collector.
    async fn send(
        shared: Arc<Shared>,
        hard: CancellationToken,
        tx: mpsc::UnboundedSender<RequestRecord>,
        prepared: Prepared,
        at: Instant,
    ) {
        let dispatch = Instant::now();
        shared.sent.fetch_add(1, Ordering::Relaxed);
        let mut record = shared.exchange(prepared, dispatch, &hard).await;
        record.scheduled_time = Some(shared.seconds(at));
        record.send_error_ms = Some(signed_ms(dispatch, at));
        // The collector only goes away when the replay future is dropped; then nobody wants the record.
        let _ = tx.send(record);
    }

    /// Spawns each request task `lookahead` before its due time; the task waits for its tokio timer or, when
    /// `waker` is given, a nudge from the waker thread, whichever comes first.
    async fn run(
        self,
        plan: Vec<(Instant, ScheduledRequest)>,
        lookahead: Duration,
        waker: Option<std::sync::mpsc::Sender<Nudge>>,
    ) {
        for (at, request) in plan {
            let spawn_at = at.checked_sub(lookahead).unwrap_or(at);
            tokio::select! {
                biased;
                _ = self.soft.cancelled() => return,
                _ = sleep_until(spawn_at) => {}
            }
            let prepared = self.shared.prepare(request.index, &request.request);
            let nudged = match &waker {
                Some(waker) => {
                    let (tx, rx) = oneshot::channel();
                    // A closed waker (it only stops on cancellation) leaves the timer to do the work.
                    let _ = waker.send((at.into_std(), tx));
                    Some(rx)
                }
                None => None,
            };
            let (shared, soft, hard, tx) = (
                self.shared.clone(),
                self.soft.clone(),
                self.hard.clone(),
                self.tx.clone(),
            );
            tokio::spawn(async move {
                let nudge = async {
                    let woken = match nudged {
                        Some(rx) => rx.await.is_ok(),
                        None => false,
                    };
                    if !woken {
                        // No waker, or it went away without nudging: only the timer counts.
                        std::future::pending::<()>().await;
                    }
                };
                tokio::select! {
                    biased;
                    _ = soft.cancelled() => return,
                    _ = sleep_until(at) => {}
                    _ = nudge => {}
                }
                Self::send(shared, hard, tx, prepared, at).await;
            });
        }
    }
}

/// A due time and the request task to wake then.
type Nudge = (std::time::Instant, oneshot::Sender<()>);

/// The waker thread: sleeps until each due time (in slices, to notice a cancellation) and nudges the task.
/// Due times arrive in order; it ends when the dispatcher drops its sender or on cancellation.
fn waker_thread(due_times: &std::sync::mpsc::Receiver<Nudge>, soft: &CancellationToken) {
    const SLICE: Duration = Duration::from_millis(20);
    while let Ok((due, task)) = due_times.recv() {
        loop {
            if soft.is_cancelled() {
                return;
            }
            let now = std::time::Instant::now();
            if now >= due {
                break;
            }
            std::thread::sleep((due - now).min(SLICE));
        }
        // The task may have started on its timer already.
        let _ = task.send(());
    }
}

fn signed_ms(actual: Instant, scheduled: Instant) -> f64 {
    if actual >= scheduled {
        (actual - scheduled).as_secs_f64() * 1e3
    } else {
        -(scheduled - actual).as_secs_f64() * 1e3
    }
}

/// Replays closed loop: `concurrency` workers send the workload's requests (cycling, timestamps ignored) back to
/// back until `closed.duration` is over; requests in flight then finish (each bounded by the timeout).
///
/// Returns every record sorted by start time. Cancellation behaves as in [`replay`].
pub async fn replay_closed_loop(
    trace: &Trace,
    config: &ReplayConfig,
    closed: &ClosedLoopConfig,
    cancel: CancellationToken,
    mut progress: impl FnMut(&ReplayProgress),
) -> Result<Vec<RequestRecord>, ReplayError> {
    let schedule: Arc<Vec<ScheduledRequest>> = Arc::new(trace.scheduled());
    if schedule.is_empty() {
        return Err(ReplayError::EmptyWorkload);
    }
    if closed.concurrency == 0 {
        return Err(ReplayError::Config("concurrency must be at least 1".into()));
    }
    let shared = Arc::new(Shared::new(config)?);
    let started = Instant::now();
    let end = started + closed.duration;
    info!(concurrency = closed.concurrency, duration_s = closed.duration.as_secs_f64(), url = %shared.url, "closed-loop replay");
    let soft = cancel.child_token();
    let hard = CancellationToken::new();
    let next_id = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel::<RequestRecord>();
    let mut workers = JoinSet::new();
    for _ in 0..closed.concurrency {
        let (shared, schedule, next_id, tx) = (
            shared.clone(),
            schedule.clone(),
            next_id.clone(),
            tx.clone(),
        );
        let (soft, hard) = (soft.clone(), hard.clone());
        workers.spawn(async move {
            loop {
                if soft.is_cancelled() || Instant::now() >= end {
                    break;
                }
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                let request = &schedule[id % schedule.len()];
                let prepared = shared.prepare(id as u64, &request.request);
                let dispatch = Instant::now();
                shared.sent.fetch_add(1, Ordering::Relaxed);
                let record = shared.exchange(prepared, dispatch, &hard).await;
                if tx.send(record).is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    let mut records = Vec::new();
    let mut counters = ReplayProgress::default();
    let mut stopping: Option<Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = soft.cancelled(), if stopping.is_none() => {
                warn!("cancelled: no new requests; waiting for requests in flight");
                stopping = Some(Instant::now() + config.cancel_grace);
            }
            _ = async { if let Some(deadline) = stopping { sleep_until(deadline).await } }, if stopping.is_some() && !hard.is_cancelled() => {
                warn!("grace period over: cancelling requests in flight");
                hard.cancel();
            }
            received = rx.recv() => match received {
                Some(record) => {
                    counters.completed += 1;
                    if !record.is_success() {
                        counters.failed += 1;
                    }
                    records.push(record);
                    counters.sent = shared.sent.load(Ordering::Relaxed);
                    counters.elapsed = started.elapsed();
                    progress(&counters);
                }
                None => break,
            },
            _ = tick.tick() => {
                counters.sent = shared.sent.load(Ordering::Relaxed);
                counters.elapsed = started.elapsed();
                progress(&counters);
            }
        }
    }
    while let Some(joined) = workers.join_next().await {
        if let Err(e) = joined {
            warn!(error = %e, "a closed-loop worker failed");
        }
    }
    progress(&counters);
    records.sort_by(|a, b| a.start_time.total_cmp(&b.start_time));
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_parser_times_first_content_and_reads_usage() {
        let t0 = Instant::now();
        let mut s = SseState::default();
        let frames = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\" the\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\" model\"},\"finish_reason\":\"length\"}]}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2,\"total_tokens\":9}}\n\n",
            "data: [DONE]\n\n",
        );
        // Split at an awkward place: inside a JSON object.
        let cut = frames.find("\n\n").expect("a frame") + 12;
        let (a, b) = frames.split_at(cut);
        s.feed(a.as_bytes(), t0, ApiKind::Chat).expect("ok");
        assert_eq!(
            s.first,
            Some(t0),
            "the role chunk's empty content is not null"
        );
        let later = t0 + Duration::from_millis(5);
        s.feed(b.as_bytes(), later, ApiKind::Chat).expect("ok");
        assert_eq!(s.first, Some(t0));
        assert!(s.done);
        assert_eq!(s.output, " the model");
        assert_eq!(s.usage, Some((Some(7), 2)));
        assert_eq!(s.content_chunks, 2);
    }

    #[test]
    fn sse_parser_handles_completions_crlf_and_errors() {
        let t0 = Instant::now();
        let mut s = SseState::default();
        s.feed(
            b"data: {\"choices\":[{\"text\":\"x\"}],\"usage\":null}\r\n\r\n: comment\r\ndata: [DONE]\r\n\r\n",
            t0,
            ApiKind::Completions,
        )
        .expect("ok");
        assert!(s.done);
        assert_eq!(s.output, "x");
        assert_eq!(s.usage, None);
        // A role chunk without content (null) does not start the clock.
        let mut s = SseState::default();
        s.feed(
            b"data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":null}}]}\n\n",
            t0,
            ApiKind::Chat,
        )
        .expect("ok");
        assert_eq!(s.first, None);
        let mut s = SseState::default();
        let err = s
            .feed(
                b"data: {\"error\":{\"message\":\"boom\",\"code\":500}}\n\n",
                t0,
                ApiKind::Chat,
            )
            .expect_err("error frame");
        assert_eq!(err.0, "ServerError");
        assert!(err.1.contains("boom"));
        let mut s = SseState::default();
        assert_eq!(
            s.feed(b"data: {nope\n", t0, ApiKind::Chat)
                .expect_err("bad")
                .0,
            "StreamError"
        );
    }

    #[test]
    fn request_bodies_follow_aibrix() {
        let mut config = ReplayConfig::new("http://127.0.0.1:1/", "m");
        assert_eq!(
            config.url().expect("url"),
            "http://127.0.0.1:1/v1/chat/completions"
        );
        config.output_token_limit = Some(100);
        let shared = Shared::new(&config).expect("client");
        let request = super::super::trace::TraceRequest {
            prompt: "hi".into(),
            prompt_length: Some(1),
            output_length: Some(300),
            session_id: None,
        };
        let body: Value = serde_json::from_slice(&shared.prepare(0, &request).body).expect("json");
        assert_eq!(body["messages"], json!([{"role": "user", "content": "hi"}]));
        assert_eq!(body["max_tokens"], json!(100));
        assert!(
            body.get("min_tokens").is_none(),
            "the output length is not sent by default"
        );
        assert_eq!(body["stream_options"], json!({"include_usage": true}));
        assert_eq!(body["temperature"], json!(0));

        config.send_output_length = true;
        config.api = ApiKind::Completions;
        let shared = Shared::new(&config).expect("client");
        let body: Value = serde_json::from_slice(&shared.prepare(0, &request).body).expect("json");
        assert_eq!(body["prompt"], json!("hi"));
        assert_eq!(
            (body["max_tokens"].clone(), body["min_tokens"].clone()),
            (json!(100), json!(100))
        );
        assert_eq!(
            config.url().expect("url"),
            "http://127.0.0.1:1/v1/completions"
        );

        assert_eq!(
            ReplayConfig::new("https://gw/v1/completions", "m")
                .url()
                .expect("full URL"),
            "https://gw/v1/completions"
        );
        assert!(ReplayConfig::new("127.0.0.1:8000", "m").url().is_err());
        let mut bad = ReplayConfig::new("http://x", "m");
        bad.time_scale = -1.0;
        assert!(Shared::new(&bad).is_err());
    }
}
