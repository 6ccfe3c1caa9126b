//! One pod's life on a simulated node: start the mock-vllm it describes in-process, report status as a kubelet
//! does, and drain it on deletion.
//!
//! The container's command line is read with mock-vllm's own parser ([`mock_vllm::EngineArgs`]), so a manifest
//! means the same here and on kind; real vLLM command lines (`vllm serve …`, `python3 -m
//! vllm.entrypoints.openai.api_server …`) are accepted too. Life of a pod:
//!
//! | moment | what the agent writes |
//! |---|---|
//! | accepted | `Pending`, `startTime`, `hostIP`, container waiting `ContainerCreating` |
//! | "process" started | `Running`, `podIP` (its own loopback address), container running, not ready |
//! | model loaded (`--startup-delay`), port answers, readiness probe passes | `Ready=True` |
//! | deletion requested | `Ready=False`, then drain: wait until the engine has no request in flight, at most the grace period; stop the server; `DELETE` with grace 0 and a UID precondition |
//!
//! A container whose arguments do not parse is reported as waiting with reason `CrashLoopBackOff` and the parser's
//! message; containers that are not mock-vllm are reported running and ready, without a process.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Node, Pod};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, Preconditions};
use kube::Client;
use mock_vllm::{EngineArgs, Tokenizer};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn, Instrument};

use super::addresses::LoopbackAllocator;
use super::status::{now, Phase, StatusWriter};
use super::table::{PodRecord, PodTable};
use crate::http_client::http_client;

/// The node annotation whose value (seconds) replaces `--startup-delay` for the pods the agent starts from then on:
/// a test hook for "new pods take longer to load from now on" (scenario faults set it).
pub const STARTUP_DELAY_ANNOTATION: &str = "autoscale-harness.dev/startup-delay-s";

/// Timeout of one readiness probe request.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// What every pod worker of a node shares.
#[derive(Clone)]
pub(crate) struct NodeContext {
    /// API client.
    pub client: Client,
    /// The node's name.
    pub node: String,
    /// The node's address (`status.hostIP`).
    pub host_ip: String,
    /// Shared tokenizer for the in-process servers.
    pub tokenizer: Tokenizer,
    /// Pod addresses.
    pub addresses: Arc<Mutex<LoopbackAllocator>>,
    /// What runs where, for observers.
    pub table: PodTable,
}

/// A request to delete the pod: its grace period.
pub(crate) type Deletion = Option<Duration>;

/// How the first container of a pod is run.
#[derive(Debug)]
pub enum Workload {
    /// A mock-vllm with these arguments.
    MockVllm(Box<EngineArgs>),
    /// mock-vllm arguments that do not parse: the message.
    BadArgs(String),
    /// Anything else: reported running, nothing started.
    Other,
}

/// Reads what the pod's first container runs.
pub(crate) fn workload_of(container: &Container) -> Workload {
    let command = container.command.clone().unwrap_or_default();
    let args = container.args.clone().unwrap_or_default();
    let image = container.image.clone().unwrap_or_default();
    let basename = |s: &str| s.rsplit('/').next().unwrap_or(s).to_string();
    let argv: Option<Vec<String>> = match command.first().map(|c| basename(c)) {
        Some(program) if program == "mock-vllm" => {
            Some(command.iter().skip(1).chain(&args).cloned().collect())
        }
        // `vllm serve MODEL …`
        Some(program)
            if program == "vllm" && command.get(1).map(String::as_str) == Some("serve") =>
        {
            Some(command.iter().skip(2).chain(&args).cloned().collect())
        }
        // `python3 -m vllm.entrypoints.openai.api_server …`
        Some(_)
            if command
                .iter()
                .any(|c| c == "vllm.entrypoints.openai.api_server") =>
        {
            let after = command
                .iter()
                .skip_while(|c| *c != "vllm.entrypoints.openai.api_server")
                .skip(1);
            Some(after.chain(&args).cloned().collect())
        }
        None if image.contains("mock-vllm") => Some(args.clone()),
        _ => None,
    };
    let Some(argv) = argv else {
        return Workload::Other;
    };
    match <EngineArgs as clap::Parser>::try_parse_from(
        std::iter::once("mock-vllm".to_string()).chain(argv),
    ) {
        Ok(parsed) => match parsed.validate() {
            Ok(_) => Workload::MockVllm(Box::new(parsed)),
            Err(e) => Workload::BadArgs(e.to_string()),
        },
        Err(e) => Workload::BadArgs(e.to_string().trim().to_string()),
    }
}

