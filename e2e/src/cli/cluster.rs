//! `up`, `down`, `status` (and the hidden `supervise`): the local cluster's life from the command line.
//!
//! `up` builds the pinned binaries if needed (progress on the terminal), then starts a detached supervisor process
//! (`autoscale-harness supervise`) that owns the control plane and runs the node agent, and waits until the
//! supervisor reports `ready` in its state file. `down` signals the supervisor, waits for it, and kills anything a
//! crashed run left behind. `status` reads the state file and asks the API server. `up --foreground` runs the
//! supervisor in this process until Ctrl-C (handy for demos).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use e2e::agent::NodeSpec;
use e2e::cluster::binaries::Binaries;
use e2e::cluster::processes::ProcessGroup;
use e2e::cluster::ClusterPaths;
use e2e::local_cluster::{ClusterState, LocalCluster, LocalClusterOptions};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Which cluster.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// Cluster name: clusters with different names run side by side.
    #[arg(long, default_value = "default")]
    pub name: String,
    /// Where clusters keep their files (certificates, logs, kubeconfig).
    #[arg(long, default_value = ".e2e", env = "AUTOSCALE_HARNESS_STATE")]
    pub state_dir: PathBuf,
}

/// `up` options.
#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Number of simulated GPU nodes.
    #[arg(long, default_value_t = 1)]
    nodes: u32,
    /// `nvidia.com/gpu` per node.
    #[arg(long, default_value_t = 8)]
    gpus_per_node: u32,
    /// HPA sync period of kube-controller-manager, seconds.
    #[arg(long, default_value_t = 15)]
    hpa_sync_period: u64,
    /// Pod addresses come from 127.<this>.0.0/16.
    #[arg(long, default_value_t = 10)]
    pod_address_octet: u8,
    /// The gateway listens on 127.0.0.1:<nodePort + offset> for each NodePort Service (offset 0 = like kind).
    #[arg(long, default_value_t = 0)]
    gateway_port_offset: u16,
    /// Run the cluster in this process until Ctrl-C instead of a background supervisor.
    #[arg(long)]
    foreground: bool,
}

impl UpArgs {
    fn options(&self) -> LocalClusterOptions {
        let mut options = LocalClusterOptions::with_nodes(
            &self.cluster.name,
            &self.cluster.state_dir,
            Duration::from_secs(self.hpa_sync_period),
            (0..self.nodes)
                .map(|i| NodeSpec::gpu_node(format!("gpu-node-{i}"), self.gpus_per_node))
                .collect(),
            self.pod_address_octet,
        );
        options.gateway.port_offset = self.gateway_port_offset;
        options
    }

    fn forward_args(&self) -> Vec<String> {
        vec![
            format!("--name={}", self.cluster.name),
            format!("--state-dir={}", self.cluster.state_dir.display()),
            format!("--nodes={}", self.nodes),
            format!("--gpus-per-node={}", self.gpus_per_node),
            format!("--hpa-sync-period={}", self.hpa_sync_period),
            format!("--pod-address-octet={}", self.pod_address_octet),
            format!("--gateway-port-offset={}", self.gateway_port_offset),
        ]
    }
}

fn paths(cluster: &ClusterArgs) -> ClusterPaths {
    ClusterPaths::new(&cluster.state_dir, &cluster.name)
}

