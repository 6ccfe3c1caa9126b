//! The HTTPS server: TLS (a self-signed rcgen certificate, ALPN `http/1.1`), routing, `Status` errors, the request
//! log, and the pod lookup and scraping shared by [`super::custom`] and [`super::resource`].
//!
//! Routes (GET only; every API answer is `Content-Type: application/json`):
//! - `/healthz`, `/readyz`, `/livez`: `ok`.
//! - `/apis`: 404, so the aggregator falls back from aggregated to per-version discovery (§7.2).
//! - `/apis/custom.metrics.k8s.io/{v1beta1,v1beta2}`: `APIResourceList` with a `pods/<metric>` entry per metric
//!   (also the aggregator's availability probe).
//! - `/apis/custom.metrics.k8s.io/{v}/namespaces/{ns}/pods/{name|*}/{metric}`: `MetricValueList`.
//! - `/apis/metrics.k8s.io/v1beta1`: `APIResourceList` (pods, nodes).
//! - `/apis/metrics.k8s.io/v1beta1/[namespaces/{ns}/]pods[/{name}]`, `…/nodes[/{name}]`: `PodMetrics(List)`,
//!   `NodeMetrics(List)`.
//! - anything else: 404 `Status`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{header, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::Store;
use kube::Client;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::scrape::{scrape, scrape_client, Exposition};
use super::selector::Selector;
use super::{
    custom, resource, MetricsAdapterOptions, MetricsApiError, ObservedRequest, RequestLog,
    ResourceModel, ServedMetric, CUSTOM_GROUP, RESOURCE_GROUP, SERVICE_NAME, SERVICE_NAMESPACE,
};

/// An API error, answered as a `metav1.Status`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// `reason` (`NotFound`, `BadRequest`, …).
    pub reason: &'static str,
    /// `message`.
    pub message: String,
}

impl ApiError {
    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            reason: "NotFound",
            message: message.into(),
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            reason: "BadRequest",
            message: message.into(),
        }
    }

    /// 500.
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            reason: "InternalError",
            message: message.into(),
        }
    }

    /// The `Status` body.
    pub fn body(&self) -> Value {
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": self.message, "reason": self.reason,
            "code": self.status.as_u16(),
        })
    }
}

/// What a handler needs: the pods, the scraper, the served metrics and the resource model.
pub struct AppState {
    pub(crate) pods: Store<Pod>,
    pub(crate) client: Client,
    pub(crate) http: reqwest::Client,
    pub(crate) metrics: Vec<ServedMetric>,
    pub(crate) model: ResourceModel,
    pub(crate) pod_port: u16,
    pub(crate) pod_path: String,
    pub(crate) window: Duration,
    pub(crate) log: RequestLog,
}

impl AppState {
    pub(crate) fn new(
        pods: Store<Pod>,
        client: Client,
        options: &MetricsAdapterOptions,
        log: RequestLog,
    ) -> Result<Self, MetricsApiError> {
        Ok(Self {
            pods,
            client,
            http: scrape_client(options.scrape_timeout).map_err(MetricsApiError::HttpClient)?,
            metrics: options.metrics.clone(),
            model: options.resource_model.clone(),
            pod_port: options.pod_metrics_port,
            pod_path: options.pod_metrics_path.clone(),
            window: options.window,
            log,
        })
    }

    /// Running pods (phase `Running`, not being deleted, with a pod IP) in `namespace` (all if `None`) whose
    /// labels match `selector`, sorted by namespace and name.
    pub(crate) fn running_pods(
        &self,
        namespace: Option<&str>,
        selector: &Selector,
    ) -> Vec<Arc<Pod>> {
        let empty = BTreeMap::new();
        let mut pods: Vec<Arc<Pod>> = self
            .pods
            .state()
            .into_iter()
            .filter(|p| namespace.is_none_or(|ns| p.metadata.namespace.as_deref() == Some(ns)))
            .filter(|p| is_running(p))
            .filter(|p| selector.matches(p.metadata.labels.as_ref().unwrap_or(&empty)))
            .collect();
        pods.sort_by(|a, b| {
            (&a.metadata.namespace, &a.metadata.name)
                .cmp(&(&b.metadata.namespace, &b.metadata.name))
        });
        pods
    }

    /// The running pod `namespace/name`, if any.
    pub(crate) fn running_pod(&self, namespace: &str, name: &str) -> Option<Arc<Pod>> {
        self.pods
            .state()
            .into_iter()
            .find(|p| {
                p.metadata.namespace.as_deref() == Some(namespace)
                    && p.metadata.name.as_deref() == Some(name)
            })
            .filter(|p| is_running(p))
    }

