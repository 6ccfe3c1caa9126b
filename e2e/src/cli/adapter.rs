//! `metrics-adapter`: the harness's metrics adapter (`custom.metrics.k8s.io`, `metrics.k8s.io`) as a standalone
//! process, for a real cluster (kind: `manifests/metrics-adapter/`, same image as mock-vllm).
//!
//! The client comes from `kube::Client::try_default()`: `KUBECONFIG` / `~/.kube/config` outside a cluster, the pod's
//! ServiceAccount inside one. With `--no-register` the APIServices are left to the manifests (which point them at a
//! ClusterIP Service); without it the adapter registers itself the way the local cluster does, through an
//! `ExternalName` Service to 127.0.0.1, which only works when the API server runs on the same host.
//!
//! The adapter library always writes its `kube-system/autoscale-harness-metrics` ExternalName Service (and removes
//! it on exit), registered or not; in a real cluster nothing points at it, see `manifests/metrics-adapter/rbac.yaml`.

use std::net::IpAddr;

use anyhow::Context;
use clap::Args;
use e2e::metrics_api::{MetricsAdapter, MetricsAdapterOptions};
use tokio_util::sync::CancellationToken;

/// `metrics-adapter` options.
#[derive(Debug, Clone, Args)]
pub struct AdapterArgs {
    /// Listen address (0.0.0.0 in a pod: the Service reaches it on the pod IP).
    #[arg(long, default_value = "0.0.0.0")]
    bind: IpAddr,
    /// Listen port (HTTPS, self-signed certificate).
    #[arg(long, default_value_t = 6443)]
    port: u16,
    /// Do not register APIServices (the cluster's manifests do).
    #[arg(long)]
    no_register: bool,
}

/// Runs the adapter until SIGTERM or Ctrl-C.
pub async fn run(args: AdapterArgs) -> anyhow::Result<()> {
    let client = kube::Client::try_default().await.context(
        "no Kubernetes client (KUBECONFIG, ~/.kube/config or in-cluster ServiceAccount)",
    )?;
    let options = MetricsAdapterOptions {
        bind: args.bind,
        port: args.port,
        register_custom: !args.no_register,
        register_resource: !args.no_register,
        ..MetricsAdapterOptions::default()
    };
    let adapter = MetricsAdapter::start(client, options, CancellationToken::new())
        .await
        .context("starting the metrics adapter")?;
    eprintln!(
        "metrics adapter on https://{} (APIServices: {})",
        adapter.addr(),
        if args.no_register {
            "left to the manifests".to_string()
        } else {
            adapter.api_services().join(", ")
        }
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    adapter
        .stop()
        .await
        .context("stopping the metrics adapter")?;
    Ok(())
}
