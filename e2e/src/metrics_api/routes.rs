//! The adapter's HTTP surface: an axum [`Router`] from paths to the [`custom`](super::custom) and
//! [`resource`](super::resource) handlers, and one middleware that every request passes through.
//!
//! Routes (GET only; every API answer is `Content-Type: application/json`):
//! - `/healthz`, `/readyz`, `/livez`: `ok`.
//! - `/apis`: 404, so the aggregator falls back from aggregated to per-version discovery (§7.2).
//! - `/apis/custom.metrics.k8s.io/{v1beta1,v1beta2}`: `APIResourceList` with a `pods/<metric>` entry per metric
//!   (also the aggregator's availability probe).
//! - `/apis/custom.metrics.k8s.io/{v}/namespaces/{ns}/pods/{name|*}/{metric}`: `MetricValueList`. The HPA sends
//!   the `*` percent-encoded (`pods/%2A/<metric>`); axum's `Path` decodes it, as it decodes every parameter.
//! - `/apis/metrics.k8s.io/v1beta1`: `APIResourceList` (pods, nodes).
//! - `/apis/metrics.k8s.io/v1beta1/[namespaces/{ns}/]pods[/{name}]`, `…/nodes[/{name}]`: `PodMetrics(List)`,
//!   `NodeMetrics(List)`.
//! - anything else: 404 `Status`.
//!
//! The middleware ([`record`]) runs before routing, because it wraps an outer router whose only service is the
//! API router: it answers any method but GET with a 405 `Status`, ignores leading and trailing slashes
//! (`/healthz/` is `/healthz`), and appends every answered request to the request log with its status and, for
//! lists, its item count (which handlers leave in a response extension, [`ItemCount`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::uri::PathAndQuery;
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use serde_json::Value;
use tracing::debug;

use super::custom::{self, ApiVersion, CUSTOM_GROUP};
use super::request_log::ObservedRequest;
use super::resource::{self, RESOURCE_GROUP};
use super::state::AppState;
use super::status::{json_response, ApiError};

type Shared = State<Arc<AppState>>;
type Selectors = Query<BTreeMap<String, String>>;

/// The path as the client sent it (before slashes are trimmed), for 404 messages.
#[derive(Debug, Clone)]
struct RequestPath(String);

/// How many items a list answer holds, for the request log.
#[derive(Debug, Clone, Copy)]
struct ItemCount(usize);

/// The adapter's service: the API routes behind the [`record`] middleware.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    let custom_version = format!("/apis/{CUSTOM_GROUP}/{{version}}");
    let resource_version = format!("/apis/{RESOURCE_GROUP}/v1beta1");
    let api = Router::new()
        .route("/healthz", get(ok))
        .route("/readyz", get(ok))
        .route("/livez", get(ok))
        .route(&custom_version, get(custom_discovery))
        .route(
            &format!("{custom_version}/namespaces/{{namespace}}/pods/{{name}}/{{metric}}"),
            get(custom_value),
        )
        .route(&resource_version, get(resource_discovery))
        .route(&format!("{resource_version}/pods"), get(all_pod_metrics))
        .route(
            &format!("{resource_version}/namespaces/{{namespace}}/pods"),
            get(namespace_pod_metrics),
        )
        .route(
            &format!("{resource_version}/namespaces/{{namespace}}/pods/{{name}}"),
            get(one_pod_metrics),
        )
        .route(&format!("{resource_version}/nodes"), get(all_node_metrics))
        .route(
            &format!("{resource_version}/nodes/{{name}}"),
            get(one_node_metrics),
        )
        .fallback(not_found)
        .with_state(state.clone());
    Router::new()
        .fallback_service(api)
        .layer(middleware::from_fn_with_state(state, record))
}

/// Refuses methods other than GET, trims slashes, runs the request and logs it.
async fn record(State(state): Shared, request: Request, next: Next) -> Response {
    let mut observed = observe(&request);
    let response = if request.method() == Method::GET {
        next.run(prepare(request)).await
    } else {
        ApiError::method_not_allowed(request.method()).into_response()
    };
    observed.status = response.status().as_u16();
    observed.items = response.extensions().get::<ItemCount>().map(|n| n.0);
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
    response
}

