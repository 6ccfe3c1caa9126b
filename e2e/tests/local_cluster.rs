//! The local cluster end to end: the real control plane, the node agent running mock-vllm pods in-process, the
//! repository's Deployment and NodePort Service scaled 1 → 3 → 1, requests through the gateway reaching every
//! pod, an AIBrix KPA PodAutoscaler accepted by the real controller, a graceful scale-down that fails no in-flight
//! request, and no process left behind.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use e2e::agent::{AgentOptions, NodeAgent, NodeSpec};
use e2e::cluster::apply::{read_manifests, Applier};
use e2e::cluster::binaries::Binaries;
use e2e::cluster::{ClusterPaths, ControlPlane, ControlPlaneOptions};
use e2e::gateway::{Gateway, GatewayOptions, ServiceKey, TARGET_POD_HEADER};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::discovery::ApiResource;
use kube::Client;
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

/// Polls `check` every 200 ms until it returns `Some`, or panics after `timeout` with `what`.
async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn is_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn ready_pods(client: &Client) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.list(&ListParams::default().labels("app=mock-vllm"))
        .await
        .map(|l| l.items.into_iter().filter(is_ready).collect())
        .unwrap_or_default()
}

async fn scale(client: &Client, replicas: i32) {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    deployments
        .patch(
            "mock-vllm",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": replicas}})),
        )
        .await
        .expect("scaled");
}

