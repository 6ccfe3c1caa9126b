//! A real Kubernetes control plane as local processes: etcd, kube-apiserver, kube-controller-manager,
//! kube-scheduler and the AIBrix controller manager (pod-autoscaler controller only), no containers.
//!
//! [`ControlPlane::start`] brings the components up in dependency order and waits for each to be healthy; its
//! [`ControlPlane::stop`] (and, as a backstop, dropping it) stops them in reverse order. Everything a cluster owns
//! lives under one directory ([`ClusterPaths`]): certificates, per-component logs, etcd's data, the PID registry and
//! the kubeconfig. Ports are picked free at start, so two clusters can run side by side.
//!
//! Pod IPs are loopback addresses (the node agent serves each pod on its own 127.x.y.z), which EndpointSlices
//! reject; so the endpoint controllers are not run, and Services are routed by the harness's gateway instead
//! (`shared/reference/local-control-plane.md` §6, option c).
//!
//! Submodules: [`apply`] (server-side apply of YAML manifests), [`binaries`] (pinned versions, Go builds), [`pki`] (certificates, kubeconfig), [`processes`]
//! (spawning, logs, stopping, leftovers).

pub mod apply;
pub mod binaries;
pub mod pki;
pub mod processes;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::Client;
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::k8s::FIELD_MANAGER;
use binaries::Binaries;
use pki::{Pki, PkiError};
use processes::{ProcessError, ProcessGroup, ProcessSpec};

