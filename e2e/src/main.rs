//! `autoscale-harness`: the e2e CLI.
//!
//! A thin dispatcher: each command group lives in its own module under `cli/` (workloads now; `up`, `down`,
//! `status`, `run`, `report` later) and calls into the `e2e` library. Logs go to stderr through `tracing`
//! (`RUST_LOG` overrides the default `info`); results go to files and stdout.

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// End-to-end harness for LLM autoscalers.
#[derive(Debug, Parser)]
#[command(name = "autoscale-harness", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Start a local cluster (real control plane + AIBrix controller, node agent) in the background.
    Up(cli::cluster::UpArgs),
    /// Stop a local cluster and everything it started.
    Down(cli::cluster::ClusterArgs),
    /// Show a local cluster's components, nodes and pods.
    Status(cli::cluster::ClusterArgs),
    /// Run the autoscaling scenarios on a fresh local cluster and write the report.
    Run(cli::run::RunArgs),
    /// Compare the pristine and the patched controller runs of the suite (after `run` and `run --aibrix patched`).
    Compare(cli::compare::CompareArgs),
    /// Compare HPA, KPA and APA on one workload (AIBrix's experiment, GPU-free) and write the report with plots.
    Demo(cli::demo::DemoArgs),
    /// Run a cluster until SIGTERM (started by `up`).
    #[command(hide = true)]
    Supervise(cli::cluster::UpArgs),
    /// Serve the metrics APIs from a pod of a real cluster (kind: manifests/metrics-adapter).
    MetricsAdapter(cli::adapter::AdapterArgs),
    /// Generate AIBrix-format workloads and replay them against an OpenAI-compatible server.
    #[command(subcommand)]
    Workload(cli::workload::WorkloadCommand),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: anyhow::Result<()> = runtime.block_on(async {
        match cli.command {
            Command::Up(args) => cli::cluster::up(args).await,
            Command::Down(args) => cli::cluster::down(args).await,
            Command::Status(args) => cli::cluster::status(args).await,
            Command::Demo(args) => cli::demo::run(args).await,
            Command::Supervise(args) => cli::cluster::supervise(args).await,
            Command::Run(args) => cli::run::run(args).await,
            Command::Compare(args) => cli::compare::run(args),
            Command::MetricsAdapter(args) => cli::adapter::run(args).await,
            Command::Workload(command) => cli::workload::run(command).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