/// The request as the log records it (status and item count are filled in after the answer).
fn observe(request: &Request) -> ObservedRequest {
    let header_of = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let uri = request.uri();
    ObservedRequest {
        method: request.method().to_string(),
        path: uri
            .path_and_query()
            .map_or_else(|| uri.path().to_string(), |p| p.as_str().to_string()),
        accept: header_of("accept"),
        user_agent: header_of("user-agent"),
        remote_user: header_of("x-remote-user"),
        status: 0,
        items: None,
    }
}

/// Remembers the path as sent and routes on it with leading and trailing slashes trimmed.
fn prepare(mut request: Request) -> Request {
    let path = RequestPath(request.uri().path().to_string());
    if let Some(trimmed) = trim_slashes(request.uri()) {
        *request.uri_mut() = trimmed;
    }
    request.extensions_mut().insert(path);
    request
}

/// `uri` with its path's leading and trailing slashes reduced to one leading slash, if that changes anything.
fn trim_slashes(uri: &Uri) -> Option<Uri> {
    let trimmed = format!("/{}", uri.path().trim_matches('/'));
    if trimmed == uri.path() {
        return None;
    }
    let path_and_query = match uri.query() {
        Some(query) => format!("{trimmed}?{query}"),
        None => trimmed,
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(path_and_query).ok()?);
    Uri::from_parts(parts).ok()
}

/// A JSON answer: the value with its item count, or the error's `Status`.
fn reply(result: Result<Value, ApiError>) -> Response {
    match result {
        Ok(value) => {
            let items = value.get("items").and_then(Value::as_array).map(Vec::len);
            let mut response = json_response(StatusCode::OK, &value);
            if let Some(items) = items {
                response.extensions_mut().insert(ItemCount(items));
            }
            response
        }
        Err(error) => error.into_response(),
    }
}

fn path_not_found(path: &RequestPath) -> ApiError {
    ApiError::not_found(format!(
        "the server could not find the requested resource ({})",
        path.0
    ))
}

async fn not_found(Extension(path): Extension<RequestPath>) -> Response {
    path_not_found(&path).into_response()
}

async fn ok() -> &'static str {
    "ok"
}

async fn custom_discovery(
    State(state): Shared,
    Path(version): Path<String>,
    Extension(path): Extension<RequestPath>,
) -> Response {
    match ApiVersion::from_segment(&version) {
        Some(version) => reply(Ok(custom::discovery(version, &state.metrics))),
        None => path_not_found(&path).into_response(),
    }
}

async fn custom_value(
    State(state): Shared,
    Path((version, namespace, name, metric)): Path<(String, String, String, String)>,
    Query(query): Selectors,
    Extension(path): Extension<RequestPath>,
) -> Response {
    match ApiVersion::from_segment(&version) {
        Some(version) => {
            reply(custom::get(&state, version, &namespace, &name, &metric, &query).await)
        }
        None => path_not_found(&path).into_response(),
    }
}

async fn resource_discovery() -> Response {
    reply(Ok(resource::discovery()))
}

async fn all_pod_metrics(State(state): Shared, Query(query): Selectors) -> Response {
    reply(resource::list_pods(&state, None, &query).await)
}

async fn namespace_pod_metrics(
    State(state): Shared,
    Path(namespace): Path<String>,
    Query(query): Selectors,
) -> Response {
    reply(resource::list_pods(&state, Some(&namespace), &query).await)
}

async fn one_pod_metrics(
    State(state): Shared,
    Path((namespace, name)): Path<(String, String)>,
) -> Response {
    reply(resource::get_pod(&state, &namespace, &name).await)
}

async fn all_node_metrics(State(state): Shared, Query(query): Selectors) -> Response {
    reply(resource::list_nodes(&state, None, &query).await)
}

