//! The engine's metric objects: which `vllm:*` families exist, with which HELP text, labels and buckets, and the
//! calls through which the engine loop moves them.
//!
//! Every family is registered once, in [`EngineMetrics::new`], from tables of (name, HELP, buckets); the engine
//! then speaks in its own events (`record_step`, `record_first_token`, `record_finished` …) and each call updates
//! every family that event moves. Families that a recompute-only, prefix-cache-less engine never moves (swap,
//! CPU cache, prefix-cache counters) are registered anyway, at zero, because vLLM always exports them.

use std::time::Duration;

use prometheus::core::Collector;
use prometheus::{Counter, CounterVec, Gauge, Histogram, HistogramOpts, Opts, Registry};

use super::exposition::{encode_python_style, python_float};
use super::{buckets, names};
use crate::config::EngineConfig;
use crate::profiles::GIB;

/// Everything a finished request contributes to the request-level histograms.
#[derive(Debug, Clone, Copy)]
pub struct FinishedRequestStats {
    /// `stop`, `length` or `abort`.
    pub finished_reason: &'static str,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Generated tokens.
    pub generation_tokens: u64,
    /// The effective `max_tokens` cap.
    pub max_tokens: u64,
    /// `max_tokens` as the client sent it, if it did.
    pub params_max_tokens: Option<u64>,
    /// `n`, when this request is the first of its group.
    pub params_n: Option<u64>,
    /// Arrival → finish.
    pub e2e: Duration,
    /// Arrival → first scheduled.
    pub queue: Duration,
    /// First scheduled → last token.
    pub inference: Duration,
    /// First scheduled → first token.
    pub prefill: Duration,
    /// First token → last token.
    pub decode: Duration,
}

/// The engine's metric objects and their registry.
#[derive(Clone)]
pub struct EngineMetrics {
    registry: Registry,
    num_requests_running: Gauge,
    num_requests_waiting: Gauge,
    kv_cache_usage_perc: Gauge,
    gpu_cache_usage_perc: Gauge,
    avg_prompt_throughput: Gauge,
    avg_generation_throughput: Gauge,
    num_preemptions: Counter,
    prompt_tokens: Counter,
    generation_tokens: Counter,
    request_success: CounterVec,
    iteration_tokens: Histogram,
    request_prompt_tokens: Histogram,
    request_generation_tokens: Histogram,
    request_max_num_generation_tokens: Histogram,
    request_params_n: Histogram,
    request_params_max_tokens: Histogram,
    time_to_first_token: Histogram,
    inter_token_latency: Histogram,
    time_per_output_token: Histogram,
    request_time_per_output_token: Histogram,
    e2e_request_latency: Histogram,
    request_queue_time: Histogram,
    request_inference_time: Histogram,
    request_prefill_time: Histogram,
    request_decode_time: Histogram,
}

impl std::fmt::Debug for EngineMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineMetrics").finish_non_exhaustive()
    }
}

/// Registers a freshly built metric and returns it. Building fails only on an invalid name or label, and
/// registering only on a duplicate name: programming errors that the tests catch.
fn register<M: Collector + Clone + 'static>(
    registry: &Registry,
    built: prometheus::Result<M>,
) -> M {
    let m = built.unwrap_or_else(|e| unreachable!("{e}"));
    if let Err(e) = registry.register(Box::new(m.clone())) {
        tracing::error!(error = %e, "metric registration failed");
    }
    m
}

/// `vllm:cache_config_info`: an info gauge (always 1) whose labels describe the KV cache, as V1 prints its
/// `CacheConfig`. It carries `engine` but not `model_name`.
fn cache_config_info(config: &EngineConfig) -> Opts {
    let args = &config.args;
    Opts::new(
        names::CACHE_CONFIG_INFO,
        "Information of the LLMEngine CacheConfig",
    )
    .const_label("engine", "0")
    .const_label("block_size", args.block_size.to_string())
    .const_label("cache_dtype", "auto")
    .const_label("enable_prefix_caching", "False")
    .const_label(
        "gpu_memory_utilization",
        python_float(args.gpu_memory_utilization),
    )
    .const_label("num_cpu_blocks", config.num_cpu_blocks.to_string())
    .const_label("num_gpu_blocks", config.num_gpu_blocks.to_string())
    .const_label(
        "num_gpu_blocks_override",
        args.num_gpu_blocks_override
            .map_or("None".to_string(), |b| b.to_string()),
    )
    .const_label("swap_space", python_float(args.swap_space))
    .const_label(
        "swap_space_bytes",
        ((args.swap_space * GIB) as u64).to_string(),
    )
}

