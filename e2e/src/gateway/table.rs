//! The route table: for every TCP port with a `nodePort` of every NodePort (or LoadBalancer) Service, the pods
//! its selector picks, each with its address (`status.podIP` + the resolved `targetPort`) and whether it is in
//! rotation. Rebuilt from the reflector stores after every watch event, so it follows readiness as the node
//! agent writes it; what the EndpointSlice controller and kube-proxy would compute, minus the slices.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;

use super::balance::Counters;
use crate::k8s::pod::is_serving;

/// A Service, by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ServiceKey {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl ServiceKey {
    /// The key of Service `namespace/name`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// One listener: a Service port (TCP; the port number is unique per protocol within a Service).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ListenerKey {
    pub(crate) service: ServiceKey,
    pub(crate) port: u16,
}

impl std::fmt::Display for ListenerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.service, self.port)
    }
}

/// A pod selected by a Service, for one of its ports.
#[derive(Debug, Clone)]
pub(crate) struct Backend {
    pub(crate) pod: String,
    pub(crate) ip: Option<IpAddr>,
    /// `podIP:targetPort`, if both are known.
    pub(crate) addr: Option<SocketAddr>,
    /// Ready=True and not terminating.
    pub(crate) ready: bool,
    pub(crate) counters: Arc<Counters>,
}

impl Backend {
    /// Where to send requests, if the pod is in rotation (ready and addressable).
    pub(crate) fn routable(&self) -> Option<SocketAddr> {
        if self.ready {
            self.addr
        } else {
            None
        }
    }
}

/// Where one listener sends its requests.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    pub(crate) key: ListenerKey,
    /// `nodePort + offset`.
    pub(crate) listen_port: u16,
    /// Every selected pod, in rotation or not, sorted by name.
    pub(crate) backends: Vec<Backend>,
}

impl Route {
    /// The pods in rotation.
    pub(crate) fn ready(&self) -> impl Iterator<Item = &Backend> {
        self.backends.iter().filter(|b| b.routable().is_some())
    }
}

/// Every route, by listener.
#[derive(Debug, Default)]
pub(crate) struct Table {
    pub(crate) routes: BTreeMap<ListenerKey, Arc<Route>>,
}

/// Counters by (namespace, pod name); kept across rebuilds so that a pod's counts survive readiness flips.
pub(crate) type CounterMap = HashMap<(String, String), Arc<Counters>>;

/// Builds the table from the stores' contents. `counters` keeps the counters of pods still selected and gains
/// new ones; the rest are forgotten (requests in flight keep theirs alive until they finish).
pub(crate) fn build(
    services: &[Arc<Service>],
    pods: &[Arc<Pod>],
    port_offset: u16,
    counters: &mut CounterMap,
) -> Table {
    let mut by_namespace: HashMap<&str, Vec<&Pod>> = HashMap::new();
    for pod in pods {
        if let Some(ns) = pod.metadata.namespace.as_deref() {
            by_namespace.entry(ns).or_default().push(pod);
        }
    }
    let mut kept = CounterMap::new();
    let mut routes = BTreeMap::new();
    for service in services {
        let (Some(namespace), Some(name), Some(spec)) = (
            service.metadata.namespace.as_deref(),
            service.metadata.name.as_deref(),
            service.spec.as_ref(),
        ) else {
            continue;
        };
        if service.metadata.deletion_timestamp.is_some()
            || !matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer"))
        {
            continue;
        }
        let key = ServiceKey::new(namespace, name);
        // A Service without a selector has manually managed endpoints, which the gateway does not read.
        let selected: Vec<&Pod> = match spec.selector.as_ref().filter(|s| !s.is_empty()) {
            Some(selector) => by_namespace
                .get(namespace)
                .map(|pods| {
                    pods.iter()
                        .copied()
                        .filter(|p| selects(selector, p))
                        .collect()
                })
                .unwrap_or_default(),
            None => Vec::new(),
        };
        for sp in spec.ports.iter().flatten() {
            if sp.protocol.as_deref().is_some_and(|p| p != "TCP") {
                continue;
            }
            let (Some(node_port), Ok(port)) = (sp.node_port, u16::try_from(sp.port)) else {
                continue;
            };
            let Some(listen_port) = u16::try_from(node_port)
                .ok()
                .and_then(|p| p.checked_add(port_offset))
            else {
                tracing::debug!(service = %key, node_port, port_offset, "listen port out of range; skipped");
                continue;
            };
            let mut backends: Vec<Backend> = selected
                .iter()
                .filter_map(|pod| {
                    let pod_name = pod.metadata.name.clone()?;
                    let id = (namespace.to_string(), pod_name.clone());
                    let counters = counters
                        .get(&id)
                        .or_else(|| kept.get(&id))
                        .cloned()
                        .unwrap_or_default();
                    kept.insert(id, counters.clone());
                    let ip = pod_ip(pod);
                    let target = resolve_target_port(sp, pod);
                    Some(Backend {
                        pod: pod_name,
                        ip,
                        addr: ip.zip(target).map(|(ip, port)| SocketAddr::new(ip, port)),
                        ready: is_serving(pod),
                        counters,
                    })
                })
                .collect();
            backends.sort_by(|a, b| a.pod.cmp(&b.pod));
            let key = ListenerKey {
                service: key.clone(),
                port,
            };
            routes.insert(
                key.clone(),
                Arc::new(Route {
                    key,
                    listen_port,
                    backends,
                }),
            );
        }
    }
    *counters = kept;
    Table { routes }
}

