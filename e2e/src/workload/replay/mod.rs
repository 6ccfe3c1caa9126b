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
//!
//! # Layout
//! - `config`: [`ReplayConfig`], [`ClosedLoopConfig`], [`ApiKind`], [`Dispatcher`], [`ReplayError`] and
//!   [`ReplayProgress`].
//! - `record`: [`RequestRecord`] and how an exchange's outcome becomes its latency, TTFT and TPOT.
//! - `client`: one request: headers and body, send, timeout and hard cancellation.
//! - `response`: reading the SSE stream or JSON body into an outcome.
//! - `collector`: gathering records, progress, and the soft/hard cancellation both drivers share.
//! - `open_loop`: [`replay`], the timed dispatcher and its waker thread.
//! - `closed_loop`: [`replay_closed_loop`], the fixed-concurrency workers.

mod client;
mod closed_loop;
mod collector;
mod config;
mod open_loop;
mod record;
mod response;

pub use closed_loop::replay_closed_loop;
pub use config::{
    ApiKind, ClosedLoopConfig, Dispatcher, ReplayConfig, ReplayError, ReplayProgress,
};
pub use open_loop::replay;
pub use record::RequestRecord;
