//! The images of the kind path, started as containers with testcontainers: the mock-vllm image serves `/health`,
//! a streamed chat completion and `/metrics` from inside its container; the same image's metrics adapter
//! (`autoscale-harness metrics-adapter`, as `manifests/metrics-adapter` runs it) starts against the kind cluster's
//! API server and answers discovery of both metrics APIs over HTTPS.
//!
//! Needs a Docker engine and the images (`make kind-images`, or `make image` where a registry answers), and for the
//! adapter the kind cluster (`make kind-up`), so the tests are `#[ignore]`d in `make unit`; `make e2e-kind` runs them
//! (`cargo test -p e2e --test image_smoke -- --ignored`) once the images are built and the cluster is up.

mod common;

use std::time::Duration;

use testcontainers::core::{IntoContainerPort, Mount, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{GenericImage, ImageExt};

use common::mock::assert_event_stream;

/// `MOCK_VLLM_IMAGE` of e2e/versions.env, split into name and tag.
fn mock_vllm_image() -> (String, String) {
    let versions = e2e::versions::versions();
    let image = versions
        .get("MOCK_VLLM_IMAGE")
        .cloned()
        .expect("MOCK_VLLM_IMAGE in e2e/versions.env");
    match image.rsplit_once(':') {
        Some((name, tag)) => (name.to_string(), tag.to_string()),
        None => (image, "latest".to_string()),
    }
}

#[tokio::test]
#[ignore = "needs a Docker engine and the mock-vllm image (make kind-images); run by make e2e-kind"]
async fn mock_vllm_image_serves_health_a_streamed_chat_completion_and_metrics() {
    let (name, tag) = mock_vllm_image();
    let container = GenericImage::new(name, tag)
        .with_exposed_port(8000.tcp())
        .with_wait_for(WaitFor::message_on_either_std("serving"))
        .with_cmd([
            "--model=deepseek-ai/deepseek-llm-7b-chat",
            "--served-model-name=deepseek-llm-7b-chat",
            "--port=8000",
            "--startup-delay=0",
        ])
        .with_startup_timeout(Duration::from_secs(60))
        .start()
        .await
        .expect("the mock-vllm image starts");
    let port = container
        .get_host_port_ipv4(8000.tcp())
        .await
        .expect("port 8000 is published");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();

    let health = http
        .get(format!("{base}/health"))
        .send()
        .await
        .expect("GET /health");
    assert_eq!(health.status(), 200, "/health of the container");

    let body = serde_json::json!({
        "model": "deepseek-llm-7b-chat",
        "messages": [{"role": "user", "content": "Say hello from a container."}],
        "max_tokens": 8,
        "stream": true,
    });
    let response = http
        .post(format!("{base}/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .expect("POST /v1/chat/completions");
    assert_eq!(response.status(), 200);
    assert_event_stream(&response);
    let text = response.text().await.expect("the stream's body");
    let chunks: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(
        chunks.last(),
        Some(&"[DONE]"),
        "the stream ends with [DONE]"
    );
    let content_chunks = chunks
        .iter()
        .filter(|c| **c != "[DONE]")
        .filter_map(|c| serde_json::from_str::<serde_json::Value>(c).ok())
        .filter(|v| v["choices"][0]["delta"]["content"].is_string())
        .count();
    assert!(
        content_chunks >= 8,
        "8 tokens streamed, got {content_chunks} content chunks"
    );

    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("the metrics' body");
    let finished = metrics
        .lines()
        .find(|l| {
            l.starts_with("vllm:request_success_total{") && l.contains("finished_reason=\"length\"")
        })
        .unwrap_or_else(|| {
            panic!("no vllm:request_success_total{{finished_reason=\"length\"}} in:\n{metrics}")
        });
    assert!(
        finished.ends_with(" 1") || finished.ends_with(" 1.0"),
        "one request finished by length: {finished}"
    );
    assert!(metrics.contains("vllm:num_requests_running{"));
}

/// The kind cluster's kubeconfig for containers on its Docker network, written by `e2e/kind/up.sh`.
fn internal_kubeconfig() -> std::path::PathBuf {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.e2e/kind/kubeconfig-internal");
    assert!(
        path.is_file(),
        "{} is missing: start the kind cluster first (make kind-up)",
        path.display()
    );
    path
}

#[tokio::test]
#[ignore = "needs a Docker engine, the mock-vllm image and the kind cluster (make kind-up); run by make e2e-kind"]
async fn metrics_adapter_image_starts_against_the_kind_api_server_and_serves_discovery() {
    let (name, tag) = mock_vllm_image();
    let kubeconfig = internal_kubeconfig();
    let container = GenericImage::new(name, tag)
        .with_entrypoint("autoscale-harness")
        .with_exposed_port(6443.tcp())
        .with_wait_for(WaitFor::message_on_stderr("metrics adapter on https://"))
        .with_cmd(["metrics-adapter", "--no-register", "--port=6443"])
        .with_network("kind")
        .with_mount(Mount::bind_mount(
            kubeconfig.display().to_string(),
            "/kubeconfig",
        ))
        .with_env_var("KUBECONFIG", "/kubeconfig")
        .with_startup_timeout(Duration::from_secs(60))
        .start()
        .await
        .expect("the metrics adapter starts in the mock-vllm image against the kind API server");
    let port = container
        .get_host_port_ipv4(6443.tcp())
        .await
        .expect("port 6443 is published");
    // A self-signed serving certificate, as the APIService's insecureSkipTLSVerify accepts it.
    let https = reqwest::Client::builder()
        .no_proxy()
        .danger_accept_invalid_certs(true)
        .build()
        .expect("https client");
    for (group, resource) in [
        ("custom.metrics.k8s.io/v1beta2", "pods/"),
        ("metrics.k8s.io/v1beta1", "pods"),
    ] {
        let url = format!("https://127.0.0.1:{port}/apis/{group}");
        let response = https
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        assert_eq!(response.status(), 200, "GET {url}");
        let list: serde_json::Value = response.json().await.expect("discovery JSON");
        assert_eq!(list["kind"], "APIResourceList", "{url}: {list}");
        assert_eq!(list["groupVersion"], group, "{url}: {list}");
        let names: Vec<&str> = list["resources"]
            .as_array()
            .map(|r| r.iter().filter_map(|r| r["name"].as_str()).collect())
            .unwrap_or_default();
        assert!(
            names.iter().any(|n| n.starts_with(resource)),
            "{url} lists {names:?}, none starting with {resource}"
        );
    }
}
