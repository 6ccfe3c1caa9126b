//! HTTP forwarding: one accept loop per listener, HTTP/1.1 connections served with hyper, and each request
//! relayed to a pod picked by the listener's [`Balancer`].
//!
//! Bodies stream both ways without buffering: the request body is handed to the upstream client as it arrives,
//! and the upstream response body (SSE included) is relayed frame by frame. The response body owns the pod's
//! [`InFlight`] guard, so the outstanding count lasts exactly as long as the relay; when the client goes away
//! hyper drops that body, which drops the upstream response and closes its connection, and the backend aborts
//! the request (mock-vllm frees its sequence the same way vLLM does).
//!
//! Failures answer in vLLM's error envelope: 503 when the Service has no ready pod, 502 when the pod cannot be
//! reached. A connect failure is retried once on another ready pod, provided the request body has not been
//! touched yet ([`OnceBody`] hands the body to whichever attempt polls it first).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, field, info_span, warn, Instrument, Span};

use super::balance::{Balancer, InFlight};
use super::table::ListenerKey;
use super::{lock, GatewayError, Shared};
use crate::error_chain::error_chain;

/// The response header naming the pod that served a request (AIBrix's benchmark client records it).
pub const TARGET_POD_HEADER: &str = "target-pod";

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The upstream HTTP/1.1 client (a connection pool per pod address).
pub(crate) type UpstreamClient = Client<HttpConnector, OnceBody>;

/// A client that connects without delay (`TCP_NODELAY`: small SSE writes must not wait for delayed ACKs),
/// never goes through an HTTP proxy and never follows redirects.
pub(crate) fn upstream_client(connect_timeout: Duration) -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(connect_timeout));
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector)
}

/// What one listener serves.
pub(crate) struct ListenerCtx {
    pub(crate) key: ListenerKey,
    pub(crate) shared: Arc<Shared>,
    pub(crate) balancer: Balancer,
}

