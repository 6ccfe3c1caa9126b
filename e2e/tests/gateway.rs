//! The gateway against a real control plane: a NodePort Service and pods created through the API, their status
//! written as the node agent would (podIP on a private loopback address, Running, Ready), in-process mock-vllm
//! servers behind them. Checked: every ready pod gets traffic, least-outstanding spreads concurrent streams, SSE
//! is relayed chunk by chunk, a client disconnect aborts the backend's request, readiness flips take pods in and
//! out of rotation, listeners follow the Service, and the 503/502 envelopes and the connect-failure retry.
//!
//! Only 127.0.0.0/8 is used: the API server on 127.0.0.1, pods on 127.77.x.y with kernel-chosen ports (named
//! target port `http`, resolved per pod), the gateway on 127.0.0.1:<nodePort + offset>. Waits are on observed
//! conditions (the gateway's route-table generation, the mock's engine state), never fixed sleeps.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use e2e::gateway::{BalancePolicy, Gateway, GatewayOptions, ServiceKey, TARGET_POD_HEADER};
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::Client;
use mock_vllm::{EngineArgs, RunningServer};
use rand::Rng;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use common::cluster::TestPlane;
use common::http;
use common::mock::{assert_event_stream, start_mock_on};

const NODE: &str = "gw-test-node";
const WAIT: Duration = Duration::from_secs(10);

/// A control plane of its own, with the Node the test's pods are bound to (pods bound to a Node that does not
/// exist would be garbage-collected by podgc).
async fn start_plane(name: &str) -> TestPlane {
    let plane = TestPlane::start(&format!("gateway-test-{name}"), name).await;
    let nodes: Api<Node> = Api::all(plane.client.clone());
    nodes
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": NODE}})).expect("node"),
        )
        .await
        .expect("create node");
    plane
}

/// A node port in 30000–32767 whose `listen = nodePort + offset` is free on 127.0.0.1 now and not handed out
/// to another test of this process.
fn pick_node_port(offset: u16) -> u16 {
    static TAKEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut rng = rand::rng();
    loop {
        let port: u16 = rng.random_range(30000..=32767);
        let mut taken = TAKEN.lock().expect("lock");
        if taken.contains(&port) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port + offset)).is_ok() {
            taken.push(port);
            return port;
        }
    }
}

async fn start_mock(ip: &str) -> RunningServer {
    start_mock_on(ip.parse().expect("ip"), |_| {}).await
}

async fn create_service(client: &Client, name: &str, app: &str, node_port: u16) -> ServiceKey {
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let service = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "type": "NodePort",
            "selector": {"app": app},
            "ports": [{"name": "http", "port": 8000, "targetPort": "http", "nodePort": node_port}],
        },
    }))
    .expect("service");
    services
        .create(&PostParams::default(), &service)
        .await
        .expect("create service");
    ServiceKey::new("default", name)
}

/// A pod bound to the test node whose container declares `http` on `port`, with the status the node agent writes
/// once the server answers.
async fn create_ready_pod(client: &Client, name: &str, app: &str, addr: SocketAddr) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {
            "nodeName": NODE,
            "containers": [{
                "name": "vllm",
                "image": "mock-vllm",
                "ports": [{"name": "http", "containerPort": addr.port()}],
            }],
        },
    }))
    .expect("pod");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
    set_pod_status(client, name, addr.ip(), true).await;
}

async fn set_pod_status(client: &Client, name: &str, ip: IpAddr, ready: bool) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let status = if ready { "True" } else { "False" };
    let patch = json!({"status": {
        "phase": "Running",
        "podIP": ip.to_string(),
        "podIPs": [{"ip": ip.to_string()}],
        "conditions": [
            {"type": "Ready", "status": status, "lastTransitionTime": now},
            {"type": "ContainersReady", "status": status, "lastTransitionTime": now},
        ],
    }});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch pod status");
}

fn chat(max_tokens: u32, stream: bool) -> Value {
    json!({
        "model": EngineArgs::for_tests().model,
        "messages": [{"role": "user", "content": "Say something long."}],
        "max_tokens": max_tokens,
        "ignore_eos": true,
        "stream": stream,
    })
}

async fn post_chat(client: &reqwest::Client, at: SocketAddr, body: &Value) -> reqwest::Response {
    client
        .post(format!("http://{at}/v1/chat/completions"))
        .json(body)
        .send()
        .await
        .expect("request through the gateway")
}

fn target_pod(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(TARGET_POD_HEADER)
        .and_then(|v| v.to_str().ok())
        .expect("target-pod header")
        .to_string()
}

async fn wait_idle(server: &RunningServer, within: Duration) {
    let mut state = server.engine.watch_state();
    tokio::time::timeout(within, state.wait_for(|s| s.in_flight() == 0))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{}: {} requests still in flight after {within:?}",
                server.addr,
                server.engine.state().in_flight()
            )
        })
        .expect("engine state");
}

