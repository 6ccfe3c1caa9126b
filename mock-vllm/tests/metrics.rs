//! "Metrics follow load": the vllm:* gauges and counters read over HTTP track the engine's real state.

mod common;

use common::{chat, metric_value, start, TestServer};
use futures::StreamExt;
use serde_json::{json, Value};
use std::time::Duration;

/// Scrapes /metrics between two engine steps (checked with /mock/stats) so that gauges can be compared exactly.
async fn stable_scrape(s: &TestServer) -> (String, Value) {
    for _ in 0..50 {
        let (_, before) = s.get_text("/mock/stats").await;
        let (_, metrics) = s.get_text("/metrics").await;
        let (_, after) = s.get_text("/mock/stats").await;
        let before: Value = serde_json::from_str(&before).expect("json");
        let after: Value = serde_json::from_str(&after).expect("json");
        if before["engine"] == after["engine"] {
            return (metrics, after["engine"].clone());
        }
    }
    panic!("the engine never held still between two steps");
}

fn gauge(text: &str, name: &str) -> f64 {
    metric_value(text, &format!("{name}{{")).unwrap_or_else(|| panic!("{name} missing"))
}

/// Opens `count` streaming requests and keeps them open; returns their byte streams.
async fn open_streams(
    s: &TestServer,
    count: usize,
    prompt: &str,
    max_tokens: u64,
) -> Vec<impl StreamExt> {
    let mut streams = Vec::new();
    for _ in 0..count {
        let mut body = chat(prompt, max_tokens);
        body["stream"] = json!(true);
        let response = s
            .client
            .post(s.url("/v1/chat/completions"))
            .json(&body)
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 200);
        streams.push(Box::pin(response.bytes_stream()));
    }
    streams
}

#[tokio::test]
async fn gauges_follow_concurrent_long_requests_and_return_to_zero() {
    // 4 running slots, V100 step times slowed 10× so that the state holds still between scrapes.
    let s = start(&["--max-num-seqs", "4", "--step-time-scale", "10"]).await;
    let prompt = "word ".repeat(100);
    let streams = open_streams(&s, 6, &prompt, 3000).await;
    let mut state = s.server.engine.watch_state();
    tokio::time::timeout(
        Duration::from_secs(10),
        state.wait_for(|st| st.running == 4 && st.waiting == 2 && st.steps >= 1),
    )
    .await
    .expect("admitted")
    .expect("alive");
    let (text, engine) = stable_scrape(&s).await;
    assert_eq!(
        gauge(&text, "vllm:num_requests_running"),
        4.0,
        "min(N, max_num_seqs)"
    );
    assert_eq!(gauge(&text, "vllm:num_requests_waiting"), 2.0, "the rest");
    // KV usage is the blocks held by the running requests over the pool.
    let prompt_tokens = {
        let (_, t) = s
            .post(
                "/tokenize",
                &json!({"messages": [{"role": "user", "content": prompt}]}),
            )
            .await;
        t["count"].as_u64().expect("count")
    };
    let used = engine["used_blocks"].as_u64().expect("used");
    assert!(
        used >= 4 * prompt_tokens.div_ceil(16),
        "each running request holds its prompt's blocks"
    );
    let expected = used as f64 / 1925.0;
    assert_eq!(gauge(&text, "vllm:gpu_cache_usage_perc"), expected);
    assert_eq!(gauge(&text, "vllm:kv_cache_usage_perc"), expected);
    assert!(expected > 0.0 && expected < 1.0);

    drop(streams);
    tokio::time::timeout(
        Duration::from_secs(10),
        state.wait_for(|st| st.in_flight() == 0),
    )
    .await
    .expect("all aborted")
    .expect("alive");
    let (text, _) = stable_scrape(&s).await;
    assert_eq!(gauge(&text, "vllm:num_requests_running"), 0.0);
    assert_eq!(gauge(&text, "vllm:num_requests_waiting"), 0.0);
    assert_eq!(gauge(&text, "vllm:gpu_cache_usage_perc"), 0.0);
    assert_eq!(gauge(&text, "vllm:kv_cache_usage_perc"), 0.0);
    // AIBrix's preStop hook waits for these exact strings.
    assert!(text.contains("vllm:num_requests_running{engine=\"0\",model_name=\"deepseek-ai/deepseek-llm-7b-chat\"} 0.0\n"));
    assert_eq!(
        metric_value(
            &text,
            "vllm:request_success_total{engine=\"0\",finished_reason=\"abort\""
        ),
        Some(6.0)
    );
    s.stop().await;
}

#[tokio::test]
async fn finished_requests_fill_counters_and_histograms() {
    let s = start(&["--step-time-scale", "0.01"]).await;
    let before = s.get_text("/metrics").await.1;
    for _ in 0..3 {
        let (status, _) = s.post("/v1/chat/completions", &chat("count me", 10)).await;
        assert_eq!(status, 200);
    }
    let mut state = s.server.engine.watch_state();
    state
        .wait_for(|st| st.in_flight() == 0)
        .await
        .expect("alive");
    let after = s.get_text("/metrics").await.1;
    let value =
        |text: &str, prefix: &str| metric_value(text, prefix).unwrap_or_else(|| panic!("{prefix}"));
    assert_eq!(value(&after, "vllm:generation_tokens_total{"), 30.0);
    assert_eq!(
        value(
            &after,
            "vllm:request_success_total{engine=\"0\",finished_reason=\"length\""
        ),
        3.0
    );
    assert_eq!(
        value(&after, "vllm:time_to_first_token_seconds_count{"),
        3.0
    );
    assert_eq!(
        value(&after, "vllm:e2e_request_latency_seconds_count{"),
        3.0
    );
    assert_eq!(value(&after, "vllm:request_generation_tokens_sum{"), 30.0);
    assert_eq!(
        value(&after, "vllm:inter_token_latency_seconds_count{"),
        27.0,
        "9 gaps per request"
    );
    assert_eq!(value(&after, "vllm:request_params_max_tokens_count{"), 3.0);
    assert!(value(&after, "vllm:prompt_tokens_total{") > 0.0);
    // Counters never go down.
    for line in after
        .lines()
        .filter(|l| l.contains("_total{") && !l.starts_with('#'))
    {
        let (series, value) = line.rsplit_once(' ').expect("sample");
        let previous = before
            .lines()
            .find_map(|l| {
                l.rsplit_once(' ')
                    .filter(|(s, _)| *s == series)
                    .map(|(_, v)| v.parse::<f64>().expect("f64"))
            })
            .unwrap_or(0.0);
        assert!(
            value.parse::<f64>().expect("f64") >= previous,
            "{series} went down"
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn kv_pressure_preempts_and_shows_in_metrics() {
    // 300 blocks of 16 tokens hold about ten of these requests at full length (≈ 470 tokens, 30 blocks each).
    let s = start(&[
        "--num-gpu-blocks-override",
        "300",
        "--max-model-len",
        "512",
        "--step-time-scale",
        "0.01",
    ])
    .await;
    let prompt = "word ".repeat(60);
    let bodies: Vec<_> = (0..20).map(|_| chat(&prompt, 400)).collect();
    let responses =
        futures::future::join_all(bodies.iter().map(|b| s.post("/v1/chat/completions", b))).await;
    for (status, body) in &responses {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(
            body["usage"]["completion_tokens"], 400,
            "preempted requests still finish with their length"
        );
    }
    assert!(s.metric("vllm:num_preemptions_total").await > 0.0);
    assert_eq!(s.metric("vllm:gpu_cache_usage_perc").await, 0.0);
    s.stop().await;
}
