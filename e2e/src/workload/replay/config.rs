//! What a replay is told and what it reports back: the endpoint kind, how open-loop sends are timed, the
//! per-request settings, the closed-loop shape, the errors that stop a replay before it starts, and the progress
//! counters.
//!
//! Kept apart from the drivers so the CLI, the demo and the tests can build a [`ReplayConfig`] without reading
//! any HTTP code. [`ReplayConfig::check`] is the one place settings are validated; both drivers call it (through
//! the client) before sending anything.

use std::time::Duration;

use serde::{Deserialize, Serialize};

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

    /// Rejects settings no request could be sent with.
    pub(super) fn check(&self) -> Result<(), ReplayError> {
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
