//! Command-line configuration: [`EngineArgs`] (vLLM's flag names) and its validation into an [`EngineConfig`].
//!
//! This parser is the single source of truth for what a mock-vllm command line means: the `mock-vllm` binary
//! calls [`EngineArgs::parse`], and the e2e node agent calls [`EngineArgs::try_parse_from`] on a pod's container
//! args, so a manifest means the same thing on the local control plane and on kind. Flags that vLLM has keep
//! vLLM's names and defaults; the mock's own flags (`--gpu`, `--startup-delay`, `--step-time-scale`, `--fault-*`
//! …) are marked as such. A few vLLM flags that do not change a simulation (`--dtype`, `--trust-remote-code`, …)
//! are accepted and ignored so that real vLLM manifests run unchanged.
//!
//! [`EngineArgs::validate`] resolves the profiles, derives `num_gpu_blocks` and the step token budget, and rejects
//! combinations that vLLM rejects at start-up, with vLLM's wording where it has one. The result is plain data:
//! the engine reads its scheduler limits and step-time model off it (`From<&EngineConfig>` in `engine::scheduler`
//! and `engine::timing`), so this module names nothing of the engine.

use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::profiles::{num_gpu_blocks, GpuProfile, ModelProfile, ProfileError, GIB};

/// A configuration that cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A GPU or model profile could not be resolved.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// A value out of its range or an inconsistent combination.
    #[error("{0}")]
    Invalid(String),
}

fn invalid(message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(message.into())
}

/// What `/metrics` does (a test hook; see [`crate::faults`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricsFault {
    /// Serve metrics normally.
    Ok,
    /// Answer 500.
    Fail,
    /// Never answer (until the mode changes or the client gives up).
    Hang,
}

fn parse_block_size(value: &str) -> Result<u64, String> {
    match value.parse::<u64>() {
        Ok(size @ (1 | 8 | 16 | 32 | 64 | 128)) => Ok(size),
        _ => Err(format!(
            "{value} is not one of the block sizes vLLM supports: 1, 8, 16, 32, 64, 128"
        )),
    }
}

/// `vllm serve` arguments understood by the mock, plus the mock's own.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "mock-vllm",
    version,
    about = "A GPU-free vLLM: the OpenAI-compatible API and vllm:* metrics of a simulated engine"
)]
pub struct EngineArgs {
    /// Model name or path, as the positional argument of `vllm serve` (overrides --model).
    #[arg(value_name = "MODEL_TAG")]
    pub model_tag: Option<String>,

    /// Name or path of the model. Also selects the model profile by name unless --model-profile is given.
    #[arg(long, default_value = "deepseek-ai/deepseek-llm-7b-chat")]
    pub model: String,

    /// Model names accepted in requests and reported by /v1/models and in metrics (default: the model).
    #[arg(long, num_args = 1..)]
    pub served_model_name: Vec<String>,

    /// Host to bind.
    #[arg(long, default_value = "0.0.0.0")]
    pub host: String,

    /// Port to bind.
    #[arg(long, default_value_t = 8000)]
    pub port: u16,

    /// Require `Authorization: Bearer <key>` on /v1 endpoints.
    #[arg(long, env = "VLLM_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    /// Context length (prompt + output). Default: the model's max_position_embeddings.
    #[arg(long)]
    pub max_model_len: Option<u64>,

    /// Maximum number of sequences in the running set.
    #[arg(long, default_value_t = 256)]
    pub max_num_seqs: u64,

    /// Token budget of one engine step. Default: max(max_model_len, 2048) without chunked prefill, 2048 with.
    #[arg(long)]
    pub max_num_batched_tokens: Option<u64>,

    /// Fraction of GPU memory for weights, activations and KV cache.
    #[arg(long, default_value_t = 0.9)]
    pub gpu_memory_utilization: f64,

    /// Tokens per KV-cache block.
    #[arg(long, default_value_t = 16, value_parser = parse_block_size)]
    pub block_size: u64,

    /// Use this many KV blocks instead of the number derived from GPU memory.
    #[arg(long)]
    pub num_gpu_blocks_override: Option<u64>,

