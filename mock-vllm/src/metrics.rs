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

use prometheus::core::Collector;
use prometheus::proto::{MetricFamily, MetricType};
use prometheus::{Counter, CounterVec, Gauge, Histogram, HistogramOpts, Opts, Registry};
use std::fmt::Write;
use std::time::Duration;

use crate::config::EngineConfig;

/// `vllm:*` metric names, in one place.
pub mod names {
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
}

/// Bucket bounds, exactly vLLM V1's.
pub mod buckets {
    /// Time to first token.
    pub const TTFT: &[f64] = &[
        0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
        20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
    ];
    /// Inter-token latency and time per output token.
    pub const ITL: &[f64] = &[
        0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
        20.0, 40.0, 80.0,
    ];
    /// Request-level latencies (e2e, queue, inference, prefill, decode).
    pub const REQUEST_LATENCY: &[f64] = &[
        0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0,
        240.0, 480.0, 960.0, 1920.0, 7680.0,
    ];
    /// Tokens per engine step.
    pub const ITERATION_TOKENS: &[f64] = &[
        1.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0,
    ];
    /// The `n` parameter.
    pub const N: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0];

    /// 1, 2, 5 × 10^k for every value ≤ `max` (vLLM's `build_1_2_5_buckets`).
    pub fn one_two_five(max: u64) -> Vec<f64> {
        let mut out = Vec::new();
        let mut exponent = 1u64;
        loop {
            for mantissa in [1u64, 2, 5] {
                let value = mantissa * exponent;
                if value > max {
                    return out;
                }
                out.push(value as f64);
            }
            exponent *= 10;
        }
    }
}

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

/// Registers metric `m` and returns it. Registration fails only on a duplicate name, which is a programming error
/// caught by the tests.
fn register<M: Collector + Clone + 'static>(registry: &Registry, m: M) -> M {
    if let Err(e) = registry.register(Box::new(m.clone())) {
        tracing::error!(error = %e, "metric registration failed");
    }
    m
}

