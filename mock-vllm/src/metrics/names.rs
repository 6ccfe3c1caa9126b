//! The `vllm:*` family names, in one place: the engine registers under them and tests and scrapers look them up,
//! so a rename is one edit. Counters carry their `_total` suffix here, as vLLM's exposition prints them.
#![allow(missing_docs)]

pub const NUM_REQUESTS_RUNNING: &str = "vllm:num_requests_running";
pub const NUM_REQUESTS_WAITING: &str = "vllm:num_requests_waiting";
pub const NUM_REQUESTS_SWAPPED: &str = "vllm:num_requests_swapped";
pub const KV_CACHE_USAGE_PERC: &str = "vllm:kv_cache_usage_perc";
pub const GPU_CACHE_USAGE_PERC: &str = "vllm:gpu_cache_usage_perc";
pub const CPU_CACHE_USAGE_PERC: &str = "vllm:cpu_cache_usage_perc";
pub const AVG_PROMPT_THROUGHPUT: &str = "vllm:avg_prompt_throughput_toks_per_s";
pub const AVG_GENERATION_THROUGHPUT: &str = "vllm:avg_generation_throughput_toks_per_s";
pub const CACHE_CONFIG_INFO: &str = "vllm:cache_config_info";
pub const NUM_PREEMPTIONS: &str = "vllm:num_preemptions_total";
pub const PROMPT_TOKENS: &str = "vllm:prompt_tokens_total";
pub const GENERATION_TOKENS: &str = "vllm:generation_tokens_total";
pub const REQUEST_SUCCESS: &str = "vllm:request_success_total";
pub const PREFIX_CACHE_QUERIES: &str = "vllm:prefix_cache_queries_total";
pub const PREFIX_CACHE_HITS: &str = "vllm:prefix_cache_hits_total";
pub const ITERATION_TOKENS: &str = "vllm:iteration_tokens_total";
pub const REQUEST_PROMPT_TOKENS: &str = "vllm:request_prompt_tokens";
pub const REQUEST_GENERATION_TOKENS: &str = "vllm:request_generation_tokens";
pub const REQUEST_MAX_NUM_GENERATION_TOKENS: &str = "vllm:request_max_num_generation_tokens";
pub const REQUEST_PARAMS_N: &str = "vllm:request_params_n";
pub const REQUEST_PARAMS_MAX_TOKENS: &str = "vllm:request_params_max_tokens";
pub const TIME_TO_FIRST_TOKEN: &str = "vllm:time_to_first_token_seconds";
pub const INTER_TOKEN_LATENCY: &str = "vllm:inter_token_latency_seconds";
pub const TIME_PER_OUTPUT_TOKEN: &str = "vllm:time_per_output_token_seconds";
pub const REQUEST_TIME_PER_OUTPUT_TOKEN: &str = "vllm:request_time_per_output_token_seconds";
pub const E2E_REQUEST_LATENCY: &str = "vllm:e2e_request_latency_seconds";
pub const REQUEST_QUEUE_TIME: &str = "vllm:request_queue_time_seconds";
pub const REQUEST_INFERENCE_TIME: &str = "vllm:request_inference_time_seconds";
pub const REQUEST_PREFILL_TIME: &str = "vllm:request_prefill_time_seconds";
pub const REQUEST_DECODE_TIME: &str = "vllm:request_decode_time_seconds";
