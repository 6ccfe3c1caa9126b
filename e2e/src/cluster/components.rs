//! The command line of each control-plane process: etcd, kube-apiserver, kube-controller-manager,
//! kube-scheduler and the AIBrix controller manager, with the flags `shared/reference/local-control-plane.md`
//! gives for running them on one machine (loopback ports, the cluster's own PKI, the HPA sync period the
//! scenarios assume). [`super::ControlPlane::start`] launches them in dependency order.

use super::binaries::Binaries;
use super::layout::{ClusterPaths, ControlPlaneOptions, Ports};
use super::pki::Pki;
use super::processes::ProcessSpec;

fn flag(name: &str, value: impl std::fmt::Display) -> String {
    format!("--{name}={value}")
}

pub(super) fn etcd_spec(binaries: &Binaries, paths: &ClusterPaths, ports: &Ports) -> ProcessSpec {
    let client = format!("http://127.0.0.1:{}", ports.etcd_client);
    let peer = format!("http://127.0.0.1:{}", ports.etcd_peer);
    ProcessSpec {
        name: "etcd".into(),
        program: binaries.etcd.clone(),
        args: vec![
            flag("name", "node0"),
            flag("data-dir", paths.etcd_data.display()),
            flag("listen-client-urls", &client),
            flag("advertise-client-urls", &client),
            flag("listen-peer-urls", &peer),
            flag("initial-advertise-peer-urls", &peer),
            flag("initial-cluster", format!("node0={peer}")),
            // Test fixture: durability is not wanted, speed is (envtest and KWOK do the same).
            flag("unsafe-no-fsync", "true"),
            flag("quota-backend-bytes", 2_147_483_648u64),
            flag("log-level", "warn"),
        ],
    }
}

pub(super) fn apiserver_spec(
    binaries: &Binaries,
    paths: &ClusterPaths,
    pki: &Pki,
    ports: &Ports,
) -> ProcessSpec {
    let file = |name: &str| pki.path(name).display().to_string();
    ProcessSpec {
        name: "kube-apiserver".into(),
        program: binaries.kube_apiserver.clone(),
        args: vec![
            flag(
                "etcd-servers",
                format!("http://127.0.0.1:{}", ports.etcd_client),
            ),
            flag("bind-address", "127.0.0.1"),
            flag("advertise-address", "127.0.0.1"),
            flag("secure-port", ports.apiserver),
            flag("tls-cert-file", file("apiserver.crt")),
            flag("tls-private-key-file", file("apiserver.key")),
            flag("client-ca-file", file("ca.crt")),
            flag(
                "service-account-issuer",
                "https://kubernetes.default.svc.cluster.local",
            ),
            flag("service-account-key-file", file("sa.pub")),
            flag("service-account-signing-key-file", file("sa.key")),
            flag("service-cluster-ip-range", "10.0.0.0/24"),
            // A loopback advertise address may not be written to the `kubernetes` Endpoints.
            flag("endpoint-reconciler-type", "none"),
            flag("authorization-mode", "RBAC"),
            flag("anonymous-auth", "false"),
            // Pods need no ServiceAccount objects (no token controller runs).
            flag("disable-admission-plugins", "ServiceAccount"),
            flag("proxy-client-cert-file", file("front-proxy-client.crt")),
            flag("proxy-client-key-file", file("front-proxy-client.key")),
            flag("requestheader-client-ca-file", file("ca.crt")),
            flag("requestheader-allowed-names", "front-proxy-client"),
            flag("requestheader-username-headers", "X-Remote-User"),
            flag("requestheader-group-headers", "X-Remote-Group"),
            flag("requestheader-extra-headers-prefix", "X-Remote-Extra-"),
            flag("enable-aggregator-routing", "false"),
            flag("profiling", "false"),
            flag("audit-log-path", paths.logs.join("audit.log").display()),
            flag("audit-log-maxsize", 0),
            flag("v", 1),
        ],
    }
}

pub(super) fn controller_manager_spec(
    binaries: &Binaries,
    paths: &ClusterPaths,
    ports: &Ports,
    options: &ControlPlaneOptions,
) -> ProcessSpec {
    ProcessSpec {
        name: "kube-controller-manager".into(),
        program: binaries.kube_controller_manager.clone(),
        args: vec![
            flag("kubeconfig", paths.kubeconfig.display()),
            flag("authentication-kubeconfig", paths.kubeconfig.display()),
            flag("authorization-kubeconfig", paths.kubeconfig.display()),
            flag("leader-elect", "false"),
            // No endpoint controllers: loopback pod IPs are invalid in EndpointSlices (see the module doc).
            flag(
                "controllers",
                "deployment,replicaset,horizontalpodautoscaling,garbagecollector,namespace,nodelifecycle,podgc",
            ),
            flag("horizontal-pod-autoscaler-sync-period", format!("{}s", options.hpa_sync_period.as_secs())),
            flag("node-monitor-period", "5s"),
            flag(
                "node-monitor-grace-period",
                format!("{}s", options.node_monitor_grace_period.as_secs()),
            ),
            flag("bind-address", "127.0.0.1"),
            flag("secure-port", ports.controller_manager),
            flag("use-service-account-credentials", "false"),
            flag("kube-api-content-type", "application/json"),
            flag("kube-api-qps", 200),
            flag("kube-api-burst", 400),
            flag("v", 2),
        ],
    }
}

pub(super) fn scheduler_spec(
    binaries: &Binaries,
    paths: &ClusterPaths,
    ports: &Ports,
) -> ProcessSpec {
    ProcessSpec {
        name: "kube-scheduler".into(),
        program: binaries.kube_scheduler.clone(),
        args: vec![
            flag("kubeconfig", paths.kubeconfig.display()),
            flag("authentication-kubeconfig", paths.kubeconfig.display()),
            flag("authorization-kubeconfig", paths.kubeconfig.display()),
            flag("leader-elect", "false"),
            flag("bind-address", "127.0.0.1"),
            flag("secure-port", ports.scheduler),
            flag("v", 1),
        ],
    }
}

pub(super) fn aibrix_spec(
    binaries: &Binaries,
    paths: &ClusterPaths,
    ports: &Ports,
    options: &ControlPlaneOptions,
) -> ProcessSpec {
    let mut args = vec![
        flag("kubeconfig", paths.kubeconfig.display()),
        // Only the PodAutoscaler controller; no webhooks (they need in-cluster certificates and a Service).
        flag("controllers", "pod-autoscaler-controller"),
        "--disable-webhook".to_string(),
        flag("leader-elect", "false"),
        // The cooldown step of each decision ("Stabilization applied", V(4)) for `cooldown_window`, without the
        // fetchers' per-pod V(4) lines (observe/decisions.rs).
        flag("vmodule", "podautoscaler_controller=4"),
        flag(
            "metrics-bind-address",
            format!("127.0.0.1:{}", ports.aibrix_metrics),
        ),
        flag(
            "health-probe-bind-address",
            format!("127.0.0.1:{}", ports.aibrix_health),
        ),
    ];
    args.extend(options.aibrix_extra_args.iter().cloned());
    ProcessSpec {
        name: "aibrix-controller-manager".into(),
        program: binaries.aibrix_controller_manager.clone(),
        args,
    }
}