/// Accepts connections until `close` is cancelled. Connections then finish their current request (graceful),
/// unless `shutdown` (the whole gateway) is cancelled too, which drops them.
pub(crate) async fn serve(
    listener: TcpListener,
    ctx: Arc<ListenerCtx>,
    close: CancellationToken,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = close.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                warn!(listener = %ctx.key, %error, "accept failed");
                tokio::select! {
                    _ = close.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                }
            }
        };
        let (ctx, close, shutdown) = (ctx.clone(), close.clone(), shutdown.clone());
        tracker.spawn(serve_connection(stream, peer, ctx, close, shutdown));
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: Arc<ListenerCtx>,
    close: CancellationToken,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |request| {
        let ctx = ctx.clone();
        async move { Ok::<_, Infallible>(handle(ctx, request).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = close.cancelled() => {
            connection.as_mut().graceful_shutdown();
            tokio::select! {
                result = connection.as_mut() => result,
                _ = shutdown.cancelled() => Ok(()),
            }
        }
    };
    if let Err(error) = result {
        debug!(%peer, %error, "client connection ended with an error");
    }
}

/// Relays one request; never fails (errors become error responses).
async fn handle(ctx: Arc<ListenerCtx>, request: Request<Incoming>) -> Response<ProxyBody> {
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let span = info_span!(
        "request",
        service = %ctx.key.service,
        port = ctx.key.port,
        method = %request.method(),
        path = %path,
        pod = field::Empty,
    );
    forward(&ctx, request, path).instrument(span).await
}

async fn forward(
    ctx: &ListenerCtx,
    request: Request<Incoming>,
    path: String,
) -> Response<ProxyBody> {
    let (parts, body) = request.into_parts();
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    // Already answered by our own server when it read the body.
    headers.remove(header::EXPECT);
    let slot = Arc::new(Mutex::new(Some(body)));
    let mut failed: Option<GatewayError> = None;
    loop {
        let route = ctx.shared.route(&ctx.key);
        let failed_pod = match &failed {
            Some(GatewayError::Upstream { pod, .. }) => Some(pod.as_str()),
            _ => None,
        };
        let candidates: Vec<_> = route
            .iter()
            .flat_map(|r| r.ready())
            .filter(|b| Some(b.pod.as_str()) != failed_pod)
            .collect();
        let picked = ctx
            .balancer
            .pick(candidates.len(), |i| candidates[i].counters.outstanding())
            .and_then(|i| candidates.get(i))
            .and_then(|b| Some((*b, b.routable()?)));
        let Some((backend, addr)) = picked else {
            let error =
                failed.unwrap_or_else(|| GatewayError::NoReadyPods(ctx.key.service.clone()));
            warn!(%error, "request not forwarded");
            return error_response(&error);
        };
        Span::current().record("pod", backend.pod.as_str());
        let guard = InFlight::start(backend.counters.clone());
        let upstream = upstream_request(
            &parts.method,
            &path,
            &headers,
            addr,
            OnceBody::new(slot.clone()),
        );
        let upstream = match upstream {
            Ok(upstream) => upstream,
            Err(error) => {
                let error = GatewayError::BadRequest(error.to_string());
                warn!(%error, "request not forwarded");
                return error_response(&error);
            }
        };
        let started = Instant::now();
        match ctx.shared.client.request(upstream).await {
            Ok(response) => {
                debug!(
                    status = response.status().as_u16(),
                    ttfb_ms = started.elapsed().as_millis() as u64,
                    "upstream responded"
                );
                return relay(response, guard, &backend.pod, started);
            }
            Err(source) => {
                guard.counters().record_failure();
                drop(guard);
                let retry = failed.is_none() && source.is_connect() && lock(&slot).is_some();
                let error = GatewayError::Upstream {
                    service: ctx.key.service.clone(),
                    pod: backend.pod.clone(),
                    addr,
                    source,
                };
                if retry {
                    warn!(error = %error_chain(&error), "connect failed; retrying on another ready pod");
                    failed = Some(error);
                    continue;
                }
                warn!(error = %error_chain(&error), "upstream failed");
                return error_response(&error);
            }
        }
    }
}

fn upstream_request(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    addr: SocketAddr,
    body: OnceBody,
) -> Result<Request<OnceBody>, http::Error> {
    let mut request = Request::builder()
        .method(method.clone())
        .uri(format!("http://{addr}{path}"))
        .version(Version::HTTP_11)
        .body(body)?;
    *request.headers_mut() = headers.clone();
    Ok(request)
}

fn relay(
    response: Response<Incoming>,
    guard: InFlight,
    pod: &str,
    started: Instant,
) -> Response<ProxyBody> {
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    if let Ok(value) = HeaderValue::from_str(pod) {
        parts.headers.insert(TARGET_POD_HEADER, value);
    }
    let body = UpstreamBody {
        inner: body,
        guard: Some(guard),
        span: Span::current(),
        started,
        bytes: 0,
    };
    Response::from_parts(parts, ProxyBody::Upstream(body))
}

/// Removes the hop-by-hop headers (RFC 9110 §7.6.1): the fixed list and whatever `Connection` names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

/// A JSON error in vLLM's envelope: `{"error":{"message","type","param","code"}}`.
fn error_response(error: &GatewayError) -> Response<ProxyBody> {
    let status = error.status();
    let kind = match status {
        StatusCode::SERVICE_UNAVAILABLE => "ServiceUnavailableError",
        StatusCode::BAD_REQUEST => "BadRequestError",
        _ => "BadGatewayError",
    };
    let body = serde_json::json!({
        "error": {
            "message": error_chain(error),
            "type": kind,
            "param": null,
            "code": status.as_u16(),
        }
    });
    let mut response = Response::new(ProxyBody::Full(Some(Bytes::from(body.to_string()))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The request body, lent to whichever upstream attempt polls it first. Until then it stays in the shared slot,
/// so a request whose connect failed can be sent again with its body intact.
pub(crate) struct OnceBody {
    slot: Arc<Mutex<Option<Incoming>>>,
    body: Option<Incoming>,
}

impl OnceBody {
    fn new(slot: Arc<Mutex<Option<Incoming>>>) -> Self {
        Self { slot, body: None }
    }
}

impl Body for OnceBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        if this.body.is_none() {
            this.body = lock(&this.slot).take();
        }
        match this.body.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.body {
            Some(body) => body.is_end_stream(),
            None => lock(&self.slot).as_ref().is_none_or(Body::is_end_stream),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.body {
            Some(body) => body.size_hint(),
            None => lock(&self.slot)
                .as_ref()
                .map_or_else(|| SizeHint::with_exact(0), Body::size_hint),
        }
    }
}

/// A response body: a gateway error, or a pod's response being relayed.
pub(crate) enum ProxyBody {
    /// A complete body (error envelopes).
    Full(Option<Bytes>),
    /// The pod's body, frame by frame.
    Upstream(UpstreamBody),
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Self::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Self::Upstream(body) => body.poll(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Full(bytes) => bytes.is_none(),
            Self::Upstream(body) => body.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Self::Upstream(body) => body.inner.size_hint(),
        }
    }
}

/// A pod's response body with the request's [`InFlight`] guard: released at the end of the stream, on a broken
/// stream, or when the client disconnects (hyper drops the body, and with it the upstream connection).
pub(crate) struct UpstreamBody {
    inner: Incoming,
    guard: Option<InFlight>,
    span: Span,
    started: Instant,
    bytes: u64,
}

impl UpstreamBody {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => {
                if let Some(guard) = self.guard.take() {
                    guard.counters().record_failure();
                }
                self.span
                    .in_scope(|| warn!(%error, bytes = self.bytes, "upstream body broke"));
                Poll::Ready(Some(Err(Box::new(error))))
            }
            Poll::Ready(None) => {
                self.finish();
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn finish(&mut self) {
        if self.guard.take().is_some() {
            self.span.in_scope(|| {
                debug!(
                    bytes = self.bytes,
                    elapsed_ms = self.started.elapsed().as_millis() as u64,
                    "response relayed"
                )
            });
        }
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        if self.guard.is_some() && !self.inner.is_end_stream() {
            self.span.in_scope(|| {
                debug!(
                    bytes = self.bytes,
                    "client went away mid-response; upstream request dropped"
                )
            });
            self.guard = None;
        } else {
            self.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_dropped() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, x-private"),
            ("keep-alive", "timeout=5"),
            ("x-private", "1"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("content-type", "application/json"),
            ("authorization", "Bearer k"),
            ("routing-strategy", "random"),
        ] {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        strip_hop_by_hop(&mut headers);
        let mut left: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["authorization", "content-type", "routing-strategy"]);
    }

    #[test]
    fn errors_use_the_vllm_envelope() {
        let error = GatewayError::NoReadyPods(super::super::ServiceKey::new("default", "llm"));
        let response = error_response(&error);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let ProxyBody::Full(Some(bytes)) = response.into_body() else {
            panic!("a full body");
        };
        let value: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(
            value,
            serde_json::json!({"error": {
                "message": "no ready pods for service default/llm",
                "type": "ServiceUnavailableError",
                "param": null,
                "code": 503,
            }})
        );
    }
}
