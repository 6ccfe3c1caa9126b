//! vLLM's Prometheus metrics, fed from the engine's real state, and their text exposition.
//!
//! Names, types, HELP texts, labels and bucket bounds are vLLM V1's (`vllm/v1/metrics/loggers.py`), plus the legacy
//! V0 gauges that autoscalers still target (`vllm:gpu_cache_usage_perc`, `vllm:cpu_cache_usage_perc`,
//! `vllm:num_requests_swapped`, `vllm:avg_prompt_throughput_toks_per_s`,
//! `vllm:avg_generation_throughput_toks_per_s`). Every series carries `model_name` (the first served name) and
//! `engine="0"`; there is one series per gauge, so a scraper that takes a family's first sample (AIBrix) reads it.
//!
//! The metric objects come from the `prometheus` crate; the exposition is written here because vLLM's is Python
//! `prometheus_client`'s: values print as Python floats (`0.0`, `8.0`, `1e-05`), bucket bounds likewise
//! (`le="1.0"`), counters end in `_total`, no `_created` series. AIBrix's preStop hook greps for a literal `0.0`.
//!
//! # Layout
//! - [`names`] and [`buckets`]: the family names and bucket bounds, as vLLM defines them.
//! - `engine_metrics`: [`EngineMetrics`], the registered families and the engine events that move them.
//! - `exposition`: [`encode_python_style`], the text format in `prometheus_client`'s spelling.

pub mod buckets;
mod engine_metrics;
mod exposition;
pub mod names;

pub use engine_metrics::{EngineMetrics, FinishedRequestStats};
pub use exposition::{encode_python_style, python_float};
