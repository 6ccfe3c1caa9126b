//! Test helpers: start a real mock-vllm server on 127.0.0.1:0 and talk to it over HTTP.
#![allow(dead_code)]

use futures::StreamExt;
use mock_vllm::{EngineArgs, RunningServer};
use serde_json::Value;

/// A running server and a client for it.
pub struct TestServer {
    pub server: RunningServer,
    pub base: String,
    pub client: reqwest::Client,
}

/// Starts a server with `extra` arguments on top of a fast test configuration.
pub async fn start(extra: &[&str]) -> TestServer {
    let args = EngineArgs::for_tests_with(extra).expect("test arguments parse");
    let server = mock_vllm::spawn(&args).await.expect("test server starts");
    let base = format!("http://{}", server.addr);
    TestServer {
        server,
        base,
        client: reqwest::Client::new(),
    }
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// POSTs JSON; returns status and parsed body (Null if not JSON).
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self.send_json(path, body).await;
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// GETs a path; returns status and text.
    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let response = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("request");
        (
            response.status().as_u16(),
            response.text().await.expect("body"),
        )
    }

    /// Scrapes /metrics and returns the value of the first sample whose line starts with `prefix`.
    pub async fn metric(&self, prefix: &str) -> f64 {
        let (status, text) = self.get_text("/metrics").await;
        assert_eq!(status, 200);
        metric_value(&text, prefix).unwrap_or_else(|| panic!("no sample {prefix}"))
    }

    /// POSTs a streaming request and returns every SSE `data:` payload.
    pub async fn stream(&self, path: &str, body: &Value) -> (u16, String, Vec<String>) {
        let response = self.send_json(path, body).await;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let mut buffer = String::new();
        let mut bytes = response.bytes_stream();
        while let Some(chunk) = bytes.next().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
        }
        (status, content_type, sse_data(&buffer))
    }

    async fn send_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn stop(self) {
        self.server.shutdown().await.expect("clean shutdown");
    }
}

/// The `data:` payloads of an SSE body, in order.
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter(|frame| !frame.trim().is_empty())
        .map(|frame| {
            frame
                .lines()
                .filter_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect()
}

/// The value of the first exposition line starting with `prefix` (name plus optional label text).
pub fn metric_value(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A chat request body.
pub fn chat(content: &str, max_tokens: u64) -> Value {
    serde_json::json!({
        "model": "deepseek-ai/deepseek-llm-7b-chat",
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        "ignore_eos": true,
    })
}