impl EngineMetrics {
    /// Creates and registers every metric for `config`.
    ///
    /// The families come from three tables (gauges, counters, histograms), one row per family; each table's rows
    /// are bound, in order, to the names above it. A `_` name is a family the engine never moves.
    pub fn new(config: &EngineConfig) -> Self {
        let registry = Registry::new();
        let model_name = config.primary_model_name().to_string();
        let opts = |name: &str, help: &str| {
            Opts::new(name, help)
                .const_label("model_name", &model_name)
                .const_label("engine", "0")
        };
        let gauge = |(name, help)| register(&registry, Gauge::with_opts(opts(name, help)));
        let counter = |(name, help)| register(&registry, Counter::with_opts(opts(name, help)));
        let histogram = |(name, help, bounds): (&str, &str, &[f64])| {
            let opts = HistogramOpts::from(opts(name, help)).buckets(bounds.to_vec());
            register(&registry, Histogram::with_opts(opts))
        };

        // Recompute-only preemption never swaps to CPU, but V0 dashboards read the swap gauges.
        #[rustfmt::skip]
        let [
            num_requests_running,
            num_requests_waiting,
            _swapped,
            _cpu_cache_usage,
            kv_cache_usage_perc,
            gpu_cache_usage_perc,
            avg_prompt_throughput,
            avg_generation_throughput,
        ] = [
            (names::NUM_REQUESTS_RUNNING, "Number of requests in model execution batches."),
            (names::NUM_REQUESTS_WAITING, "Number of requests waiting to be processed."),
            (names::NUM_REQUESTS_SWAPPED, "Number of requests swapped to CPU."),
            (names::CPU_CACHE_USAGE_PERC, "CPU KV-cache usage. 1 means 100 percent usage."),
            (names::KV_CACHE_USAGE_PERC, "KV-cache usage. 1 means 100 percent usage."),
            (names::GPU_CACHE_USAGE_PERC, "GPU KV-cache usage. 1 means 100 percent usage."),
            (names::AVG_PROMPT_THROUGHPUT, "Average prefill throughput in tokens/s."),
            (names::AVG_GENERATION_THROUGHPUT, "Average generation throughput in tokens/s."),
        ]
        .map(gauge);
        register(&registry, Gauge::with_opts(cache_config_info(config))).set(1.0);

        // No prefix cache: every query misses, and those counters stay at zero (V1 always exports them).
        #[rustfmt::skip]
        let [
            num_preemptions,
            prompt_tokens,
            generation_tokens,
            _prefix_cache_queries,
            _prefix_cache_hits,
        ] = [
            (names::NUM_PREEMPTIONS, "Cumulative number of preemption from the engine."),
            (names::PROMPT_TOKENS, "Number of prefill tokens processed."),
            (names::GENERATION_TOKENS, "Number of generation tokens processed."),
            (names::PREFIX_CACHE_QUERIES, "Prefix cache queries, in terms of number of queried tokens."),
            (names::PREFIX_CACHE_HITS, "Prefix cache hits, in terms of number of cached tokens."),
        ]
        .map(counter);
        let success_help = "Count of successfully processed requests.";
        let request_success = register(
            &registry,
            CounterVec::new(
                opts(names::REQUEST_SUCCESS, success_help),
                &["finished_reason"],
            ),
        );
        // V1 pre-creates every label value at 0.
        for reason in ["stop", "length", "abort"] {
            request_success.with_label_values(&[reason]);
        }

        let lengths: &[f64] = &buckets::one_two_five(config.max_model_len);
        let (itl, latency) = (buckets::ITL, buckets::REQUEST_LATENCY);
        #[rustfmt::skip]
        let [
            iteration_tokens,
            request_prompt_tokens,
            request_generation_tokens,
            request_max_num_generation_tokens,
            request_params_n,
            request_params_max_tokens,
            time_to_first_token,
            inter_token_latency,
            time_per_output_token,
            request_time_per_output_token,
            e2e_request_latency,
            request_queue_time,
            request_inference_time,
            request_prefill_time,
            request_decode_time,
        ] = [
            (names::ITERATION_TOKENS, "Histogram of number of tokens per engine_step.", buckets::ITERATION_TOKENS),
            (names::REQUEST_PROMPT_TOKENS, "Number of prefill tokens processed.", lengths),
            (names::REQUEST_GENERATION_TOKENS, "Number of generation tokens processed.", lengths),
            (
                names::REQUEST_MAX_NUM_GENERATION_TOKENS,
                "Histogram of maximum number of requested generation tokens.",
                lengths,
            ),
            (names::REQUEST_PARAMS_N, "Histogram of the n request parameter.", buckets::N),
            (names::REQUEST_PARAMS_MAX_TOKENS, "Histogram of the max_tokens request parameter.", lengths),
            (names::TIME_TO_FIRST_TOKEN, "Histogram of time to first token in seconds.", buckets::TTFT),
            (names::INTER_TOKEN_LATENCY, "Histogram of inter-token latency in seconds.", itl),
            (
                names::TIME_PER_OUTPUT_TOKEN,
                // vLLM's text, missing space included.
                concat!(
                    "Histogram of time per output token in seconds.",
                    "DEPRECATED: Use vllm:inter_token_latency_seconds instead.",
                ),
                itl,
            ),
            (names::REQUEST_TIME_PER_OUTPUT_TOKEN, "Histogram of time_per_output_token_seconds per request.", itl),
            (names::E2E_REQUEST_LATENCY, "Histogram of e2e request latency in seconds.", latency),
            (names::REQUEST_QUEUE_TIME, "Histogram of time spent in WAITING phase for request.", latency),
            (names::REQUEST_INFERENCE_TIME, "Histogram of time spent in RUNNING phase for request.", latency),
            (names::REQUEST_PREFILL_TIME, "Histogram of time spent in PREFILL phase for request.", latency),
            (names::REQUEST_DECODE_TIME, "Histogram of time spent in DECODE phase for request.", latency),
        ]
        .map(histogram);

        Self {
            registry,
            num_requests_running,
            num_requests_waiting,
            kv_cache_usage_perc,
            gpu_cache_usage_perc,
            avg_prompt_throughput,
            avg_generation_throughput,
            num_preemptions,
            prompt_tokens,
            generation_tokens,
            request_success,
            iteration_tokens,
            request_prompt_tokens,
            request_generation_tokens,
            request_max_num_generation_tokens,
            request_params_n,
            request_params_max_tokens,
            time_to_first_token,
            inter_token_latency,
            time_per_output_token,
            request_time_per_output_token,
            e2e_request_latency,
            request_queue_time,
            request_inference_time,
            request_prefill_time,
            request_decode_time,
        }
    }

