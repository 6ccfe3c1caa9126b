//! Serving: the simulated cold start, the engine task, the HTTP server, and an orderly shutdown.
//!
//! [`run`] is what the binary does: validate the arguments, wait out the simulated model load (the port is not
//! bound until then, as with vLLM, so a readiness probe fails with "connection refused"), bind, serve until the
//! shutdown token is cancelled. [`start`] serves on a listener the caller bound (the e2e node agent binds one
//! loopback address per pod) and returns a [`RunningServer`] with the handles in-process users need. [`spawn`] is
//! `start` on the address the arguments name, bound at once: the one-liner tests and benchmarks use.
//!
//! Shutdown: the token stops the accept loop and the engine together; the engine aborts what is left, which ends
//! every open stream, so connections drain by themselves. A bounded grace period covers clients that never read
//! (e.g. a `/metrics` fault set to hang).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, Instrument};

use crate::api::{self, AppState};
use crate::config::{ConfigError, EngineArgs, EngineConfig};
use crate::engine::{self, EngineHandle};
use crate::faults::Faults;
use crate::metrics::EngineMetrics;
use crate::tokenizer::Tokenizer;

/// Connections still open this long after shutdown are dropped.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The arguments do not describe a runnable engine.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP server failed.
    #[error("HTTP server failed")]
    Serve(#[source] std::io::Error),
}

/// A server running in this process.
#[derive(Debug)]
pub struct RunningServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its engine (state, lateness).
    pub engine: EngineHandle,
    /// Its fault hooks.
    pub faults: Arc<Faults>,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), ServerError>>,
}

impl RunningServer {
    /// The token that stops this server.
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Stops the server and waits until it has.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        self.shutdown.cancel();
        self.wait().await
    }

    /// Waits until the server stops (after its token is cancelled).
    pub async fn wait(self) -> Result<(), ServerError> {
        match self.task.await {
            Ok(result) => result,
            Err(join) => Err(ServerError::Serve(std::io::Error::other(join.to_string()))),
        }
    }
}

/// Serves `config` on `listener` until `shutdown` is cancelled. No cold-start delay: the caller decides when to
/// bind. The `tokenizer` is shared (it is read-only).
pub fn start(
    config: EngineConfig,
    listener: TcpListener,
    tokenizer: Tokenizer,
    shutdown: CancellationToken,
) -> Result<RunningServer, ServerError> {
    let addr = listener.local_addr().map_err(ServerError::Serve)?;
    let config = Arc::new(config);
    let metrics = EngineMetrics::new(&config);
    let faults = Arc::new(Faults::from_args(&config.args));
    let (engine, engine_task) = engine::spawn(
        config.clone(),
        &tokenizer,
        metrics.clone(),
        shutdown.child_token(),
    );
    let state = AppState::new(
        config.clone(),
        engine.clone(),
        tokenizer,
        faults.clone(),
        metrics,
    );
    let app = api::router(state);
    let token = shutdown.clone();
    let span = tracing::info_span!("server", %addr, model = %config.primary_model_name());
    let task = tokio::spawn(
        async move {
            info!("serving");
            // Nagle off, as uvicorn does: otherwise every SSE chunk after the first on a reused connection waits
            // for a delayed ACK (~40 ms).
            let listener = listener.tap_io(|stream| {
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(error = %e, "TCP_NODELAY not set");
                }
            });
            let graceful = axum::serve(listener, app).with_graceful_shutdown(token.clone().cancelled_owned());
            let result = tokio::select! {
                result = graceful => result.map_err(ServerError::Serve),
                _ = async { token.cancelled().await; tokio::time::sleep(SHUTDOWN_GRACE).await } => Ok(()),
            };
            let _ = engine_task.await;
            info!("stopped");
            result
        }
        .instrument(span),
    );
    Ok(RunningServer {
        addr,
        engine,
        faults,
        shutdown,
        task,
    })
}

/// Validates `args`, binds `--host:--port` at once (no simulated model load) and serves until the returned
/// server is shut down: the in-process server of tests, benchmarks and embedders. With
/// [`EngineArgs::for_tests`] that is a fresh port on `127.0.0.1`, read back from [`RunningServer::addr`].
pub async fn spawn(args: &EngineArgs) -> Result<RunningServer, ServerError> {
    let config = args.validate()?;
    let listener = bind(&config).await?;
    start(config, listener, Tokenizer::new(), CancellationToken::new())
}

async fn bind(config: &EngineConfig) -> Result<TcpListener, ServerError> {
    let addr = format!("{}:{}", config.args.host, config.args.port);
    TcpListener::bind(&addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}

/// The binary's life: validate, simulate the model load, bind `--host:--port`, serve until `shutdown`.
pub async fn run(args: EngineArgs, shutdown: CancellationToken) -> Result<(), ServerError> {
    let config = args.validate()?;
    info!(
        model = %config.model,
        profile = %config.model_profile.name,
        gpu = %config.gpu.name,
        num_gpu_blocks = config.num_gpu_blocks,
        "GPU KV cache size: {} tokens; maximum concurrency for {} tokens per request: {:.2}x",
        config.num_gpu_blocks * config.args.block_size,
        config.max_model_len,
        (config.num_gpu_blocks * config.args.block_size) as f64 / config.max_model_len as f64,
    );
    let tokenizer = Tokenizer::new();
    if !config.startup_delay.is_zero() {
        info!(
            seconds = config.startup_delay.as_secs_f64(),
            "loading model (simulated)"
        );
        tokio::select! {
            _ = tokio::time::sleep(config.startup_delay) => {}
            _ = shutdown.cancelled() => return Ok(()),
        }
    }
    let listener = bind(&config).await?;
    start(config, listener, tokenizer, shutdown)?.wait().await
}
