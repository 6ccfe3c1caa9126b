//! SSE over a real connection: vLLM's frame sequence for chat and completions, usage options, `n`, and what a
//! client disconnect does to the engine.

mod common;

use common::{chat, start};
use futures::StreamExt;
use serde_json::{json, Value};
use std::time::Duration;

const FAST: &[&str] = &["--step-time-scale", "0.01"];

fn parse(frames: &[String]) -> (Vec<Value>, bool) {
    let done = frames.last().map(String::as_str) == Some("[DONE]");
    let chunks = frames
        .iter()
        .filter(|f| f.as_str() != "[DONE]")
        .map(|f| serde_json::from_str(f).unwrap_or_else(|e| panic!("{e}: {f}")))
        .collect();
    (chunks, done)
}

#[tokio::test]
async fn chat_stream_follows_vllm_frame_sequence() {
    let s = start(FAST).await;
    let mut body = chat("Hello there", 5);
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let (status, content_type, frames) = s.stream("/v1/chat/completions", &body).await;
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let (chunks, done) = parse(&frames);
    assert!(done, "ends with [DONE]");
    // role chunk, 5 content chunks, usage chunk
    assert_eq!(chunks.len(), 7, "{chunks:#?}");
    let id = chunks[0]["id"].as_str().expect("id");
    assert!(id.starts_with("chatcmpl-"));
    for chunk in &chunks {
        assert_eq!(chunk["id"], id, "one id for the whole stream");
        assert_eq!(chunk["object"], "chat.completion.chunk");
    }
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    assert_eq!(chunks[0]["choices"][0]["finish_reason"], Value::Null);
    let mut text = String::new();
    for (i, chunk) in chunks[1..6].iter().enumerate() {
        let choice = &chunk["choices"][0];
        text.push_str(choice["delta"]["content"].as_str().expect("content"));
        let expected = if i == 4 { json!("length") } else { Value::Null };
        assert_eq!(
            choice["finish_reason"], expected,
            "finish_reason rides on the last content chunk"
        );
    }
    assert_eq!(text.split_whitespace().count(), 5);
    let usage = &chunks[6];
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 5);
    assert!(usage["usage"]["prompt_tokens"].as_u64().expect("prompt") > 0);
    s.stop().await;
}

#[tokio::test]
async fn completion_stream_has_no_role_chunk_and_null_usage() {
    let s = start(FAST).await;
    let body = json!({"prompt": "Once upon", "max_tokens": 3, "ignore_eos": true, "stream": true});
    let (status, _, frames) = s.stream("/v1/completions", &body).await;
    assert_eq!(status, 200);
    let (chunks, done) = parse(&frames);
    assert!(done);
    assert_eq!(
        chunks.len(),
        3,
        "one chunk per token, no usage chunk without stream_options"
    );
    for chunk in &chunks {
        assert_eq!(chunk["object"], "text_completion");
        assert_eq!(chunk["usage"], Value::Null);
        assert!(chunk["choices"][0]["text"]
            .as_str()
            .expect("text")
            .starts_with(' '));
    }
    assert_eq!(chunks[2]["choices"][0]["finish_reason"], "length");
    s.stop().await;
}

#[tokio::test]
async fn continuous_usage_and_n_choices_stream() {
    let s = start(FAST).await;
    let mut body = chat("Hi", 4);
    body["stream"] = json!(true);
    body["n"] = json!(2);
    body["stream_options"] = json!({"include_usage": true, "continuous_usage_stats": true});
    let (_, _, frames) = s.stream("/v1/chat/completions", &body).await;
    let (chunks, done) = parse(&frames);
    assert!(done);
    let mut finished = [false, false];
    let mut content = [0, 0];
    let mut last_completion_tokens = 0;
    for chunk in &chunks {
        let usage = &chunk["usage"];
        assert!(usage.is_object(), "usage on every chunk: {chunk}");
        let completion_tokens = usage["completion_tokens"].as_u64().expect("tokens");
        assert!(completion_tokens >= last_completion_tokens);
        last_completion_tokens = completion_tokens;
        if let Some(choice) = chunk["choices"].get(0) {
            let index = choice["index"].as_u64().expect("index") as usize;
            if choice["delta"].get("role").is_none() {
                content[index] += 1;
            }
            if !choice["finish_reason"].is_null() {
                finished[index] = true;
            }
        }
    }
    assert_eq!(finished, [true, true]);
    assert_eq!(content, [4, 4]);
    assert_eq!(last_completion_tokens, 8);
    s.stop().await;
}

#[tokio::test]
async fn validation_errors_come_before_the_stream() {
    let s = start(FAST).await;
    let mut body = chat("Hi", 5000);
    body["stream"] = json!(true);
    let (status, response) = s.post("/v1/chat/completions", &body).await;
    assert_eq!(status, 400);
    assert_eq!(response["error"]["param"], "max_tokens");
    s.stop().await;
}

#[tokio::test]
async fn a_client_that_disconnects_mid_stream_aborts_its_request() {
    // Real V100 step times: a 2,000-token answer takes ~40 s, far longer than this test.
    let s = start(&[]).await;
    let mut body = chat("Write a long essay", 2000);
    body["stream"] = json!(true);
    let response = s
        .client
        .post(s.url("/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .expect("sent");
    let mut bytes = response.bytes_stream();
    let mut received = String::new();
    while received.matches("\n\n").count() < 4 {
        let chunk = bytes.next().await.expect("more frames").expect("chunk");
        received.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert_eq!(s.server.engine.state().running, 1);
    assert!(s.server.engine.state().used_blocks > 0);
    drop(bytes);
    let mut state = s.server.engine.watch_state();
    tokio::time::timeout(
        Duration::from_secs(5),
        state.wait_for(|st| st.in_flight() == 0 && st.used_blocks == 0),
    )
    .await
    .expect("aborted within 5 s")
    .expect("engine alive");
    let aborted = s
        .metric("vllm:request_success_total{engine=\"0\",finished_reason=\"abort\"")
        .await;
    assert_eq!(aborted, 1.0);
    assert_eq!(s.metric("vllm:num_requests_running").await, 0.0);
    assert_eq!(s.metric("vllm:gpu_cache_usage_perc").await, 0.0);
    s.stop().await;
}
