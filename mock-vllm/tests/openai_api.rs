//! The OpenAI-compatible surface over real HTTP: shapes, every documented error, auth, tokenizer, LoRA, cold start.

mod common;

use common::{chat, start};
use serde_json::{json, Value};

const MODEL: &str = "deepseek-ai/deepseek-llm-7b-chat";
/// Step times at 1% of a V100's: requests finish in milliseconds.
const FAST: &[&str] = &["--step-time-scale", "0.01"];

#[tokio::test]
async fn models_lists_the_served_names_with_vllm_cards() {
    let s = start(&["--served-model-name", "deepseek-llm-7b-chat", "alias"]).await;
    let (status, body) = s.get_text("/v1/models").await;
    assert_eq!(status, 200);
    let body: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(body["object"], "list");
    let ids: Vec<&str> = body["data"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(ids, vec!["deepseek-llm-7b-chat", "alias"]);
    let card = &body["data"][0];
    assert_eq!(card["object"], "model");
    assert_eq!(card["owned_by"], "vllm");
    assert_eq!(card["root"], MODEL);
    assert_eq!(card["parent"], Value::Null);
    assert_eq!(card["max_model_len"], 4096);
    assert_eq!(card["permission"][0]["object"], "model_permission");
    s.stop().await;
}

#[tokio::test]
async fn chat_completion_has_vllm_shape_and_exact_usage() {
    let s = start(FAST).await;
    let body = chat("Where is Beijing?", 12);
    let (status, response) = s.post("/v1/chat/completions", &body).await;
    assert_eq!(status, 200, "{response}");
    assert!(response["id"]
        .as_str()
        .expect("id")
        .starts_with("chatcmpl-"));
    assert_eq!(response["object"], "chat.completion");
    assert_eq!(response["model"], MODEL);
    let choice = &response["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["finish_reason"], "length");
    assert_eq!(choice["stop_reason"], Value::Null);
    let text = choice["message"]["content"].as_str().expect("content");
    // Every output token is one word.
    assert_eq!(text.split_whitespace().count(), 12, "{text}");
    assert_eq!(response["usage"]["completion_tokens"], 12);
    // Prompt tokens are what /tokenize counts for the same messages.
    let (_, tokenized) = s
        .post("/tokenize", &json!({"messages": body["messages"]}))
        .await;
    assert_eq!(response["usage"]["prompt_tokens"], tokenized["count"]);
    assert_eq!(
        response["usage"]["total_tokens"].as_u64(),
        Some(tokenized["count"].as_u64().expect("count") + 12)
    );
    s.stop().await;
}

#[tokio::test]
async fn chat_without_a_cap_ends_naturally_and_n_gives_n_choices() {
    let s = start(FAST).await;
    let (status, response) = s
        .post(
            "/v1/chat/completions",
            &json!({"model": MODEL, "messages": [{"role": "user", "content": "Tell me a story"}], "n": 3}),
        )
        .await;
    assert_eq!(status, 200, "{response}");
    let choices = response["choices"].as_array().expect("choices");
    assert_eq!(choices.len(), 3);
    let mut total = 0;
    for (i, choice) in choices.iter().enumerate() {
        assert_eq!(choice["index"], i);
        assert_eq!(
            choice["finish_reason"], "stop",
            "a natural end, far below max_model_len"
        );
        total += choice["message"]["content"]
            .as_str()
            .expect("text")
            .split_whitespace()
            .count();
    }
    assert_eq!(response["usage"]["completion_tokens"], total);
    s.stop().await;
}

#[tokio::test]
async fn the_same_seed_gives_the_same_text() {
    let s = start(FAST).await;
    let mut body = chat("hello", 20);
    body["seed"] = json!(7);
    let (_, a) = s.post("/v1/chat/completions", &body).await;
    let (_, b) = s.post("/v1/chat/completions", &body).await;
    body["seed"] = json!(8);
    let (_, c) = s.post("/v1/chat/completions", &body).await;
    let text = |r: &Value| {
        r["choices"][0]["message"]["content"]
            .as_str()
            .expect("text")
            .to_string()
    };
    assert_eq!(text(&a), text(&b));
    assert_ne!(text(&a), text(&c));
    s.stop().await;
}

#[tokio::test]
async fn completions_accept_every_prompt_shape() {
    let s = start(FAST).await;
    let (status, response) = s
        .post(
            "/v1/completions",
            &json!({"model": MODEL, "prompt": ["one two", "three"], "max_tokens": 5, "echo": true}),
        )
        .await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(response["object"], "text_completion");
    assert!(response["id"].as_str().expect("id").starts_with("cmpl-"));
    let choices = response["choices"].as_array().expect("choices");
    assert_eq!(choices.len(), 2);
    assert!(choices[0]["text"]
        .as_str()
        .expect("text")
        .starts_with("one two"));
    assert!(choices[1]["text"]
        .as_str()
        .expect("text")
        .starts_with("three"));
    assert_eq!(response["usage"]["prompt_tokens"], 3);
    assert_eq!(response["usage"]["completion_tokens"], 10);
    // Token-id prompts, and the vLLM default of 16 tokens when max_tokens is absent.
    let (status, response) = s
        .post(
            "/v1/completions",
            &json!({"model": MODEL, "prompt": [15339, 1917], "ignore_eos": true}),
        )
        .await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(response["usage"]["prompt_tokens"], 2);
    assert_eq!(response["usage"]["completion_tokens"], 16);
    s.stop().await;
}

async fn expect_error(
    s: &common::TestServer,
    path: &str,
    body: Value,
    status: u16,
    kind: &str,
    needle: &str,
) -> Value {
    let (got, response) = s.post(path, &body).await;
    assert_eq!(got, status, "{body} -> {response}");
    let error = &response["error"];
    assert_eq!(error["code"], status, "{response}");
    assert_eq!(error["type"], kind, "{response}");
    assert!(
        error["message"].as_str().expect("message").contains(needle),
        "{response}"
    );
    error.clone()
}

#[tokio::test]
async fn client_mistakes_get_vllm_errors() {
    let s = start(&["--max-model-len", "1024", "--step-time-scale", "0.01"]).await;
    let chat_path = "/v1/chat/completions";
    let error = expect_error(
        &s,
        chat_path,
        json!({"model": "gpt-4", "messages": []}),
        404,
        "NotFoundError",
        "The model `gpt-4` does not exist.",
    )
    .await;
    assert_eq!(error["param"], "model");
    let long = "word ".repeat(1100);
    let error = expect_error(
        &s,
        chat_path,
        chat(&long, 10),
        400,
        "BadRequestError",
        "maximum context length is 1024 tokens",
    )
    .await;
    assert_eq!(error["param"], "input_tokens");
    let error = expect_error(
        &s,
        chat_path,
        chat("hi", 1020),
        400,
        "BadRequestError",
        "'max_tokens' or 'max_completion_tokens' is too large: 1020",
    )
    .await;
    assert_eq!(error["param"], "max_tokens");
    let error = expect_error(
        &s,
        chat_path,
        json!({"model": MODEL}),
        400,
        "Bad Request",
        "messages",
    )
    .await;
    assert_eq!(error["param"], "body.messages");
    expect_error(
        &s,
        chat_path,
        json!({"model": MODEL, "messages": "hi"}),
        400,
        "Bad Request",
        "messages",
    )
    .await;
    expect_error(
        &s,
        chat_path,
        json!({"model": MODEL, "messages": [], "max_tokens": "many"}),
        400,
        "Bad Request",
        "max_tokens",
    )
    .await;
    for (field, value, needle) in [
        ("n", json!(0), "n must be at least 1"),
        ("max_tokens", json!(0), "max_tokens must be at least 1"),
        (
            "temperature",
            json!(-0.5),
            "temperature must be non-negative",
        ),
        ("top_p", json!(1.5), "top_p must be in (0, 1]"),
        (
            "frequency_penalty",
            json!(5),
            "frequency_penalty must be in [-2, 2]",
        ),
        ("top_logprobs", json!(21), "greater than max allowed: 20"),
    ] {
        let mut body = chat("hi", 5);
        body[field] = value;
        if field == "top_logprobs" {
            body["logprobs"] = json!(true);
        }
        expect_error(&s, chat_path, body, 400, "BadRequestError", needle).await;
    }
    expect_error(
        &s,
        "/v1/completions",
        json!({"model": MODEL, "prompt": "x", "logprobs": 30}),
        400,
        "BadRequestError",
        "max allowed",
    )
    .await;
    expect_error(
        &s,
        "/v1/completions",
        json!({"model": MODEL, "prompt": [99999999]}),
        400,
        "BadRequestError",
        "out of vocabulary",
    )
    .await;

    // Malformed JSON and a wrong content type are 400s too, never 422.
    let raw = |body: &'static str, content_type: &'static str| {
        s.client
            .post(s.url(chat_path))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let response = raw("{\"model\": ", "application/json").await.expect("sent");
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("json");
    assert!(body["error"]["message"]
        .as_str()
        .expect("message")
        .contains("JSON decode error"));
    let response = raw("{}", "text/plain").await.expect("sent");
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("json");
    assert!(body["error"]["message"]
        .as_str()
        .expect("message")
        .contains("Only 'application/json' is allowed"));

    // Unknown paths and wrong methods.
    let (status, text) = s.get_text("/v1/nothing").await;
    assert_eq!(status, 404);
    assert!(text.contains("\"type\":\"Not Found\""), "{text}");
    let (status, text) = s.get_text("/v1/chat/completions").await;
    assert_eq!(status, 405);
    assert!(text.contains("Method Not Allowed"), "{text}");

    // None of this reached the engine.
    assert_eq!(s.server.engine.state().in_flight(), 0);
    assert_eq!(
        s.metric("vllm:e2e_request_latency_seconds_count").await,
        0.0
    );
    s.stop().await;
}

#[tokio::test]
async fn api_key_guards_v1_only() {
    let s = start(&["--api-key", "secret", "--step-time-scale", "0.01"]).await;
    let response = s
        .client
        .get(s.url("/v1/models"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.json::<Value>().await.expect("json"),
        json!({"error": "Unauthorized"})
    );
    let response = s
        .client
        .get(s.url("/v1/models"))
        .bearer_auth("wrong")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 401);
    let response = s
        .client
        .get(s.url("/v1/models"))
        .bearer_auth("secret")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    let response = s
        .client
        .post(s.url("/v1/chat/completions"))
        .bearer_auth("secret")
        .json(&chat("hi", 3))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    assert_eq!(s.get_text("/health").await.0, 200);
    assert_eq!(s.get_text("/metrics").await.0, 200);
    s.stop().await;
}

#[tokio::test]
async fn tokenize_and_detokenize_agree() {
    let s = start(&[]).await;
    let text = "The quick brown fox jumps over the lazy dog. 北京欢迎你";
    let (status, tokenized) = s
        .post(
            "/tokenize",
            &json!({"prompt": text, "return_token_strs": true}),
        )
        .await;
    assert_eq!(status, 200, "{tokenized}");
    assert_eq!(tokenized["max_model_len"], 4096);
    let count = tokenized["count"].as_u64().expect("count");
    assert_eq!(
        tokenized["tokens"].as_array().expect("tokens").len() as u64,
        count
    );
    assert_eq!(
        tokenized["token_strs"].as_array().expect("strs").len() as u64,
        count
    );
    let (status, detokenized) = s
        .post("/detokenize", &json!({"tokens": tokenized["tokens"]}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(detokenized["prompt"], text);
    let (status, error) = s.post("/detokenize", &json!({"tokens": [1, -5]})).await;
    assert_eq!(status, 400, "{error}");
    let (status, _) = s
        .post("/tokenize", &json!({"model": "nope", "prompt": "x"}))
        .await;
    assert_eq!(status, 404);
    s.stop().await;
}

#[tokio::test]
async fn lora_adapters_load_list_serve_and_unload() {
    let s = start(&[
        "--enable-lora",
        "--lora-modules",
        "sql=/adapters/sql",
        "--step-time-scale",
        "0.01",
    ])
    .await;
    let response = s
        .client
        .post(s.url("/v1/load_lora_adapter"))
        .json(&json!({"lora_name": "chat-fr", "lora_path": "/adapters/fr"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.expect("text"),
        "Success: LoRA adapter 'chat-fr' added successfully."
    );
    let (_, models) = s.get_text("/v1/models").await;
    let models: Value = serde_json::from_str(&models).expect("json");
    let lora = models["data"]
        .as_array()
        .expect("cards")
        .iter()
        .find(|c| c["id"] == "chat-fr")
        .expect("listed")
        .clone();
    assert_eq!(lora["root"], "/adapters/fr");
    assert_eq!(lora["parent"], MODEL);
    assert_eq!(lora["max_model_len"], Value::Null);
    assert!(models["data"]
        .as_array()
        .expect("cards")
        .iter()
        .any(|c| c["id"] == "sql"));
    let mut body = chat("bonjour", 4);
    body["model"] = json!("chat-fr");
    let (status, response) = s.post("/v1/chat/completions", &body).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(response["model"], "chat-fr");
    // LoRA requests count under the base model's metrics.
    assert!(
        s.metric("vllm:request_success_total{engine=\"0\",finished_reason=\"length\"")
            .await
            >= 1.0
    );
    let (status, error) = s
        .post(
            "/v1/load_lora_adapter",
            &json!({"lora_name": "chat-fr", "lora_path": "/x"}),
        )
        .await;
    assert_eq!(status, 400, "{error}");
    assert!(error["error"]["message"]
        .as_str()
        .expect("msg")
        .contains("has already been loaded"));
    let (status, _) = s
        .post("/v1/unload_lora_adapter", &json!({"lora_name": "chat-fr"}))
        .await;
    assert_eq!(status, 200);
    let (status, _) = s.post("/v1/chat/completions", &body).await;
    assert_eq!(status, 404);
    let (status, error) = s
        .post("/v1/unload_lora_adapter", &json!({"lora_name": "chat-fr"}))
        .await;
    assert_eq!(status, 404, "{error}");
    s.stop().await;

    let s = start(&[]).await;
    let (status, _) = s
        .post(
            "/v1/load_lora_adapter",
            &json!({"lora_name": "a", "lora_path": "/a"}),
        )
        .await;
    assert_eq!(status, 400, "LoRA needs --enable-lora");
    s.stop().await;
}

#[tokio::test]
async fn health_ping_and_version() {
    let s = start(&[]).await;
    assert_eq!(s.get_text("/health").await, (200, String::new()));
    assert_eq!(s.get_text("/ping").await.0, 200);
    let response = s.client.post(s.url("/ping")).send().await.expect("sent");
    assert_eq!(response.status(), 200);
    let (status, version) = s.get_text("/version").await;
    assert_eq!(status, 200);
    let version: Value = serde_json::from_str(&version).expect("json");
    assert!(
        version["version"]
            .as_str()
            .expect("version")
            .split('.')
            .count()
            == 3
    );
    s.stop().await;
}

#[tokio::test]
async fn the_port_is_not_served_until_the_simulated_model_load_is_over() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        probe.local_addr().expect("addr").port()
    };
    let args = <mock_vllm::EngineArgs as clap::Parser>::try_parse_from([
        "mock-vllm",
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--startup-delay",
        "0.5",
    ])
    .expect("args");
    let shutdown = tokio_util::sync::CancellationToken::new();
    let started = std::time::Instant::now();
    let server = tokio::spawn(mock_vllm::run(args, shutdown.clone()));
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/health");
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    assert!(
        client.get(&url).send().await.is_err(),
        "connection refused while loading"
    );
    loop {
        if let Ok(response) = client.get(&url).send().await {
            assert_eq!(response.status(), 200);
            break;
        }
        assert!(started.elapsed().as_secs() < 10, "never came up");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(started.elapsed().as_secs_f64() >= 0.5);
    shutdown.cancel();
    server.await.expect("joined").expect("clean exit");
}
