//! Reading one response: an SSE stream (timing the first content chunk and the end of the stream, collecting
//! the text and the usage chunk) or a JSON body, and the [`Outcome`] either becomes.
//!
//! This is where AIBrix's streaming clock is read off the wire: `first` is the arrival of the first chunk whose
//! content (or `reasoning_content`, or completions `text`) is present and not null, so vLLM's role chunk with
//! `content: ""` counts. Every way a response can go wrong here (an error frame, malformed data, a stream cut
//! short, an unreadable body) becomes a [`Failure`] with an error class, never a panic.

use serde_json::Value;
use tokio::time::Instant;

use super::config::ApiKind;
use crate::error_chain::error_chain;

/// A finished exchange.
pub(super) struct Completed {
    pub(super) status: u16,
    pub(super) output: String,
    pub(super) prompt_tokens: Option<u64>,
    pub(super) completion_tokens: u64,
    /// The first content chunk's arrival (streaming only).
    pub(super) first: Option<Instant>,
    /// When the stream or body had been read.
    pub(super) end: Option<Instant>,
}

/// A failed exchange: its HTTP status when a complete response arrived, the error class and details.
pub(super) struct Failure {
    pub(super) status: Option<u16>,
    pub(super) kind: &'static str,
    pub(super) message: String,
}

/// One exchange's result plus the routing headers (AIBrix's gateway), which failures can carry too.
pub(super) struct Outcome {
    pub(super) result: Result<Completed, Failure>,
    pub(super) target_pod: Option<String>,
    pub(super) target_request_id: Option<String>,
}

impl Outcome {
    pub(super) fn failed(status: Option<u16>, kind: &'static str, message: String) -> Self {
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

    /// A failure after a success status: the response was cut short or could not be read.
    fn after(status: u16, kind: &'static str, message: impl std::fmt::Display) -> Self {
        Self::failed(None, kind, format!("after HTTP {status}: {message}"))
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

/// Reads an SSE response to `data: [DONE]`.
pub(super) async fn read_stream(
    mut response: reqwest::Response,
    api: ApiKind,
    status: u16,
) -> Outcome {
    let mut state = SseState::default();
    loop {
        match response.chunk().await {
            Ok(Some(bytes)) => {
                if let Err((kind, message)) = state.feed(&bytes, Instant::now(), api) {
                    return Outcome::after(status, kind, message);
                }
                if state.done {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => return Outcome::after(status, "StreamError", error_chain(&e)),
        }
    }
    let end = Instant::now();
    if !state.done {
        return Outcome::after(
            status,
            "StreamError",
            "the stream ended without data: [DONE]",
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

/// Reads a non-streaming JSON response.
pub(super) async fn read_body(response: reqwest::Response, api: ApiKind, status: u16) -> Outcome {
    let bytes = match response.bytes().await {
        Ok(b) => b,
        Err(e) => return Outcome::after(status, "StreamError", error_chain(&e)),
    };
    let end = Instant::now();
    let body: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => return Outcome::after(status, "StreamError", format!("body is not JSON: {e}")),
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
}
