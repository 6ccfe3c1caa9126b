//! The scenario load driver: phases of closed-loop concurrency or open-loop Poisson arrivals, sent through the
//! gateway to whatever pods are ready, counted in a [`LoadGauge`] that the observer samples.
//!
//! Requests are non-streaming chat completions with `ignore_eos`, so each holds a pod's running slot and KV blocks
//! for exactly `max_tokens` engine steps: the offered load in the autoscalers' own units (running requests, KV
//! usage) follows directly from the phase's concurrency or rate. Closed-loop clients above the phase's
//! concurrency idle; open-loop arrivals are drawn from a seeded exponential distribution.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp};
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::spec::LoadSpec;
use crate::http_client::{http_client_with, HttpClientError, HttpClientOptions};
use crate::observe::observer::LoadGauge;

/// Sends the load of `spec` to `url` (`http://127.0.0.1:<port>/v1/chat/completions`). `on_phase` is called with
/// each phase's index as it starts. Returns when the last phase ends (in-flight requests are left to finish or
/// are dropped when `stop` is cancelled). Fails, sending nothing, if the HTTP client cannot be built.
pub(crate) async fn drive(
    url: String,
    model: String,
    spec: LoadSpec,
    gauge: Arc<LoadGauge>,
    seed: u64,
    stop: CancellationToken,
    mut on_phase: impl FnMut(usize),
) -> Result<(), HttpClientError> {
    let http = http_client_with(HttpClientOptions {
        max_idle_per_host: Some(256),
        ..HttpClientOptions::timeout(Duration::from_secs(600))
    })?;
    let tokenizer = mock_vllm::Tokenizer::new();
    let prompt = tokenizer.synthetic_text(spec.request.prompt_tokens as usize, seed);
    let body = Arc::new(json!({
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": spec.request.max_tokens,
        "ignore_eos": true,
    }));
    let max_clients = spec
        .phases
        .iter()
        .filter_map(|p| p.concurrency)
        .max()
        .unwrap_or(0);
    let (concurrency_tx, concurrency_rx) = watch::channel(0u32);
    let clients: Vec<_> = (0..max_clients)
        .map(|index| {
            tokio::spawn(closed_loop_client(
                index,
                http.clone(),
                url.clone(),
                body.clone(),
                gauge.clone(),
                concurrency_rx.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for (index, phase) in spec.phases.iter().enumerate() {
        on_phase(index);
        let end = Instant::now() + Duration::from_secs_f64(phase.duration_s);
        let concurrency = phase.concurrency.unwrap_or(0);
        let _ = concurrency_tx.send(concurrency);
        gauge
            .concurrency
            .store(u64::from(concurrency), Ordering::Relaxed);
        let rps = phase.rps.unwrap_or(0.0);
        gauge
            .rps_milli
            .store((rps * 1000.0) as u64, Ordering::Relaxed);
        if rps > 0.0 {
            open_loop(&http, &url, &body, &gauge, rps, end, &mut rng, &stop).await;
        } else {
            tokio::select! {
                _ = tokio::time::sleep_until(end) => {}
                _ = stop.cancelled() => break,
            }
        }
        if stop.is_cancelled() {
            break;
        }
    }
    let _ = concurrency_tx.send(0);
    gauge.concurrency.store(0, Ordering::Relaxed);
    gauge.rps_milli.store(0, Ordering::Relaxed);
    drop(clients);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn open_loop(
    http: &reqwest::Client,
    url: &str,
    body: &Arc<serde_json::Value>,
    gauge: &Arc<LoadGauge>,
    rps: f64,
    end: Instant,
    rng: &mut ChaCha8Rng,
    stop: &CancellationToken,
) {
    let Ok(gaps) = Exp::new(rps) else {
        return;
    };
    let mut next = Instant::now();
    loop {
        next += Duration::from_secs_f64(gaps.sample(rng));
        if next >= end {
            tokio::select! {
                _ = tokio::time::sleep_until(end) => {}
                _ = stop.cancelled() => {}
            }
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = stop.cancelled() => return,
        }
        let (http, url, body, gauge) = (http.clone(), url.to_string(), body.clone(), gauge.clone());
        tokio::spawn(async move { send(&http, &url, &body, &gauge).await });
    }
}

async fn closed_loop_client(
    index: u32,
    http: reqwest::Client,
    url: String,
    body: Arc<serde_json::Value>,
    gauge: Arc<LoadGauge>,
    mut concurrency: watch::Receiver<u32>,
    stop: CancellationToken,
) {
    let mut was_active = false;
    loop {
        if index >= *concurrency.borrow() {
            was_active = false;
        }
        // Idle while this client is beyond the phase's concurrency.
        let active = tokio::select! {
            result = concurrency.wait_for(|c| index < *c) => result.is_ok(),
            _ = stop.cancelled() => false,
        };
        if !active {
            return;
        }
        if !was_active {
            // Clients that start together would send, finish and resend together forever (every request has the
            // same length), so the engine's running count would dip to near zero at every common completion and a
            // periodic scraper can alias onto those dips. A fixed per-client offset on activation spreads them.
            tokio::select! {
                _ = tokio::time::sleep(activation_offset(index)) => {}
                _ = stop.cancelled() => return,
            }
        }
        was_active = true;
        tokio::select! {
            _ = send(&http, &url, &body, &gauge) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// The delay before client `index` sends its first request after it becomes active: spread evenly over
/// [`ACTIVATION_SPREAD`] by the golden-ratio sequence, so any number of clients started together are staggered.
fn activation_offset(index: u32) -> Duration {
    const GOLDEN: f64 = 0.618_033_988_749_895;
    let fraction = (f64::from(index) * GOLDEN).fract();
    ACTIVATION_SPREAD.mul_f64(fraction)
}

/// How far apart clients activated at the same moment start.
const ACTIVATION_SPREAD: Duration = Duration::from_millis(1500);

/// One request; failures are counted, and a failing endpoint is not hammered (a short pause).
async fn send(http: &reqwest::Client, url: &str, body: &serde_json::Value, gauge: &LoadGauge) {
    gauge.in_flight.fetch_add(1, Ordering::Relaxed);
    let ok = match http.post(url).json(body).send().await {
        Ok(response) => response.status().is_success() && response.bytes().await.is_ok(),
        Err(_) => false,
    };
    gauge.in_flight.fetch_sub(1, Ordering::Relaxed);
    if ok {
        gauge.completed.fetch_add(1, Ordering::Relaxed);
    } else {
        gauge.failed.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_started_together_are_spread_over_the_activation_window() {
        let mut offsets: Vec<Duration> = (0..32).map(activation_offset).collect();
        assert!(offsets.iter().all(|o| *o < ACTIVATION_SPREAD));
        offsets.sort();
        // No two of 32 clients start within 10 ms of each other, and they cover most of the window.
        assert!(offsets
            .windows(2)
            .all(|w| w[1] - w[0] > Duration::from_millis(10)));
        assert!(offsets[31] - offsets[0] > ACTIVATION_SPREAD.mul_f64(0.9));
    }
}
