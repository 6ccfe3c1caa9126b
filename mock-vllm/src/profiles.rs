//! Hardware and model profiles: the physical facts the simulation is derived from.
//!
//! A [`GpuProfile`] is a data sheet (memory, fp16 tensor throughput, HBM bandwidth) plus the efficiencies that the
//! V100 calibration (`shared/reference/v100-calibration.md`) measured or derived for vLLM on that card. A
//! [`ModelProfile`] is a transformer's architecture (`config.json` fields). From the pair this module derives what the
//! engine needs: weight bytes, KV bytes per token, `num_gpu_blocks` (as vLLM's memory profiling does), and the
//! step-time coefficients of [`crate::engine::timing::StepTimeModel`].
//!
//! The derivation is anchored on the calibration: for `v100-sxm2-32gb` + `deepseek-llm-7b-chat` it reproduces the
//! documented constants (a = 19 ms with CUDA graphs / 26 ms eager, b = 0.19 ms, c = 0.06 ms, d = 0.61 µs, 1,925
//! blocks), and for Llama-2-7B the validation profile (a = 26 ms eager, b = 0.20 ms, d = 0.65 µs, 1,846 blocks).
//! Other GPUs are scaled from the same efficiencies by their public specs, which is an assumption, not a
//! measurement. Any profile can also be loaded from a JSON file, and a file may pin the coefficients outright.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// Bytes in one GiB.
pub const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// Errors while resolving a profile by name or from a file.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// Neither a built-in name nor a readable file.
    #[error("unknown {kind} profile `{name}`: expected one of [{known}] or a path to a JSON profile file")]
    Unknown {
        /// "GPU" or "model".
        kind: &'static str,
        /// What the user asked for.
        name: String,
        /// Built-in names, comma separated.
        known: String,
    },
    /// The file exists but could not be read.
    #[error("cannot read {kind} profile file {path}")]
    Read {
        /// "GPU" or "model".
        kind: &'static str,
        /// The file.
        path: String,
        /// The I/O cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid profile.
    #[error("invalid {kind} profile file {path}: {source}")]
    Parse {
        /// "GPU" or "model".
        kind: &'static str,
        /// The file.
        path: String,
        /// The JSON cause.
        #[source]
        source: serde_json::Error,
    },
}

/// One accelerator as the simulation sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuProfile {
    /// Profile name, e.g. `v100-sxm2-32gb`.
    pub name: String,
    /// Total device memory in bytes, as `torch.cuda.mem_get_info` reports it.
    pub memory_bytes: u64,
    /// Dense fp16 tensor-core peak, FLOP/s.
    pub fp16_flops: f64,
    /// HBM bandwidth, bytes/s.
    pub memory_bandwidth: f64,
    /// Fraction of bandwidth achieved when streaming the weights in a decode step.
    #[serde(default = "defaults::weight_bandwidth_efficiency")]
    pub weight_bandwidth_efficiency: f64,
    /// Fraction of bandwidth achieved when reading KV blocks (paged attention).
    #[serde(default = "defaults::kv_bandwidth_efficiency")]
    pub kv_bandwidth_efficiency: f64,
    /// Model FLOP utilisation of prefill (fraction of `fp16_flops`).
    #[serde(default = "defaults::prefill_mfu")]
    pub prefill_mfu: f64,
    /// Fixed per-step launch overhead with CUDA graphs, seconds.
    #[serde(default = "defaults::graph_overhead_s")]
    pub graph_overhead_s: f64,
    /// Fixed per-step launch overhead in eager mode (`--enforce-eager`), seconds.
    #[serde(default = "defaults::eager_overhead_s")]
    pub eager_overhead_s: f64,
    /// Memory that is neither weights nor KV cache (activations at profiling, sampler, CUDA context), bytes.
    #[serde(default = "defaults::non_kv_overhead_bytes")]
    pub non_kv_overhead_bytes: u64,
}

mod defaults {
    // Values fitted to the V100 calibration; see the module doc.
    pub fn weight_bandwidth_efficiency() -> f64 {
        0.8
    }
    pub fn kv_bandwidth_efficiency() -> f64 {
        0.895
    }
    pub fn prefill_mfu() -> f64 {
        0.52
    }
    pub fn graph_overhead_s() -> f64 {
        0.001
    }
    pub fn eager_overhead_s() -> f64 {
        0.008
    }
    pub fn non_kv_overhead_bytes() -> u64 {
        (1.6 * super::GIB) as u64
    }
}

