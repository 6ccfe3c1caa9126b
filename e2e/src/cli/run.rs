//! `run`: the autoscaling e2e suite. Brings up a local cluster with one simulated 8-GPU node per scenario, runs
//! every scenario side by side, writes `summary.json` and `report.md`, brings the cluster down, and fails on any
//! unexpected result.
//!
//! `--cluster kind|existing` runs the same scenarios on the cluster of the current kubeconfig instead (`--kubeconfig`
//! or `KUBECONFIG`), which must already run AIBrix and the metrics adapter (`make deploy`): no per-scenario nodes,
//! scenarios one after another, Services reached on `<--gateway-host>:<nodePort>` ([`FrontDoor`]).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use e2e::agent::NodeSpec;
use e2e::cluster::binaries::Binaries;
use e2e::local_cluster::{LocalCluster, LocalClusterOptions};
use e2e::scenario::catalogue::Catalogue;
use e2e::scenario::controller_build::{ControllerBuild, Patch};
use e2e::scenario::front_door::FrontDoor;
use e2e::scenario::report::SuiteReport;
use e2e::scenario::run::{node_name, run_all, RunContext};
use e2e::scenario::spec::Scenario;

/// Which cluster the scenarios run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClusterKind {
    /// A fresh local cluster, one simulated node per scenario, scenarios side by side.
    Local,
    /// The kind cluster of `make kind-up deploy` (NodePorts mapped to 127.0.0.1 by kind-config.yaml).
    Kind,
    /// Any cluster of the current kubeconfig with AIBrix and the metrics adapter deployed.
    Existing,
}

/// Which scenarios a run takes before `--only` and `--tags` narrow them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Tier {
    /// Every scenario not tagged `full`.
    Default,
    /// Every scenario.
    Full,
}

/// `run` options.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Directory of scenario files [default: e2e/scenarios of the repository, see AUTOSCALE_HARNESS_ROOT].
    #[arg(long)]
    scenarios: Option<PathBuf>,
    /// Run only these scenarios (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Run only scenarios with any of these tags (comma-separated; the strategy `hpa`/`kpa`/`apa` is a tag too).
    #[arg(long, value_delimiter = ',')]
    tags: Vec<String>,
    /// `default`: every scenario not tagged `full` (the tier `make e2e` runs); `full`: every scenario.
    #[arg(long, value_enum, default_value_t = Tier::Default)]
    tier: Tier,
    /// Which AIBrix controller runs: the release as published, or the release with the patch series of
    /// e2e/go/aibrix-patches (every expected failure whose deviation a patch fixes must then pass).
    #[arg(long, value_enum, default_value_t = ControllerBuild::Pristine)]
    aibrix: ControllerBuild,
    /// Where the report goes [default: .e2e/report, or .e2e/report-patched with `--aibrix patched`].
    #[arg(long)]
    report_dir: Option<PathBuf>,
    /// Where the cluster keeps its files.
    #[arg(long, default_value = ".e2e")]
    state_dir: PathBuf,
    /// kube-controller-manager's HPA sync period, seconds.
    #[arg(long, default_value_t = 15)]
    hpa_sync_period: u64,
    /// Pod addresses come from 127.<this>.0.0/16.
    #[arg(long, default_value_t = 30)]
    pod_address_octet: u8,
    /// First NodePort of the scenarios' Services.
    #[arg(long, default_value_t = 31000)]
    node_port_base: u16,
    /// On kind or an existing cluster, leave each scenario's namespace in place when it is done (to inspect it with
    /// kubectl); by default it is deleted before the next scenario starts, freeing its pods' CPU requests.
    #[arg(long)]
    keep_namespaces: bool,
    /// Where to run: a fresh local cluster, or the cluster of the current kubeconfig.
    #[arg(long, value_enum, default_value_t = ClusterKind::Local)]
    cluster: ClusterKind,
    /// kubeconfig of a kind/existing cluster (default: KUBECONFIG, then ~/.kube/config).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Host on which a kind/existing cluster's NodePorts are reached (kind: the host port mappings).
    #[arg(long, default_value = "127.0.0.1")]
    gateway_host: String,
}

impl RunArgs {
    /// The part of the tier `--only` / `--tags` chose, as the report records it; `None` for the whole tier.
    fn selection(&self) -> Option<String> {
        let mut parts = Vec::new();
        if !self.only.is_empty() {
            parts.push(format!("--only {}", self.only.join(",")));
        }
        if !self.tags.is_empty() {
            parts.push(format!("--tags {}", self.tags.join(",")));
        }
        (!parts.is_empty()).then(|| parts.join(" "))
    }

    fn report_dir(&self) -> PathBuf {
        self.report_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(default_report_dir(self.aibrix)))
    }
}