    /// Scrapes every pod concurrently; pods whose scrape fails are left out.
    pub(crate) async fn scrape_all(&self, pods: Vec<Arc<Pod>>) -> Vec<(Arc<Pod>, Exposition)> {
        let scrapes = pods.into_iter().map(|pod| async move {
            let ip = pod.status.as_ref()?.pod_ip.clone()?;
            let port = pod
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("model.aibrix.ai/port"))
                .and_then(|p| p.parse().ok())
                .unwrap_or(self.pod_port);
            match scrape(&self.http, &ip, port, &self.pod_path).await {
                Ok(exposition) => Some((pod, exposition)),
                Err(error) => {
                    debug!(pod = ?pod.metadata.name, %error, "scrape failed; pod left out");
                    None
                }
            }
        });
        futures::future::join_all(scrapes)
            .await
            .into_iter()
            .flatten()
            .collect()
    }
}

fn is_running(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod.status.as_ref().is_some_and(|s| {
            s.phase.as_deref() == Some("Running")
                && s.pod_ip.as_deref().is_some_and(|ip| !ip.is_empty())
        })
}

/// Now, as a `metav1.Time` string (RFC 3339, seconds, UTC).
pub(crate) fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A Go duration string for `window` (`15s`, `1500ms`).
pub(crate) fn go_duration(window: Duration) -> String {
    let millis = window.as_millis();
    if millis.is_multiple_of(1000) {
        format!("{}s", millis / 1000)
    } else {
        format!("{millis}ms")
    }
}

