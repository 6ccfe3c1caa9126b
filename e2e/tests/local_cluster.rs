//! The local cluster end to end: the real control plane, the node agent running mock-vllm pods in-process, the
//! repository's Deployment and NodePort Service scaled 1 → 3 → 1, requests through the gateway reaching every
//! pod, an AIBrix KPA PodAutoscaler accepted by the real controller, a graceful scale-down that fails no in-flight
//! request, and no process left behind.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use e2e::agent::NodeSpec;
use e2e::gateway::{ServiceKey, TARGET_POD_HEADER};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::Client;
use serde_json::json;

use common::cluster::{cluster_options, TestCluster};
use common::k8s::{
    apply_mock_vllm, pod_autoscaler, pod_autoscalers, ready_pods, scraped_metric, wait_for_gpu_node,
};
use common::mock::stream_completion;
use common::{eventually, http};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_scales_on_in_process_pods_and_shuts_down_cleanly() {
    let pid = std::process::id();
    let mut options = cluster_options(
        "local-cluster",
        "it",
        NodeSpec::gpu_node("gpu-node-0", 8),
        150 + (pid % 50) as u8,
    );
    // NodePort 30080 is served on 127.0.0.1:30080 + offset (an offset keeps parallel runs apart).
    let offset = 20_000 + (pid % 5_000) as u16;
    options.gateway.port_offset = offset;
    let cluster = TestCluster::start(options).await;
    let client = cluster.plane.client.clone();
    wait_for_gpu_node(&client, "gpu-node-0", 8).await;
    println!(
        "node ready {:.1} s after start",
        cluster.started.elapsed().as_secs_f64()
    );

    // The repository's manifests, with a 1 s model load instead of 40 s.
    let applier = apply_mock_vllm(&client, 1).await;
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
    let http = http();
    for ip in &ips {
        assert_eq!(
            stream_completion(&http, ip, 5).await,
            Ok(5),
            "pod {ip} serves"
        );
    }
    assert_eq!(cluster.agent.pods().iter().filter(|p| p.ready).count(), 3);

    // Through the gateway (what the NodePort gives in kind), requests spread over all three pods.
    let service = ServiceKey {
        namespace: "default".into(),
        name: "mock-vllm".into(),
    };
    assert!(
        cluster
            .gateway
            .wait_until(Duration::from_secs(10), |g| g.ready_pods(&service).len()
                == 3)
            .await,
        "the gateway sees 3 ready pods"
    );
    let front = cluster.gateway.address_of(&service).expect("listening");
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
    let mut applier = applier;
    applier.refresh().await.expect("discovery");
    let kpa = pod_autoscaler(
        "mock-vllm-kpa",
        "mock-vllm",
        "KPA",
        (3, 3),
        json!([scraped_metric("gpu_cache_usage_perc", "0.5")]),
    );
    applier
        .apply(&kpa, "default")
        .await
        .expect("PodAutoscaler applied");
    let pas = pod_autoscalers(&client);
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
    assert_eq!(cluster.agent.pods().len(), 1);

    cluster.stop_leaving_no_process().await;
}