#[tokio::test]
async fn routes_balances_streams_and_follows_readiness() {
    let plane = start_plane("gw-a").await;
    let client = plane.client.clone();
    let shutdown = CancellationToken::new();
    // All namespaces, default policy; the Service appears after the gateway started.
    let gateway = Gateway::start(client.clone(), GatewayOptions::default(), shutdown.clone())
        .await
        .expect("gateway starts");
    assert!(gateway.listening().is_empty());

    let node_port = pick_node_port(0);
    let key = create_service(&client, "llm-a", "llm-a", node_port).await;
    assert!(
        gateway
            .wait_until(WAIT, |g| g.address_of(&key).is_some())
            .await,
        "no listener for {key}"
    );
    let at = gateway.address_of(&key).expect("listener");
    assert_eq!(at, SocketAddr::from(([127, 0, 0, 1], node_port)));

    // No pod yet: 503.
    let http = http();
    let response = post_chat(&http, at, &chat(4, false)).await;
    assert_eq!(response.status(), 503);

    let mut mocks = BTreeMap::new();
    for i in 0..3 {
        let server = start_mock(&format!("127.77.1.{}", i + 2)).await;
        let pod = format!("llm-a-{i}");
        create_ready_pod(&client, &pod, "llm-a", server.addr).await;
        mocks.insert(pod, server);
    }
    let all: Vec<String> = mocks.keys().cloned().collect();
    assert!(
        gateway
            .wait_until(WAIT, |g| g.ready_pods(&key) == all)
            .await,
        "{:?}",
        gateway.stats()
    );

    // Every ready pod serves; the header names it.
    let mut seen = HashSet::new();
    for _ in 0..9 {
        let response = post_chat(&http, at, &chat(4, false)).await;
        assert_eq!(response.status(), 200);
        seen.insert(target_pod(&response));
        let body: Value = response.json().await.expect("completion json");
        assert_eq!(body["usage"]["completion_tokens"], 4, "{body}");
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    let stats = gateway.stats();
    assert_eq!(stats.iter().map(|s| s.total).sum::<u64>(), 9, "{stats:?}");
    assert!(
        stats.iter().all(|s| s.outstanding == 0 && s.ready),
        "{stats:?}"
    );

    // SSE is relayed as it is produced: many chunks, the first long before the last.
    let started = Instant::now();
    let mut response = post_chat(&http, at, &chat(120, true)).await;
    assert_eq!(response.status(), 200);
    assert_event_stream(&response);
    let (mut chunks, mut first, mut text) = (0, None, String::new());
    while let Some(chunk) = response.chunk().await.expect("chunk") {
        first.get_or_insert_with(|| started.elapsed());
        chunks += 1;
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let (first, last) = (first.expect("a chunk"), started.elapsed());
    println!("stream: {chunks} chunks, first after {first:?}, last after {last:?}");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    assert!(chunks >= 10, "{chunks} chunks: the stream was buffered");
    assert!(
        first * 3 < last,
        "first chunk after {first:?}, last after {last:?}"
    );

    // Least outstanding: six long streams opened one after another land two per pod.
    let mut streams = Vec::new();
    for _ in 0..6 {
        let mut response = post_chat(&http, at, &chat(3000, true)).await;
        assert_eq!(response.status(), 200);
        response
            .chunk()
            .await
            .expect("first chunk")
            .expect("stream open");
        streams.push((target_pod(&response), response));
    }
    let mut per_pod: BTreeMap<&str, usize> = BTreeMap::new();
    for (pod, _) in &streams {
        *per_pod.entry(pod.as_str()).or_default() += 1;
    }
    assert_eq!(per_pod.values().copied().collect::<Vec<_>>(), [2, 2, 2]);
    for stats in gateway.stats() {
        assert_eq!(stats.outstanding, 2, "{stats:?}");
        assert_eq!(mocks[&stats.pod].engine.state().in_flight(), 2);
    }

    // Client disconnect mid-stream: the backends abort (a 3000-token stream would run for seconds).
    let dropped = Instant::now();
    drop(streams);
    for server in mocks.values() {
        wait_idle(server, Duration::from_secs(2)).await;
    }
    println!("backends idle {:?} after the disconnect", dropped.elapsed());
    assert!(gateway.stats().iter().all(|s| s.outstanding == 0));

    // The same before any response byte: a client giving up on a non-streaming request.
    let waiting = {
        let (http, body) = (http.clone(), chat(3000, false));
        tokio::spawn(async move { post_chat(&http, at, &body).await })
    };
    let mut busy = Vec::new();
    for server in mocks.values() {
        busy.push(Box::pin(async {
            let mut state = server.engine.watch_state();
            let _ = state.wait_for(|s| s.in_flight() == 1).await;
        }));
    }
    tokio::time::timeout(WAIT, futures::future::select_all(busy))
        .await
        .expect("the request reaches a backend");
    waiting.abort();
    let _ = waiting.await;
    for server in mocks.values() {
        wait_idle(server, Duration::from_secs(2)).await;
    }
    assert!(gateway.stats().iter().all(|s| s.outstanding == 0));

    // Readiness: a pod flipped to Ready=False leaves rotation as soon as the watch delivers it.
    let flipped = Instant::now();
    set_pod_status(&client, "llm-a-0", mocks["llm-a-0"].addr.ip(), false).await;
    let rest = vec!["llm-a-1".to_string(), "llm-a-2".to_string()];
    assert!(
        gateway
            .wait_until(Duration::from_secs(2), |g| g.ready_pods(&key) == rest)
            .await,
        "{:?}",
        gateway.stats()
    );
    println!(
        "pod out of rotation {:?} after the patch",
        flipped.elapsed()
    );
    for _ in 0..6 {
        let response = post_chat(&http, at, &chat(2, false)).await;
        assert_eq!(response.status(), 200);
        assert_ne!(target_pod(&response), "llm-a-0");
    }

    // Deleting the Service closes its listener.
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    services
        .delete("llm-a", &DeleteParams::default())
        .await
        .expect("delete service");
    assert!(
        gateway
            .wait_until(WAIT, |g| g.address_of(&key).is_none())
            .await
    );
    let refused = tokio::net::TcpStream::connect(at).await;
    assert!(
        refused.is_err(),
        "{at} still accepts connections after the Service was deleted"
    );

    gateway.stop().await;
    for (_, server) in mocks {
        server.shutdown().await.expect("mock stops");
    }
    plane.stop().await;
}

#[tokio::test]
async fn answers_503_and_502_and_retries_connect_failures() {
    let plane = start_plane("gw-b").await;
    let client = plane.client.clone();
    // The Service exists before the gateway starts (opened at the initial sync), served at an offset.
    let offset = 10000;
    let node_port = pick_node_port(offset);
    let key = create_service(&client, "llm-b", "llm-b", node_port).await;
    let options = GatewayOptions {
        namespace: Some("default".into()),
        port_offset: offset,
        policy: BalancePolicy::LeastOutstanding,
        ..GatewayOptions::default()
    };
    let gateway = Gateway::start(client.clone(), options, CancellationToken::new())
        .await
        .expect("gateway starts");
    let at = gateway.address_of(&key).expect("listener opened at start");
    assert_eq!(at.port(), node_port + offset);
    assert_eq!(gateway.listening(), vec![(key.clone(), at)]);

    let http = http();
    let response = post_chat(&http, at, &chat(4, false)).await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.expect("json error");
    assert_eq!(
        body,
        json!({"error": {
            "message": "no ready pods for service default/llm-b",
            "type": "ServiceUnavailableError",
            "param": null,
            "code": 503,
        }})
    );

    // One live pod, one "ready" pod whose address refuses connections.
    let live = start_mock("127.77.2.2").await;
    create_ready_pod(&client, "llm-b-live", "llm-b", live.addr).await;
    let dead_addr = {
        let socket = std::net::TcpListener::bind("127.77.2.9:0").expect("bind");
        socket.local_addr().expect("addr")
    };
    create_ready_pod(&client, "llm-b-dead", "llm-b", dead_addr).await;
    let both = vec!["llm-b-dead".to_string(), "llm-b-live".to_string()];
    assert!(
        gateway
            .wait_until(WAIT, |g| g.ready_pods(&key) == both)
            .await
    );

    // Connect failures are retried on the other pod with the body intact.
    for _ in 0..4 {
        let response = post_chat(&http, at, &chat(3, false)).await;
        assert_eq!(response.status(), 200);
        assert_eq!(target_pod(&response), "llm-b-live");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["usage"]["completion_tokens"], 3);
    }
    let stats = gateway.stats();
    let dead = stats
        .iter()
        .find(|s| s.pod == "llm-b-dead")
        .expect("dead pod");
    let alive = stats
        .iter()
        .find(|s| s.pod == "llm-b-live")
        .expect("live pod");
    assert!(dead.failed >= 1, "{stats:?}");
    assert_eq!(
        (alive.total, alive.failed, alive.outstanding),
        (4, 0, 0),
        "{stats:?}"
    );

    // Only the unreachable pod left: 502 in the same envelope.
    set_pod_status(&client, "llm-b-live", live.addr.ip(), false).await;
    let dead_only = vec!["llm-b-dead".to_string()];
    assert!(
        gateway
            .wait_until(WAIT, |g| g.ready_pods(&key) == dead_only)
            .await
    );
    let response = post_chat(&http, at, &chat(3, false)).await;
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.expect("json error");
    assert_eq!(body["error"]["type"], "BadGatewayError", "{body}");
    assert_eq!(body["error"]["code"], 502, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("llm-b-dead") && message.contains(&dead_addr.to_string()),
        "{message}"
    );

    gateway.stop().await;
    live.shutdown().await.expect("mock stops");
    plane.stop().await;
}