/// Whether every selector label matches.
fn selects(selector: &BTreeMap<String, String>, pod: &Pod) -> bool {
    let labels = pod.metadata.labels.as_ref();
    selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

fn pod_ip(pod: &Pod) -> Option<IpAddr> {
    pod.status.as_ref()?.pod_ip.as_deref()?.parse().ok()
}

/// The pod port a Service port targets: a number as is, a name looked up among the pod's container ports (same
/// protocol), and no `targetPort` meaning the Service port itself (as the API server defaults it).
pub(crate) fn resolve_target_port(sp: &ServicePort, pod: &Pod) -> Option<u16> {
    match &sp.target_port {
        None => u16::try_from(sp.port).ok(),
        Some(IntOrString::Int(port)) => u16::try_from(*port).ok().filter(|p| *p != 0),
        Some(IntOrString::String(name)) => {
            let protocol = sp.protocol.as_deref().unwrap_or("TCP");
            pod.spec
                .as_ref()?
                .containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == protocol
                })
                .and_then(|p| u16::try_from(p.container_port).ok())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, labels: serde_json::Value, ip: Option<&str>, ready: bool) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default", "labels": labels},
                "spec": {"containers": [{"name": "vllm", "ports": [
                    {"name": "metrics", "containerPort": 9000},
                    {"name": "http", "containerPort": 8000},
                ]}]},
                "status": {
                    "podIP": ip,
                    "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
                },
            }))
            .expect("pod"),
        )
    }

    fn service(kind: &str, target: serde_json::Value, node_port: i32) -> Arc<Service> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": "llm", "namespace": "default"},
                "spec": {
                    "type": kind,
                    "selector": {"app": "llm"},
                    "ports": [{"port": 80, "targetPort": target, "nodePort": node_port}],
                },
            }))
            .expect("service"),
        )
    }

    #[test]
    fn selects_ready_pods_and_resolves_named_ports() {
        let services = [service("NodePort", json!("http"), 30080)];
        let pods = [
            pod(
                "a",
                json!({"app": "llm", "x": "1"}),
                Some("127.10.0.2"),
                true,
            ),
            pod("b", json!({"app": "llm"}), Some("127.10.0.3"), false),
            pod("c", json!({"app": "llm"}), None, true),
            pod("d", json!({"app": "other"}), Some("127.10.0.5"), true),
        ];
        let mut counters = CounterMap::new();
        let table = build(&services, &pods, 5, &mut counters);
        assert_eq!(table.routes.len(), 1);
        let route = table.routes.values().next().expect("a route");
        assert_eq!(route.listen_port, 30085);
        assert_eq!(route.key.port, 80);
        let names: Vec<&str> = route.backends.iter().map(|b| b.pod.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        let ready: Vec<SocketAddr> = route.ready().filter_map(Backend::routable).collect();
        assert_eq!(ready, ["127.10.0.2:8000".parse().expect("addr")]);
        assert_eq!(counters.len(), 3);
    }

    #[test]
    fn counters_survive_rebuilds_and_are_forgotten_with_the_pod() {
        let services = [service("NodePort", json!(8000), 30080)];
        let a = pod("a", json!({"app": "llm"}), Some("127.10.0.2"), true);
        let mut counters = CounterMap::new();
        let first = build(&services, std::slice::from_ref(&a), 0, &mut counters);
        let c1 = first.routes.values().next().expect("route").backends[0]
            .counters
            .clone();
        let second = build(&services, &[a], 0, &mut counters);
        let c2 = &second.routes.values().next().expect("route").backends[0].counters;
        assert!(Arc::ptr_eq(&c1, c2));
        build(&services, &[], 0, &mut counters);
        assert!(counters.is_empty());
    }

    #[test]
    fn only_node_ports_get_routes() {
        let cluster_ip: Arc<Service> = Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": "internal", "namespace": "default"},
                "spec": {"type": "ClusterIP", "selector": {"app": "llm"}, "ports": [{"port": 80}]},
            }))
            .expect("service"),
        );
        let table = build(
            &[cluster_ip, service("LoadBalancer", json!(8000), 31000)],
            &[],
            0,
            &mut CounterMap::new(),
        );
        let ports: Vec<u16> = table.routes.values().map(|r| r.listen_port).collect();
        assert_eq!(ports, [31000]);
        // An offset that would overflow the port range drops the listener instead of wrapping.
        let table = build(
            &[service("NodePort", json!(8000), 31000)],
            &[],
            40000,
            &mut CounterMap::new(),
        );
        assert!(table.routes.is_empty());
    }

    #[test]
    fn readiness_needs_ready_true_and_no_deletion() {
        let p = pod("a", json!({}), Some("127.0.0.2"), true);
        assert!(is_serving(&p));
        let mut terminating = (*p).clone();
        terminating.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        assert!(!is_serving(&terminating));
        assert!(!is_serving(&pod("b", json!({}), Some("127.0.0.2"), false)));
    }

    #[test]
    fn target_port_forms() {
        let p = pod("a", json!({}), None, true);
        let sp = |target: Option<IntOrString>| ServicePort {
            port: 80,
            target_port: target,
            ..Default::default()
        };
        assert_eq!(resolve_target_port(&sp(None), &p), Some(80));
        assert_eq!(
            resolve_target_port(&sp(Some(IntOrString::Int(8000))), &p),
            Some(8000)
        );
        assert_eq!(
            resolve_target_port(&sp(Some(IntOrString::String("metrics".into()))), &p),
            Some(9000)
        );
        assert_eq!(
            resolve_target_port(&sp(Some(IntOrString::String("grpc".into()))), &p),
            None
        );
    }
}
