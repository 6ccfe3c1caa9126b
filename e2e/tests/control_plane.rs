//! The control plane comes up from the pinned binaries (built if missing), serves the API with the AIBrix
//! PodAutoscaler CRD installed, and stops leaving no process behind.

mod common;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};

use common::cluster::TestPlane;

#[tokio::test]
async fn control_plane_starts_serves_and_stops_cleanly() {
    let plane = TestPlane::start("cp-test", "cp-test").await;
    println!(
        "control plane ready in {:.1} s",
        plane.started.elapsed().as_secs_f64()
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
    assert!(plane.paths.kubeconfig.is_file());
    plane.stop_leaving_no_process().await;
}
