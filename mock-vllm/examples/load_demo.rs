//! Watch a simulated V100 respond to load: one mock-vllm, open-loop traffic that steps 1 → 4 → 8 → 2 requests/s,
//! and a live table of what an autoscaler would scrape from `/metrics` every second.
//!
//! Run: `cargo run --release -p mock-vllm --example load_demo` (`DEMO_STEP_SECONDS` sets each step's length,
//! default 10). Everything goes to 127.0.0.1.

use std::time::Duration;

use clap::Parser;
use mock_vllm::{EngineArgs, Tokenizer};
use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const RATES: &[f64] = &[1.0, 4.0, 8.0, 2.0];

fn value(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let step_seconds: u64 = std::env::var("DEMO_STEP_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let config = EngineArgs::try_parse_from(["mock-vllm", "--startup-delay", "0"])?.validate()?;
    println!(
        "mock-vllm: {} on {} ({} KV blocks = {} tokens), V0 scheduling",
        config.model_profile.name,
        config.gpu.name,
        config.num_gpu_blocks,
        config.num_gpu_blocks * config.args.block_size
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let server = mock_vllm::start(config, listener, Tokenizer::new(), CancellationToken::new())?;
    let base = format!("http://{}", server.addr);
    println!(
        "serving on {base}; offered load steps through {RATES:?} req/s, {step_seconds} s each\n"
    );
    println!(
        "{:>5} {:>8} {:>8} {:>8} {:>9} {:>10} {:>12}",
        "t(s)", "offered", "running", "waiting", "KV usage", "finished", "mean TTFT"
    );

    let client = reqwest::Client::new();
    let tokenizer = Tokenizer::new();
    let start = Instant::now();
    let total = Duration::from_secs(step_seconds * RATES.len() as u64);
    // Open loop: a request every 1/rate seconds, whatever the server does.
    let sender = {
        let client = client.clone();
        let url = format!("{base}/v1/chat/completions");
        tokio::spawn(async move {
            let mut next = Instant::now();
            let mut seed = 0u64;
            while next.duration_since(start) < total {
                tokio::time::sleep_until(next).await;
                let rate = RATES
                    [(next.duration_since(start).as_secs() / step_seconds) as usize % RATES.len()];
                seed += 1;
                let body = json!({
                    "messages": [{"role": "user", "content": tokenizer.synthetic_text(400, seed)}],
                    "max_tokens": 250, "ignore_eos": true,
                });
                let (client, url) = (client.clone(), url.clone());
                tokio::spawn(async move {
                    client
                        .post(url)
                        .json(&body)
                        .send()
                        .await
                        .map(|r| r.status())
                });
                next += Duration::from_secs_f64(1.0 / rate);
            }
        })
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while start.elapsed() < total + Duration::from_secs(15) {
        tick.tick().await;
        let text = client
            .get(format!("{base}/metrics"))
            .send()
            .await?
            .text()
            .await?;
        let elapsed = start.elapsed();
        let offered = if elapsed < total {
            RATES[(elapsed.as_secs() / step_seconds) as usize % RATES.len()]
        } else {
            0.0
        };
        let finished = value(&text, "vllm:e2e_request_latency_seconds_count");
        let ttft = value(&text, "vllm:time_to_first_token_seconds_sum")
            / value(&text, "vllm:time_to_first_token_seconds_count");
        println!(
            "{:>5} {:>8.1} {:>8} {:>8} {:>8.1}% {:>10} {:>10.0}ms",
            elapsed.as_secs(),
            offered,
            value(&text, "vllm:num_requests_running"),
            value(&text, "vllm:num_requests_waiting"),
            value(&text, "vllm:gpu_cache_usage_perc") * 100.0,
            finished,
            if ttft.is_finite() { ttft * 1e3 } else { 0.0 },
        );
        if elapsed > total && server.engine.state().in_flight() == 0 {
            break;
        }
    }
    sender.abort();
    server.shutdown().await?;
    Ok(())
}