impl GpuProfile {
    fn builtin(name: &str, memory_bytes: u64, fp16_flops: f64, memory_bandwidth: f64) -> Self {
        Self {
            name: name.to_string(),
            memory_bytes,
            fp16_flops,
            memory_bandwidth,
            weight_bandwidth_efficiency: defaults::weight_bandwidth_efficiency(),
            kv_bandwidth_efficiency: defaults::kv_bandwidth_efficiency(),
            prefill_mfu: defaults::prefill_mfu(),
            graph_overhead_s: defaults::graph_overhead_s(),
            eager_overhead_s: defaults::eager_overhead_s(),
            non_kv_overhead_bytes: defaults::non_kv_overhead_bytes(),
        }
    }

    /// Built-in GPU profiles. The V100 is calibrated; the others use public data-sheet numbers with the V100's
    /// efficiencies.
    pub fn builtins() -> Vec<GpuProfile> {
        vec![
            // 32,510 MiB visible [M]; 125 TFLOPS fp16 tensor; 900 GB/s HBM2.
            Self::builtin("v100-sxm2-32gb", 34_089_205_760, 125e12, 900e9),
            // PCIe variant: same memory system, 1.38 GHz boost → 112 TFLOPS.
            Self::builtin("v100-pcie-32gb", 34_089_205_760, 112e12, 900e9),
            // A100-SXM4-80GB: 80 GiB, 312 TFLOPS dense fp16, 2,039 GB/s HBM2e.
            Self::builtin("a100-80gb", 85_899_345_920, 312e12, 2_039e9),
            // A100-SXM4-40GB: 40 GiB, 312 TFLOPS, 1,555 GB/s HBM2.
            Self::builtin("a100-40gb", 42_949_672_960, 312e12, 1_555e9),
            // H100-SXM5-80GB: 80 GiB, 989 TFLOPS dense fp16, 3.35 TB/s HBM3.
            Self::builtin("h100-80gb", 85_899_345_920, 989e12, 3_350e9),
        ]
    }

    /// Resolves a built-in name (case-insensitive) or a path to a JSON file.
    pub fn resolve(name_or_path: &str) -> Result<GpuProfile, ProfileError> {
        let builtins = Self::builtins();
        if let Some(found) = builtins
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name_or_path))
        {
            return Ok(found.clone());
        }
        load_file("GPU", name_or_path, || {
            builtins
                .iter()
                .map(|p| p.name.clone())
                .collect::<Vec<_>>()
                .join(", ")
        })
    }
}

/// A decoder-only transformer, as its `config.json` describes it. Weights are fp16.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelProfile {
    /// Profile name, e.g. `deepseek-llm-7b-chat`.
    pub name: String,
    /// Substrings of `--model` values that select this profile (lower case).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// `hidden_size`.
    pub hidden_size: u64,
    /// `intermediate_size` (SwiGLU MLP: three matrices).
    pub intermediate_size: u64,
    /// `num_hidden_layers`.
    pub num_layers: u64,
    /// `num_attention_heads`.
    pub num_attention_heads: u64,
    /// `num_key_value_heads` (fewer than the attention heads means grouped-query attention).
    pub num_kv_heads: u64,
    /// `vocab_size`.
    pub vocab_size: u64,
    /// `max_position_embeddings`: the default `--max-model-len`.
    pub max_position_embeddings: u64,
    /// `tie_word_embeddings`.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Bytes per weight and per KV element (2 for fp16).
    #[serde(default = "two")]
    pub dtype_bytes: u64,
}

fn two() -> u64 {
    2
}

impl ModelProfile {
    #[allow(clippy::too_many_arguments)]
    fn llama_like(
        name: &str,
        aliases: &[&str],
        hidden_size: u64,
        intermediate_size: u64,
        num_layers: u64,
        num_kv_heads: u64,
        vocab_size: u64,
        max_position_embeddings: u64,
    ) -> Self {
        Self {
            name: name.to_string(),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            hidden_size,
            intermediate_size,
            num_layers,
            num_attention_heads: 32,
            num_kv_heads,
            vocab_size,
            max_position_embeddings,
            tie_word_embeddings: false,
            dtype_bytes: 2,
        }
    }

