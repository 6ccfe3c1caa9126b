//! The controllers' logs on a cluster where they run as pods (kind, an existing cluster).
//!
//! On the local cluster the harness starts the AIBrix controller manager and kube-controller-manager itself and their
//! logs are files; the decision checks ([`super::decisions`]) and the report's log excerpts read those files. On any
//! other cluster the same logs are the containers' output, read here through the API server (`pods/log`) into files
//! of the same names, so that a scenario is judged from the same evidence wherever it ran.

use std::path::Path;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, LogParams};
use kube::{Api, Client};

/// One controller: where its pods are and the file its log goes to.
struct ControllerPods {
    namespace: &'static str,
    selector: &'static str,
    file: &'static str,
}

/// AIBrix's controller (manifests/aibrix/deployment.yaml) and kube-controller-manager (kubeadm's static pod).
const CONTROLLERS: [ControllerPods; 2] = [
    ControllerPods {
        namespace: "aibrix-system",
        selector: "app.kubernetes.io/component=aibrix-autoscaler-controller",
        file: "aibrix-controller-manager.log",
    },
    ControllerPods {
        namespace: "kube-system",
        selector: "component=kube-controller-manager",
        file: "kube-controller-manager.log",
    },
];

/// Writes the current log of every controller pod into `dir` (pods of one controller one after another, each
/// under a `# pod <name>` line). A controller with no pods yields an empty file; an API error is returned.
pub async fn copy_controller_logs(client: &Client, dir: &Path) -> Result<(), kube::Error> {
    for controller in &CONTROLLERS {
        let pods: Api<Pod> = Api::namespaced(client.clone(), controller.namespace);
        let list = pods
            .list(&ListParams::default().labels(controller.selector))
            .await?;
        let mut text = String::new();
        for pod in list.items {
            let Some(name) = pod.metadata.name else {
                continue;
            };
            let log = pods.logs(&name, &LogParams::default()).await?;
            text.push_str(&format!("# pod {name}\n"));
            text.push_str(&log);
            if !text.ends_with('\n') {
                text.push('\n');
            }
        }
        if let Err(e) = std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(dir.join(controller.file), text))
        {
            tracing::warn!(error = %e, file = controller.file, "cannot write a controller's log");
        }
    }
    Ok(())
}