/// The TLS configuration: a fresh self-signed certificate for 127.0.0.1/localhost/the Service's DNS name, ALPN
/// `http/1.1`, and client certificates required only when `client_ca_pem` is given.
pub fn tls_config(client_ca_pem: Option<&[u8]>) -> Result<ServerConfig, MetricsApiError> {
    let tls = |e: &dyn std::fmt::Display| MetricsApiError::Tls(e.to_string());
    let certified = rcgen::generate_simple_self_signed(vec![
        "127.0.0.1".to_string(),
        "localhost".to_string(),
        format!("{SERVICE_NAME}.{SERVICE_NAMESPACE}.svc"),
    ])
    .map_err(|e| tls(&e))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(&e))?;
    let builder = match client_ca_pem {
        Some(pem) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                roots.add(cert.map_err(|e| tls(&e))?).map_err(|e| tls(&e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| tls(&e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .map_err(|e| tls(&e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Binds and serves until `stop` is cancelled; returns the bound address and the server task.
pub(crate) async fn serve(
    options: &MetricsAdapterOptions,
    state: AppState,
    stop: CancellationToken,
) -> Result<(SocketAddr, JoinHandle<()>), MetricsApiError> {
    let acceptor = TlsAcceptor::from(Arc::new(tls_config(options.client_ca_pem.as_deref())?));
    let wanted = SocketAddr::new(options.bind, options.port);
    let listener = TcpListener::bind(wanted)
        .await
        .map_err(|source| MetricsApiError::Bind {
            addr: wanted,
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| MetricsApiError::Bind {
            addr: wanted,
            source,
        })?;
    let state = Arc::new(state);
    let task = tokio::spawn(accept_loop(listener, acceptor, state, stop));
    Ok((addr, task))
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    state: Arc<AppState>,
    stop: CancellationToken,
) {
    let tracker = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    warn!(%error, "metrics adapter: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        tracker.spawn(serve_connection(
            stream,
            peer,
            acceptor.clone(),
            state.clone(),
            stop.clone(),
        ));
    }
    drop(listener);
    tracker.close();
    if tokio::time::timeout(Duration::from_secs(5), tracker.wait())
        .await
        .is_err()
    {
        debug!("metrics adapter: connections still open after 5 s; dropped");
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    state: Arc<AppState>,
    stop: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(error)) => {
            debug!(%peer, %error, "TLS handshake failed");
            return;
        }
        Err(_) => {
            debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let service = service_fn(move |request| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(handle(&state, request).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .serve_connection(TokioIo::new(tls), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            match tokio::time::timeout(Duration::from_secs(3), connection.as_mut()).await {
                Ok(result) => result,
                Err(_) => Ok(()),
            }
        }
    };
    if let Err(error) = result {
        debug!(%peer, %error, "connection ended with an error");
    }
}

/// Answers one request and records it.
async fn handle(state: &AppState, request: Request<Incoming>) -> Response<String> {
    let header_of = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let mut observed = ObservedRequest {
        method: request.method().to_string(),
        path: request.uri().path_and_query().map_or_else(
            || request.uri().path().to_string(),
            |p| p.as_str().to_string(),
        ),
        accept: header_of("accept"),
        user_agent: header_of("user-agent"),
        remote_user: header_of("x-remote-user"),
        status: 0,
        items: None,
    };
    let (status, content_type, body, items) = if request.method() != Method::GET {
        let error = ApiError {
            status: StatusCode::METHOD_NOT_ALLOWED,
            reason: "MethodNotAllowed",
            message: format!(
                "the server does not allow this method: {}",
                request.method()
            ),
        };
        (
            error.status,
            "application/json",
            error.body().to_string(),
            None,
        )
    } else {
        let query = parse_query(request.uri().query().unwrap_or(""));
        match route(state, request.uri().path(), &query).await {
            Routed::Text(text) => (
                StatusCode::OK,
                "text/plain; charset=utf-8",
                text.to_string(),
                None,
            ),
            Routed::Json(Ok(value)) => {
                let items = value.get("items").and_then(Value::as_array).map(Vec::len);
                (StatusCode::OK, "application/json", value.to_string(), items)
            }
            Routed::Json(Err(error)) => (
                error.status,
                "application/json",
                error.body().to_string(),
                None,
            ),
        }
    };
    observed.status = status.as_u16();
    observed.items = items;
    debug!(
        path = %observed.path,
        accept = ?observed.accept,
        user_agent = ?observed.user_agent,
        remote_user = ?observed.remote_user,
        status = observed.status,
        items = ?observed.items,
        "metrics adapter request"
    );
    state.log.push(observed);
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

enum Routed {
    Text(&'static str),
    Json(Result<Value, ApiError>),
}

async fn route(state: &AppState, path: &str, query: &BTreeMap<String, String>) -> Routed {
    let segments: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    let not_found = || {
        Routed::Json(Err(ApiError::not_found(format!(
            "the server could not find the requested resource ({path})"
        ))))
    };
    match s.as_slice() {
        ["healthz" | "readyz" | "livez"] => Routed::Text("ok"),
        ["apis", CUSTOM_GROUP, version @ ("v1beta1" | "v1beta2"), rest @ ..] => {
            let version = if *version == "v1beta1" {
                custom::ApiVersion::V1beta1
            } else {
                custom::ApiVersion::V1beta2
            };
            match rest {
                [] => Routed::Json(Ok(custom::discovery(version, &state.metrics))),
                ["namespaces", namespace, "pods", name, metric] => {
                    Routed::Json(custom::get(state, version, namespace, name, metric, query).await)
                }
                _ => not_found(),
            }
        }
        ["apis", RESOURCE_GROUP, "v1beta1", rest @ ..] => match rest {
            [] => Routed::Json(Ok(resource::discovery())),
            ["pods"] => Routed::Json(resource::list_pods(state, None, query).await),
            ["namespaces", namespace, "pods"] => {
                Routed::Json(resource::list_pods(state, Some(namespace), query).await)
            }
            ["namespaces", namespace, "pods", name] => {
                Routed::Json(resource::get_pod(state, namespace, name).await)
            }
            ["nodes"] => Routed::Json(resource::list_nodes(state, None, query).await),
            ["nodes", name] => Routed::Json(resource::list_nodes(state, Some(name), query).await),
            _ => not_found(),
        },
        _ => not_found(),
    }
}

/// Parses a query string (`+` is a space, `%XX` escapes), the last value of a repeated key winning.
pub(crate) fn parse_query(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (
                percent_decode(&key.replace('+', " ")),
                percent_decode(&value.replace('+', " ")),
            )
        })
        .collect()
}

/// Decodes `%XX` escapes (invalid escapes are kept as they are).
pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(byte) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_and_paths_decode() {
        let q =
            parse_query("labelSelector=app%3Dmock-vllm%2Ctier+in+%28a%2Cb%29&metricLabelSelector=");
        assert_eq!(q["labelSelector"], "app=mock-vllm,tier in (a,b)");
        assert_eq!(q["metricLabelSelector"], "");
        assert_eq!(percent_decode("%2A"), "*");
        assert_eq!(percent_decode("pod-1"), "pod-1");
        assert_eq!(percent_decode("bad%2"), "bad%2");
        assert_eq!(percent_decode("bad%zz"), "bad%zz");
        assert_eq!(percent_decode("%"), "%");
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(Duration::from_secs(15)), "15s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn timestamps_are_rfc3339_seconds() {
        let now = now_rfc3339();
        assert_eq!(now.len(), 20, "{now}");
        assert!(now.ends_with('Z') && now.as_bytes()[10] == b'T', "{now}");
    }

    #[test]
    fn status_bodies() {
        let body = ApiError::not_found("nope").body();
        assert_eq!(body["kind"], "Status");
        assert_eq!(body["reason"], "NotFound");
        assert_eq!(body["code"], 404);
    }

    #[test]
    fn tls_config_offers_http1_and_optional_client_auth() {
        let config = tls_config(None).expect("tls");
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        let ca = rcgen::generate_simple_self_signed(vec!["ca".to_string()]).expect("ca");
        assert!(tls_config(Some(ca.cert.pem().as_bytes())).is_ok());
        assert!(
            tls_config(Some(b"not a pem")).is_err(),
            "an empty CA store is an error"
        );
    }
}