/// Where `run --aibrix <build>` writes its report unless told otherwise (`compare` reads both).
pub fn default_report_dir(build: ControllerBuild) -> &'static str {
    match build {
        ControllerBuild::Pristine => ".e2e/report",
        ControllerBuild::Patched => ".e2e/report-patched",
    }
}

/// The build under test: its patches and the catalogue entries it fixes.
fn build_under_test(
    build: ControllerBuild,
    catalogue: &Catalogue,
) -> anyhow::Result<e2e::scenario::report::BuildUnderTest> {
    let dir = e2e::paths::aibrix_patches_dir()?;
    let series = Patch::read_series(&dir)
        .with_context(|| format!("reading the patch series in {}", dir.display()))?;
    let fixed = build.fixed_deviations(catalogue, &series);
    Ok(e2e::scenario::report::BuildUnderTest {
        build,
        patches: if build == ControllerBuild::Patched {
            series
        } else {
            Vec::new()
        },
        fixed_deviations: fixed,
    })
}

/// `run`.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let dir = match &args.scenarios {
        Some(dir) => dir.clone(),
        None => e2e::paths::scenarios_dir()?,
    };
    let mut scenarios = Scenario::read_dir(&dir)?;
    if !args.only.is_empty() {
        for wanted in &args.only {
            if !scenarios.iter().any(|s| &s.name == wanted) {
                bail!("no scenario named `{wanted}` in {}", dir.display());
            }
        }
        scenarios.retain(|s| args.only.contains(&s.name));
    } else if args.tier == Tier::Default {
        scenarios.retain(|s| !s.has_any_tag(&["full".to_string()]));
    }
    if !args.tags.is_empty() {
        scenarios.retain(|s| s.has_any_tag(&args.tags));
    }
    if scenarios.is_empty() {
        bail!(
            "no scenario of {} matches (tier {:?}, tags {:?})",
            dir.display(),
            args.tier,
            args.tags
        );
    }
    // Found before any cluster starts, so that a missing repository or a bad catalogue fails fast.
    let manifests = e2e::paths::mock_vllm_manifests()?;
    let catalogue = Catalogue::read(&e2e::paths::deviations_file()?)?;
    let build = build_under_test(args.aibrix, &catalogue)?;
    if args.cluster != ClusterKind::Local {
        if args.aibrix == ControllerBuild::Patched {
            bail!(
                "--aibrix patched runs on the local cluster only: kind and existing clusters run the released \
                 controller image (drop --aibrix or use --cluster local)"
            );
        }
        return run_on_existing(&args, &scenarios, manifests, started, &catalogue, build).await;
    }
    let longest = scenarios.iter().map(|s| s.duration_s()).fold(0.0, f64::max);
    eprintln!(
        "{} scenarios, the longest {:.0} s of load; building or finding the binaries...",
        scenarios.len(),
        longest
    );
    let mut binaries = Binaries::ensure()
        .await
        .context("building the control-plane binaries")?;
    if args.aibrix == ControllerBuild::Patched {
        binaries = binaries.with_patched_aibrix();
        eprintln!(
            "AIBrix controller: patched build ({} patches, key {}), fixing {}",
            build.patches.len(),
            binaries.aibrix_patches_key,
            build
                .fixed_deviations
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let options = LocalClusterOptions::with_nodes(
        "e2e",
        &args.state_dir,
        Duration::from_secs(args.hpa_sync_period),
        scenarios
            .iter()
            .map(|s| NodeSpec::gpu_node(node_name(s), 8))
            .collect(),
        args.pod_address_octet,
    );
    let cluster = LocalCluster::start(&binaries, &options)
        .await
        .context("starting the local cluster")?;
    eprintln!(
        "[{:>5.0} s] cluster up; running scenarios side by side",
        started.elapsed().as_secs_f64()
    );
    let ctx = RunContext {
        client: cluster.plane.client.clone(),
        artifacts: args.report_dir().join("scenarios"),
        logs: cluster.plane.paths.logs.clone(),
        manifests,
        node_port_base: args.node_port_base,
        hpa_sync_period_s: args.hpa_sync_period as f64,
        fixed_deviations: build.fixed_deviations.clone(),
        logs_from_pods: false,
        keep_namespaces: true,
    };
    let progress = |line: String| eprintln!("[{:>5.0} s] {line}", started.elapsed().as_secs_f64());
    let results = run_all(
        &ctx,
        &FrontDoor::Local(&cluster.gateway),
        &scenarios,
        &progress,
    )
    .await;
    // Keep the component logs with the report.
    let logs_copy = args.report_dir().join("logs");
    let _ = std::fs::create_dir_all(&logs_copy);
    if let Ok(entries) = std::fs::read_dir(&cluster.plane.paths.logs) {
        for entry in entries.flatten() {
            let _ = std::fs::copy(entry.path(), logs_copy.join(entry.file_name()));
        }
    }
    cluster.stop().await;
    let versions = e2e::versions::versions()
        .into_iter()
        .filter(|(k, _)| {
            ["KUBERNETES_VERSION", "ETCD_VERSION", "AIBRIX_VERSION"].contains(&k.as_str())
        })
        .collect();
    finish(&args, started, versions, results, &catalogue, build)
}

/// `run --cluster kind|existing`: the scenarios one after another on the current kubeconfig's cluster.
async fn run_on_existing(
    args: &RunArgs,
    scenarios: &[Scenario],
    manifests: PathBuf,
    started: Instant,
    catalogue: &Catalogue,
    build: e2e::scenario::report::BuildUnderTest,
) -> anyhow::Result<()> {
    let client = match &args.kubeconfig {
        Some(path) => e2e::cluster::client_for(path).await?,
        None => kube::Client::try_default()
            .await
            .context("no kubeconfig (KUBECONFIG or ~/.kube/config)")?,
    };
    let server = client
        .apiserver_version()
        .await
        .context("asking the API server its version")?;
    // The HPA reads the metrics APIs through the aggregator, and discovery and namespace deletion need every
    // aggregated API to answer: a cluster where one does not would fail every scenario, slowly and obscurely.
    const AGGREGATED_API_WAIT: Duration = Duration::from_secs(90);
    let aggregated = e2e::k8s::health::aggregated_apis_answer(&client, AGGREGATED_API_WAIT)
        .await
        .map_err(|failing| {
            anyhow::anyhow!(
                "the cluster's aggregated APIs do not answer through the API server after {} s: {failing} \
                 (make kind-down && make kind-up starts a fresh kind cluster)",
                AGGREGATED_API_WAIT.as_secs()
            )
        })?;
    let total: f64 = scenarios.iter().map(|s| s.duration_s()).sum();
    eprintln!(
        "aggregated APIs answering through the API server: {}",
        if aggregated.is_empty() {
            "none registered".to_string()
        } else {
            aggregated.join(", ")
        }
    );
    eprintln!(
        "{} scenarios on the {:?} cluster (Kubernetes {}), one after another, {total:.0} s of load in all",
        scenarios.len(),
        args.cluster,
        server.git_version
    );
    let ctx = RunContext {
        client,
        artifacts: args.report_dir().join("scenarios"),
        // The controllers run in the cluster: their logs are copied here before each scenario is judged.
        logs: args.report_dir().join("logs"),
        manifests,
        node_port_base: args.node_port_base,
        hpa_sync_period_s: args.hpa_sync_period as f64,
        fixed_deviations: build.fixed_deviations.clone(),
        logs_from_pods: true,
        keep_namespaces: args.keep_namespaces,
    };
    let progress = |line: String| eprintln!("[{:>5.0} s] {line}", started.elapsed().as_secs_f64());
    let front_door = FrontDoor::NodePort {
        host: &args.gateway_host,
    };
    let results = run_all(&ctx, &front_door, scenarios, &progress).await;
    let mut versions: std::collections::BTreeMap<String, String> = e2e::versions::versions()
        .into_iter()
        .filter(|(k, _)| k == "AIBRIX_VERSION")
        .collect();
    versions.insert("KUBERNETES_VERSION".into(), server.git_version);
    versions.insert(
        "CLUSTER".into(),
        format!("{:?}", args.cluster).to_lowercase(),
    );
    finish(args, started, versions, results, catalogue, build)
}

/// Writes the report, prints the table and fails on any unexpected result.
fn finish(
    args: &RunArgs,
    started: Instant,
    versions: std::collections::BTreeMap<String, String>,
    results: Vec<e2e::scenario::run::ScenarioResult>,
    catalogue: &Catalogue,
    build: e2e::scenario::report::BuildUnderTest,
) -> anyhow::Result<()> {
    let report_dir = args.report_dir();
    let mut report = SuiteReport::new(
        started.elapsed().as_secs_f64(),
        versions,
        results,
        catalogue,
        build,
    );
    report.selection = args.selection();
    report.write(&report_dir)?;
    println!("\n{}", report.table());
    for line in report.unexpected() {
        println!("unexpected: {line}");
    }
    let c = &report.counts;
    println!(
        "{} passed, {} failed, {} expected failures, {} unexpected passes, {} intermittent in {:.0} s; report: {}",
        c.pass,
        c.fail,
        c.expected_fail,
        c.unexpected_pass,
        c.intermittent,
        report.wall_time_s,
        report_dir.join("report.md").display()
    );
    if !report.ok() {
        bail!(
            "unexpected results (see {})",
            report_dir.join("report.md").display()
        );
    }
    Ok(())
}
