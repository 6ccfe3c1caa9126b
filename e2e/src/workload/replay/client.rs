//! One request, start to finish: the HTTP client and headers built once per replay, the JSON body AIBrix's
//! client would send, and the exchange itself (send, read, timeout, hard cancellation) turned into a
//! [`RequestRecord`].
//!
//! Both drivers hold one [`Client`] behind an `Arc` and call [`Client::dispatch`] from their request tasks; it
//! takes the dispatch instant and counts the send, so open and closed loop measure requests the same way. The
//! reqwest client keeps every idle connection (a replay reuses them at its own rate) and sets `TCP_NODELAY`, so
//! small SSE writes are not held back by Nagle's algorithm.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::config::{ApiKind, ReplayConfig, ReplayError};
use super::record::{signed_secs, RequestRecord, TimeBase};
use super::response::{read_body, read_stream, Outcome};
use crate::error_chain::error_chain;
use crate::workload::trace::TraceRequest;

/// A request ready to send: its body is serialised before its due time, off the send path.
pub(super) struct Prepared {
    id: u64,
    body: Vec<u8>,
    input: Value,
    session_id: Option<String>,
    prompt_length: Option<u64>,
}

/// What every request task shares: the HTTP client, where and how to send, the records' time base and the
/// count of requests sent so far.
pub(super) struct Client {
    http: reqwest::Client,
    pub(super) url: String,
    headers: HeaderMap,
    config: ReplayConfig,
    clock: TimeBase,
    sent: AtomicUsize,
}

impl Client {
    /// Checks `config` and builds the HTTP client; a header or client that cannot be built is an error here,
    /// before anything is sent.
    pub(super) fn new(config: &ReplayConfig) -> Result<Self, ReplayError> {
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
        let http = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(usize::MAX)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .connect_timeout(config.timeout)
            .build()
            .map_err(ReplayError::Client)?;
        Ok(Self {
            http,
            url,
            headers,
            config: config.clone(),
            clock: TimeBase::new(config.time_base),
            sent: AtomicUsize::new(0),
        })
    }

    pub(super) fn config(&self) -> &ReplayConfig {
        &self.config
    }

    /// Requests dispatched so far.
    pub(super) fn sent(&self) -> usize {
        self.sent.load(Ordering::Relaxed)
    }

    /// The body AIBrix's client sends for `request`: one user message (or a prompt), `temperature: 0`, the
    /// output token limit as `max_tokens`, or the workload's output length as `max_tokens = min_tokens` when
    /// [`ReplayConfig::send_output_length`] is set.
    pub(super) fn prepare(&self, id: u64, request: &TraceRequest) -> Prepared {
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

    /// Sends `prepared` now and records the outcome; `hard` cancels it (recorded as `Cancelled`). With `due`
    /// (open loop) the record also says when the request was due and how late it went out.
    pub(super) async fn dispatch(
        &self,
        prepared: Prepared,
        due: Option<Instant>,
        hard: &CancellationToken,
    ) -> RequestRecord {
        let dispatch = Instant::now();
        self.sent.fetch_add(1, Ordering::Relaxed);
        let mut record = self.exchange(prepared, dispatch, hard).await;
        if let Some(due) = due {
            record.scheduled_time = Some(self.clock.seconds(due));
            record.send_error_ms = Some(signed_secs(dispatch, due) * 1e3);
        }
        record
    }

    async fn exchange(
        &self,
        prepared: Prepared,
        dispatch: Instant,
        hard: &CancellationToken,
    ) -> RequestRecord {
        let mut record = self.clock.record(prepared.id, dispatch);
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
        record.finish(outcome, dispatch, end, prepared.prompt_length, &self.clock);
        record
    }

    async fn send(&self, body: Vec<u8>) -> Outcome {
        let response = match self
            .http
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

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    #[test]
    fn request_bodies_follow_aibrix() {
        let mut config = ReplayConfig::new("http://127.0.0.1:1/", "m");
        assert_eq!(
            config.url().expect("url"),
            "http://127.0.0.1:1/v1/chat/completions"
        );
        config.output_token_limit = Some(100);
        let shared = Client::new(&config).expect("client");
        let request = TraceRequest {
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
        let shared = Client::new(&config).expect("client");
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
        assert!(Client::new(&bad).is_err());
    }
}
