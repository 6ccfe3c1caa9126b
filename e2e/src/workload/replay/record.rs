//! The client's output row ([`RequestRecord`], AIBrix's client format plus the harness's timing fields) and how
//! a finished exchange turns into one: latency, TTFT, TPOT and throughput are derived here, against one time base.
//!
//! Keeping the derivations next to the row means the measurement contract in the [module doc](super) has a
//! single implementation, whichever driver (open or closed loop) sent the request.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;

use super::response::Outcome;

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

    /// Fills in the outcome of the exchange dispatched at `dispatch` and given up on (or finished) at `end`.
    ///
    /// A success takes its end from the end of the stream (or body) when there is one; `prompt_length` (the
    /// workload's) stands in when the server reports no prompt tokens.
    pub(super) fn finish(
        &mut self,
        outcome: Outcome,
        dispatch: Instant,
        end: Instant,
        prompt_length: Option<u64>,
        clock: &TimeBase,
    ) {
        self.end_time = clock.seconds(end);
        self.latency = (end - dispatch).as_secs_f64();
        self.target_pod = outcome.target_pod;
        self.target_request_id = outcome.target_request_id;
        match outcome.result {
            Ok(done) => {
                self.status = "success".into();
                self.status_code = Some(done.status);
                self.output = done.output;
                self.prompt_tokens = done.prompt_tokens.or(prompt_length).unwrap_or_default();
                self.output_tokens = done.completion_tokens;
                self.total_tokens = self.prompt_tokens + self.output_tokens;
                if self.latency > 0.0 {
                    self.throughput = self.output_tokens as f64 / self.latency;
                }
                if let Some(first) = done.first {
                    self.ttft = Some((first - dispatch).as_secs_f64());
                    if self.output_tokens > 0 {
                        let end_of_stream = done.end.unwrap_or(end);
                        self.tpot = Some(
                            end_of_stream.saturating_duration_since(first).as_secs_f64()
                                / self.output_tokens as f64,
                        );
                    }
                }
                if let Some(end_of_stream) = done.end {
                    self.end_time = clock.seconds(end_of_stream);
                    self.latency = (end_of_stream - dispatch).as_secs_f64();
                }
            }
            Err(failure) => {
                self.status_code = failure.status;
                self.error_type = Some(failure.kind.into());
                self.error_message = Some(failure.message);
            }
        }
    }
}

/// The zero of the records' times: a monotonic instant (shareable with an in-process observer) and the same
/// instant on the wall clock, for `start_unix`.
pub(super) struct TimeBase {
    base: Instant,
    base_unix: f64,
}

impl TimeBase {
    /// `time_base`, or now when `None`.
    pub(super) fn new(time_base: Option<std::time::Instant>) -> Self {
        let now = Instant::now();
        let base = time_base.map_or(now, Instant::from_std);
        let unix_now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let base_unix = unix_now - now.saturating_duration_since(base).as_secs_f64()
            + base.saturating_duration_since(now).as_secs_f64();
        Self { base, base_unix }
    }

    /// Seconds since the time base (negative before it).
    pub(super) fn seconds(&self, t: Instant) -> f64 {
        signed_secs(t, self.base)
    }

    /// An empty error row for request `id` dispatched at `dispatch`.
    pub(super) fn record(&self, id: u64, dispatch: Instant) -> RequestRecord {
        let start_time = self.seconds(dispatch);
        RequestRecord::new(id, start_time, self.base_unix + start_time)
    }
}

/// `later − earlier` in seconds, negative when `later` is in fact earlier (`Instant` subtraction saturates).
pub(super) fn signed_secs(later: Instant, earlier: Instant) -> f64 {
    if later >= earlier {
        (later - earlier).as_secs_f64()
    } else {
        -(earlier - later).as_secs_f64()
    }
}
