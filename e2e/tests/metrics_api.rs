//! The metrics adapter against the real control plane: registered through an `ExternalName` Service to
//! 127.0.0.1, its APIServices become Available, the custom and resource metrics APIs answer through the
//! kube-apiserver, and an AIBrix PodAutoscaler with `scalingStrategy: HPA` on `num_requests_running` scales the
//! mock-vllm Deployment for real through kube-controller-manager's HPA under streaming load. Then an HPA on cpu
//! reads `metrics.k8s.io`. Only 127.0.0.0/8 traffic.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use e2e::agent::NodeSpec;
use e2e::metrics_api::custom::MetricValueList;
use e2e::metrics_api::{MetricsAdapter, MetricsAdapterOptions, ObservedRequest};
use futures::FutureExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::api::{Api, DeleteParams};
use kube::Client;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use common::cluster::{cluster_options, TestCluster};
use common::k8s::{
    apply_mock_vllm, pod_autoscaler, pod_autoscalers, ready_pods, scraped_metric, wait_for_gpu_node,
};
use common::mock::stream_completion;
use common::{eventually, http};

/// GET `path` through the kube-apiserver (and so through the aggregator to the adapter).
async fn get_json(client: &Client, path: &str) -> Result<Value, kube::Error> {
    let request = http::Request::get(path).body(Vec::new()).expect("request");
    let text = client.request_text(request).await?;
    Ok(serde_json::from_str(&text).expect("JSON"))
}

/// Keeps `per_pod` long streaming completions in flight on every ready pod until `stop`.
fn generate_load(
    client: Client,
    per_pod: usize,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let http = http();
        let mut streams: Vec<(String, tokio::task::JoinHandle<()>)> = Vec::new();
        while !stop.is_cancelled() {
            streams.retain(|(_, task)| !task.is_finished());
            let ips: BTreeSet<String> = ready_pods(&client)
                .await
                .iter()
                .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
                .collect();
            for ip in ips {
                let running = streams.iter().filter(|(i, _)| *i == ip).count();
                for _ in running..per_pod {
                    let (http, ip2, stop) = (http.clone(), ip.clone(), stop.clone());
                    streams.push((
                        ip.clone(),
                        tokio::spawn(async move {
                            // One long stream, read to its end; a failed one (say, a pod going away) pauses
                            // before the next round replaces it.
                            let stream = async {
                                if stream_completion(&http, &ip2, 3000).await.is_err() {
                                    tokio::time::sleep(Duration::from_millis(200)).await;
                                }
                            };
                            tokio::select! {
                                _ = stream => {}
                                _ = stop.cancelled() => {}
                            }
                        }),
                    ));
                }
            }
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
        for (_, task) in streams {
            task.abort();
        }
    })
}