/// The readiness probe of a container, as far as the agent emulates it (HTTP GET).
#[derive(Debug, Clone)]
struct Probe {
    path: String,
    port: Option<u16>,
    initial_delay: Duration,
    period: Duration,
    failure_threshold: u32,
}

impl Probe {
    fn of(container: &Container) -> Option<Self> {
        let probe = container.readiness_probe.as_ref()?;
        let http = probe.http_get.as_ref()?;
        let port = match &http.port {
            IntOrString::Int(p) => u16::try_from(*p).ok(),
            IntOrString::String(name) => container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok()),
        };
        Some(Self {
            path: http.path.clone().unwrap_or_else(|| "/".into()),
            port,
            initial_delay: Duration::from_secs(
                probe.initial_delay_seconds.unwrap_or(0).max(0) as u64
            ),
            period: Duration::from_secs(probe.period_seconds.unwrap_or(10).max(1) as u64),
            failure_threshold: probe.failure_threshold.unwrap_or(3).max(1) as u32,
        })
    }
}

/// Runs one pod until it is deleted (`deletion` gets its grace period) or the agent stops (`kill`).
pub(crate) async fn run_pod(
    ctx: NodeContext,
    pod: Pod,
    mut deletion: watch::Receiver<Deletion>,
    kill: CancellationToken,
) {
    let namespace = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let name = pod.metadata.name.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let span = tracing::info_span!("pod", ns = %namespace, name = %name);
    async move {
        let spec = pod.spec.clone().unwrap_or_default();
        let Some(main) = spec.containers.first().cloned() else {
            warn!("pod has no containers");
            return;
        };
        let writer = StatusWriter {
            api: Api::namespaced(ctx.client.clone(), &namespace),
            name: name.clone(),
            host_ip: ctx.host_ip.clone(),
            start_time: now(),
            containers: spec
                .containers
                .iter()
                .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
                .collect(),
            uid: uid.clone(),
        };
        writer.write(Phase::Creating).await;
        let workload = workload_of(&main);
        let port = match &workload {
            Workload::MockVllm(args) => args.port,
            _ => main
                .ports
                .iter()
                .flatten()
                .next()
                .and_then(|p| u16::try_from(p.container_port).ok())
                .unwrap_or(8000),
        };
        let ip = ctx
            .addresses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .allocate(port);
        let Some(ip) = ip else {
            crash_until_deleted(
                &writer,
                "no free loopback address for this pod",
                &mut deletion,
                &kill,
            )
            .await;
            finish(&ctx, &writer, &namespace, None).await;
            return;
        };
        let started_at = now();
        ctx.table.upsert(PodRecord {
            namespace: namespace.clone(),
            name: name.clone(),
            uid: uid.clone(),
            node: ctx.node.clone(),
            ip: Some(ip),
            port,
            ready: false,
            engine: None,
        });
        match workload {
            Workload::BadArgs(message) => {
                warn!(%message, "container arguments rejected");
                crash_until_deleted(&writer, &message, &mut deletion, &kill).await;
            }
            Workload::Other => {
                writer
                    .write(Phase::Running {
                        ip,
                        started_at: &started_at,
                        ready: true,
                    })
                    .await;
                ctx.table.set_ready(&uid, true);
                wait_for_deletion(&mut deletion, &kill).await;
            }
            Workload::MockVllm(args) => {
                writer
                    .write(Phase::Running {
                        ip,
                        started_at: &started_at,
                        ready: false,
                    })
                    .await;
                run_mock(
                    &ctx,
                    &writer,
                    &main,
                    *args,
                    ip,
                    &started_at,
                    &uid,
                    &mut deletion,
                    &kill,
                )
                .await;
            }
        }
        ctx.addresses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .release(ip);
        finish(&ctx, &writer, &namespace, Some(&uid)).await;
    }
    .instrument(span)
    .await
}

async fn wait_for_deletion(deletion: &mut watch::Receiver<Deletion>, kill: &CancellationToken) {
    tokio::select! {
        _ = kill.cancelled() => {}
        _ = deletion.wait_for(Option::is_some) => {}
    }
}

