//! The harness's test hooks: injected errors, added latency, and a failing or hanging /metrics, all switched at
//! run time through `/mock/faults` without a restart.

mod common;

use common::{chat, start};
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn injected_errors_use_the_envelope_and_switch_off_again() {
    let s = start(&["--step-time-scale", "0.01"]).await;
    let (status, faults) = s
        .post(
            "/mock/faults",
            &json!({"error_rate": 1.0, "error_status": 503}),
        )
        .await;
    assert_eq!(status, 200, "{faults}");
    assert_eq!(faults["error_rate"], 1.0);
    let (status, body) = s.post("/v1/chat/completions", &chat("hi", 3)).await;
    assert_eq!(status, 503);
    assert_eq!(body["error"]["code"], 503);
    assert_eq!(body["error"]["type"], "ServiceUnavailableError");
    let mut streaming = chat("hi", 3);
    streaming["stream"] = json!(true);
    let (status, _) = s.post("/v1/chat/completions", &streaming).await;
    assert_eq!(
        status, 503,
        "streaming requests fail before the stream starts"
    );
    s.post("/mock/faults", &json!({"error_rate": 0.0})).await;
    let (status, _) = s.post("/v1/chat/completions", &chat("hi", 3)).await;
    assert_eq!(status, 200);
    // Injected failures never reached the engine.
    assert_eq!(
        s.metric("vllm:e2e_request_latency_seconds_count").await,
        1.0
    );
    s.stop().await;
}

#[tokio::test]
async fn partial_error_rate_fails_about_that_fraction() {
    let s = start(&["--step-time-scale", "0", "--fault-error-rate", "0.3"]).await;
    let mut failed = 0;
    for _ in 0..200 {
        let (status, _) = s
            .post("/v1/completions", &json!({"prompt": "x", "max_tokens": 1}))
            .await;
        if status == 500 {
            failed += 1;
        } else {
            assert_eq!(status, 200);
        }
    }
    assert!(
        (35..=85).contains(&failed),
        "{failed} of 200 failed at rate 0.3"
    );
    s.stop().await;
}

#[tokio::test]
async fn added_latency_delays_the_first_token() {
    let s = start(&["--step-time-scale", "0.01"]).await;
    s.post("/mock/faults", &json!({"extra_latency_ms": 300}))
        .await;
    let started = Instant::now();
    let (status, _) = s.post("/v1/chat/completions", &chat("hi", 2)).await;
    assert_eq!(status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(
        s.metric("vllm:time_to_first_token_seconds_sum").await >= 0.3,
        "the engine sees it as TTFT"
    );
    s.stop().await;
}

#[tokio::test]
async fn metrics_can_fail_or_hang_and_recover() {
    let s = start(&[]).await;
    s.post("/mock/faults", &json!({"metrics": "fail"})).await;
    assert_eq!(s.get_text("/metrics").await.0, 500);
    s.post("/mock/faults", &json!({"metrics": "hang"})).await;
    let hung = s
        .client
        .get(s.url("/metrics"))
        .timeout(Duration::from_millis(400))
        .send()
        .await;
    assert!(hung.expect_err("times out").is_timeout());
    // A scrape that is hanging completes once the fault is lifted.
    let pending = tokio::spawn({
        let client = s.client.clone();
        let url = s.url("/metrics");
        async move { client.get(url).send().await.map(|r| r.status().as_u16()) }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.post("/mock/faults", &json!({"metrics": "ok"})).await;
    assert_eq!(pending.await.expect("joined").expect("answered"), 200);
    let (status, body) = s.post("/mock/faults", &json!({"error_rate": 7})).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = s.post("/mock/faults", &json!({"no_such_knob": 1})).await;
    assert_eq!(status, 400, "{body}");
    s.stop().await;
}