    /// CPU swap space per GPU in GiB (reported in cache_config_info; the mock preempts by recompute only).
    #[arg(long, default_value_t = 4.0)]
    pub swap_space: f64,

    /// Disable CUDA graphs: a higher fixed cost per step.
    #[arg(long)]
    pub enforce_eager: bool,

    /// Mixed prefill/decode steps with chunked prefill (vLLM V1 scheduling) instead of V0's prefill-first steps.
    #[arg(long)]
    pub enable_chunked_prefill: bool,

    /// Random seed: output text and lengths of requests without their own seed derive from it.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// Serve LoRA adapters (listed in /v1/models, accepted as `model`).
    #[arg(long)]
    pub enable_lora: bool,

    /// LoRA adapters to load at start-up, as name=path.
    #[arg(long, num_args = 1..)]
    pub lora_modules: Vec<String>,

    /// Data type of weights (accepted and ignored: the profile's fp16 sizes are used).
    #[arg(long)]
    pub dtype: Option<String>,

    /// Accepted and ignored.
    #[arg(long)]
    pub trust_remote_code: bool,

    /// Tensor-parallel size (only 1 is simulated).
    #[arg(long, short = 't', default_value_t = 1)]
    pub tensor_parallel_size: u32,

    /// Accepted and ignored.
    #[arg(long)]
    pub disable_log_requests: bool,

    /// Accepted and ignored.
    #[arg(long)]
    pub disable_log_stats: bool,

    /// [mock] GPU profile: a built-in name (v100-sxm2-32gb, v100-pcie-32gb, a100-40gb, a100-80gb, h100-80gb) or a
    /// JSON file.
    #[arg(long, default_value = "v100-sxm2-32gb", env = "MOCK_VLLM_GPU")]
    pub gpu: String,

    /// [mock] Model profile: a built-in name or a JSON file. Default: derived from --model.
    #[arg(long)]
    pub model_profile: Option<String>,

    /// [mock] Simulated model-load time in seconds before the port is served (vLLM V0 on a V100: ~40 s).
    #[arg(long, default_value_t = 40.0, env = "MOCK_VLLM_STARTUP_DELAY")]
    pub startup_delay: f64,

    /// [mock] Multiplies every step time: 0 runs as fast as the host allows, 0.5 twice as fast as the GPU.
    #[arg(long, default_value_t = 1.0)]
    pub step_time_scale: f64,

    /// [mock] API-server time per request before it reaches the engine (HTTP, tokenization, IPC), in
    /// milliseconds. Requests pass this stage one at a time, as in vLLM's single-threaded API server, so a burst
    /// reaches the engine staggered. Fitted to the V100 calibration points.
    #[arg(long, default_value_t = 2.0)]
    pub frontend_overhead_ms: f64,

    /// [mock] Median natural output length (tokens) of requests that do not force their length.
    #[arg(long, default_value_t = 200)]
    pub output_len_median: u64,

    /// [mock] Log-normal sigma of natural output lengths.
    #[arg(long, default_value_t = 0.8)]
    pub output_len_sigma: f64,

    /// [mock] Fraction of completion requests answered with an injected error (changeable at run time).
    #[arg(long, default_value_t = 0.0)]
    pub fault_error_rate: f64,

    /// [mock] HTTP status of injected errors.
    #[arg(long, default_value_t = 500)]
    pub fault_error_status: u16,

    /// [mock] Extra latency in milliseconds added before every completion request is admitted.
    #[arg(long, default_value_t = 0)]
    pub fault_extra_latency_ms: u64,

    /// [mock] Behaviour of /metrics.
    #[arg(long, value_enum, default_value_t = MetricsFault::Ok)]
    pub fault_metrics: MetricsFault,
}

impl Default for EngineArgs {
    fn default() -> Self {
        // Parsing no arguments gives every documented default; it cannot fail.
        Self::try_parse_from(["mock-vllm"]).unwrap_or_else(|e| unreachable!("defaults parse: {e}"))
    }
}