    /// Scheduler gauges, refreshed after every step.
    pub fn set_scheduler_state(&self, running: usize, waiting: usize, kv_usage: f64) {
        self.num_requests_running.set(running as f64);
        self.num_requests_waiting.set(waiting as f64);
        self.kv_cache_usage_perc.set(kv_usage);
        self.gpu_cache_usage_perc.set(kv_usage);
    }

    /// V0 throughput gauges (tokens/s over the last logging interval).
    pub fn set_throughput(&self, prompt_tps: f64, generation_tps: f64) {
        self.avg_prompt_throughput.set(prompt_tps);
        self.avg_generation_throughput.set(generation_tps);
    }

    /// One engine step: tokens computed and generated, preemptions.
    pub fn record_step(&self, step_tokens: u64, new_tokens: u64, preemptions: u64) {
        self.iteration_tokens.observe(step_tokens as f64);
        self.generation_tokens.inc_by(new_tokens as f64);
        if preemptions > 0 {
            self.num_preemptions.inc_by(preemptions as f64);
        }
    }

    /// A request produced its first token `ttft` after arrival; its prompt is now counted.
    pub fn record_first_token(&self, ttft: Duration, prompt_tokens: u64) {
        self.time_to_first_token.observe(ttft.as_secs_f64());
        self.prompt_tokens.inc_by(prompt_tokens as f64);
    }