/// A container that cannot start: report it in `CrashLoopBackOff` with `message`, then wait for the pod's deletion
/// (a kubelet would keep restarting it; nothing here would change on a restart).
async fn crash_until_deleted(
    writer: &StatusWriter,
    message: &str,
    deletion: &mut watch::Receiver<Deletion>,
    kill: &CancellationToken,
) {
    writer.write(Phase::CrashLoop { message }).await;
    wait_for_deletion(deletion, kill).await;
}

/// Deletes the pod with grace 0, but only the incarnation with this UID (a pod recreated under the same name is
/// left alone): how a kubelet confirms that a terminating pod has stopped.
pub(super) async fn delete_now(
    client: &Client,
    namespace: &str,
    name: &str,
    uid: &str,
) -> Result<(), kube::Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    api.delete(name, &params).await.map(|_| ())
}

/// Removes the pod from the table and confirms the deletion to the API server (also when the agent is stopping;
/// "not found" and a UID mismatch mean someone else already did).
async fn finish(ctx: &NodeContext, writer: &StatusWriter, namespace: &str, uid: Option<&str>) {
    if let Some(uid) = uid {
        ctx.table.remove(uid);
    }
    match delete_now(&ctx.client, namespace, &writer.name, &writer.uid).await {
        Ok(()) => info!("deleted"),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
        Err(e) => warn!(error = %e, "final deletion failed"),
    }
}