/// A LoRA adapter known at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoraModule {
    /// Name used as `model` in requests.
    pub name: String,
    /// Path reported as the card's root.
    pub path: String,
}

/// A validated configuration with every derived quantity.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The arguments it came from.
    pub args: EngineArgs,
    /// The model name or path.
    pub model: String,
    /// Accepted model names; the first is the metrics label.
    pub served_model_names: Vec<String>,
    /// The GPU.
    pub gpu: GpuProfile,
    /// The model architecture.
    pub model_profile: ModelProfile,
    /// Context length.
    pub max_model_len: u64,
    /// Total KV blocks.
    pub num_gpu_blocks: u64,
    /// CPU swap blocks (reported only).
    pub num_cpu_blocks: u64,
    /// Token budget of one engine step: `--max-num-batched-tokens`, or its default for the prefill mode.
    pub max_num_batched_tokens: u64,
    /// Simulated model load.
    pub startup_delay: Duration,
    /// LoRA adapters loaded at start-up.
    pub lora_modules: Vec<LoraModule>,
}

impl EngineConfig {
    /// The name used in metric labels and as the default `model`.
    pub fn primary_model_name(&self) -> &str {
        self.served_model_names
            .first()
            .map_or(self.model.as_str(), String::as_str)
    }
}

impl EngineArgs {
    /// Arguments for tests and embedding: defaults, no start-up delay, on `127.0.0.1:0`.
    pub fn for_tests() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 0,
            startup_delay: 0.0,
            ..Self::default()
        }
    }

    /// [`Self::for_tests`] plus flags as `vllm serve` would read them, e.g. `&["--max-num-seqs", "4"]`.
    pub fn for_tests_with(flags: &[&str]) -> Result<Self, clap::Error> {
        let base = [
            "mock-vllm",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--startup-delay",
            "0",
        ];
        Self::try_parse_from(base.iter().chain(flags))
    }

    /// Checks ranges and consistency, resolves profiles and derives the engine's quantities.
    pub fn validate(&self) -> Result<EngineConfig, ConfigError> {
        let model = self.model_tag.clone().unwrap_or_else(|| self.model.clone());
        let model_profile = ModelProfile::resolve(self.model_profile.as_deref().unwrap_or(&model))?;
        let gpu = GpuProfile::resolve(&self.gpu)?;

        if !(self.gpu_memory_utilization > 0.0 && self.gpu_memory_utilization <= 1.0) {
            return Err(invalid(format!(
                "GPU memory utilization must be within (0, 1]. Got {}.",
                self.gpu_memory_utilization
            )));
        }
        if self.tensor_parallel_size != 1 {
            return Err(invalid(format!(
                "--tensor-parallel-size {} is not simulated: a mock pod is one GPU (use 1)",
                self.tensor_parallel_size
            )));
        }
        if self.max_num_seqs == 0 {
            return Err(invalid("max_num_seqs must be at least 1"));
        }
        if !(self.step_time_scale >= 0.0 && self.step_time_scale.is_finite()) {
            return Err(invalid(format!(
                "--step-time-scale must be a finite number >= 0, got {}",
                self.step_time_scale
            )));
        }
        if !(self.startup_delay >= 0.0 && self.startup_delay.is_finite()) {
            return Err(invalid(format!(
                "--startup-delay must be a finite number of seconds >= 0, got {}",
                self.startup_delay
            )));
        }
        if !(0.0..=1.0).contains(&self.fault_error_rate) {
            return Err(invalid(format!(
                "--fault-error-rate must be within [0, 1], got {}",
                self.fault_error_rate
            )));
        }
        if !(400..=599).contains(&self.fault_error_status) {
            return Err(invalid(format!(
                "--fault-error-status must be an HTTP error status (400-599), got {}",
                self.fault_error_status
            )));
        }
        if !(self.frontend_overhead_ms >= 0.0 && self.frontend_overhead_ms.is_finite()) {
            return Err(invalid(format!(
                "--frontend-overhead-ms must be a finite number >= 0, got {}",
                self.frontend_overhead_ms
            )));
        }
        if self.output_len_median == 0
            || self.output_len_sigma.is_nan()
            || self.output_len_sigma < 0.0
        {
            return Err(invalid(
                "--output-len-median must be >= 1 and --output-len-sigma >= 0",
            ));
        }

        let derived_len = model_profile.max_position_embeddings;
        let max_model_len = match self.max_model_len {
            Some(len) if len > derived_len => {
                return Err(invalid(format!(
                "User-specified max_model_len ({len}) is greater than the derived max_model_len \
                     (max_position_embeddings={derived_len} in model's config.json)."
            )))
            }
            Some(0) => return Err(invalid("max_model_len must be at least 1")),
            Some(len) => len,
            None => derived_len,
        };

        let max_num_batched_tokens =
            self.max_num_batched_tokens
                .unwrap_or(if self.enable_chunked_prefill {
                    2048
                } else {
                    max_model_len.max(2048)
                });
        if !self.enable_chunked_prefill && max_num_batched_tokens < max_model_len {
            return Err(invalid(format!(
                "max_num_batched_tokens ({max_num_batched_tokens}) is smaller than max_model_len ({max_model_len}). \
                 This effectively limits the maximum sequence length to max_num_batched_tokens and makes vLLM \
                 reject longer sequences. Please increase max_num_batched_tokens or decrease max_model_len."
            )));
        }
        if max_num_batched_tokens < self.max_num_seqs {
            return Err(invalid(format!(
                "max_num_batched_tokens ({max_num_batched_tokens}) must be greater than or equal to \
                 max_num_seqs ({}).",
                self.max_num_seqs
            )));
        }

        let num_gpu_blocks = match self.num_gpu_blocks_override {
            Some(blocks) => blocks,
            None => num_gpu_blocks(
                &gpu,
                &model_profile,
                self.gpu_memory_utilization,
                self.block_size,
            ),
        };
        if num_gpu_blocks == 0 {
            return Err(invalid(format!(
                "No available memory for the cache blocks: {} ({:.2} GiB of weights) does not fit in {} at \
                 gpu_memory_utilization {}. Try increasing `gpu_memory_utilization` or a larger --gpu.",
                model_profile.name,
                model_profile.weight_bytes() as f64 / GIB,
                gpu.name,
                self.gpu_memory_utilization
            )));
        }
        let kv_capacity = num_gpu_blocks * self.block_size;
        if max_model_len > kv_capacity {
            return Err(invalid(format!(
                "The model's max seq len ({max_model_len}) is larger than the maximum number of tokens that can \
                 be stored in KV cache ({kv_capacity}). Try increasing `gpu_memory_utilization` or decreasing \
                 `max_model_len` when initializing the engine."
            )));
        }
        let block_bytes = (self.block_size * model_profile.kv_bytes_per_token()) as f64;
        let num_cpu_blocks = (self.swap_space.max(0.0) * GIB / block_bytes).floor() as u64;

        let lora_modules = self
            .lora_modules
            .iter()
            .map(|spec| match spec.split_once('=') {
                Some((name, path)) if !name.is_empty() && !path.is_empty() => Ok(LoraModule {
                    name: name.to_string(),
                    path: path.to_string(),
                }),
                _ => Err(invalid(format!(
                    "invalid --lora-modules entry `{spec}`: expected name=path"
                ))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if !lora_modules.is_empty() && !self.enable_lora {
            return Err(invalid("--lora-modules needs --enable-lora"));
        }

        let served_model_names = if self.served_model_name.is_empty() {
            vec![model.clone()]
        } else {
            self.served_model_name.clone()
        };

        Ok(EngineConfig {
            args: self.clone(),
            model,
            served_model_names,
            gpu,
            model_profile,
            max_model_len,
            num_gpu_blocks,
            num_cpu_blocks,
            max_num_batched_tokens,
            startup_delay: Duration::from_secs_f64(self.startup_delay),
            lora_modules,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::scheduler::{SchedulerConfig, SchedulingMode};
    use crate::engine::timing::StepTimeModel;

    fn parse(args: &[&str]) -> EngineArgs {
        EngineArgs::try_parse_from(std::iter::once("mock-vllm").chain(args.iter().copied()))
            .expect("parses")
    }

    #[test]
    fn test_flags_start_from_the_test_defaults() {
        let args = EngineArgs::for_tests_with(&["--max-num-seqs", "4"]).expect("parses");
        let expected = EngineArgs {
            max_num_seqs: 4,
            ..EngineArgs::for_tests()
        };
        assert_eq!(format!("{args:?}"), format!("{expected:?}"));
    }

    #[test]
    fn defaults_are_the_v100_deepseek_calibration() {
        let config = EngineArgs::default().validate().expect("valid");
        assert_eq!(config.model_profile.name, "deepseek-llm-7b-chat");
        assert_eq!(config.gpu.name, "v100-sxm2-32gb");
        assert_eq!(config.num_gpu_blocks, 1925);
        assert_eq!(config.max_model_len, 4096);
        let scheduler = SchedulerConfig::from(&config);
        assert_eq!(scheduler.max_num_batched_tokens, 4096);
        assert_eq!(scheduler.max_num_seqs, 256);
        assert_eq!(scheduler.mode, SchedulingMode::PrefillFirst);
        assert_eq!(scheduler.watermark_blocks, 19);
        assert_eq!(config.startup_delay, Duration::from_secs(40));
        assert_eq!(config.num_cpu_blocks, 546);
        assert_eq!(
            config.primary_model_name(),
            "deepseek-ai/deepseek-llm-7b-chat"
        );
    }

    #[test]
    fn vllm_style_command_lines_parse() {
        let args = parse(&[
            "meta-llama/Llama-2-7b-hf",
            "--served-model-name",
            "llama2",
            "--max-model-len",
            "2048",
            "--enforce-eager",
            "--dtype",
            "half",
            "--trust-remote-code",
            "--port",
            "9000",
        ]);
        let config = args.validate().expect("valid");
        assert_eq!(config.model_profile.name, "llama-2-7b");
        assert_eq!(config.served_model_names, vec!["llama2"]);
        assert_eq!(config.max_model_len, 2048);
        assert_eq!(config.max_num_batched_tokens, 2048);
        assert!((StepTimeModel::from(&config).fixed_s - 0.0263).abs() < 0.0005);
    }

    #[test]
    fn rejections_name_the_problem() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["--max-model-len", "9999"],
                "greater than the derived max_model_len",
            ),
            (
                &["--max-num-batched-tokens", "1024"],
                "smaller than max_model_len",
            ),
            (
                &["--gpu-memory-utilization", "1.5"],
                "GPU memory utilization",
            ),
            (&["--gpu", "tpu"], "unknown GPU profile"),
            (&["--model", "gpt-17"], "unknown model profile"),
            (
                &["--num-gpu-blocks-override", "10"],
                "larger than the maximum number of tokens",
            ),
            (&["--gpu-memory-utilization", "0.3"], "No available memory"),
            (&["--step-time-scale=-1"], "--step-time-scale"),
            (&["--lora-modules", "broken"], "name=path"),
            (&["-t", "2"], "tensor-parallel-size"),
        ];
        for (args, expected) in cases {
            let err = parse(args).validate().expect_err("invalid");
            assert!(err.to_string().contains(expected), "{args:?}: {err}");
        }
    }

    #[test]
    fn unknown_flags_and_bad_block_sizes_fail_to_parse() {
        let err = EngineArgs::try_parse_from(["mock-vllm", "--no-such-flag"]).expect_err("unknown");
        assert!(err.to_string().contains("--no-such-flag"));
        assert!(EngineArgs::try_parse_from(["mock-vllm", "--block-size", "17"]).is_err());
    }

    #[test]
    fn chunked_prefill_defaults_to_a_2048_token_budget() {
        let config = parse(&["--enable-chunked-prefill"])
            .validate()
            .expect("valid");
        let scheduler = SchedulerConfig::from(&config);
        assert_eq!(scheduler.mode, SchedulingMode::Chunked);
        assert_eq!(scheduler.max_num_batched_tokens, 2048);
        assert_eq!(scheduler.watermark_blocks, 0);
    }
}
