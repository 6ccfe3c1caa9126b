//! HTTPS for the adapter: a self-signed rcgen certificate (ALPN `http/1.1`, optional client certificates), the
//! accept loop, and one HTTP/1.1 connection per TLS stream serving the axum [`Router`] through hyper.
//!
//! axum's own `serve` takes a plain listener, so TLS is done here: each accepted TCP stream gets a TLS handshake
//! (10 s at most), then hyper's HTTP/1.1 connection drives the router (a tower service, bridged with
//! [`TowerToHyperService`]). Cancelling `stop` ends the accept loop, asks open connections to finish their current
//! request (3 s), and waits up to 5 s for them before dropping the rest.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
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

use super::error::MetricsApiError;
use super::options::MetricsAdapterOptions;
use super::register::{SERVICE_NAME, SERVICE_NAMESPACE};

/// The TLS configuration: a fresh self-signed certificate for 127.0.0.1/localhost/the Service's DNS name, ALPN
/// `http/1.1`, and client certificates required only when `client_ca_pem` is given.
pub(crate) fn tls_config(client_ca_pem: Option<&[u8]>) -> Result<ServerConfig, MetricsApiError> {
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

/// Binds and serves `app` until `stop` is cancelled; returns the bound address and the server task.
pub(crate) async fn serve(
    options: &MetricsAdapterOptions,
    app: Router,
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
    let task = tokio::spawn(accept_loop(listener, acceptor, app, stop));
    Ok((addr, task))
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: Router,
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
            app.clone(),
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
    app: Router,
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
    let service = TowerToHyperService::new(app);
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

#[cfg(test)]
mod tests {
    use super::*;

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
