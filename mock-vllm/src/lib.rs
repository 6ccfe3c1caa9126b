//! A GPU-free vLLM: a simulated continuous-batching engine behind vLLM's OpenAI-compatible HTTP API and its
//! Prometheus metrics, calibrated to vLLM on a V100, for validating autoscalers and gateways without GPUs.
//!
//! # Layout
//! - [`config`]: `EngineArgs`, the `vllm serve` command line (shared with the e2e node agent), and its validation.
//! - [`profiles`]: GPU and model profiles; `num_gpu_blocks` and the step-time coefficients derive from them.
//! - [`engine`]: the engine task and its handle; [`engine::scheduler`] (continuous batching, preemption),
//!   [`engine::kv_cache`] (paged blocks), [`engine::timing`] (step time), [`engine::request`].
//! - [`tokenizer`]: real BPE token counts, chat rendering, pseudo-text.
//! - [`metrics`]: the `vllm:*` metric set and its exposition.
//! - [`faults`]: run-time fault injection for harness tests.
//! - [`api`]: the HTTP routes; [`server`]: cold start, serving and shutdown.

pub mod api;
pub mod config;
pub mod engine;
pub mod faults;
pub mod metrics;
pub mod profiles;
pub mod server;
pub mod tokenizer;

pub use config::{EngineArgs, EngineConfig};
pub use server::{run, spawn, start, RunningServer, ServerError};
pub use tokenizer::Tokenizer;