/// `up`.
pub async fn up(args: UpArgs) -> anyhow::Result<()> {
    let paths = paths(&args.cluster);
    if let Some(state) = ClusterState::read(&paths.state) {
        if state.supervisor_alive() && state.phase == "ready" {
            println!("cluster `{}` is already up", state.name);
            print_ready(&state);
            return Ok(());
        }
    }
    let started = Instant::now();
    eprintln!(
        "checking the control-plane binaries (built from Go modules on first use; cached after)..."
    );
    let binaries = Binaries::ensure()
        .await
        .context("building the control-plane binaries")?;
    if args.foreground {
        return supervise_in_process(args, binaries).await;
    }
    std::fs::create_dir_all(&paths.dir)
        .with_context(|| format!("creating {}", paths.dir.display()))?;
    let _ = std::fs::remove_file(&paths.state);
    let log = paths.dir.join("supervisor.log");
    let out = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let exe = std::env::current_exe().context("locating this executable")?;
    let mut command = std::process::Command::new(exe);
    command
        .arg("supervise")
        .args(args.forward_args())
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let child = command.spawn().context("starting the supervisor")?;
    eprintln!(
        "starting cluster `{}` (supervisor pid {}, log {})",
        args.cluster.name,
        child.id(),
        log.display()
    );
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if let Some(state) = ClusterState::read(&paths.state) {
            match state.phase.as_str() {
                "ready" => {
                    println!(
                        "cluster `{}` is up in {:.1} s",
                        state.name,
                        started.elapsed().as_secs_f64()
                    );
                    print_ready(&state);
                    return Ok(());
                }
                "failed" => bail!(
                    "cluster `{}` failed to start: {}\n(see {})",
                    state.name,
                    state.error.unwrap_or_default(),
                    log.display()
                ),
                _ => {}
            }
        }
        if Instant::now() > deadline {
            bail!(
                "cluster did not become ready within 180 s; see {}",
                log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn print_ready(state: &ClusterState) {
    println!("  kubeconfig: {}", state.kubeconfig.display());
    println!("  server:     {}", state.server);
    println!("  logs:       {}", state.logs.display());
    let kubectl = state
        .kubectl
        .as_ref()
        .map_or("kubectl".to_string(), |k| k.display().to_string());
    println!(
        "  try:        {kubectl} --kubeconfig {} get nodes",
        state.kubeconfig.display()
    );
}

/// The hidden `supervise` command: run the cluster until SIGTERM/SIGINT, reporting through the state file.
pub async fn supervise(args: UpArgs) -> anyhow::Result<()> {
    let binaries = Binaries::ensure()
        .await
        .context("locating the control-plane binaries")?;
    supervise_in_process(args, binaries).await
}

async fn supervise_in_process(args: UpArgs, binaries: Binaries) -> anyhow::Result<()> {
    let options = args.options();
    let paths = paths(&args.cluster);
    std::fs::create_dir_all(&paths.dir)?;
    let mut state = ClusterState {
        name: options.name.clone(),
        supervisor_pid: std::process::id(),
        phase: "starting".into(),
        error: None,
        kubeconfig: absolute(&paths.kubeconfig),
        server: String::new(),
        ports: None,
        components: Vec::new(),
        logs: absolute(&paths.logs),
        kubectl: Some(binaries.kubectl.clone()),
    };
    state.write(&paths.state)?;
    let cluster = match LocalCluster::start(&binaries, &options).await {
        Ok(cluster) => cluster,
        Err(e) => {
            state.phase = "failed".into();
            state.error = Some(format!("{e:#}"));
            state.write(&paths.state)?;
            return Err(e.into());
        }
    };
    state.phase = "ready".into();
    state.server = format!("https://127.0.0.1:{}", cluster.plane.ports.apiserver);
    state.ports = Some(cluster.plane.ports);
    state.components = cluster.plane.pids();
    state.write(&paths.state)?;
    if args.foreground {
        println!("cluster `{}` is up; Ctrl-C stops it", options.name);
        print_ready(&state);
    }
    wait_for_stop_signal().await;
    eprintln!("stopping cluster `{}`", options.name);
    cluster.stop().await;
    let _ = std::fs::remove_file(&paths.state);
    Ok(())
}

fn absolute(path: &std::path::Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

async fn wait_for_stop_signal() {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// `down`.
pub async fn down(cluster: ClusterArgs) -> anyhow::Result<()> {
    let paths = paths(&cluster);
    let Some(state) = ClusterState::read(&paths.state) else {
        let killed = ProcessGroup::reap_leftovers(&paths.pid_registry);
        if killed.is_empty() {
            println!("cluster `{}` is not running", cluster.name);
        } else {
            println!(
                "cluster `{}` was not running; killed {} leftover processes",
                cluster.name,
                killed.len()
            );
        }
        return Ok(());
    };
    if state.supervisor_alive() {
        let pid = Pid::from_raw(state.supervisor_pid as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(60);
        while state.supervisor_alive() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if state.supervisor_alive() {
            eprintln!("supervisor did not stop within 60 s; killing it");
            let _ = kill(pid, Signal::SIGKILL);
        }
    }
    let killed = ProcessGroup::reap_leftovers(&paths.pid_registry);
    let _ = std::fs::remove_file(&paths.state);
    println!(
        "cluster `{}` is down{}",
        cluster.name,
        if killed.is_empty() {
            String::new()
        } else {
            format!(" (killed {} leftover processes)", killed.len())
        }
    );
    Ok(())
}

/// `status`.
pub async fn status(cluster: ClusterArgs) -> anyhow::Result<()> {
    let paths = paths(&cluster);
    let Some(state) = ClusterState::read(&paths.state) else {
        println!("cluster `{}`: not running", cluster.name);
        return Ok(());
    };
    let alive = state.supervisor_alive();
    println!(
        "cluster `{}`: {}{}",
        state.name,
        if alive {
            state.phase.as_str()
        } else {
            "supervisor gone (run `down` to clean up)"
        },
        state
            .error
            .as_deref()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default()
    );
    print_ready(&state);
    for (name, pid) in &state.components {
        let running = std::fs::metadata(format!("/proc/{pid}")).is_ok();
        println!(
            "  {name:<26} pid {pid:<8} {}",
            if running { "running" } else { "gone" }
        );
    }
    if !alive || state.phase != "ready" {
        return Ok(());
    }
    let client = e2e::cluster::client_for(&state.kubeconfig).await?;
    let nodes: Api<Node> = Api::all(client.clone());
    for node in nodes.list(&ListParams::default()).await?.items {
        let name = node.metadata.name.clone().unwrap_or_default();
        let status = node.status.unwrap_or_default();
        let ready = status
            .conditions
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        let gpus = status
            .allocatable
            .and_then(|a| a.get("nvidia.com/gpu").map(|q| q.0.clone()))
            .unwrap_or_default();
        println!(
            "  node {name:<21} {} gpus={gpus}",
            if ready { "Ready" } else { "NotReady" }
        );
    }
    let pods: Api<Pod> = Api::all(client);
    let pods = pods.list(&ListParams::default()).await?.items;
    let ready = pods.iter().filter(|p| e2e::k8s::pod::is_ready(p)).count();
    println!("  pods: {} ({} ready)", pods.len(), ready);
    Ok(())
}