impl EngineMetrics {
    /// Creates and registers every metric for `config`.
    pub fn new(config: &EngineConfig) -> Self {
        let registry = Registry::new();
        let model_name = config.primary_model_name().to_string();
        let labels = |opts: Opts| {
            opts.const_label("model_name", &model_name)
                .const_label("engine", "0")
        };
        let gauge = |name: &str, help: &str| {
            let opts = labels(Opts::new(name, help));
            register(
                &registry,
                Gauge::with_opts(opts).unwrap_or_else(|e| unreachable!("{e}")),
            )
        };
        let counter = |name: &str, help: &str| {
            let opts = labels(Opts::new(name, help));
            register(
                &registry,
                Counter::with_opts(opts).unwrap_or_else(|e| unreachable!("{e}")),
            )
        };
        let histogram = |name: &str, help: &str, bounds: Vec<f64>| {
            let opts = labels(Opts::new(name, help));
            let opts = HistogramOpts::from(opts).buckets(bounds);
            register(
                &registry,
                Histogram::with_opts(opts).unwrap_or_else(|e| unreachable!("{e}")),
            )
        };
        let lengths = buckets::one_two_five(config.max_model_len);

        let num_requests_running = gauge(
            names::NUM_REQUESTS_RUNNING,
            "Number of requests in model execution batches.",
        );
        let num_requests_waiting = gauge(
            names::NUM_REQUESTS_WAITING,
            "Number of requests waiting to be processed.",
        );
        // Recompute-only preemption: nothing is ever swapped to CPU, but V0 dashboards read these.
        gauge(
            names::NUM_REQUESTS_SWAPPED,
            "Number of requests swapped to CPU.",
        );
        gauge(
            names::CPU_CACHE_USAGE_PERC,
            "CPU KV-cache usage. 1 means 100 percent usage.",
        );
        let kv_cache_usage_perc = gauge(
            names::KV_CACHE_USAGE_PERC,
            "KV-cache usage. 1 means 100 percent usage.",
        );
        let gpu_cache_usage_perc = gauge(
            names::GPU_CACHE_USAGE_PERC,
            "GPU KV-cache usage. 1 means 100 percent usage.",
        );
        let avg_prompt_throughput = gauge(
            names::AVG_PROMPT_THROUGHPUT,
            "Average prefill throughput in tokens/s.",
        );
        let avg_generation_throughput = gauge(
            names::AVG_GENERATION_THROUGHPUT,
            "Average generation throughput in tokens/s.",
        );
        let info = Opts::new(
            names::CACHE_CONFIG_INFO,
            "Information of the LLMEngine CacheConfig",
        )
        .const_label("engine", "0")
        .const_label("block_size", config.args.block_size.to_string())
        .const_label("cache_dtype", "auto")
        .const_label("enable_prefix_caching", "False")
        .const_label(
            "gpu_memory_utilization",
            python_float(config.args.gpu_memory_utilization),
        )
        .const_label("num_cpu_blocks", config.num_cpu_blocks.to_string())
        .const_label("num_gpu_blocks", config.num_gpu_blocks.to_string())
        .const_label(
            "num_gpu_blocks_override",
            config
                .args
                .num_gpu_blocks_override
                .map_or("None".to_string(), |b| b.to_string()),
        )
        .const_label("swap_space", python_float(config.args.swap_space))
        .const_label(
            "swap_space_bytes",
            ((config.args.swap_space * crate::profiles::GIB) as u64).to_string(),
        );
        register(
            &registry,
            Gauge::with_opts(info).unwrap_or_else(|e| unreachable!("{e}")),
        )
        .set(1.0);

        let num_preemptions = counter(
            names::NUM_PREEMPTIONS,
            "Cumulative number of preemption from the engine.",
        );
        let prompt_tokens = counter(names::PROMPT_TOKENS, "Number of prefill tokens processed.");
        let generation_tokens = counter(
            names::GENERATION_TOKENS,
            "Number of generation tokens processed.",
        );
        // No prefix cache: every query misses, and the counters stay at zero (V1 always exports them).
        counter(
            names::PREFIX_CACHE_QUERIES,
            "Prefix cache queries, in terms of number of queried tokens.",
        );
        counter(
            names::PREFIX_CACHE_HITS,
            "Prefix cache hits, in terms of number of cached tokens.",
        );
        let success_opts = labels(Opts::new(
            names::REQUEST_SUCCESS,
            "Count of successfully processed requests.",
        ));
        let request_success = register(
            &registry,
            CounterVec::new(success_opts, &["finished_reason"])
                .unwrap_or_else(|e| unreachable!("{e}")),
        );
        // V1 pre-creates every label value at 0.
        for reason in ["stop", "length", "abort"] {
            request_success.with_label_values(&[reason]);
        }

        let iteration_tokens = histogram(
            names::ITERATION_TOKENS,
            "Histogram of number of tokens per engine_step.",
            buckets::ITERATION_TOKENS.to_vec(),
        );
        let request_prompt_tokens = histogram(
            names::REQUEST_PROMPT_TOKENS,
            "Number of prefill tokens processed.",
            lengths.clone(),
        );
        let request_generation_tokens = histogram(
            names::REQUEST_GENERATION_TOKENS,
            "Number of generation tokens processed.",
            lengths.clone(),
        );
        let request_max_num_generation_tokens = histogram(
            names::REQUEST_MAX_NUM_GENERATION_TOKENS,
            "Histogram of maximum number of requested generation tokens.",
            lengths.clone(),
        );
        let request_params_n = histogram(
            names::REQUEST_PARAMS_N,
            "Histogram of the n request parameter.",
            buckets::N.to_vec(),
        );
        let request_params_max_tokens = histogram(
            names::REQUEST_PARAMS_MAX_TOKENS,
            "Histogram of the max_tokens request parameter.",
            lengths,
        );
        let time_to_first_token = histogram(
            names::TIME_TO_FIRST_TOKEN,
            "Histogram of time to first token in seconds.",
            buckets::TTFT.to_vec(),
        );
        let inter_token_latency = histogram(
            names::INTER_TOKEN_LATENCY,
            "Histogram of inter-token latency in seconds.",
            buckets::ITL.to_vec(),
        );
        let time_per_output_token = histogram(
            names::TIME_PER_OUTPUT_TOKEN,
            "Histogram of time per output token in seconds.DEPRECATED: Use vllm:inter_token_latency_seconds instead.",
            buckets::ITL.to_vec(),
        );
        let request_time_per_output_token = histogram(
            names::REQUEST_TIME_PER_OUTPUT_TOKEN,
            "Histogram of time_per_output_token_seconds per request.",
            buckets::ITL.to_vec(),
        );
        let latency =
            |name: &str, help: &str| histogram(name, help, buckets::REQUEST_LATENCY.to_vec());
        let e2e_request_latency = latency(
            names::E2E_REQUEST_LATENCY,
            "Histogram of e2e request latency in seconds.",
        );
        let request_queue_time = latency(
            names::REQUEST_QUEUE_TIME,
            "Histogram of time spent in WAITING phase for request.",
        );
        let request_inference_time = latency(
            names::REQUEST_INFERENCE_TIME,
            "Histogram of time spent in RUNNING phase for request.",
        );
        let request_prefill_time = latency(
            names::REQUEST_PREFILL_TIME,
            "Histogram of time spent in PREFILL phase for request.",
        );
        let request_decode_time = latency(
            names::REQUEST_DECODE_TIME,
            "Histogram of time spent in DECODE phase for request.",
        );

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

/// A float as Python's `repr` prints it: `0.0`, `8.0`, `0.4623`, `1e-05`, `1e+16`, `inf`, `nan`.
pub fn python_float(value: f64) -> String {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let magnitude = value.abs();
    if value != 0.0 && !(1e-4..1e16).contains(&magnitude) {
        // Rust's `{:e}` gives "1e-5"; Python writes at least two exponent digits with a sign.
        let s = format!("{value:e}");
        return match s.split_once('e') {
            Some((mantissa, exponent)) => {
                let (sign, digits) = match exponent.strip_prefix('-') {
                    Some(d) => ('-', d),
                    None => ('+', exponent),
                };
                format!("{mantissa}e{sign}{digits:0>2}")
            }
            None => s,
        };
    }
    if value.fract() == 0.0 {
        format!("{value:.1}")
    } else {
        format!("{value}")
    }
}

fn write_labels(out: &mut String, labels: &[(&str, &str)]) {
    if labels.is_empty() {
        return;
    }
    out.push('{');
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let escaped = value
            .replace('\\', "\\\\")
            .replace('\n', "\\n")
            .replace('"', "\\\"");
        let _ = write!(out, "{name}=\"{escaped}\"");
    }
    out.push('}');
}

/// Text format 0.0.4, in `prometheus_client`'s style (see the module doc).
pub fn encode_python_style(families: &[MetricFamily]) -> String {
    let mut out = String::with_capacity(16 * 1024);
    for family in families {
        let name = family.name();
        let help = family.help().replace('\\', "\\\\").replace('\n', "\\n");
        let kind = match family.get_field_type() {
            MetricType::COUNTER => "counter",
            MetricType::GAUGE => "gauge",
            MetricType::HISTOGRAM => "histogram",
            MetricType::SUMMARY => "summary",
            MetricType::UNTYPED => "untyped",
        };
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for metric in family.get_metric() {
            let labels: Vec<(&str, &str)> = metric
                .get_label()
                .iter()
                .map(|l| (l.name(), l.value()))
                .collect();
            match family.get_field_type() {
                MetricType::HISTOGRAM => {
                    let h = metric.get_histogram();
                    for bucket in h.get_bucket() {
                        let le = python_float(bucket.upper_bound());
                        let mut with_le = labels.clone();
                        with_le.push(("le", &le));
                        out.push_str(name);
                        out.push_str("_bucket");
                        write_labels(&mut out, &with_le);
                        let _ =
                            writeln!(out, " {}", python_float(bucket.cumulative_count() as f64));
                    }
                    let mut with_inf = labels.clone();
                    with_inf.push(("le", "+Inf"));
                    out.push_str(name);
                    out.push_str("_bucket");
                    write_labels(&mut out, &with_inf);
                    let count = python_float(h.get_sample_count() as f64);
                    let _ = writeln!(out, " {count}");
                    out.push_str(name);
                    out.push_str("_count");
                    write_labels(&mut out, &labels);
                    let _ = writeln!(out, " {count}");
                    out.push_str(name);
                    out.push_str("_sum");
                    write_labels(&mut out, &labels);
                    let _ = writeln!(out, " {}", python_float(h.get_sample_sum()));
                }
                kind => {
                    let value = match kind {
                        MetricType::COUNTER => metric.get_counter().get_value(),
                        _ => metric.get_gauge().get_value(),
                    };
                    out.push_str(name);
                    write_labels(&mut out, &labels);
                    let _ = writeln!(out, " {}", python_float(value));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EngineArgs;

    #[test]
    fn floats_print_like_python() {
        assert_eq!(python_float(0.0), "0.0");
        assert_eq!(python_float(8.0), "8.0");
        assert_eq!(python_float(0.4623), "0.4623");
        assert_eq!(python_float(0.001), "0.001");
        assert_eq!(python_float(1e-5), "1e-05");
        assert_eq!(python_float(2560.0), "2560.0");
        assert_eq!(python_float(1e16), "1e+16");
        assert_eq!(python_float(f64::INFINITY), "+Inf");
    }

    #[test]
    fn one_two_five_buckets_for_4096() {
        assert_eq!(
            buckets::one_two_five(4096),
            vec![1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0]
        );
    }

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
