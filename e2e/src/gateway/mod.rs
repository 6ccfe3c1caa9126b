//! The gateway: what kube-proxy and a NodePort give a kind cluster, for a control plane without either.
//!
//! Pod IPs in this harness are loopback addresses (the node agent serves each pod on its own 127.x.y.z), and
//! EndpointSlices reject loopback addresses, so the endpoint controllers do not run and nothing would route a
//! Service (`shared/reference/local-control-plane.md` §6, option c). The gateway closes that gap: for every
//! Service with node ports (type NodePort, or LoadBalancer) it listens on `<bind_ip>:<nodePort + port_offset>`
//! (the offset lets two clusters run side by side) and forwards HTTP requests to the Service's ready pods —
//! `status.podIP` plus the `targetPort`, named ports resolved against each pod's container ports — picked by a
//! [`BalancePolicy`] (least outstanding requests by default).
//!
//! It owns: reflectors on Pods and Services (all namespaces, or one), the route table rebuilt from them after
//! every watch event (so readiness written by the node agent takes effect within one watch round trip), the
//! listeners (opened and closed as node ports appear and disappear), per-pod request counters ([`Gateway::stats`])
//! and the streaming HTTP/1.1 relay. It adds a `target-pod` response header (AIBrix's benchmark client records
//! it) and answers in vLLM's error envelope when it cannot forward (503 no ready pod, 502 pod unreachable).
//!
//! Submodules: `table` (Service → pods), `balance` (policies, counters), `proxy` (forwarding).

mod balance;
mod proxy;
mod table;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use http::StatusCode;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use serde::Serialize;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, info_span, warn, Instrument};

pub use balance::BalancePolicy;
pub use proxy::TARGET_POD_HEADER;
pub use table::ServiceKey;

use balance::Balancer;
use table::{CounterMap, ListenerKey, Route, Table};

/// How the gateway runs.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// Only Services and Pods of this namespace; all namespaces if `None`.
    pub namespace: Option<String>,
    /// Added to each `nodePort` to get the listen port (0: listen on the node port itself).
    pub port_offset: u16,
    /// How requests pick a pod.
    pub policy: BalancePolicy,
    /// The address listeners bind (default 127.0.0.1).
    pub bind_ip: IpAddr,
    /// How long connecting to a pod may take before it counts as a connect failure.
    pub connect_timeout: Duration,
    /// How long [`Gateway::start`] waits for the initial list of Services and Pods.
    pub sync_timeout: Duration,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        Self {
            namespace: None,
            port_offset: 0,
            policy: BalancePolicy::default(),
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            connect_timeout: Duration::from_secs(2),
            sync_timeout: Duration::from_secs(30),
        }
    }
}

/// One pod of one Service, as the gateway sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackendStats {
    /// The Service.
    pub service: ServiceKey,
    /// The pod's name.
    pub pod: String,
    /// Its `status.podIP`, if set.
    pub ip: Option<IpAddr>,
    /// In rotation: Ready=True, not terminating, with an IP and a resolvable target port.
    pub ready: bool,
    /// Requests in flight to the pod (counted per pod, across every Service that selects it).
    pub outstanding: u64,
    /// Requests sent to the pod since the gateway first saw it selected.
    pub total: u64,
    /// Requests that failed in transport (connect failure, reset, broken stream).
    pub failed: u64,
}

/// Why the gateway could not start or forward a request.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The Service has no pod in rotation (answered with 503).
    #[error("no ready pods for service {0}")]
    NoReadyPods(ServiceKey),
    /// The pod could not be reached or failed before responding (answered with 502).
    #[error("pod {pod} ({addr}) of service {service} failed")]
    Upstream {
        /// The Service.
        service: ServiceKey,
        /// The pod.
        pod: String,
        /// Where it was dialled.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    /// The request could not be rebuilt for the pod (answered with 400).
    #[error("request cannot be forwarded: {0}")]
    BadRequest(String),
    /// A listener could not be opened (logged; retried on the next watch event).
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The initial list of Services and Pods did not complete in time.
    #[error("the initial list of Services and Pods did not complete within {seconds} s (last watch error: {last_error})")]
    Sync {
        /// How long we waited.
        seconds: u64,
        /// The last watch error seen, if any.
        last_error: String,
    },
    /// The gateway was shut down before its initial sync.
    #[error("the gateway stopped before its initial sync")]
    Stopped,
}

