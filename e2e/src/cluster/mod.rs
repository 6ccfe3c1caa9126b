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
mod components;
mod error;
mod layout;
pub mod pki;
pub mod processes;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::Client;
use tracing::info;

pub use error::ClusterError;
pub use layout::{ClusterPaths, ControlPlaneOptions, Ports};

use crate::k8s::apply::server_side_apply;
use binaries::Binaries;
use components::{aibrix_spec, apiserver_spec, controller_manager_spec, etcd_spec, scheduler_spec};
use pki::Pki;
use processes::ProcessGroup;

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
    server_side_apply(&api, &name, &crd)
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
