//! The kind path, checked as far as this machine allows (no Docker engine: kind never starts here, and the image is
//! never built with Docker here).
//!
//! What is checked:
//! - the Dockerfile's image ARG defaults equal `e2e/versions.env`, and every image reference in the manifests and
//!   the AIBrix remote CRD base uses the pinned versions (no cluster);
//! - `kind-config.yaml` has one control plane, two workers and maps the mock-vllm NodePort to the host;
//! - every kustomization under `manifests/` renders with the pinned kubectl's kustomize and every object is applied
//!   server-side to a real v1.34 API server with the AIBrix v0.7.0 PodAutoscaler CRD installed, with strict field
//!   validation: Namespaces for real, everything else with `dryRun=All` (the images and controllers are not here).
//!   The remote AIBrix CRD base cannot be fetched (no GitHub here): its ref is compared with `AIBRIX_VERSION`, and
//!   the same file from the Go module cache is what the local plane installs;
//! - the Dockerfile's `cargo build` line is the expected one, its mock-vllm part is run in the workspace (release,
//!   `--locked`), and the binary starts with the image's ENTRYPOINT and the Deployment's args and answers `/health`
//!   on 127.0.0.1; the metrics-adapter Deployment's args are accepted by the harness binary's parser.
//!
//! Not checked: `docker build` itself (base images pulled, the non-root user, the COPY paths inside the image),
//! kind, the node image, kube-proxy's NodePort and the host port mapping, the fake-GPU status patch, the AIBrix and
//! adapter Deployments actually running.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e::cluster::apply::parse_documents;
use e2e::k8s::FIELD_MANAGER;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::{Discovery, Scope};
use serde_json::Value;