/// Streams a chat completion from `ip`; returns the number of content chunks if it ended with [DONE].
async fn stream_completion(http: &reqwest::Client, ip: &str, tokens: u64) -> Result<u64, String> {
    let body = json!({
        "model": "deepseek-llm-7b-chat",
        "messages": [{"role": "user", "content": "keep going"}],
        "max_tokens": tokens, "ignore_eos": true, "stream": true,
    });
    let response = http
        .post(format!("http://{ip}:8000/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("status {}", response.status()));
    }
    let mut text = String::new();
    let mut bytes = response.bytes_stream();
    while let Some(chunk) = bytes.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.map_err(|e| e.to_string())?));
    }
    if !text.trim_end().ends_with("data: [DONE]") {
        return Err("stream cut before [DONE]".into());
    }
    Ok(text.matches("\"content\":\" ").count() as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_scales_on_in_process_pods_and_shuts_down_cleanly() {
    let binaries = Binaries::ensure().await.expect("binaries build");
    let root = std::env::temp_dir().join(format!("local-cluster-{}", std::process::id()));
    let started = Instant::now();
    let plane = ControlPlane::start(
        ClusterPaths::new(&root, "it"),
        &binaries,
        &ControlPlaneOptions::default(),
    )
    .await
    .expect("control plane");
    let client = plane.client.clone();
    let shutdown = CancellationToken::new();
    let options = AgentOptions {
        nodes: vec![NodeSpec::gpu_node("gpu-node-0", 8)],
        second_octet: 150 + (std::process::id() % 50) as u8,
        ..AgentOptions::default()
    };
    let agent = NodeAgent::start(
        client.clone(),
        options,
        mock_vllm::Tokenizer::new(),
        shutdown.clone(),
    )
    .await
    .expect("agent");
    // NodePort 30080 is served on 127.0.0.1:30080 + offset (an offset keeps parallel runs apart).
    let offset = 20_000 + (std::process::id() % 5_000) as u16;
    let gateway = Gateway::start(
        client.clone(),
        GatewayOptions {
            port_offset: offset,
            ..GatewayOptions::default()
        },
        shutdown.clone(),
    )
    .await
    .expect("gateway");
    // The node becomes schedulable once the lifecycle controller has seen it Ready and removed the taint.
    let nodes: Api<Node> = Api::all(client.clone());
    eventually(
        "node without not-ready taint",
        Duration::from_secs(30),
        || async {
            let node = nodes.get("gpu-node-0").await.ok()?;
            let gpus = node
                .status
                .as_ref()?
                .allocatable
                .as_ref()?
                .get("nvidia.com/gpu")?
                .0
                .clone();
            let tainted = node
                .spec
                .as_ref()?
                .taints
                .as_ref()
                .is_some_and(|t| !t.is_empty());
            (gpus == "8" && !tainted).then_some(())
        },
    )
    .await;
    println!(
        "node ready {:.1} s after start",
        started.elapsed().as_secs_f64()
    );

    // The repository's manifests, with a 1 s model load instead of 40 s.
    let applier = Applier::new(client.clone()).await.expect("discovery");
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/base/mock-vllm");
    for mut object in read_manifests(&base).expect("manifests") {
        if object["kind"] == "Deployment" {
            let args = &mut object["spec"]["template"]["spec"]["containers"][0]["args"];
            for arg in args.as_array_mut().expect("args") {
                if arg
                    .as_str()
                    .is_some_and(|a| a.starts_with("--startup-delay"))
                {
                    *arg = json!("--startup-delay=1");
                }
            }
            object["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
                ["periodSeconds"] = json!(1);
        }
        applier.apply(&object, "default").await.expect("applied");
    }
    let first = eventually("1 ready pod", Duration::from_secs(30), || async {
        let pods = ready_pods(&client).await;
        (pods.len() == 1).then_some(pods)
    })
    .await;
    let status = first[0].status.clone().expect("status");
    assert!(status
        .pod_ip
        .as_deref()
        .is_some_and(|ip| ip.starts_with("127.")));
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert!(status.start_time.is_some() && status.host_ip.is_some());
    let container = &status.container_statuses.expect("containers")[0];
    assert!(
        container.ready
            && container
                .state
                .as_ref()
                .and_then(|s| s.running.as_ref())
                .is_some()
    );

    scale(&client, 3).await;
    let pods = eventually("3 ready pods", Duration::from_secs(30), || async {
        let pods = ready_pods(&client).await;
        (pods.len() == 3).then_some(pods)
    })
    .await;
    let ips: BTreeSet<String> = pods
        .iter()
        .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
        .collect();
    assert_eq!(ips.len(), 3, "distinct pod IPs: {ips:?}");
    let http = reqwest::Client::new();
    for ip in &ips {
        assert_eq!(
            stream_completion(&http, ip, 5).await,
            Ok(5),
            "pod {ip} serves"
        );
    }
    assert_eq!(agent.pods().iter().filter(|p| p.ready).count(), 3);

    // Through the gateway (what the NodePort gives in kind), requests spread over all three pods.
    let service = ServiceKey {
        namespace: "default".into(),
        name: "mock-vllm".into(),
    };
    assert!(
        gateway
            .wait_until(Duration::from_secs(10), |g| g.ready_pods(&service).len()
                == 3)
            .await,
        "the gateway sees 3 ready pods"
    );
    let front = gateway.address_of(&service).expect("listening");
    assert_eq!(front.port(), 30080 + offset);
    let mut served_by = BTreeSet::new();
    for _ in 0..9 {
        let response = http
            .post(format!("http://{front}/v1/chat/completions"))
            .json(&json!({"model": "deepseek-llm-7b-chat", "messages": [{"role": "user", "content": "hi"}],
                          "max_tokens": 3, "ignore_eos": true}))
            .send()
            .await
            .expect("through the gateway");
        assert_eq!(response.status(), 200);
        let pod = response
            .headers()
            .get(TARGET_POD_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        served_by.insert(pod.expect("target-pod header"));
    }
    assert_eq!(served_by.len(), 3, "every pod served: {served_by:?}");

    // The real AIBrix controller accepts a KPA PodAutoscaler on the Deployment.
    let pa_resource = ApiResource {
        group: "autoscaling.aibrix.ai".into(),
        version: "v1alpha1".into(),
        api_version: "autoscaling.aibrix.ai/v1alpha1".into(),
        kind: "PodAutoscaler".into(),
        plural: "podautoscalers".into(),
    };
    let mut applier = applier;
    applier.refresh().await.expect("discovery");
    let kpa = json!({
        "apiVersion": "autoscaling.aibrix.ai/v1alpha1", "kind": "PodAutoscaler",
        "metadata": {"name": "mock-vllm-kpa", "namespace": "default"},
        "spec": {
            "scalingStrategy": "KPA", "minReplicas": 3, "maxReplicas": 3,
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "mock-vllm"},
            "metricsSources": [{"metricSourceType": "pod", "protocolType": "http", "port": "8000",
                                "path": "/metrics", "targetMetric": "gpu_cache_usage_perc", "targetValue": "0.5"}],
        },
    });
    applier
        .apply(&kpa, "default")
        .await
        .expect("PodAutoscaler applied");
    let pas: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &pa_resource);
    let pa_status = eventually(
        "ValidSpec=True and actualScale",
        Duration::from_secs(40),
        || async {
            let pa = pas.get("mock-vllm-kpa").await.ok()?;
            let status = pa.data.get("status")?.clone();
            let valid = status["conditions"]
                .as_array()?
                .iter()
                .any(|c| c["type"] == "ValidSpec" && c["status"] == "True");
            (valid && status["actualScale"].as_i64().is_some()).then_some(status)
        },
    )
    .await;
    assert_eq!(pa_status["actualScale"], 3, "{pa_status}");
    pas.delete("mock-vllm-kpa", &Default::default())
        .await
        .expect("deleted");

    // Scale down while every pod streams a ~3 s answer: no request may fail.
    let in_flight: Vec<_> = ips
        .iter()
        .map(|ip| {
            let (http, ip) = (http.clone(), ip.clone());
            tokio::spawn(async move { stream_completion(&http, &ip, 150).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    scale(&client, 1).await;
    for request in in_flight {
        assert_eq!(
            request.await.expect("joined"),
            Ok(150),
            "an in-flight request failed during scale-down"
        );
    }
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), "default");
    eventually("2 pods deleted", Duration::from_secs(30), || async {
        let all = pods_api
            .list(&ListParams::default().labels("app=mock-vllm"))
            .await
            .ok()?;
        (all.items.len() == 1).then_some(())
    })
    .await;
    assert_eq!(agent.pods().len(), 1);

    let pids = plane.pids();
    gateway.stop().await;
    agent.stop(true).await;
    plane.stop().await;
    for (name, pid) in pids {
        assert!(!alive(pid), "{name} ({pid}) survived down");
    }
    std::fs::remove_dir_all(root).ok();
}
