//! The one way the harness builds a plain HTTP client for pods and front doors.
//!
//! Scrapes, probes and load all talk to loopback addresses, so the client never uses a proxy and always carries a
//! per-request timeout. Building a `reqwest::Client` can fail (TLS back-end initialisation); a caller that replaced
//! the failure with `Client::default()` would silently run without its timeout, so the error is returned instead.

use std::time::Duration;

/// The client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("building an HTTP client (timeout {timeout:?}): {source}")]
pub struct HttpClientError {
    timeout: Duration,
    #[source]
    source: reqwest::Error,
}

/// How a client is tuned beyond its timeout.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HttpClientOptions {
    /// Per-request timeout, from sending to the end of the body.
    pub timeout: Duration,
    /// Connection timeout (default: the request timeout).
    pub connect_timeout: Option<Duration>,
    /// Idle connections kept per host (default: reqwest's).
    pub max_idle_per_host: Option<usize>,
    /// How long an idle connection is kept (default: reqwest's).
    pub pool_idle_timeout: Option<Duration>,
}

impl HttpClientOptions {
    /// Only a timeout.
    pub fn timeout(timeout: Duration) -> Self {
        Self {
            timeout,
            connect_timeout: None,
            max_idle_per_host: None,
            pool_idle_timeout: None,
        }
    }
}

/// A client with no proxy and the given timeout.
pub(crate) fn http_client(timeout: Duration) -> Result<reqwest::Client, HttpClientError> {
    http_client_with(HttpClientOptions::timeout(timeout))
}

/// A client with no proxy, tuned by `options`.
pub(crate) fn http_client_with(
    options: HttpClientOptions,
) -> Result<reqwest::Client, HttpClientError> {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .timeout(options.timeout);
    if let Some(connect) = options.connect_timeout {
        builder = builder.connect_timeout(connect);
    }
    if let Some(idle) = options.max_idle_per_host {
        builder = builder.pool_max_idle_per_host(idle);
    }
    if let Some(idle) = options.pool_idle_timeout {
        builder = builder.pool_idle_timeout(idle);
    }
    builder.build().map_err(|source| HttpClientError {
        timeout: options.timeout,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_build_with_their_options() {
        assert!(http_client(Duration::from_secs(1)).is_ok());
        assert!(http_client_with(HttpClientOptions {
            timeout: Duration::from_millis(800),
            connect_timeout: Some(Duration::from_millis(200)),
            max_idle_per_host: Some(256),
            pool_idle_timeout: Some(Duration::from_secs(30)),
        })
        .is_ok());
    }
}
