//! `demo`: the HPA / KPA / APA comparison. Brings up a local cluster with one simulated 8-GPU node per
//! strategy, replays one workload against all three side by side (live lines on stderr), brings the cluster down
//! and writes the report (`.e2e/report/demo/`: eight panels as PNG and SVG, `table.md`, `index.html`).
//! `--replot` redraws the report from a finished run's recorded data without a cluster.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use e2e::agent::NodeSpec;
use e2e::cluster::binaries::Binaries;
use e2e::demo::experiment::{self, DemoOptions, STRATEGIES};
use e2e::demo::report::{table_markdown, write_report};
use e2e::local_cluster::{LocalCluster, LocalClusterOptions};

/// `demo` options.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// The experiment's 25-minute shape instead of the compressed 8-minute one.
    #[arg(long)]
    full: bool,
    /// Workload seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Mean prompt length (tokens).
    #[arg(long, default_value_t = 300.0)]
    prompt_tokens: f64,
    /// Mean output length (tokens).
    #[arg(long, default_value_t = 200.0)]
    output_tokens: f64,
    /// Per-request timeout, seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Simulated model load of each new pod, seconds (default: the manifest's).
    #[arg(long)]
    startup_delay: Option<f64>,
    /// Live view period, seconds.
    #[arg(long, default_value_t = 10)]
    live_interval: u64,
    /// Where the report goes (recorded data under `data/`).
    #[arg(long, default_value = ".e2e/report/demo")]
    report_dir: PathBuf,
    /// Redraw the report from `<report-dir>/data` instead of running.
    #[arg(long)]
    replot: bool,
    /// Where the cluster keeps its files.
    #[arg(long, default_value = ".e2e")]
    state_dir: PathBuf,
    /// kube-controller-manager's HPA sync period, seconds.
    #[arg(long, default_value_t = 15)]
    hpa_sync_period: u64,
    /// Pod addresses come from 127.<this>.0.0/16.
    #[arg(long, default_value_t = 31)]
    pod_address_octet: u8,
    /// NodePort of the first strategy.
    #[arg(long, default_value_t = 31500)]
    node_port_base: u16,
}

/// `demo`.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let data_dir = args.report_dir.join("data");
    let title = format!(
        "AIBrix autoscalers on simulated V100s: HPA / KPA / APA, {} up-and-down workload",
        if args.full { "25-minute" } else { "8-minute" }
    );
    let runs = if args.replot {
        experiment::read_runs(&data_dir)?
    } else {
        let manifests = e2e::paths::mock_vllm_manifests()?;
        let binaries = Binaries::ensure()
            .await
            .context("building the control-plane binaries")?;
        let options = LocalClusterOptions::with_nodes(
            "demo",
            &args.state_dir,
            Duration::from_secs(args.hpa_sync_period),
            STRATEGIES
                .iter()
                .map(|s| NodeSpec::gpu_node(experiment::node(*s), 8))
                .collect(),
            args.pod_address_octet,
        );
        let cluster = LocalCluster::start(&binaries, &options)
            .await
            .context("starting the local cluster")?;
        eprintln!("[{:>5.0} s] cluster up", started.elapsed().as_secs_f64());
        let demo = DemoOptions {
            full: args.full,
            seed: args.seed,
            prompt_tokens: args.prompt_tokens,
            output_tokens: args.output_tokens,
            timeout: Duration::from_secs(args.timeout),
            startup_delay_s: args.startup_delay,
            manifests,
            node_port_base: args.node_port_base,
            data_dir: data_dir.clone(),
            live_interval: Duration::from_secs(args.live_interval.max(1)),
        };
        let progress =
            |line: String| eprintln!("[{:>5.0} s] {line}", started.elapsed().as_secs_f64());
        let result =
            experiment::run(&cluster.plane.client, &cluster.gateway, &demo, &progress).await;
        let logs_copy = data_dir.join("logs");
        let _ = std::fs::create_dir_all(&logs_copy);
        if let Ok(entries) = std::fs::read_dir(&cluster.plane.paths.logs) {
            for entry in entries.flatten() {
                let _ = std::fs::copy(entry.path(), logs_copy.join(entry.file_name()));
            }
        }
        cluster.stop().await;
        result?
    };
    let rows = write_report(&runs, &args.report_dir, &title)?;
    println!("\n{}", table_markdown(&rows));
    println!(
        "wall time {:.0} s; report: {}",
        started.elapsed().as_secs_f64(),
        args.report_dir.join("index.html").display()
    );
    Ok(())
}