use common::cluster::{cluster_options, TestCluster, TestPlane};
use common::{repo, run_harness};

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `ARG NAME=default` lines of the Dockerfile.
fn dockerfile_args(dockerfile: &str) -> HashMap<String, String> {
    dockerfile
        .lines()
        .filter_map(|l| l.trim().strip_prefix("ARG "))
        .filter_map(|a| a.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// The one `RUN cargo build …` line of the Dockerfile, as words.
fn dockerfile_cargo_build(dockerfile: &str) -> Vec<String> {
    let runs: Vec<&str> = dockerfile
        .lines()
        .filter_map(|l| l.trim().strip_prefix("RUN "))
        .filter(|r| r.trim_start().starts_with("cargo build"))
        .collect();
    assert_eq!(runs.len(), 1, "exactly one RUN cargo build line: {runs:?}");
    runs[0].split_whitespace().map(String::from).collect()
}

/// The exec-form `ENTRYPOINT [...]`.
fn dockerfile_entrypoint(dockerfile: &str) -> Vec<String> {
    let line = dockerfile
        .lines()
        .find_map(|l| l.trim().strip_prefix("ENTRYPOINT "))
        .expect("an ENTRYPOINT");
    serde_json::from_str(line).expect("ENTRYPOINT in exec (JSON) form")
}

fn yaml_docs(path: &Path) -> Vec<Value> {
    parse_documents(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

#[test]
fn image_versions_live_in_versions_env_and_the_dockerfile_agrees() {
    let versions = e2e::versions::versions();
    let dockerfile = read(&repo().join("Dockerfile"));
    let args = dockerfile_args(&dockerfile);
    for key in ["RUST_IMAGE", "RUNTIME_IMAGE"] {
        let pinned = versions
            .get(key)
            .unwrap_or_else(|| panic!("{key} missing from versions.env"));
        assert_eq!(
            args.get(key),
            Some(pinned),
            "Dockerfile ARG {key} default vs e2e/versions.env"
        );
        assert!(
            pinned.contains(':') && !pinned.ends_with(":latest"),
            "{key}={pinned} is not pinned"
        );
    }
    // Both stages build FROM those ARGs (no other base image sneaks in).
    let froms: Vec<&str> = dockerfile
        .lines()
        .filter_map(|l| l.trim().strip_prefix("FROM "))
        .collect();
    assert_eq!(froms, vec!["${RUST_IMAGE} AS build", "${RUNTIME_IMAGE}"]);
    assert!(
        dockerfile
            .lines()
            .any(|l| l.trim().starts_with("USER 10001")),
        "runs as a non-root user"
    );
    assert!(dockerfile.lines().any(|l| l.trim() == "EXPOSE 8000"));
    assert!(
        versions["KIND_NODE_IMAGE"].starts_with("kindest/node:v1.34."),
        "kind node on the plane's minor"
    );
    assert!(
        versions["KIND_NODE_IMAGE"].contains("@sha256:"),
        "kind node images must be pinned by digest"
    );

    // Every image the manifests run is a pinned one.
    let image = |path: &str, kind: &str, name: &str| -> String {
        let docs = yaml_docs(&repo().join(path));
        find(&docs, kind, name)["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .expect("an image")
            .to_string()
    };
    let mock = &versions["MOCK_VLLM_IMAGE"];
    assert_eq!(
        &image(
            "manifests/base/mock-vllm/deployment.yaml",
            "Deployment",
            "mock-vllm"
        ),
        mock
    );
    assert_eq!(
        &image(
            "manifests/metrics-adapter/deployment.yaml",
            "Deployment",
            "metrics-adapter"
        ),
        mock
    );
    let aibrix = image(
        "manifests/aibrix/deployment.yaml",
        "Deployment",
        "aibrix-autoscaling-controller-manager",
    );
    assert_eq!(aibrix, versions["AIBRIX_CONTROLLER_IMAGE"]);
    assert_eq!(
        aibrix,
        format!("aibrix/controller-manager:{}", versions["AIBRIX_VERSION"])
    );
}

#[test]
fn the_aibrix_crd_comes_from_the_pinned_release() {
    let versions = e2e::versions::versions();
    let (_, remote) = kustomization_resources(&repo().join("manifests/aibrix"));
    assert_eq!(
        remote,
        vec![format!(
            "https://github.com/vllm-project/aibrix/config/crd/autoscaling?ref={}",
            versions["AIBRIX_VERSION"]
        )]
    );
    // The remote base is the directory of the CRD file the local plane installs.
    let crd_dir = Path::new(&versions["AIBRIX_PODAUTOSCALER_CRD"])
        .parent()
        .map(Path::to_path_buf);
    assert_eq!(crd_dir, Some(PathBuf::from("config/crd/autoscaling")));
    // No CRD copied into the repository.
    let mut stack = vec![repo().join("manifests")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                let docs = yaml_docs(&path);
                assert!(
                    !docs.iter().any(|d| d["kind"] == "CustomResourceDefinition"),
                    "{} carries a CRD",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn kind_config_has_three_nodes_and_maps_the_node_port() {
    let docs = yaml_docs(&repo().join("kind-config.yaml"));
    let config = &docs[0];
    assert_eq!(config["apiVersion"], "kind.x-k8s.io/v1alpha4");
    let roles: Vec<&str> = config["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter_map(|n| n["role"].as_str())
        .collect();
    assert_eq!(roles, vec!["control-plane", "worker", "worker"]);
    let service = yaml_docs(&repo().join("manifests/base/mock-vllm/service.yaml"));
    let node_port = &find(&service, "Service", "mock-vllm")["spec"]["ports"][0]["nodePort"];
    let mapping = &config["nodes"][0]["extraPortMappings"][0];
    assert_eq!(&mapping["containerPort"], node_port);
    assert_eq!(&mapping["hostPort"], node_port);
    assert_eq!(mapping["listenAddress"], "127.0.0.1");
    // `run --cluster kind` puts scenario i on NodePort 31000 + i: every scenario's port is mapped.
    let mapped: Vec<u64> = config["nodes"][0]["extraPortMappings"]
        .as_array()
        .expect("mappings")
        .iter()
        .filter(|m| m["containerPort"] == m["hostPort"] && m["listenAddress"] == "127.0.0.1")
        .filter_map(|m| m["hostPort"].as_u64())
        .collect();
    let scenarios = std::fs::read_dir(repo().join("e2e/scenarios"))
        .expect("scenarios")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "yaml"))
        .count() as u64;
    for port in 31000..31000 + scenarios {
        assert!(
            mapped.contains(&port),
            "NodePort {port} is not mapped to the host"
        );
    }
}

/// A kustomization's local resources (paths) and remote ones (URLs).
fn kustomization_resources(dir: &Path) -> (Vec<PathBuf>, Vec<String>) {
    let docs = yaml_docs(&dir.join("kustomization.yaml"));
    let resources: Vec<String> = docs[0]["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(|r| r.as_str().map(String::from))
        .collect();
    let (remote, local): (Vec<String>, Vec<String>) =
        resources.into_iter().partition(|r| r.contains("://"));
    (local.into_iter().map(|r| dir.join(r)).collect(), remote)
}

/// Every kustomization directory under `manifests/`.
fn kustomizations() -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![repo().join("manifests")];
    while let Some(dir) = stack.pop() {
        if dir.join("kustomization.yaml").is_file() {
            found.push(dir.clone());
        }
        for entry in std::fs::read_dir(&dir).expect("readable").flatten() {
            if entry.path().is_dir() {
                stack.push(entry.path());
            }
        }
    }
    found.sort();
    found
}

/// `kubectl kustomize` (the pinned kubectl's built-in kustomize); remote resources are dropped from a temporary copy.
fn kustomize(kubectl: &Path, dir: &Path) -> Vec<Value> {
    let (local, remote) = kustomization_resources(dir);
    let render_dir = if remote.is_empty() {
        dir.to_path_buf()
    } else {
        let copy = common::temp_dir(&format!(
            "kind-path-kustomize-{}",
            dir.file_name().and_then(|n| n.to_str()).unwrap_or("k")
        ));
        let mut names = Vec::new();
        for path in &local {
            let name = path.file_name().expect("a file").to_owned();
            std::fs::copy(path, copy.join(&name)).expect("copy");
            names.push(name.to_string_lossy().to_string());
        }
        let k = serde_json::json!({"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": names});
        std::fs::write(
            copy.join("kustomization.yaml"),
            serde_yaml::to_string(&k).expect("yaml"),
        )
        .expect("write");
        copy
    };
    let out = Command::new(kubectl)
        .arg("kustomize")
        .arg(&render_dir)
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    parse_documents(&String::from_utf8_lossy(&out.stdout)).expect("kustomize output parses")
}

#[tokio::test]
async fn every_manifest_is_accepted_by_the_api_server_and_the_crd_schema() {
    let plane = TestPlane::start("kind-path", "kind-path").await;
    let discovery = Discovery::new(plane.client.clone())
        .run()
        .await
        .expect("discovery");
    let mut applied = Vec::new();
    let mut failures = Vec::new();
    let dirs = kustomizations();
    assert!(dirs.len() >= 6, "{dirs:?}");
    // Namespaces first (for real: a dry-run create in a missing namespace is refused), then everything else.
    let mut objects: Vec<(PathBuf, Value)> = Vec::new();
    for dir in &dirs {
        for object in kustomize(&plane.binaries.kubectl, dir) {
            objects.push((dir.clone(), object));
        }
    }
    objects.sort_by_key(|(_, o)| o["kind"] != "Namespace");
    for (dir, object) in &objects {
        let kind = object["kind"].as_str().unwrap_or_default();
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let Some((resource, caps)) = discovery
            .groups()
            .filter(|g| g.name() == group)
            .flat_map(|g| g.versioned_resources(version))
            .find(|(r, _)| r.kind == kind)
        else {
            failures.push(format!(
                "{}: {api_version} {kind} is not served",
                dir.display()
            ));
            continue;
        };
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Namespaced => Api::namespaced_with(
                plane.client.clone(),
                object["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("default"),
                &resource,
            ),
            Scope::Cluster => Api::all_with(plane.client.clone(), &resource),
        };
        let mut params = PatchParams::apply(FIELD_MANAGER)
            .force()
            .validation_strict();
        if kind != "Namespace" {
            params = params.dry_run();
        }
        match api.patch(name, &params, &Patch::Apply(object)).await {
            Ok(_) => applied.push(format!("{kind}/{name}")),
            Err(e) => failures.push(format!("{}: {kind} {name}: {e}", dir.display())),
        }
    }
    plane.stop().await;
    assert!(failures.is_empty(), "rejected:\n{}", failures.join("\n"));
    for wanted in [
        "Deployment/mock-vllm",
        "Service/mock-vllm",
        "PodAutoscaler/mock-vllm",
        "Deployment/metrics-adapter",
        "APIService/v1beta2.custom.metrics.k8s.io",
        "APIService/v1beta1.metrics.k8s.io",
        "RoleBinding/autoscale-harness-metrics-adapter-auth-reader",
        "Deployment/aibrix-autoscaling-controller-manager",
        "ClusterRole/aibrix-pod-autoscaler",
    ] {
        assert!(
            applied.iter().any(|a| a == wanted),
            "{wanted} not applied: {applied:?}"
        );
    }
    println!("{} objects accepted: {applied:?}", applied.len());
}

#[test]
fn the_dockerfile_build_runs_and_its_entrypoint_serves_health() {
    let dockerfile = read(&repo().join("Dockerfile"));
    let build = dockerfile_cargo_build(&dockerfile);
    assert_eq!(
        build.join(" "),
        "cargo build --release --locked --bin mock-vllm --bin autoscale-harness"
    );
    // The mock-vllm half of that command, in the workspace (its target dir; a no-op when up to date). The harness
    // half is this test crate's own binary (debug) below: a release rebuild of it per test run is too slow.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .args(&build[1..build.len() - 2])
        .current_dir(repo())
        .status()
        .expect("cargo runs");
    assert!(
        status.success(),
        "{} failed",
        build[..build.len() - 2].join(" ")
    );
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo().join("target"));
    let binary = target.join("release").join("mock-vllm");

    // ENTRYPOINT ["mock-vllm"] + the Deployment's args, on a free loopback port with no model-load delay.
    let entrypoint = dockerfile_entrypoint(&dockerfile);
    assert_eq!(entrypoint, vec!["mock-vllm"]);
    let docs = yaml_docs(&repo().join("manifests/base/mock-vllm/deployment.yaml"));
    let container =
        &find(&docs, "Deployment", "mock-vllm")["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["command"],
        serde_json::json!(entrypoint),
        "the Deployment runs the ENTRYPOINT"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut args: Vec<String> = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(|a| a.as_str())
        .filter(|a| !a.starts_with("--port") && !a.starts_with("--startup-delay"))
        .map(String::from)
        .collect();
    args.extend([
        format!("--port={port}"),
        "--startup-delay=0".into(),
        "--host=127.0.0.1".into(),
    ]);
    let mut child = Command::new(&binary)
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mock-vllm starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    let healthy = loop {
        let ok = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok_and(|mut s| {
            use std::io::{Read, Write};
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut reply = String::new();
            s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                .is_ok()
                && s.read_to_string(&mut reply).is_ok()
                && reply.starts_with("HTTP/1.1 200")
        });
        if ok || Instant::now() > deadline {
            break ok;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        healthy,
        "{} {args:?} did not answer /health with 200 within 20 s",
        binary.display()
    );

    // The metrics-adapter Deployment's command line is one the harness binary accepts.
    let docs = yaml_docs(&repo().join("manifests/metrics-adapter/deployment.yaml"));
    let container =
        &find(&docs, "Deployment", "metrics-adapter")["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["command"],
        serde_json::json!(["autoscale-harness"])
    );
    let adapter_args: Vec<&str> = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    let out = Command::new(env!("CARGO_BIN_EXE_autoscale-harness"))
        .args(&adapter_args)
        .arg("--help")
        .output()
        .expect("harness runs");
    assert!(
        out.status.success(),
        "autoscale-harness {adapter_args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `run --cluster existing` against a running local cluster (its kubeconfig, its gateway standing in for
/// kube-proxy's NodePorts): the scenario is deployed without a per-scenario node, reached on 127.0.0.1:<nodePort>,
/// driven for 40 s and judged; its namespace is deleted when it ends, so a shared cluster keeps nothing of a run.
#[tokio::test]
async fn the_existing_cluster_path_runs_a_scenario() {
    use e2e::agent::NodeSpec;
    use k8s_openapi::api::core::v1::{Namespace, Pod};
    use std::sync::{Arc, Mutex};

    // KPA scrapes the pods itself: no metrics APIs needed (`cluster_options` leaves them out).
    let options = cluster_options(
        "kind-path-existing",
        "existing",
        NodeSpec::gpu_node("node-0", 8),
        47,
    );
    let cluster = TestCluster::start(options).await;
    let node_port = 32100 + (std::process::id() % 500) as u16;
    let scenarios = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/existing-cluster");
    let report = common::temp_dir("kind-path-existing-report");

    // The pods live only while the scenario runs: record every scheduled one seen until the harness exits.
    let seen: Arc<Mutex<HashMap<String, Pod>>> = Arc::default();
    let pods: Api<Pod> = Api::namespaced(cluster.plane.client.clone(), "kpa-existing-short");
    let poller = tokio::spawn({
        let seen = Arc::clone(&seen);
        async move {
            loop {
                if let Ok(list) = pods.list(&Default::default()).await {
                    let mut seen = seen.lock().expect("pods seen");
                    for pod in list.items {
                        if pod
                            .spec
                            .as_ref()
                            .and_then(|s| s.node_name.as_ref())
                            .is_some()
                        {
                            seen.insert(pod.metadata.name.clone().unwrap_or_default(), pod);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    });
    let output = run_harness(
        &format!("run --cluster existing --node-port-base {node_port}"),
        &[
            ("--kubeconfig", &cluster.plane.paths.kubeconfig),
            ("--scenarios", &scenarios),
            ("--report-dir", &report),
        ],
    )
    .await;
    poller.abort();
    let namespaces: Api<Namespace> = Api::all(cluster.plane.client.clone());
    let namespace_left = namespaces
        .get_opt("kpa-existing-short")
        .await
        .expect("namespace lookup");
    cluster.stop().await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stderr}");
    assert!(
        output.status.success(),
        "run --cluster existing failed (its stderr is printed above)"
    );
    let seen = seen.lock().expect("pods seen").clone();
    assert!(
        !seen.is_empty(),
        "no scheduled pod seen during the run (the harness's stderr is printed above)"
    );
    for pod in seen.values() {
        let spec = pod.spec.as_ref().expect("spec");
        assert!(
            spec.node_selector.is_none(),
            "pinned: {:?}",
            spec.node_selector
        );
        assert_eq!(spec.node_name.as_deref(), Some("node-0"));
    }
    assert!(
        namespace_left.is_none(),
        "the scenario's namespace is left after the run: {:?}",
        namespace_left.and_then(|n| n.status)
    );
    let summary: Value =
        serde_json::from_str(&read(&report.join("summary.json"))).expect("summary.json");
    assert_eq!(summary["versions"]["CLUSTER"], "existing", "{summary}");
    std::fs::remove_dir_all(&report).ok();
}