fn summarize(requests: &[ObservedRequest]) -> String {
    let mut seen = BTreeSet::new();
    for r in requests {
        // Queries of the control plane's requests are kept; the test's own are many and alike.
        let path = if r.user_agent.is_some() {
            r.path.as_str()
        } else {
            r.path.split('?').next().unwrap_or_default()
        };
        seen.insert(format!(
            "{} {} | accept={:?} | ua={:?} | user={:?} | status={} items={:?}",
            r.method, path, r.accept, r.user_agent, r.remote_user, r.status, r.items
        ));
    }
    seen.into_iter().collect::<Vec<_>>().join("\n  ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hpa_scales_on_vllm_metrics_through_the_adapter() {
    let pid = std::process::id();
    let mut options = cluster_options(
        "metrics-api",
        "it",
        NodeSpec::gpu_node("gpu-node-0", 8),
        170 + (pid % 30) as u8,
    );
    options.control_plane.hpa_sync_period = Duration::from_secs(5);
    // NodePort 30080 + offset: unlikely to collide with another cluster's gateway on this machine.
    options.gateway.port_offset = 20_000 + (pid % 10_000) as u16;
    // No metrics adapter in the cluster (`cluster_options` leaves it out): this test starts and inspects its own.
    let cluster = TestCluster::start(options).await;
    let client = cluster.plane.client.clone();
    let ca = std::fs::read(cluster.plane.paths.pki.join("ca.crt")).expect("cluster CA");
    let logs = cluster.plane.paths.logs.clone();

    let shutdown = CancellationToken::new();
    let load_stop = CancellationToken::new();
    let mut adapter: Option<MetricsAdapter> = None;
    let outcome = std::panic::AssertUnwindSafe(scenario(
        &client,
        ca,
        &logs,
        &shutdown,
        &load_stop,
        &mut adapter,
    ))
    .catch_unwind()
    .await;

    // Clean up on every path: load, adapter (APIServices deleted first), cluster.
    load_stop.cancel();
    if let Some(adapter) = adapter {
        let names = adapter.api_services().to_vec();
        adapter.stop().await.expect("adapter stopped");
        let api: Api<APIService> = Api::all(client.clone());
        for name in names {
            assert!(
                api.get_opt(&name).await.expect("get").is_none(),
                "{name} still registered"
            );
        }
    }
    shutdown.cancel();
    if outcome.is_ok() {
        cluster.stop().await;
    } else {
        let root = cluster.stop_keeping_state().await;
        eprintln!("logs kept in {}", root.display());
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn scenario(
    client: &Client,
    ca: Vec<u8>,
    logs: &Path,
    shutdown: &CancellationToken,
    load_stop: &CancellationToken,
    adapter_slot: &mut Option<MetricsAdapter>,
) {
    wait_for_gpu_node(client, "gpu-node-0", 8).await;

    // The repository's Deployment, without the model-load delay.
    let applier = apply_mock_vllm(client, 0).await;
    let first = eventually("1 ready pod", Duration::from_secs(30), || async {
        let pods = ready_pods(client).await;
        (pods.len() == 1).then_some(pods)
    })
    .await;
    let first_name = first[0].metadata.name.clone().expect("name");

    // The adapter: client certificates required, chained to the cluster CA (the front-proxy cert is).
    let started = Instant::now();
    let adapter = MetricsAdapter::start(
        client.clone(),
        MetricsAdapterOptions {
            client_ca_pem: Some(ca),
            ..MetricsAdapterOptions::default()
        },
        shutdown.child_token(),
    )
    .await
    .expect("adapter registered and Available");
    println!(
        "adapter on {} Available in {:.1} s: {:?}",
        adapter.addr(),
        started.elapsed().as_secs_f64(),
        adapter.api_services()
    );
    *adapter_slot = Some(adapter);

    // Through the kube-apiserver: the HPA's list form, the single-object form, resource metrics, errors.
    let list = get_json(
        client,
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/gpu_cache_usage_perc?labelSelector=app%3Dmock-vllm",
    )
    .await
    .expect("custom metrics list through the apiserver");
    let typed: MetricValueList = serde_json::from_value(list.clone()).expect("MetricValueList");
    assert_eq!(typed.kind, "MetricValueList", "{list}");
    assert_eq!(typed.items.len(), 1, "{list}");
    assert_eq!(typed.items[0].described_object.name, first_name);
    assert_eq!(typed.items[0].value, "0", "idle KV cache: {list}");
    let none = get_json(
        client,
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/num_requests_running?labelSelector=app%3Dnothing",
    )
    .await
    .expect("empty list");
    assert_eq!(none["items"], json!([]));
    let single = get_json(
        client,
        &format!("/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/{first_name}/num_requests_running"),
    )
    .await
    .expect("single-object form");
    assert_eq!(
        single["items"].as_array().map(Vec::len),
        Some(1),
        "{single}"
    );
    let missing = get_json(
        client,
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/no_such_metric",
    )
    .await;
    assert!(
        matches!(&missing, Err(kube::Error::Api(s)) if s.code == 404),
        "{missing:?}"
    );
    let pod_metrics = get_json(
        client,
        "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods?labelSelector=app%3Dmock-vllm",
    )
    .await
    .expect("PodMetricsList");
    assert_eq!(pod_metrics["kind"], "PodMetricsList");
    assert_eq!(
        pod_metrics["items"][0]["containers"][0]["usage"]["cpu"], "50m",
        "{pod_metrics}"
    );
    let node_metrics = get_json(client, "/apis/metrics.k8s.io/v1beta1/nodes/gpu-node-0")
        .await
        .expect("NodeMetrics");
    assert_eq!(node_metrics["kind"], "NodeMetrics", "{node_metrics}");

    // The real thing: AIBrix PodAutoscaler (HPA strategy) → autoscaling/v2 HPA → scale on load.
    let pa = pod_autoscaler(
        "mock-vllm",
        "mock-vllm",
        "HPA",
        (1, 4),
        json!([scraped_metric("num_requests_running", "2")]),
    );
    applier
        .apply(&pa, "default")
        .await
        .expect("PodAutoscaler applied");
    let applied = Instant::now();
    let load = generate_load(client.clone(), 8, load_stop.clone());
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let replicas = eventually(
        "the HPA to scale the Deployment above 1",
        Duration::from_secs(120),
        || async {
            let d = deployments.get("mock-vllm").await.ok()?;
            let replicas = d.spec?.replicas?;
            (replicas > 1).then_some(replicas)
        },
    )
    .await;
    println!(
        "Deployment scaled 1 → {replicas} {:.1} s after the PodAutoscaler was applied",
        applied.elapsed().as_secs_f64()
    );
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), "default");
    let hpa = hpas
        .get("mock-vllm-hpa")
        .await
        .expect("AIBrix created the HPA");
    let spec_metric =
        serde_json::to_value(&hpa.spec.as_ref().expect("spec").metrics).expect("json");
    println!("HPA spec.metrics: {spec_metric}");
    assert_eq!(
        spec_metric[0]["pods"]["metric"]["name"],
        "num_requests_running"
    );
    assert_eq!(spec_metric[0]["pods"]["target"]["averageValue"], "2");
    let status = serde_json::to_value(hpa.status.as_ref().expect("status")).expect("json");
    println!("HPA status.currentMetrics: {}", status["currentMetrics"]);
    assert_eq!(
        status["currentMetrics"][0]["pods"]["metric"]["name"], "num_requests_running",
        "{status}"
    );
    assert!(
        status["currentMetrics"][0]["pods"]["current"]["averageValue"].is_string(),
        "{status}"
    );
    let active = status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "ScalingActive").cloned());
    assert_eq!(
        active.as_ref().map(|c| c["status"].clone()),
        Some(json!("True")),
        "{status}"
    );

    // The KV cache fills under load, served as a percentage.
    let gpu = eventually("gpu_cache_usage_perc above 0 under load", Duration::from_secs(30), || async {
        let list = get_json(
            client,
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/gpu_cache_usage_perc?labelSelector=app%3Dmock-vllm",
        )
        .await
        .ok()?;
        let values: Vec<String> = list["items"]
            .as_array()?
            .iter()
            .filter_map(|i| i["value"].as_str().map(str::to_string))
            .collect();
        values.iter().any(|v| v != "0").then_some(values)
    })
    .await;
    println!("gpu_cache_usage_perc under load (percent): {gpu:?}");

    // HPA on cpu: metrics.k8s.io through the real HPA controller.
    let pas = pod_autoscalers(client);
    pas.delete("mock-vllm", &DeleteParams::default())
        .await
        .expect("PA deleted");
    // The HPA is owned by the PodAutoscaler, but the garbage collector only learns the PodAutoscaler kind at its
    // first discovery resync, 30 s after kube-controller-manager starts (the CRD is applied after it); until then
    // it cannot resolve the owner and collects nothing. Delete the HPA too rather than wait for that.
    hpas.delete("mock-vllm-hpa", &DeleteParams::default())
        .await
        .ok();
    eventually("the first HPA gone", Duration::from_secs(30), || async {
        hpas.get_opt("mock-vllm-hpa")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    let cpu_pa = pod_autoscaler(
        "mock-vllm-cpu",
        "mock-vllm",
        "HPA",
        (1, 4),
        json!([{"metricSourceType": "resource", "targetMetric": "cpu", "targetValue": "30"}]),
    );
    applier
        .apply(&cpu_pa, "default")
        .await
        .expect("cpu PodAutoscaler applied");
    let cpu_status = eventually(
        "the cpu HPA to report utilization",
        Duration::from_secs(60),
        || async {
            let hpa = hpas.get("mock-vllm-cpu-hpa").await.ok()?;
            let status = serde_json::to_value(hpa.status?).ok()?;
            status["currentMetrics"][0]["resource"]["current"]["averageUtilization"]
                .as_i64()
                .map(|u| (u, status))
        },
    )
    .await;
    println!(
        "cpu HPA: utilization {} %, status {}",
        cpu_status.0, cpu_status.1
    );
    assert!(
        cpu_status.0 > 30,
        "8 running streams per pod should be above the 30 % target"
    );

    // AIBrix's own `custom` and `resource` sources (APA) call the single-object forms.
    pas.delete("mock-vllm-cpu", &DeleteParams::default())
        .await
        .expect("cpu PA deleted");
    hpas.delete("mock-vllm-cpu-hpa", &DeleteParams::default())
        .await
        .ok();
    let apa = pod_autoscaler(
        "mock-vllm-apa",
        "mock-vllm",
        "APA",
        (1, 4),
        json!([
            {"metricSourceType": "custom", "targetMetric": "num_requests_running", "targetValue": "2"},
            {"metricSourceType": "resource", "targetMetric": "cpu", "targetValue": "300"},
        ]),
    );
    applier.apply(&apa, "default").await.expect("APA applied");
    let single_object = |r: &ObservedRequest, prefix: &str| {
        r.user_agent.is_some()
            && r.status == 200
            && r.path.starts_with(prefix)
            && !r.path.contains("/pods/%2A/")
            && !r.path.contains("/pods?")
            && r.path != prefix.trim_end_matches('/')
    };
    let aibrix_requests = eventually(
        "AIBrix's single-object custom and resource requests",
        Duration::from_secs(45),
        || async {
            let requests = adapter_slot.as_ref()?.requests();
            let custom = requests.iter().find(|r| {
                single_object(
                    r,
                    "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/",
                )
            })?;
            let resource = requests.iter().find(|r| {
                single_object(r, "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/")
            })?;
            Some((custom.clone(), resource.clone()))
        },
    )
    .await;
    println!("AIBrix custom source: {:?}", aibrix_requests.0);
    println!("AIBrix resource source: {:?}", aibrix_requests.1);

    // What AIBrix v0.7.0 does with a fractional HPA target (the 0..1 scale of vLLM's gauge): int64("0.5") = 0,
    // and the API server rejects the HPA (averageValue must be positive). A target of its own, to avoid a claim
    // conflict with the APA on mock-vllm.
    let fractional = pod_autoscaler(
        "fractional",
        "fractional",
        "HPA",
        (1, 4),
        json!([scraped_metric("gpu_cache_usage_perc", "0.5")]),
    );
    applier
        .apply(&fractional, "default")
        .await
        .expect("applied");
    let rejected = eventually(
        "AIBrix to fail creating the HPA for targetValue 0.5",
        Duration::from_secs(30),
        || async {
            let log = std::fs::read_to_string(logs.join("aibrix-controller-manager.log")).ok()?;
            log.lines()
                .find(|l| l.contains("Failed to create new HPA") && l.contains("fractional-hpa"))
                .map(str::to_string)
        },
    )
    .await;
    println!("targetValue 0.5 on the HPA path: {rejected}");
    assert!(rejected.contains("must be positive"), "{rejected}");
    assert!(hpas.get_opt("fractional-hpa").await.expect("get").is_none());

    load_stop.cancel();
    load.await.ok();
    let requests = adapter_slot
        .as_ref()
        .map(|a| a.requests())
        .unwrap_or_default();
    println!("adapter requests (distinct):\n  {}", summarize(&requests));
    assert!(
        requests
            .iter()
            .any(|r| r.remote_user.as_deref() == Some("system:kube-aggregator")),
        "the aggregator's availability probe"
    );
    assert!(
        requests.iter().any(|r| r
            .user_agent
            .as_deref()
            .is_some_and(|u| u.contains("horizontal-pod-autoscaler"))
            && r.path.contains("num_requests_running")),
        "the HPA's custom metrics request"
    );
}
