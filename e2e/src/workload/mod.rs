//! Workloads: AIBrix-compatible JSONL traces, their generator, and the open/closed-loop replay client.
//!
//! The harness drives autoscalers with the same workload files AIBrix's benchmarks use
//! (`/work/shared/reference/workloads.md`), so results compare with the published experiment and files move
//! between the two tool chains unchanged.
//!
//! # Layout
//! - [`trace`]: the JSONL record types, a reader (current, legacy and GPU-optimizer keys) and a writer.
//! - [`patterns`]: traffic and length patterns (AIBrix's sine formula and presets, constants, step/trend lists).
//! - [`generate`]: Poisson arrivals from a per-second rate and prompt selection (ShareGPT matching or synthetic).
//! - [`sharegpt`]: loading a ShareGPT-format dataset with token lengths.
//! - [`replay`]: the open-loop (timestamped) and closed-loop (fixed concurrency) streaming client.
//! - [`summary`]: percentiles, throughput and goodput over the client's records.
//! - [`plot`]: an SVG of the generated RPS and lengths over time.

pub mod generate;
pub mod patterns;
pub mod plot;
pub mod replay;
pub mod sharegpt;
pub mod summary;
pub mod trace;

use std::path::Path;

pub use generate::{generate, GenerateConfig, GeneratedWorkload};
pub use patterns::{Pattern, Preset, SineConfig, SinePatternJson, StepShape};
pub use replay::{
    replay, replay_closed_loop, ApiKind, ClosedLoopConfig, Dispatcher, ReplayConfig, ReplayError,
    ReplayProgress, RequestRecord,
};
pub use sharegpt::{Dataset, DatasetRow};
pub use summary::{Slo, Stats, Summary};
pub use trace::{ScheduledRequest, Trace, TraceEntry, TraceRequest};

/// Why a workload could not be read, generated, written or plotted.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// A file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file (or `<input>`/`<output>` for streams).
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A line (or JSON-list element) is not a valid workload row.
    #[error("{}", parse_message(path.as_deref(), *line, message))]
    Parse {
        /// The file, when known.
        path: Option<String>,
        /// 1-based line number (0 when the whole input is one JSON list).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A pattern description is invalid (bad JSON config, empty step list, negative value …).
    #[error("invalid pattern: {0}")]
    Pattern(String),
    /// Generator settings that cannot produce a workload.
    #[error("invalid generator settings: {0}")]
    Config(String),
    /// The prompt dataset could not be used.
    #[error("dataset {path}: {message}")]
    Dataset {
        /// The dataset file.
        path: String,
        /// What is wrong (with a line number where there is one).
        message: String,
    },
    /// The plot could not be drawn.
    #[error("plot: {0}")]
    Plot(String),
}

fn parse_message(path: Option<&str>, line: usize, message: &str) -> String {
    let mut out = path.map(|p| format!("{p}: ")).unwrap_or_default();
    if line > 0 {
        out.push_str(&format!("line {line}: "));
    }
    out.push_str(message);
    out
}

impl WorkloadError {
    fn read(source: std::io::Error) -> Self {
        Self::Io {
            path: "<input>".into(),
            source,
        }
    }

    fn write(source: std::io::Error) -> Self {
        Self::Io {
            path: "<output>".into(),
            source,
        }
    }

    /// Attaches the file name to errors from a stream.
    fn with_path(self, file: &Path) -> Self {
        let name = file.display().to_string();
        match self {
            Self::Io { source, .. } => Self::Io { path: name, source },
            Self::Parse { line, message, .. } => Self::Parse {
                path: Some(name),
                line,
                message,
            },
            other => other,
        }
    }
}
