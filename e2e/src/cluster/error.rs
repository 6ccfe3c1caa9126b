//! Why the control plane could not start or stopped: one error type for every step of bringing a cluster up
//! (ports, files, PKI, building and launching processes, waiting for readiness, the CRD).

use std::path::PathBuf;

use super::pki::PkiError;
use super::processes::ProcessError;

/// Why the control plane could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Certificates.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// A component process.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// No free port.
    #[error("no free port on 127.0.0.1")]
    Port(#[source] std::io::Error),
    /// A component did not become healthy in time.
    #[error("{component} was not healthy after {seconds} s; its log: {log}\n{tail}")]
    NotHealthy {
        /// Component.
        component: String,
        /// How long we waited.
        seconds: u64,
        /// Its log file.
        log: String,
        /// The end of the log.
        tail: String,
    },
    /// A plain HTTP client (for health probes) could not be built.
    #[error(transparent)]
    HttpClient(#[from] crate::http_client::HttpClientError),
    /// Talking to the API server failed.
    #[error("Kubernetes API: {context}")]
    Kube {
        /// What we were doing.
        context: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// The kubeconfig could not be loaded.
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A manifest could not be read or parsed.
    #[error("manifest {path}: {message}")]
    Manifest {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A file of the cluster directory.
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A wait on the API server that did not end in time, or whose watch broke.
    #[error("{what} (after {} s): {reason}", after.as_secs())]
    Wait {
        /// What was awaited.
        what: String,
        /// The limit.
        after: std::time::Duration,
        /// `timed out` or the watch's error.
        reason: String,
    },
}