    /// The gap between two successive tokens of one request.
    pub fn record_inter_token(&self, gap: Duration) {
        let seconds = gap.as_secs_f64();
        self.inter_token_latency.observe(seconds);
        self.time_per_output_token.observe(seconds);
    }

    /// A request finished (including aborts).
    pub fn record_finished(&self, stats: &FinishedRequestStats) {
        self.request_success
            .with_label_values(&[stats.finished_reason])
            .inc();
        self.request_prompt_tokens
            .observe(stats.prompt_tokens as f64);
        self.request_generation_tokens
            .observe(stats.generation_tokens as f64);
        self.request_max_num_generation_tokens
            .observe(stats.max_tokens as f64);
        if let Some(max_tokens) = stats.params_max_tokens {
            self.request_params_max_tokens.observe(max_tokens as f64);
        }
        if let Some(n) = stats.params_n {
            self.request_params_n.observe(n as f64);
        }
        self.e2e_request_latency.observe(stats.e2e.as_secs_f64());
        self.request_queue_time.observe(stats.queue.as_secs_f64());
        self.request_inference_time
            .observe(stats.inference.as_secs_f64());
        self.request_prefill_time
            .observe(stats.prefill.as_secs_f64());
        self.request_decode_time.observe(stats.decode.as_secs_f64());
        if stats.generation_tokens > 1 {
            let tpot = stats.decode.as_secs_f64() / (stats.generation_tokens - 1) as f64;
            self.request_time_per_output_token.observe(tpot);
        }
    }

    /// The exposition text (`text/plain; version=0.0.4`).
    pub fn render(&self) -> String {
        encode_python_style(&self.registry.gather())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EngineArgs;

    fn rendered() -> String {
        let config = EngineArgs::default().validate().expect("valid");
        let metrics = EngineMetrics::new(&config);
        metrics.set_scheduler_state(3, 2, 0.25);
        metrics.record_first_token(Duration::from_millis(120), 100);
        metrics.render()
    }

    #[test]
    fn exposition_has_vllm_names_types_and_labels() {
        let text = rendered();
        let model = "model_name=\"deepseek-ai/deepseek-llm-7b-chat\"";
        for line in [
            "# TYPE vllm:num_requests_running gauge".to_string(),
            format!("vllm:num_requests_running{{engine=\"0\",{model}}} 3.0"),
            format!("vllm:num_requests_waiting{{engine=\"0\",{model}}} 2.0"),
            format!("vllm:gpu_cache_usage_perc{{engine=\"0\",{model}}} 0.25"),
            format!("vllm:kv_cache_usage_perc{{engine=\"0\",{model}}} 0.25"),
            "# TYPE vllm:request_success_total counter".to_string(),
            format!(
                "vllm:request_success_total{{engine=\"0\",finished_reason=\"abort\",{model}}} 0.0"
            ),
            format!(
                "vllm:time_to_first_token_seconds_bucket{{engine=\"0\",{model},le=\"0.25\"}} 1.0"
            ),
            format!(
                "vllm:time_to_first_token_seconds_bucket{{engine=\"0\",{model},le=\"0.1\"}} 0.0"
            ),
            format!("vllm:time_to_first_token_seconds_count{{engine=\"0\",{model}}} 1.0"),
            format!("vllm:prompt_tokens_total{{engine=\"0\",{model}}} 100.0"),
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing line {line}\n{text}"
            );
        }
        assert!(text.contains("vllm:cache_config_info{block_size=\"16\""));
        assert!(text.contains("num_gpu_blocks=\"1925\""));
        assert!(!text.contains("_created"));
    }

    #[test]
    fn every_family_is_one_contiguous_group_with_help_and_type() {
        let text = rendered();
        let mut seen_types = std::collections::HashSet::new();
        let mut current = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap_or_default().to_string();
                assert!(seen_types.insert(name.clone()), "duplicate TYPE for {name}");
                current = name;
            } else if !line.starts_with('#') {
                assert!(
                    line.starts_with(current.as_str()),
                    "{line} outside its family {current}"
                );
            }
        }
        assert!(seen_types.len() >= 28, "{} families", seen_types.len());
    }
}