    /// Built-in models (values from each model's `config.json`).
    pub fn builtins() -> Vec<ModelProfile> {
        vec![
            Self::llama_like(
                "deepseek-llm-7b-chat",
                &["deepseek-llm-7b"],
                4096,
                11008,
                30,
                32,
                102_400,
                4096,
            ),
            Self::llama_like(
                "llama-2-7b",
                &["llama-2-7b"],
                4096,
                11008,
                32,
                32,
                32_000,
                4096,
            ),
            // Grouped-query attention: 8 KV heads for 32 query heads.
            Self::llama_like(
                "llama-3-8b",
                &["llama-3-8b", "llama-3.1-8b", "meta-llama-3-8b"],
                4096,
                14336,
                32,
                8,
                128_256,
                8192,
            ),
            Self::llama_like(
                "mistral-7b",
                &["mistral-7b"],
                4096,
                14336,
                32,
                8,
                32_000,
                32_768,
            ),
        ]
    }

    /// Resolves a built-in name, a `--model` value that contains a built-in alias (e.g.
    /// `deepseek-ai/deepseek-llm-7b-chat`, `meta-llama/Llama-2-7b-hf`), or a path to a JSON file.
    pub fn resolve(name_or_path: &str) -> Result<ModelProfile, ProfileError> {
        let builtins = Self::builtins();
        let lower = name_or_path.to_ascii_lowercase();
        if let Some(found) = builtins.iter().find(|p| {
            p.name == lower || p.aliases.iter().any(|alias| lower.contains(alias.as_str()))
        }) {
            return Ok(found.clone());
        }
        load_file("model", name_or_path, || {
            builtins
                .iter()
                .map(|p| p.name.clone())
                .collect::<Vec<_>>()
                .join(", ")
        })
    }

    /// Size of one attention head.
    pub fn head_dim(&self) -> u64 {
        self.hidden_size / self.num_attention_heads
    }

    /// Parameters of the linear layers inside the transformer blocks (QKV, output projection, MLP).
    pub fn linear_params(&self) -> u64 {
        let h = self.hidden_size;
        let kv_width = self.num_kv_heads * self.head_dim();
        let attention = 2 * h * h + 2 * h * kv_width;
        let mlp = 3 * h * self.intermediate_size;
        self.num_layers * (attention + mlp)
    }

    /// All parameters: blocks, embeddings (tied or not) and RMSNorm weights.
    pub fn total_params(&self) -> u64 {
        let embeddings = self.vocab_size * self.hidden_size;
        let lm_head = if self.tie_word_embeddings {
            0
        } else {
            embeddings
        };
        let norms = self.num_layers * 2 * self.hidden_size + self.hidden_size;
        self.linear_params() + embeddings + lm_head + norms
    }

    /// Bytes of weights resident on the GPU.
    pub fn weight_bytes(&self) -> u64 {
        self.total_params() * self.dtype_bytes
    }

    /// Bytes streamed from HBM by one decode step: every linear layer plus the LM head (the input embedding is
    /// only gathered row by row).
    pub fn decode_weight_bytes(&self) -> f64 {
        ((self.linear_params() + self.vocab_size * self.hidden_size) * self.dtype_bytes) as f64
    }

    /// FLOPs of the linear layers for one prompt token (the LM head runs only on the last token).
    pub fn flops_per_token(&self) -> f64 {
        2.0 * self.linear_params() as f64
    }

    /// KV-cache bytes for one token: K and V, every layer, every KV head.
    pub fn kv_bytes_per_token(&self) -> u64 {
        2 * self.num_layers * self.num_kv_heads * self.head_dim() * self.dtype_bytes
    }
}

fn load_file<T: serde::de::DeserializeOwned>(
    kind: &'static str,
    path: &str,
    known: impl FnOnce() -> String,
) -> Result<T, ProfileError> {
    if !Path::new(path).is_file() {
        return Err(ProfileError::Unknown {
            kind,
            name: path.to_string(),
            known: known(),
        });
    }
    let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
        kind,
        path: path.to_string(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| ProfileError::Parse {
        kind,
        path: path.to_string(),
        source,
    })
}

