//! Measures the local cluster's footprint: time to a Ready node, time until N mock-vllm pods are Ready, and the
//! resident memory of every control-plane process plus this process (node agent + in-process pods).
//!
//! Run: `cargo run --release -p e2e --example footprint` (env `PODS`, default 8).

use std::path::Path;
use std::time::{Duration, Instant};

use e2e::agent::{AgentOptions, NodeSpec};
use e2e::cluster::apply::{read_manifests, Applier};
use e2e::cluster::binaries::Binaries;
use e2e::cluster::ControlPlaneOptions;
use e2e::gateway::GatewayOptions;
use e2e::local_cluster::{LocalCluster, LocalClusterOptions};
use e2e::metrics_api::MetricsAdapterOptions;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};
use serde_json::json;

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let pods: i64 = std::env::var("PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let binaries = Binaries::ensure().await?;
    let root = std::env::temp_dir().join(format!("footprint-{}", std::process::id()));
    let options = LocalClusterOptions {
        name: "footprint".into(),
        state_root: root.clone(),
        control_plane: ControlPlaneOptions::default(),
        agent: AgentOptions {
            nodes: vec![NodeSpec::gpu_node("gpu-node-0", pods.max(8) as u32)],
            second_octet: 240,
            ..AgentOptions::default()
        },
        // Away from the default cluster's node ports.
        gateway: GatewayOptions {
            port_offset: 1000,
            ..GatewayOptions::default()
        },
        metrics_api: Some(MetricsAdapterOptions::default()),
    };
    let started = Instant::now();
    let cluster = LocalCluster::start(&binaries, &options).await?;
    let client = cluster.plane.client.clone();
    let nodes: Api<Node> = Api::all(client.clone());
    loop {
        let node = nodes.get("gpu-node-0").await?;
        let untainted = node
            .spec
            .and_then(|s| s.taints)
            .is_none_or(|t| t.is_empty());
        if untainted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "node Ready and schedulable after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/base/mock-vllm");
    let objects = read_manifests(&base)?;
    let applier = Applier::for_objects(client.clone(), &objects).await?;
    for mut object in objects {
        if object["kind"] == "Deployment" {
            object["spec"]["replicas"] = json!(pods);
            object["spec"]["template"]["spec"]["containers"][0]["args"] = json!([
                "--served-model-name=deepseek-llm-7b-chat",
                "--startup-delay=0"
            ]);
            object["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
                ["periodSeconds"] = json!(1);
        }
        applier.apply(&object, "default").await?;
    }
    let pod_api: Api<Pod> = Api::namespaced(client, "default");
    let deploy_started = Instant::now();
    loop {
        let list = pod_api
            .list(&ListParams::default().labels("app=mock-vllm"))
            .await?;
        let ready = list
            .items
            .iter()
            .filter(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .count() as i64;
        if ready == pods {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "{pods} pods Ready {:.1} s after apply",
        deploy_started.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut total = 0.0;
    println!("{:<28} {:>10}", "process", "RSS (MiB)");
    for (name, pid) in cluster.plane.pids() {
        let rss = rss_mib(pid);
        total += rss;
        println!("{name:<28} {rss:>10.1}");
    }
    let own = rss_mib(std::process::id());
    total += own;
    println!(
        "{:<28} {own:>10.1}",
        format!("agent + {pods} pods (this process)")
    );
    println!("{:<28} {total:>10.1}", "total");
    cluster.stop().await;
    std::fs::remove_dir_all(root).ok();
    Ok(())
}
