//! `mock-vllm`: parse the `vllm serve` command line, set up logging, serve until Ctrl-C or SIGTERM.
//! A second signal exits at once.

use clap::Parser;
use mock_vllm::{EngineArgs, ServerError};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = EngineArgs::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();

    let shutdown = CancellationToken::new();
    tokio::spawn(watch_signals(shutdown.clone()));
    match mock_vllm::run(args, shutdown).await {
        Ok(()) => Ok(()),
        Err(ServerError::Config(e)) => {
            eprintln!("mock-vllm: invalid configuration: {e}");
            std::process::exit(2);
        }
        Err(e) => Err(e.into()),
    }
}

/// First Ctrl-C or SIGTERM: graceful shutdown. Second: exit now.
async fn watch_signals(shutdown: CancellationToken) {
    for attempt in 0..2 {
        wait_for_signal().await;
        if attempt == 0 {
            tracing::info!("shutting down (signal again to exit now)");
            shutdown.cancel();
        } else {
            std::process::exit(130);
        }
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