impl GatewayError {
    /// The HTTP status a client gets for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NoReadyPods(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::BAD_GATEWAY,
        }
    }
}

/// A running gateway. Dropping it stops it without waiting; [`Gateway::stop`] waits.
#[derive(Debug)]
pub struct Gateway {
    shared: Arc<Shared>,
    token: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Gateway {
    /// Starts watching Services and Pods, waits for the initial list (at most `options.sync_timeout`), opens the
    /// listeners of the Services that exist, and keeps following changes until `shutdown` is cancelled or
    /// [`Gateway::stop`] is called.
    pub async fn start(
        client: Client,
        options: GatewayOptions,
        shutdown: CancellationToken,
    ) -> Result<Self, GatewayError> {
        let token = shutdown.child_token();
        let sync_timeout = options.sync_timeout;
        let span = info_span!("gateway", namespace = options.namespace.as_deref().unwrap_or("*"), port_offset = options.port_offset, policy = %options.policy);
        let shared = Arc::new(Shared::new(options));
        let (synced_tx, synced_rx) = oneshot::channel();
        let controller = Controller {
            shared: shared.clone(),
            token: token.clone(),
            listeners: HashMap::new(),
            bind_failures: HashMap::new(),
            counters: CounterMap::new(),
        };
        let task = tokio::spawn(controller.run(client, synced_tx).instrument(span));
        let mut gateway = Self {
            shared,
            token,
            task: Some(task),
        };
        match tokio::time::timeout(sync_timeout, synced_rx).await {
            Ok(Ok(())) => Ok(gateway),
            Ok(Err(_)) => {
                gateway.shutdown().await;
                Err(GatewayError::Stopped)
            }
            Err(_) => {
                gateway.shutdown().await;
                let last_error = lock(&gateway.shared.last_watch_error)
                    .clone()
                    .unwrap_or_else(|| "none".into());
                Err(GatewayError::Sync {
                    seconds: sync_timeout.as_secs(),
                    last_error,
                })
            }
        }
    }

    /// The open listeners: one per Service port with a node port.
    pub fn listening(&self) -> Vec<(ServiceKey, SocketAddr)> {
        lock(&self.shared.listening)
            .iter()
            .map(|(key, addr)| (key.service.clone(), *addr))
            .collect()
    }

    /// Where the Service is served (its first port with a node port), if a listener is open.
    pub fn address_of(&self, service: &ServiceKey) -> Option<SocketAddr> {
        lock(&self.shared.listening)
            .iter()
            .find(|(key, _)| &key.service == service)
            .map(|(_, addr)| *addr)
    }

    /// Every pod selected by a routed Service, with its request counters; sorted by Service and pod.
    pub fn stats(&self) -> Vec<BackendStats> {
        let table = self.shared.table();
        let mut rows: BTreeMap<(ServiceKey, String), BackendStats> = BTreeMap::new();
        for route in table.routes.values() {
            for backend in &route.backends {
                let row = rows
                    .entry((route.key.service.clone(), backend.pod.clone()))
                    .or_insert_with(|| BackendStats {
                        service: route.key.service.clone(),
                        pod: backend.pod.clone(),
                        ip: backend.ip,
                        ready: false,
                        outstanding: backend.counters.outstanding(),
                        total: backend.counters.total(),
                        failed: backend.counters.failed(),
                    });
                row.ready |= backend.routable().is_some();
            }
        }
        rows.into_values().collect()
    }

    /// The pods of `service` in rotation, sorted.
    pub fn ready_pods(&self, service: &ServiceKey) -> Vec<String> {
        self.stats()
            .into_iter()
            .filter(|s| &s.service == service && s.ready)
            .map(|s| s.pod)
            .collect()
    }

    /// A receiver of the route table's generation, bumped after each rebuild (once its listeners are reconciled).
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.generation.subscribe()
    }