/// Why the control plane could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Certificates.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// A component process.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// No free port.
    #[error("no free port on 127.0.0.1")]
    Port(#[source] std::io::Error),
    /// A component did not become healthy in time.
    #[error("{component} was not healthy after {seconds} s; its log: {log}\n{tail}")]
    NotHealthy {
        /// Component.
        component: String,
        /// How long we waited.
        seconds: u64,
        /// Its log file.
        log: String,
        /// The end of the log.
        tail: String,
    },
    /// A plain HTTP client (for health probes) could not be built.
    #[error(transparent)]
    HttpClient(#[from] crate::http_client::HttpClientError),
    /// Talking to the API server failed.
    #[error("Kubernetes API: {context}")]
    Kube {
        /// What we were doing.
        context: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// The kubeconfig could not be loaded.
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A manifest could not be read or parsed.
    #[error("manifest {path}: {message}")]
    Manifest {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A file of the cluster directory.
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Every file and directory of one cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterPaths {
    /// The cluster's directory: `<state root>/clusters/<name>`.
    pub dir: PathBuf,
    /// Certificates and keys.
    pub pki: PathBuf,
    /// Component logs (the artifacts a failed run is debugged from).
    pub logs: PathBuf,
    /// etcd's data directory.
    pub etcd_data: PathBuf,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// PIDs of running components (for recovery after a crash).
    pub pid_registry: PathBuf,
    /// The supervisor's state file.
    pub state: PathBuf,
}

impl ClusterPaths {
    /// The layout for cluster `name` under `state_root` (`.e2e` by default). The default cluster's kubeconfig is
    /// the well-known `<state_root>/kubeconfig`.
    pub fn new(state_root: &Path, name: &str) -> Self {
        let dir = state_root.join("clusters").join(name);
        let kubeconfig = if name == "default" {
            state_root.join("kubeconfig")
        } else {
            dir.join("kubeconfig")
        };
        Self {
            pki: dir.join("pki"),
            logs: dir.join("logs"),
            etcd_data: dir.join("etcd"),
            pid_registry: dir.join("pids.json"),
            state: dir.join("state.json"),
            kubeconfig,
            dir,
        }
    }
}

/// The loopback ports of one cluster.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Ports {
    /// etcd clients.
    pub etcd_client: u16,
    /// etcd peers.
    pub etcd_peer: u16,
    /// kube-apiserver (HTTPS).
    pub apiserver: u16,
    /// kube-controller-manager health (HTTPS).
    pub controller_manager: u16,
    /// kube-scheduler health (HTTPS).
    pub scheduler: u16,
    /// AIBrix controller metrics.
    pub aibrix_metrics: u16,
    /// AIBrix controller health probes.
    pub aibrix_health: u16,
}

impl Ports {
    /// Picks free ports on 127.0.0.1 (held open together so that they are distinct).
    pub fn pick() -> Result<Self, ClusterError> {
        let listeners: Vec<TcpListener> = (0..7)
            .map(|_| TcpListener::bind("127.0.0.1:0"))
            .collect::<Result<_, _>>()
            .map_err(ClusterError::Port)?;
        let port = |i: usize| {
            listeners[i]
                .local_addr()
                .map(|a| a.port())
                .map_err(ClusterError::Port)
        };
        Ok(Self {
            etcd_client: port(0)?,
            etcd_peer: port(1)?,
            apiserver: port(2)?,
            controller_manager: port(3)?,
            scheduler: port(4)?,
            aibrix_metrics: port(5)?,
            aibrix_health: port(6)?,
        })
    }
}

/// Tunables of the control plane.
#[derive(Debug, Clone)]
pub struct ControlPlaneOptions {
    /// `--horizontal-pod-autoscaler-sync-period` (Kubernetes default 15 s).
    pub hpa_sync_period: Duration,
    /// `--node-monitor-grace-period`.
    pub node_monitor_grace_period: Duration,
    /// How long each component may take to become healthy.
    pub health_timeout: Duration,
    /// Extra environment-free arguments for the AIBrix controller manager.
    pub aibrix_extra_args: Vec<String>,
}

impl Default for ControlPlaneOptions {
    fn default() -> Self {
        Self {
            hpa_sync_period: Duration::from_secs(15),
            node_monitor_grace_period: Duration::from_secs(50),
            health_timeout: Duration::from_secs(60),
            aibrix_extra_args: Vec::new(),
        }
    }
}

/// A running control plane.
pub struct ControlPlane {
    /// Its files.
    pub paths: ClusterPaths,
    /// Its ports.
    pub ports: Ports,
    /// An admin client.
    pub client: Client,
    processes: ProcessGroup,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("paths", &self.paths)
            .field("ports", &self.ports)
            .field("processes", &self.processes)
            .finish_non_exhaustive()
    }
}

fn flag(name: &str, value: impl std::fmt::Display) -> String {
    format!("--{name}={value}")
}

impl ControlPlane {
    /// Starts every component in dependency order and waits for each to be healthy.
    pub async fn start(
        paths: ClusterPaths,
        binaries: &Binaries,
        options: &ControlPlaneOptions,
    ) -> Result<Self, ClusterError> {
        let started = Instant::now();
        let killed = ProcessGroup::reap_leftovers(&paths.pid_registry);
        if !killed.is_empty() {
            info!(
                count = killed.len(),
                "recovered from an earlier run: killed its leftover processes"
            );
        }
        std::fs::create_dir_all(&paths.dir).map_err(|source| ClusterError::Io {
            path: paths.dir.clone(),
            source,
        })?;
        // A fresh etcd each time: a cluster is a test fixture, not a database.
        let _ = std::fs::remove_dir_all(&paths.etcd_data);
        let pki = Pki::new(&paths.pki);
        pki.ensure()?;
        let ports = Ports::pick()?;
        let server = format!("https://127.0.0.1:{}", ports.apiserver);
        pki.write_kubeconfig(&paths.kubeconfig, &server, "autoscale-harness")?;
        let mut processes = ProcessGroup::new(&paths.logs, &paths.pid_registry);

        processes.spawn(etcd_spec(binaries, &paths, &ports))?;
        processes.spawn(apiserver_spec(binaries, &paths, &pki, &ports))?;
        let client = client_for(&paths.kubeconfig).await?;
        let admin_http = admin_http_client(&pki)?;
        let readyz = format!("{server}/readyz");
        wait_until(
            &mut processes,
            "kube-apiserver",
            options.health_timeout,
            || {
                let (admin_http, readyz) = (admin_http.clone(), readyz.clone());
                async move { apiserver_ready(&admin_http, &readyz).await }
            },
        )
        .await?;
        info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "kube-apiserver ready"
        );
        // Before the controller manager starts, so that its garbage collector knows PodAutoscalers (the owners of
        // AIBrix's generated HPAs) from its first discovery instead of its first refresh ~30 s later.
        apply_crd(&client, &binaries.podautoscaler_crd).await?;

        processes.spawn(controller_manager_spec(binaries, &paths, &ports, options))?;
        processes.spawn(scheduler_spec(binaries, &paths, &ports))?;
        let insecure = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| ClusterError::Io {
                path: PathBuf::from("tls client"),
                source: std::io::Error::other(e),
            })?;
        for (component, port) in [
            ("kube-controller-manager", ports.controller_manager),
            ("kube-scheduler", ports.scheduler),
        ] {
            let url = format!("https://127.0.0.1:{port}/healthz");
            wait_until(&mut processes, component, options.health_timeout, || {
                let (insecure, url) = (insecure.clone(), url.clone());
                async move { http_ok(&insecure, &url).await }
            })
            .await?;
        }

        processes.spawn(aibrix_spec(binaries, &paths, &ports, options))?;
        let url = format!("http://127.0.0.1:{}/readyz", ports.aibrix_health);
        let plain = crate::http_client::http_client(Duration::from_secs(2))?;
        wait_until(
            &mut processes,
            "aibrix-controller-manager",
            options.health_timeout,
            || {
                let (plain, url) = (plain.clone(), url.clone());
                async move { http_ok(&plain, &url).await }
            },
        )
        .await?;
        info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "control plane ready"
        );
        Ok(Self {
            paths,
            ports,
            client,
            processes,
        })
    }

    /// PIDs of the component processes.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.processes.pids()
    }

    /// An error if a component has exited.
    pub fn check_alive(&mut self) -> Result<(), ClusterError> {
        Ok(self.processes.check_alive()?)
    }

    /// Stops every component, in reverse start order.
    pub async fn stop(mut self) {
        self.processes.stop_all(Duration::from_secs(10)).await;
    }
}

