//! mock-vllm in the test's own process, and the client side of a streaming chat completion.
//!
//! The servers run on real time at `step_time_scale` 0.05 (twenty times faster than a V100), so a request takes
//! milliseconds. Their listener is made with `TCP_NODELAY`, which Linux passes on to accepted sockets: the mock's
//! `axum::serve` leaves Nagle's algorithm on, and on a reused keep-alive connection the server's second small SSE
//! write would then wait for the client's delayed ACK (~40 ms), a TTFT the engine never had.

use std::net::{IpAddr, SocketAddr};

use futures::StreamExt;
use mock_vllm::{EngineArgs, RunningServer, Tokenizer};
use serde_json::json;
use tokio::net::TcpSocket;
use tokio_util::sync::CancellationToken;

/// A mock on a kernel-chosen port of 127.0.0.1, with the test engine adjusted by `configure`.
pub async fn start_mock(configure: impl FnOnce(&mut EngineArgs)) -> RunningServer {
    start_mock_on("127.0.0.1".parse().expect("ip"), configure).await
}

/// A mock on a kernel-chosen port of `ip` (any 127.0.0.0/8 address: pods get private loopback addresses).
pub async fn start_mock_on(ip: IpAddr, configure: impl FnOnce(&mut EngineArgs)) -> RunningServer {
    let mut args = EngineArgs::for_tests();
    args.step_time_scale = 0.05;
    configure(&mut args);
    let config = args.validate().expect("valid mock config");
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_nodelay(true).expect("nodelay");
    socket
        .bind(SocketAddr::new(ip, 0))
        .expect("bind a loopback address");
    let listener = socket.listen(1024).expect("listen");
    mock_vllm::start(config, listener, Tokenizer::new(), CancellationToken::new())
        .expect("mock starts")
}

/// Asserts that `response` is a server-sent event stream (vLLM's `stream: true` answer).
pub fn assert_event_stream(response: &reqwest::Response) {
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok());
    assert!(
        content_type.is_some_and(|v| v.starts_with("text/event-stream")),
        "content-type {content_type:?}, expected text/event-stream"
    );
}

/// Streams a `tokens`-long chat completion (`ignore_eos`) from the pod at `ip:8000`, reading it to the end.
/// Returns the number of content chunks if the stream ended with `[DONE]`, else what went wrong.
pub async fn stream_completion(
    http: &reqwest::Client,
    ip: &str,
    tokens: u64,
) -> Result<u64, String> {
    let body = json!({
        "model": "deepseek-llm-7b-chat",
        "messages": [{"role": "user", "content": "keep going"}],
        "max_tokens": tokens, "ignore_eos": true, "stream": true,
    });
    let response = http
        .post(format!("http://{ip}:8000/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("status {}", response.status()));
    }
    let mut text = String::new();
    let mut bytes = response.bytes_stream();
    while let Some(chunk) = bytes.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.map_err(|e| e.to_string())?));
    }
    if !text.trim_end().ends_with("data: [DONE]") {
        return Err("stream cut before [DONE]".into());
    }
    Ok(text.matches("\"content\":\" ").count() as u64)
}