/// The model-load delay the node's [`STARTUP_DELAY_ANNOTATION`] sets for pods started now, if any.
async fn node_startup_delay(ctx: &NodeContext) -> Option<Duration> {
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let node = nodes.get_opt(&ctx.node).await.ok().flatten()?;
    let value = node
        .metadata
        .annotations?
        .get(STARTUP_DELAY_ANNOTATION)?
        .clone();
    match value.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && s >= 0.0 => Some(Duration::from_secs_f64(s)),
        _ => {
            warn!(%value, "ignoring a node startup-delay annotation that is not a number of seconds");
            None
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_mock(
    ctx: &NodeContext,
    writer: &StatusWriter,
    container: &Container,
    mut args: EngineArgs,
    ip: Ipv4Addr,
    started_at: &str,
    uid: &str,
    deletion: &mut watch::Receiver<Deletion>,
    kill: &CancellationToken,
) {
    args.host = ip.to_string();
    let config = match args.validate() {
        Ok(config) => config,
        Err(e) => return crash_until_deleted(writer, &e.to_string(), deletion, kill).await,
    };
    // The prober's client, built before anything starts so that a failure leaves nothing to stop.
    let http = match http_client(PROBE_TIMEOUT) {
        Ok(http) => http,
        Err(e) => {
            warn!(error = %e, "cannot probe the container");
            return crash_until_deleted(writer, &e.to_string(), deletion, kill).await;
        }
    };
    // The simulated model load: the port is not bound until it is over. A scenario can slow the loads of pods
    // started from some point on through the node's annotation (a slower disk or image pull on this node).
    let load = node_startup_delay(ctx)
        .await
        .unwrap_or(config.startup_delay);
    tokio::select! {
        _ = tokio::time::sleep(load) => {}
        _ = kill.cancelled() => return,
        _ = deletion.wait_for(Option::is_some) => return,
    }
    let addr = SocketAddr::from((ip, config.args.port));
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) => {
            let message = format!("cannot listen on {addr}: {e}");
            return crash_until_deleted(writer, &message, deletion, kill).await;
        }
    };
    let server_token = CancellationToken::new();
    let server = match mock_vllm::start(
        config,
        listener,
        ctx.tokenizer.clone(),
        server_token.clone(),
    ) {
        Ok(server) => server,
        Err(e) => return crash_until_deleted(writer, &e.to_string(), deletion, kill).await,
    };
    info!(%addr, "serving");
    ctx.table.set_engine(uid, server.engine.clone());

    let probe = Probe::of(container);
    let probe_port = probe
        .as_ref()
        .and_then(|p| p.port)
        .unwrap_or(server.addr.port());
    let probe_url = format!(
        "http://{ip}:{probe_port}{}",
        probe.as_ref().map_or("/health", |p| p.path.as_str())
    );
    let (initial_delay, period, threshold) =
        probe
            .as_ref()
            .map_or((Duration::ZERO, Duration::from_millis(200), 1), |p| {
                (
                    p.initial_delay.saturating_sub(load),
                    p.period,
                    p.failure_threshold,
                )
            });
    let killed = tokio::select! {
        _ = tokio::time::sleep(initial_delay) => false,
        _ = kill.cancelled() => true,
        _ = deletion.wait_for(Option::is_some) => false,
    };
    let mut ready = false;
    let mut failures = 0u32;
    let grace = loop {
        if killed {
            break None;
        }
        let requested = *deletion.borrow();
        if let Some(grace) = requested {
            break Some(grace);
        }
        let ok = matches!(http.get(&probe_url).send().await, Ok(r) if r.status().is_success());
        failures = if ok { 0 } else { failures + 1 };
        let next = if ok {
            true
        } else if failures >= threshold {
            false
        } else {
            ready
        };
        if next != ready {
            ready = next;
            ctx.table.set_ready(uid, ready);
            writer
                .write(Phase::Running {
                    ip,
                    started_at,
                    ready,
                })
                .await;
            info!(ready, "readiness changed");
        }
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = kill.cancelled() => break None,
            _ = deletion.wait_for(Option::is_some) => {}
        }
    };
    if let Some(grace) = grace {
        // Terminating: out of rotation first, then let in-flight requests finish (what AIBrix's preStop hook
        // waits for), within the grace period.
        ctx.table.set_ready(uid, false);
        writer
            .write(Phase::Running {
                ip,
                started_at,
                ready: false,
            })
            .await;
        let mut state = server.engine.watch_state();
        let drained = tokio::time::timeout(grace, state.wait_for(|s| s.in_flight() == 0)).await;
        match drained {
            Ok(_) => info!("drained"),
            Err(_) => warn!(
                in_flight = server.engine.state().in_flight(),
                "grace period over; stopping anyway"
            ),
        }
    }
    if let Err(e) = server.shutdown().await {
        warn!(error = %e, "server did not stop cleanly");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(command: &[&str], args: &[&str], image: &str) -> Container {
        Container {
            name: "c".into(),
            image: Some(image.into()),
            command: (!command.is_empty()).then(|| command.iter().map(|s| s.to_string()).collect()),
            args: Some(args.iter().map(|s| s.to_string()).collect()),
            ..Container::default()
        }
    }

    #[test]
    fn mock_vllm_command_lines_are_read_with_its_own_parser() {
        let w = workload_of(&container(
            &["mock-vllm"],
            &["--max-num-seqs", "8", "--startup-delay", "1"],
            "x",
        ));
        let Workload::MockVllm(args) = w else {
            panic!("{w:?}")
        };
        assert_eq!(args.max_num_seqs, 8);
        let w = workload_of(&container(
            &[],
            &["--port", "9000"],
            "ghcr.io/example/mock-vllm:dev",
        ));
        assert!(matches!(w, Workload::MockVllm(a) if a.port == 9000));
    }

    #[test]
    fn real_vllm_command_lines_run_as_mocks() {
        let w = workload_of(&container(
            &["python3", "-m", "vllm.entrypoints.openai.api_server"],
            &[
                "--model",
                "deepseek-ai/deepseek-llm-7b-chat",
                "--served-model-name",
                "deepseek-llm-7b-chat",
            ],
            "vllm/vllm-openai:v0.6.2",
        ));
        assert!(
            matches!(w, Workload::MockVllm(a) if a.served_model_name == vec!["deepseek-llm-7b-chat"])
        );
        let w = workload_of(&container(
            &["vllm", "serve", "meta-llama/Llama-2-7b-hf"],
            &[],
            "vllm",
        ));
        assert!(
            matches!(w, Workload::MockVllm(a) if a.model_tag.as_deref() == Some("meta-llama/Llama-2-7b-hf"))
        );
    }

    #[test]
    fn bad_arguments_become_a_reason_and_other_images_are_left_alone() {
        let w = workload_of(&container(&["mock-vllm"], &["--max-num-seqs", "lots"], "x"));
        assert!(
            matches!(&w, Workload::BadArgs(m) if m.contains("--max-num-seqs")),
            "{w:?}"
        );
        let w = workload_of(&container(&["mock-vllm"], &["--gpu", "tpu-v9"], "x"));
        assert!(
            matches!(&w, Workload::BadArgs(m) if m.contains("unknown GPU profile")),
            "{w:?}"
        );
        assert!(matches!(
            workload_of(&container(&["nginx"], &[], "nginx")),
            Workload::Other
        ));
    }
}