    /// Waits until `condition` holds, re-checking it after every route-table rebuild (watch events; request
    /// counters alone do not wake it). Returns whether it held before `timeout`.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        mut condition: impl FnMut(&Self) -> bool,
    ) -> bool {
        let mut generation = self.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            generation.mark_unchanged();
            if condition(self) {
                return true;
            }
            match tokio::time::timeout_at(deadline, generation.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) | Err(_) => return condition(self),
            }
        }
    }

    /// Closes the listeners, drops open connections and waits for every task to end.
    pub async fn stop(mut self) {
        self.shutdown().await;
    }

    async fn shutdown(&mut self) {
        self.token.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.shared.tracker.close();
        self.shared.tracker.wait().await;
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// State shared by the controller, the listeners and the handle.
struct Shared {
    options: GatewayOptions,
    table: RwLock<Arc<Table>>,
    listening: Mutex<BTreeMap<ListenerKey, SocketAddr>>,
    client: proxy::UpstreamClient,
    generation: watch::Sender<u64>,
    tracker: TaskTracker,
    last_watch_error: Mutex<Option<String>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("options", &self.options)
            .field("listening", &self.listening)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn new(options: GatewayOptions) -> Self {
        Self {
            client: proxy::upstream_client(options.connect_timeout),
            options,
            table: RwLock::new(Arc::new(Table::default())),
            listening: Mutex::new(BTreeMap::new()),
            generation: watch::Sender::new(0),
            tracker: TaskTracker::new(),
            last_watch_error: Mutex::new(None),
        }
    }

    fn table(&self) -> Arc<Table> {
        self.table
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn route(&self, key: &ListenerKey) -> Option<Arc<Route>> {
        self.table().routes.get(key).cloned()
    }
}

/// Locks a mutex, ignoring poisoning (every critical section leaves the data consistent).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An open listener.
struct OpenListener {
    addr: SocketAddr,
    close: CancellationToken,
    task: JoinHandle<()>,
}

/// Which reflector an event came from.
#[derive(Debug, Clone, Copy)]
enum Source {
    Pods,
    Services,
}

/// What a watch event means for the table (the reflector has already applied it to its store).
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Part of a (re-)list: the store is replaced when it is done.
    Listing,
    /// A list completed.
    Listed,
    /// An object was added, changed or deleted.
    Changed,
}

impl Step {
    fn of<K>(event: &watcher::Event<K>) -> Self {
        match event {
            watcher::Event::Init | watcher::Event::InitApply(_) => Self::Listing,
            watcher::Event::InitDone => Self::Listed,
            watcher::Event::Apply(_) | watcher::Event::Delete(_) => Self::Changed,
        }
    }
}

/// The task that follows the API: reflectors in, route table and listeners out.
struct Controller {
    shared: Arc<Shared>,
    token: CancellationToken,
    listeners: HashMap<ListenerKey, OpenListener>,
    /// Listeners that failed to bind, with the port tried (logged once per port).
    bind_failures: HashMap<ListenerKey, u16>,
    counters: CounterMap,
}

impl Controller {
    async fn run(mut self, client: Client, synced: oneshot::Sender<()>) {
        let (pods_api, services_api): (Api<Pod>, Api<Service>) =
            match self.shared.options.namespace.as_deref() {
                Some(ns) => (
                    Api::namespaced(client.clone(), ns),
                    Api::namespaced(client, ns),
                ),
                None => (Api::all(client.clone()), Api::all(client)),
            };
        let (pod_store, pod_writer) = reflector::store();
        let (service_store, service_writer) = reflector::store();
        let pods = reflector::reflector(
            pod_writer,
            watcher(pods_api, watcher::Config::default()).default_backoff(),
        )
        .map(|event| event.map(|e| (Source::Pods, Step::of(&e))));
        let services = reflector::reflector(
            service_writer,
            watcher(services_api, watcher::Config::default()).default_backoff(),
        )
        .map(|event| event.map(|e| (Source::Services, Step::of(&e))));
        let mut events = futures::stream::select(pods.boxed(), services.boxed());
        let (mut pods_synced, mut services_synced) = (false, false);
        let mut synced = Some(synced);
        info!("watching Services and Pods");
        'run: loop {
            let first = tokio::select! {
                _ = self.token.cancelled() => break,
                event = events.next() => event,
            };
            let mut dirty = false;
            let mut next = first;
            // Apply every event already waiting, then rebuild once.
            loop {
                let Some(event) = next else { break 'run };
                match event {
                    Ok((source, step)) => {
                        let synced = match source {
                            Source::Pods => &mut pods_synced,
                            Source::Services => &mut services_synced,
                        };
                        match step {
                            Step::Listing => {}
                            Step::Listed => {
                                *synced = true;
                                dirty = true;
                            }
                            Step::Changed => dirty = true,
                        }
                    }
                    Err(error) => {
                        warn!(%error, "watch failed; retrying with backoff");
                        *lock(&self.shared.last_watch_error) = Some(error.to_string());
                    }
                }
                match events.next().now_or_never() {
                    Some(event) => next = event,
                    None => break,
                }
            }
            if dirty && pods_synced && services_synced {
                self.rebuild(&service_store, &pod_store).await;
                if let Some(synced) = synced.take() {
                    info!(listeners = self.listeners.len(), "initial sync done");
                    let _ = synced.send(());
                }
            }
        }
        let open: Vec<ListenerKey> = self.listeners.keys().cloned().collect();
        for key in open {
            self.close(&key).await;
        }
        info!("stopped");
    }

    /// Rebuilds the table from the stores, logs changes in rotation, reconciles the listeners.
    async fn rebuild(&mut self, services: &Store<Service>, pods: &Store<Pod>) {
        let table = Arc::new(table::build(
            &services.state(),
            &pods.state(),
            self.shared.options.port_offset,
            &mut self.counters,
        ));
        let old = self.shared.table();
        for (key, route) in &table.routes {
            let ready: Vec<&str> = route.ready().map(|b| b.pod.as_str()).collect();
            let before: Option<Vec<&str>> = old
                .routes
                .get(key)
                .map(|r| r.ready().map(|b| b.pod.as_str()).collect());
            if before.as_ref() != Some(&ready) {
                info!(listener = %key, ready = ?ready, selected = route.backends.len(), "pods in rotation");
            }
        }
        *self
            .shared
            .table
            .write()
            .unwrap_or_else(PoisonError::into_inner) = table.clone();
        let stale: Vec<ListenerKey> = self
            .listeners
            .iter()
            .filter(|(key, open)| {
                table
                    .routes
                    .get(*key)
                    .is_none_or(|route| route.listen_port != open.addr.port())
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in stale {
            self.close(&key).await;
        }
        for (key, route) in &table.routes {
            if !self.listeners.contains_key(key) {
                self.open(route);
            }
        }
        self.bind_failures
            .retain(|key, _| table.routes.contains_key(key));
        self.shared.generation.send_modify(|g| *g += 1);
    }

    fn open(&mut self, route: &Route) {
        let addr = SocketAddr::new(self.shared.options.bind_ip, route.listen_port);
        let listener = match bind(addr) {
            Ok(listener) => listener,
            Err(source) => {
                if self.bind_failures.insert(route.key.clone(), addr.port()) != Some(addr.port()) {
                    let error = GatewayError::Bind { addr, source };
                    warn!(listener = %route.key, error = %error, cause = %std::error::Error::source(&error).map(ToString::to_string).unwrap_or_default(), "listener not opened (retried on the next change)");
                }
                return;
            }
        };
        self.bind_failures.remove(&route.key);
        let close = self.token.child_token();
        let ctx = Arc::new(proxy::ListenerCtx {
            key: route.key.clone(),
            shared: self.shared.clone(),
            balancer: Balancer::new(self.shared.options.policy),
        });
        let task = tokio::spawn(
            proxy::serve(
                listener,
                ctx,
                close.clone(),
                self.token.clone(),
                self.shared.tracker.clone(),
            )
            .in_current_span(),
        );
        info!(listener = %route.key, %addr, "listening");
        lock(&self.shared.listening).insert(route.key.clone(), addr);
        self.listeners
            .insert(route.key.clone(), OpenListener { addr, close, task });
    }

    /// Stops accepting (the socket is closed when this returns); connections finish their current request.
    async fn close(&mut self, key: &ListenerKey) {
        if let Some(open) = self.listeners.remove(key) {
            open.close.cancel();
            let _ = open.task.await;
            lock(&self.shared.listening).remove(key);
            info!(listener = %key, addr = %open.addr, "closed");
        }
    }
}

/// A listening socket with `SO_REUSEADDR` (a closed node port can be reopened at once) and `TCP_NODELAY`.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}