/// A client from a kubeconfig file.
pub async fn client_for(kubeconfig: &Path) -> Result<Client, ClusterError> {
    let err = |message: String| ClusterError::Kubeconfig {
        path: kubeconfig.to_path_buf(),
        message,
    };
    let file = Kubeconfig::read_from(kubeconfig).map_err(|e| err(e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
        .await
        .map_err(|e| err(e.to_string()))?;
    Client::try_from(config).map_err(|source| ClusterError::Kube {
        context: "building the client".into(),
        source,
    })
}

/// `/readyz` with the admin certificate, through a plain HTTPS client (kube's client logs every non-2xx answer as
/// an error, and a starting API server answers 500 for a while).
async fn apiserver_ready(http: &reqwest::Client, url: &str) -> bool {
    matches!(http.get(url).send().await, Ok(r) if r.status().is_success())
}

/// An HTTPS client that trusts the cluster CA and presents the admin certificate.
fn admin_http_client(pki: &Pki) -> Result<reqwest::Client, ClusterError> {
    let read = |name: &str| {
        let path = pki.path(name);
        std::fs::read(&path).map_err(|source| ClusterError::Io { path, source })
    };
    let tls = |e: reqwest::Error| ClusterError::Io {
        path: pki.dir.clone(),
        source: std::io::Error::other(e),
    };
    let mut identity = read("admin.crt")?;
    identity.extend(read("admin.key")?);
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&read("ca.crt")?).map_err(tls)?)
        .identity(reqwest::Identity::from_pem(&identity).map_err(tls)?)
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(tls)
}

async fn http_ok(client: &reqwest::Client, url: &str) -> bool {
    matches!(client.get(url).send().await, Ok(r) if r.status().is_success())
}

/// Polls `probe` every 100 ms until it holds, failing fast if any component process exits.
async fn wait_until<F, Fut>(
    processes: &mut ProcessGroup,
    component: &str,
    timeout: Duration,
    mut probe: F,
) -> Result<(), ClusterError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        processes.check_alive()?;
        if probe().await {
            return Ok(());
        }
        if Instant::now() > deadline {
            let log = processes
                .log_of(component)
                .map(Path::to_path_buf)
                .unwrap_or_default();
            return Err(ClusterError::NotHealthy {
                component: component.to_string(),
                seconds: timeout.as_secs(),
                tail: processes::tail(&log, 20),
                log: log.display().to_string(),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn etcd_spec(binaries: &Binaries, paths: &ClusterPaths, ports: &Ports) -> ProcessSpec {
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

fn apiserver_spec(
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

fn controller_manager_spec(
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

fn scheduler_spec(binaries: &Binaries, paths: &ClusterPaths, ports: &Ports) -> ProcessSpec {
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

fn aibrix_spec(
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

/// Applies the PodAutoscaler CRD (server-side) and waits until it is Established.
async fn apply_crd(client: &Client, path: &Path) -> Result<(), ClusterError> {
    let text = std::fs::read_to_string(path).map_err(|source| ClusterError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let crd: CustomResourceDefinition =
        serde_yaml::from_str(&text).map_err(|e| ClusterError::Manifest {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    let name = crd.metadata.name.clone().unwrap_or_default();
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&crd),
    )
    .await
    .map_err(|source| ClusterError::Kube {
        context: format!("applying CRD {name}"),
        source,
    })?;
    let established = kube::runtime::wait::conditions::is_crd_established();
    tokio::time::timeout(
        Duration::from_secs(30),
        kube::runtime::wait::await_condition(api, &name, established),
    )
    .await
    .map_err(|_| ClusterError::Manifest {
        path: path.to_path_buf(),
        message: format!("CRD {name} not Established within 30 s"),
    })?
    .map_err(|e| ClusterError::Manifest {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    info!(crd = %name, "CRD established");
    Ok(())
}
