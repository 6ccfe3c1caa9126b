//! Load benchmark of one mock-vllm process on loopback (server and clients in this one process).
//!
//! 1. **Throughput ceiling**: step time set to zero (`--step-time-scale 0`), `CONCURRENCY` closed-loop clients
//!    streaming chat completions of `TOKENS` tokens each: sustained streamed tokens/s and requests/s, i.e. what the
//!    HTTP + SSE + engine bookkeeping costs when the simulated GPU is infinitely fast.
//! 2. **Scheduling jitter**: 1,000 concurrent long streams with the real V100 step times. For every engine step,
//!    the time between its simulated deadline and the moment its last token was handed to its stream (an upper
//!    bound on every token's emission lateness), as p50/p99/max; and, client side, inter-token gaps p50/p99 against
//!    the simulated step time.
//!
//! Run: `cargo bench -p mock-vllm --bench stream_load` (env: `BENCH_SECONDS`, default 10; `BENCH_STREAMS`, default
//! 1000). Numbers depend on the machine; quote them with its core count and load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use mock_vllm::engine::timing::StepTimeModel;
use mock_vllm::{EngineArgs, RunningServer};
use serde_json::json;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A server started with `extra` flags, its chat completions URL, and a client that keeps one idle connection
/// per stream (up to 2,048) instead of reconnecting.
async fn serve(extra: &[&str]) -> (RunningServer, String, reqwest::Client) {
    let args = EngineArgs::for_tests_with(extra).expect("args");
    let server = mock_vllm::spawn(&args).await.expect("start");
    let url = format!("http://{}/v1/chat/completions", server.addr);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(2048)
        .build()
        .expect("client");
    (server, url, client)
}

