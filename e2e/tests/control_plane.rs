//! The control plane comes up from the pinned binaries (built if missing), serves the API with the AIBrix
//! PodAutoscaler CRD installed, and stops leaving no process behind.

use std::time::Instant;

use e2e::cluster::binaries::Binaries;
use e2e::cluster::{ClusterPaths, ControlPlane, ControlPlaneOptions};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

#[tokio::test]
async fn control_plane_starts_serves_and_stops_cleanly() {
    let binaries = Binaries::ensure().await.expect("binaries build");
    let root = std::env::temp_dir().join(format!("cp-test-{}", std::process::id()));
    let paths = ClusterPaths::new(&root, "cp-test");
    let started = Instant::now();
    let plane = ControlPlane::start(paths.clone(), &binaries, &ControlPlaneOptions::default())
        .await
        .expect("control plane starts");
    println!(
        "control plane ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let namespaces: Api<Namespace> = Api::all(plane.client.clone());
    let names: Vec<String> = namespaces
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert!(names.contains(&"kube-system".to_string()), "{names:?}");
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(plane.client.clone());
    crds.get("podautoscalers.autoscaling.aibrix.ai")
        .await
        .expect("CRD installed");
    let pids = plane.pids();
    assert_eq!(pids.len(), 5, "{pids:?}");
    assert!(paths.kubeconfig.is_file());
    plane.stop().await;
    for (name, pid) in pids {
        assert!(!alive(pid), "{name} ({pid}) still running");
    }
    std::fs::remove_dir_all(root).ok();
}