async fn one_node_metrics(
    State(state): Shared,
    Path(name): Path<String>,
    Query(query): Selectors,
) -> Response {
    reply(resource::list_nodes(&state, Some(&name), &query).await)
}

#[cfg(test)]
mod tests {
    use axum::body::{to_bytes, Body};
    use http::header::CONTENT_TYPE;
    use hyper::service::Service;
    use hyper_util::service::TowerToHyperService;
    use k8s_openapi::api::core::v1::Pod;
    use kube::runtime::reflector;
    use serde_json::json;

    use super::*;
    use crate::metrics_api::options::MetricsAdapterOptions;
    use crate::metrics_api::request_log::RequestLog;

    /// The router over an empty pod store and a client that is never called by these routes.
    fn app() -> (Router, RequestLog) {
        let (pods, _writer) = reflector::store::<Pod>();
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("uri"));
        let client = kube::Client::try_from(config).expect("client");
        let log = RequestLog::new(16);
        let options = MetricsAdapterOptions::default();
        let state = AppState::new(pods, client, &options, log.clone()).expect("state");
        (router(Arc::new(state)), log)
    }

    /// Sends one request; returns status, `Content-Type` and body.
    async fn send(app: &Router, method: Method, uri: &str) -> (u16, String, String) {
        let request = http::Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .expect("request");
        let service = TowerToHyperService::new(app.clone());
        let response = service.call(request).await.expect("infallible");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = to_bytes(response.into_body(), 1 << 20).await.expect("body");
        (
            status,
            content_type,
            String::from_utf8_lossy(&body).into_owned(),
        )
    }

    fn status_body(code: u16, reason: &str, message: &str) -> String {
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": message, "reason": reason, "code": code,
        })
        .to_string()
    }

    #[tokio::test]
    async fn health_is_plain_ok_and_slashes_around_the_path_are_ignored() {
        let (app, _) = app();
        for path in ["/healthz", "/readyz", "/livez", "/healthz/", "//livez"] {
            let (status, content_type, body) = send(&app, Method::GET, path).await;
            assert_eq!(
                (status, content_type.as_str(), body.as_str()),
                (200, "text/plain; charset=utf-8", "ok"),
                "{path}"
            );
        }
    }

    #[tokio::test]
    async fn unknown_paths_and_apis_are_404_status_with_the_path_as_sent() {
        let (app, _) = app();
        for path in [
            "/apis",
            "/",
            "/openapi/v2",
            "/apis/custom.metrics.k8s.io/v1beta3",
            "/apis/custom.metrics.k8s.io/v1/namespaces/default/pods/*/m",
            "/apis/metrics.k8s.io/v1beta2",
            "/apis/metrics.k8s.io/v1beta1/pods/x/y",
            "/healthz/extra/",
        ] {
            let (status, content_type, body) = send(&app, Method::GET, path).await;
            let message = format!("the server could not find the requested resource ({path})");
            assert_eq!(status, 404, "{path}");
            assert_eq!(content_type, "application/json", "{path}");
            assert_eq!(body, status_body(404, "NotFound", &message), "{path}");
        }
    }

    #[tokio::test]
    async fn methods_other_than_get_are_405_status_on_any_path() {
        let (app, log) = app();
        for (method, path) in [
            (Method::POST, "/healthz"),
            (Method::DELETE, "/apis/custom.metrics.k8s.io/v1beta2"),
            (Method::PUT, "/no/such/path"),
        ] {
            let (status, content_type, body) = send(&app, method.clone(), path).await;
            let message = format!("the server does not allow this method: {method}");
            assert_eq!(status, 405);
            assert_eq!(content_type, "application/json");
            assert_eq!(body, status_body(405, "MethodNotAllowed", &message));
        }
        let logged = log.snapshot();
        assert_eq!(logged.len(), 3);
        assert_eq!(logged[0].method, "POST");
        assert_eq!(logged[0].status, 405);
    }

    #[tokio::test]
    async fn custom_discovery_for_both_versions() {
        let (app, _) = app();
        for version in ["v1beta1", "v1beta2"] {
            let path = format!("/apis/custom.metrics.k8s.io/{version}");
            let (status, content_type, body) = send(&app, Method::GET, &path).await;
            assert_eq!((status, content_type.as_str()), (200, "application/json"));
            let doc: Value = serde_json::from_str(&body).expect("json");
            assert_eq!(
                doc["groupVersion"],
                format!("custom.metrics.k8s.io/{version}")
            );
        }
        let (status, _, body) = send(&app, Method::GET, "/apis/metrics.k8s.io/v1beta1").await;
        assert_eq!(status, 200);
        assert!(body.contains("\"PodMetrics\""), "{body}");
    }

    #[tokio::test]
    async fn the_hpa_percent_encoded_star_and_a_plain_star_both_list_pods() {
        let (app, log) = app();
        let query = "?labelSelector=app%3Dmock-vllm";
        for pod in ["%2A", "*"] {
            let path = format!(
                "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/{pod}/gpu_cache_usage_perc{query}"
            );
            let (status, content_type, body) = send(&app, Method::GET, &path).await;
            assert_eq!((status, content_type.as_str()), (200, "application/json"));
            let list: Value = serde_json::from_str(&body).expect("json");
            assert_eq!(list["kind"], "MetricValueList");
            assert_eq!(list["items"], json!([]));
        }
        let logged = log.snapshot();
        assert_eq!(
            logged[0].path,
            format!("/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/%2A/gpu_cache_usage_perc{query}")
        );
        assert_eq!((logged[0].status, logged[0].items), (200, Some(0)));
    }

    #[tokio::test]
    async fn custom_errors_are_status_bodies() {
        let (app, _) = app();
        let base = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods";
        let cases = [
            (
                format!("{base}/%2A/no_such_metric"),
                404,
                "NotFound",
                "the server could not find the metric no_such_metric for pods".to_string(),
            ),
            (
                format!("{base}/mock-vllm-0/num_requests_running"),
                404,
                "NotFound",
                "the server could not find the metric num_requests_running for pods mock-vllm-0"
                    .to_string(),
            ),
        ];
        for (path, code, reason, message) in cases {
            let (status, content_type, body) = send(&app, Method::GET, &path).await;
            assert_eq!((status, content_type.as_str()), (code, "application/json"));
            assert_eq!(body, status_body(code, reason, &message), "{path}");
        }
    }

    /// Query values are form-decoded (`+` is a space, `%XX` escapes, the last of a repeated key wins), path
    /// parameters percent-decoded; a bad selector is a 400 `Status` quoting it decoded.
    #[tokio::test]
    async fn queries_and_paths_decode() {
        let (app, _) = app();
        let path = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/%2A/num_requests_running\
                    ?labelSelector=ignored&labelSelector=app%3Dmock-vllm%2Ctier+in+%28a%2Cb&metricLabelSelector=";
        let (status, content_type, body) = send(&app, Method::GET, path).await;
        assert_eq!((status, content_type.as_str()), (400, "application/json"));
        let message = "invalid label selector \"app=mock-vllm,tier in (a,b\": unbalanced '('";
        assert_eq!(body, status_body(400, "BadRequest", message));
    }

    #[tokio::test]
    async fn resource_pod_metrics_list_and_single_pod() {
        let (app, log) = app();
        for path in [
            "/apis/metrics.k8s.io/v1beta1/pods",
            "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods?labelSelector=app%3Dmock-vllm",
        ] {
            let (status, content_type, body) = send(&app, Method::GET, path).await;
            assert_eq!((status, content_type.as_str()), (200, "application/json"));
            assert_eq!(
                body,
                json!({"kind": "PodMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {}, "items": []})
                    .to_string()
            );
        }
        let path = "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/p";
        let (status, _, body) = send(&app, Method::GET, path).await;
        assert_eq!(status, 404);
        let message = "podmetrics.metrics.k8s.io \"p\" not found";
        assert_eq!(body, status_body(404, "NotFound", message));
        assert_eq!(log.snapshot()[2].items, None, "not a list");
    }
}