/// Streams one chat completion; calls `on_token` with the receive time of each content chunk.
async fn stream_once(
    client: &reqwest::Client,
    url: &str,
    max_tokens: u64,
    mut on_token: impl FnMut(Instant),
) -> bool {
    let body = json!({
        "messages": [{"role": "user", "content": "benchmark"}],
        "max_tokens": max_tokens, "ignore_eos": true, "stream": true,
    });
    let Ok(response) = client.post(url).json(&body).send().await else {
        return false;
    };
    if !response.status().is_success() {
        return false;
    }
    let mut bytes = response.bytes_stream();
    let mut pending = String::new();
    while let Some(Ok(chunk)) = bytes.next().await {
        pending.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = pending.find("\n\n") {
            let frame: String = pending.drain(..end + 2).collect();
            if frame.contains("\"content\":\" ") {
                on_token(Instant::now());
            }
            if frame.starts_with("data: [DONE]") {
                return true;
            }
        }
    }
    false
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

async fn throughput(seconds: u64, concurrency: u64) {
    const TOKENS: u64 = 64;
    let (server, url, client) = serve(&[
        "--step-time-scale",
        "0",
        "--max-num-seqs",
        "1024",
        "--frontend-overhead-ms",
        "0",
    ])
    .await;
    let tokens = Arc::new(AtomicU64::new(0));
    let requests = Arc::new(AtomicU64::new(0));
    let measuring = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(seconds + 2);
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, tokens, requests, measuring) = (
                client.clone(),
                url.clone(),
                tokens.clone(),
                requests.clone(),
                measuring.clone(),
            );
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    let mut received = 0;
                    let ok = stream_once(&client, &url, TOKENS, |_| received += 1).await;
                    if measuring.load(Ordering::Relaxed) {
                        tokens.fetch_add(received, Ordering::Relaxed);
                        requests.fetch_add(u64::from(ok), Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    // Two seconds of warm-up, then measure.
    tokio::time::sleep(Duration::from_secs(2)).await;
    measuring.store(true, Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let elapsed = start.elapsed().as_secs_f64();
    let (t, r) = (
        tokens.load(Ordering::Relaxed),
        requests.load(Ordering::Relaxed),
    );
    for w in workers {
        let _ = w.await;
    }
    println!(
        "throughput (step time 0, {concurrency} closed-loop streams of {TOKENS} tokens): \
         {:.0} streamed tokens/s, {:.0} requests/s over {elapsed:.1} s",
        t as f64 / elapsed,
        r as f64 / elapsed
    );
    let _ = server.shutdown().await;
}

async fn jitter(seconds: u64, streams: u64) {
    let (server, url, client) = serve(&[
        "--max-num-seqs",
        "1024",
        "--num-gpu-blocks-override",
        "100000",
        "--max-model-len",
        "4096",
    ])
    .await;
    // Long enough to outlast the measurement at ~1 token per (≈ 40–60 ms) step.
    let max_tokens = 4000;
    let gaps = Arc::new(std::sync::Mutex::new(Vec::<f64>::new()));
    // Measurement starts once every stream is running (connections opened, prompts prefilled).
    let window = Arc::new(std::sync::OnceLock::<(Instant, Instant)>::new());
    let tasks: Vec<_> = (0..streams)
        .map(|_| {
            let (client, url, gaps, window) =
                (client.clone(), url.clone(), gaps.clone(), window.clone());
            tokio::spawn(async move {
                let mut previous: Option<Instant> = None;
                let mut local = Vec::new();
                let fut = stream_once(&client, &url, max_tokens, |now| {
                    if let (Some(p), Some((from, to))) = (previous, window.get()) {
                        if now > *from && now < *to {
                            local.push((now - p).as_secs_f64());
                        }
                    }
                    previous = Some(now);
                });
                let _ = tokio::time::timeout(Duration::from_secs(seconds + 60), fut).await;
                gaps.lock().expect("lock").extend(local);
            })
        })
        .collect();
    let mut state = server.engine.watch_state();
    let all_running = state.wait_for(|st| st.running as u64 >= streams);
    if tokio::time::timeout(Duration::from_secs(60), all_running)
        .await
        .is_err()
    {
        println!(
            "warning: only {} of {streams} streams running after 60 s",
            server.engine.state().running
        );
    }
    drop(state);
    let from = Instant::now() + Duration::from_secs(1);
    let to = from + Duration::from_secs(seconds);
    let _ = window.set((from, to));
    tokio::time::sleep_until(tokio::time::Instant::from_std(from)).await;
    server.engine.reset_lateness();
    let running_at_start = server.engine.state().running;
    tokio::time::sleep_until(tokio::time::Instant::from_std(to)).await;
    let lateness = server.engine.lateness();
    let step_ms = StepTimeModel::from(&**server.engine.config()).step_time(&{
        let mut shape = mock_vllm::engine::timing::StepShape::default();
        (0..running_at_start).for_each(|_| shape.add_decode(100));
        shape
    });
    // Stop the streams: shutting the server down aborts them.
    let _ = server.shutdown().await;
    for t in tasks {
        let _ = t.await;
    }
    let mut gaps = std::mem::take(&mut *gaps.lock().expect("lock"));
    gaps.sort_by(f64::total_cmp);
    let ms = |s: f64| s * 1e3;
    println!(
        "jitter ({streams} concurrent streams, V100 step times, {running_at_start} running): \
         step emission lateness p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} steps; \
         client inter-token gap p50 {:.1} ms, p99 {:.1} ms over {} gaps (simulated decode step ≈ {:.1} ms)",
        ms(lateness.p50_s),
        ms(lateness.p99_s),
        ms(lateness.max_s),
        lateness.samples,
        ms(quantile(&gaps, 0.5)),
        ms(quantile(&gaps, 0.99)),
        gaps.len(),
        step_ms.as_secs_f64() * 1e3
    );
}

fn main() {
    let seconds = env_or("BENCH_SECONDS", 10);
    let streams = env_or("BENCH_STREAMS", 1000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "machine: {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    runtime.block_on(async {
        throughput(seconds, 64).await;
        throughput(seconds, streams).await;
        jitter(seconds, streams).await;
    });
}