/// `num_gpu_blocks` as vLLM's start-up memory profiling computes it:
/// `floor((total × utilisation − weights − non-KV overhead) / (block_size × kv_bytes_per_token))`.
/// Returns 0 when the weights alone do not fit.
pub fn num_gpu_blocks(
    gpu: &GpuProfile,
    model: &ModelProfile,
    gpu_memory_utilization: f64,
    block_size: u64,
) -> u64 {
    let budget = gpu.memory_bytes as f64 * gpu_memory_utilization;
    let available = budget - model.weight_bytes() as f64 - gpu.non_kv_overhead_bytes as f64;
    if available <= 0.0 {
        return 0;
    }
    (available / (block_size * model.kv_bytes_per_token()) as f64).floor() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu(name: &str) -> GpuProfile {
        GpuProfile::resolve(name).expect("built-in GPU")
    }

    fn model(name: &str) -> ModelProfile {
        ModelProfile::resolve(name).expect("built-in model")
    }

    #[test]
    fn deepseek_architecture_matches_the_calibration_arithmetic() {
        let m = model("deepseek-ai/deepseek-llm-7b-chat");
        assert_eq!(m.name, "deepseek-llm-7b-chat");
        assert_eq!(m.total_params(), 6_910_365_696);
        assert_eq!(m.linear_params(), 6_071_255_040);
        assert_eq!(m.kv_bytes_per_token(), 491_520);
        assert!((m.decode_weight_bytes() - 12.98e9).abs() < 0.01e9);
        assert!((m.flops_per_token() - 12.14e9).abs() < 0.01e9);
    }

    #[test]
    fn llama2_architecture_matches_the_calibration_arithmetic() {
        let m = model("meta-llama/Llama-2-7b-hf");
        assert_eq!(m.total_params(), 6_738_415_616);
        assert_eq!(m.kv_bytes_per_token(), 524_288);
    }

    #[test]
    fn gqa_model_has_a_quarter_of_the_kv_bytes() {
        let m = model("meta-llama/Meta-Llama-3-8B-Instruct");
        assert_eq!(m.num_kv_heads, 8);
        assert_eq!(m.kv_bytes_per_token(), 131_072);
        // Llama-3-8B has 8.03 B parameters.
        assert!((m.total_params() as f64 - 8.03e9).abs() < 0.01e9);
    }

    #[test]
    fn v100_block_counts_match_the_calibration() {
        let v100 = gpu("v100-sxm2-32gb");
        assert_eq!(
            num_gpu_blocks(&v100, &model("deepseek-llm-7b-chat"), 0.9, 16),
            1925
        );
        assert_eq!(num_gpu_blocks(&v100, &model("llama-2-7b"), 0.9, 16), 1846);
    }

    #[test]
    fn weights_that_do_not_fit_give_zero_blocks() {
        assert_eq!(
            num_gpu_blocks(&gpu("v100-sxm2-32gb"), &model("mistral-7b"), 0.3, 16),
            0
        );
    }

    #[test]
    fn unknown_names_list_the_builtins() {
        let err = GpuProfile::resolve("tpu-v9").expect_err("unknown");
        let text = err.to_string();
        assert!(
            text.contains("v100-sxm2-32gb") && text.contains("h100-80gb"),
            "{text}"
        );
    }

    #[test]
    fn profiles_load_from_json_files() {
        let dir = std::env::temp_dir().join(format!("mock-vllm-profile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("gpu.json");
        std::fs::write(
            &path,
            r#"{"name":"l4","memory_bytes":24000000000,"fp16_flops":121e12,"memory_bandwidth":300e9}"#,
        )
        .expect("write");
        let loaded = GpuProfile::resolve(path.to_str().expect("utf-8")).expect("loads");
        assert_eq!(loaded.name, "l4");
        assert_eq!(loaded.prefill_mfu, 0.52);
        std::fs::write(&path, r#"{"name":"l4","memory_byts":1}"#).expect("write");
        let err = GpuProfile::resolve(path.to_str().expect("utf-8")).expect_err("typo");
        assert!(
            err.to_string().contains("invalid GPU profile file"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
