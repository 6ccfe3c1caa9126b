//! The HPA / KPA / APA comparison demo (`autoscale-harness demo`, `make demo`): AIBrix's metric-based
//! autoscaling experiment, GPU-free.
//!
//! One workload (the experiment's 1 → 4 → 8 → 10 → 2 → 6 RPS up-and-down shape) is replayed open loop, at the
//! same time, against three copies of the simulated deepseek-llm-7b-chat on V100s, each in its own namespace on
//! its own 8-GPU node and scaled by a PodAutoscaler of one strategy on `gpu_cache_usage_perc` (target 50%).
//!
//! # Layout
//! - [`experiment`]: the run on a cluster (namespaces, Deployments, PodAutoscalers, replay, observers, live view).
//! - [`report`]: the pure report generator (eight panels as SVG and PNG, `table.md`, `index.html`).

pub mod experiment;
pub mod report;

use std::path::PathBuf;

/// Why the demo could not run or its report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A file could not be written or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A plot could not be drawn.
    #[error("plot: {0}")]
    Plot(String),
    /// An SVG could not be rasterised.
    #[error("png: {0}")]
    Png(String),
    /// Recorded data could not be (de)serialised.
    #[error("data: {0}")]
    Data(String),
    /// The workload could not be generated or replayed.
    #[error("workload: {0}")]
    Workload(String),
    /// Setting up a strategy in the cluster failed.
    #[error("{strategy}: {message}")]
    Setup {
        /// The strategy.
        strategy: String,
        /// What went wrong.
        message: String,
    },
}
