//! Why the adapter could not start or stop: binding, TLS, the Kubernetes API, the pod reflector, an APIService
//! that never became Available, the scrape client. Request-time failures are not here; they are answered to the
//! caller as a `metav1.Status` ([`super::status`]).

use std::net::SocketAddr;
use std::time::Duration;

/// Why the adapter could not start or stop.
#[derive(Debug, thiserror::Error)]
pub enum MetricsApiError {
    /// Binding the listener.
    #[error("binding {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Making the serving certificate or the TLS configuration.
    #[error("TLS setup: {0}")]
    Tls(String),
    /// A Kubernetes API call.
    #[error("Kubernetes API: {context}")]
    Kube {
        /// What we were doing.
        context: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// The pod reflector did not sync.
    #[error("the pod reflector did not sync within {0:?}")]
    ReflectorSync(Duration),
    /// An APIService did not become Available.
    #[error("APIService {name} not Available after {waited:?}: {reason}: {message}")]
    NotAvailable {
        /// The APIService.
        name: String,
        /// How long we waited.
        waited: Duration,
        /// Its `Available` condition's reason (or `NoCondition`).
        reason: String,
        /// Its `Available` condition's message.
        message: String,
    },
    /// The HTTP client for scraping.
    #[error("HTTP client: {0}")]
    HttpClient(#[source] crate::http_client::HttpClientError),
}
