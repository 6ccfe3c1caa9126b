//! The replay client against an in-process mock-vllm on 127.0.0.1: every request sent and recorded, token counts
//! as the workload asked, TTFT and latency consistent with the mock's own histograms, errors recorded (never a
//! crash), cancellation returning what was collected.
//!
//! The mock runs on real time with `step_time_scale` 0.05 (twenty times faster than a V100), so each test takes
//! a second or two. Tokio's paused clock is not used: it does not mix with real sockets.
//!
//! The mock's listener has `TCP_NODELAY` (see `common::mock`): without it a reused keep-alive connection shows a
//! ~40 ms delayed-ACK stall as TTFT the engine never had.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use e2e::workload::{
    generate, replay, replay_closed_loop, ApiKind, ClosedLoopConfig, Dispatcher, GenerateConfig,
    Pattern, ReplayConfig, RequestRecord, Summary, Trace,
};
use mock_vllm::tokenizer::ChatTurn;
use mock_vllm::{RunningServer, Tokenizer};
use tokio_util::sync::CancellationToken;

use common::mock::start_mock;

const MODEL: &str = "deepseek-ai/deepseek-llm-7b-chat";

/// Client mean TTFT/latency may exceed the mock's by at most this much. Per request the client's interval
/// (dispatch → first chunk read) contains the mock's (handler entry → first token), so the client mean is never
/// below the mock's; the difference is loopback HTTP, JSON and SSE handling plus scheduling on a shared 2-core
/// machine — about 1–3 ms measured in debug builds. 25 ms leaves room for a noisy neighbour while still catching
/// a Nagle/delayed-ACK stall (~40 ms) or a TTFT taken from the wrong chunk (at 0.05 scale a request's decode of
/// 16–32 tokens takes ≥ 16 ms more than its prefill).
const TOLERANCE_S: f64 = 0.025;

fn base_url(server: &RunningServer) -> String {
    format!("http://{}", server.addr)
}

/// Replaying against `server`, sending each request's output length (`max_tokens` with `ignore_eos`) as the
/// workload asks.
fn sending_lengths(server: &RunningServer) -> ReplayConfig {
    let mut config = ReplayConfig::new(base_url(server), MODEL);
    config.send_output_length = true;
    config
}

/// The whole trace, open loop, without cancellation or progress reports.
async fn replay_all(trace: &Trace, config: &ReplayConfig) -> Vec<RequestRecord> {
    replay(trace, config, CancellationToken::new(), |_| {})
        .await
        .expect("replays")
}

async fn metrics(server: &RunningServer) -> String {
    reqwest::get(format!("{}/metrics", base_url(server)))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text")
}

/// Sum over label sets of `name` samples (e.g. `vllm:time_to_first_token_seconds_sum`).
fn sample_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn histogram_mean(text: &str, name: &str) -> (f64, f64) {
    let sum = sample_sum(text, &format!("{name}_sum"));
    let count = sample_sum(text, &format!("{name}_count"));
    (sum / count.max(1.0), count)
}

fn workload(rps: f64, duration_ms: u64, prompt: u64, output: u64, seed: u64) -> Trace {
    let mut config = GenerateConfig::new(duration_ms, Pattern::Constant(rps));
    config.prompt_len = Some(Pattern::Constant(prompt as f64));
    config.completion_len = Some(Pattern::Constant(output as f64));
    config.seed = seed;
    generate(&config, None, &Tokenizer::new())
        .expect("generates")
        .trace
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = values.collect();
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn assert_consistent(what: &str, client: f64, mock: f64) {
    assert!(
        client >= mock - 0.001 && client - mock <= TOLERANCE_S,
        "{what}: client mean {:.2} ms vs mock mean {:.2} ms",
        client * 1e3,
        mock * 1e3
    );
}

/// The mock's means vs the client's, over successful records.
async fn check_against_histograms(server: &RunningServer, records: &[RequestRecord]) {
    let text = metrics(server).await;
    let (mock_ttft, count) = histogram_mean(&text, "vllm:time_to_first_token_seconds");
    assert_eq!(count as usize, records.len(), "one TTFT sample per request");
    let (mock_e2e, _) = histogram_mean(&text, "vllm:e2e_request_latency_seconds");
    assert_eq!(
        sample_sum(&text, "vllm:request_success_total") as usize,
        records.len()
    );
    let client_ttft = mean(records.iter().filter_map(|r| r.ttft));
    let client_e2e = mean(records.iter().map(|r| r.latency));
    eprintln!(
        "TTFT mean: client {:.2} ms, mock {:.2} ms; latency mean: client {:.2} ms, mock {:.2} ms",
        client_ttft * 1e3,
        mock_ttft * 1e3,
        client_e2e * 1e3,
        mock_e2e * 1e3
    );
    assert_consistent("TTFT", client_ttft, mock_ttft);
    assert_consistent("latency", client_e2e, mock_e2e);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_chat_replay_sends_and_records_every_request() {
    let server = start_mock(|_| {}).await;
    let trace = workload(40.0, 2_000, 64, 16, 1);
    let n = trace.num_requests();
    assert!(n > 40, "{n} requests");
    let mut config = sending_lengths(&server);
    config.timeout = Duration::from_secs(10);
    let mut progress_calls = 0;
    let mut last = None;
    let records = replay(&trace, &config, CancellationToken::new(), |p| {
        progress_calls += 1;
        last = Some(*p);
    })
    .await
    .expect("replays");

    assert_eq!(records.len(), n, "every request recorded");
    let last = last.expect("progress reported");
    assert_eq!((last.sent, last.completed, last.failed), (n, n, 0));
    assert!(progress_calls >= n);
    let tokenizer = Tokenizer::new();
    let scheduled: HashMap<u64, _> = trace
        .scheduled()
        .into_iter()
        .map(|r| (r.index, r))
        .collect();
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.request_id, i as u64);
        assert_eq!(
            (r.status.as_str(), r.status_code),
            ("success", Some(200)),
            "{r:?}"
        );
        let request = &scheduled[&r.request_id].request;
        let rendered = tokenizer.render_chat(
            &[ChatTurn {
                role: "user",
                content: &request.prompt,
            }],
            true,
        );
        assert_eq!(r.prompt_tokens, tokenizer.count(&rendered) as u64);
        assert_eq!(Some(r.output_tokens), request.output_length);
        assert_eq!(r.total_tokens, r.prompt_tokens + r.output_tokens);
        assert_eq!(tokenizer.count(&r.output) as u64, r.output_tokens);
        let (ttft, tpot) = (r.ttft.expect("ttft"), r.tpot.expect("tpot"));
        assert!(ttft > 0.0 && ttft <= r.latency);
        assert!((tpot * r.output_tokens as f64 - (r.latency - ttft)).abs() < 1e-6);
        assert!((r.end_time - r.start_time - r.latency).abs() < 1e-6);
        let send_error = r.send_error_ms.expect("open loop has a send error");
        assert!(
            send_error >= 0.0,
            "tokio timers never fire early: {send_error}"
        );
        let scheduled_time = r.scheduled_time.expect("scheduled");
        assert!((r.start_time - scheduled_time - send_error / 1e3).abs() < 1e-6);
    }
    // Requests go out in timestamp order, spaced as the trace says (scaled timestamps, relative to the first).
    let first = &records[0];
    for r in &records {
        let ts = scheduled[&r.request_id].timestamp_ms as f64 / 1e3;
        let first_ts = scheduled[&first.request_id].timestamp_ms as f64 / 1e3;
        let due = r.scheduled_time.expect("scheduled") - first.scheduled_time.expect("scheduled");
        assert!(
            (due - (ts - first_ts)).abs() < 0.0011,
            "{due} vs {}",
            ts - first_ts
        );
    }
    check_against_histograms(&server, &records).await;
    let summary = Summary::from_records(&records, None);
    assert_eq!((summary.count, summary.failures), (n, 0));
    server.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_with_tokio_timers_sends_every_request() {
    let server = start_mock(|_| {}).await;
    let trace = workload(60.0, 1_000, 32, 8, 5);
    let mut config = sending_lengths(&server);
    config.dispatcher = Dispatcher::Tokio;
    let records = replay_all(&trace, &config).await;
    assert_eq!(records.len(), trace.num_requests());
    for r in &records {
        assert!(r.is_success(), "{r:?}");
        assert_eq!(r.output_tokens, 8);
        assert!(r.send_error_ms.is_some_and(|e| e >= 0.0));
    }
    check_against_histograms(&server, &records).await;
    server.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_completions_keep_the_concurrency() {
    let server = start_mock(|_| {}).await;
    let trace = workload(5.0, 4_000, 48, 24, 2);
    let mut config = sending_lengths(&server);
    config.api = ApiKind::Completions;
    let closed = ClosedLoopConfig {
        concurrency: 4,
        duration: Duration::from_millis(1500),
    };
    let records = replay_closed_loop(&trace, &config, &closed, CancellationToken::new(), |_| {})
        .await
        .expect("replays");
    assert!(records.len() >= 8, "{} requests", records.len());
    let scheduled = trace.scheduled();
    for r in &records {
        assert!(r.is_success(), "{r:?}");
        assert_eq!(r.status_code, Some(200));
        assert!(r.send_error_ms.is_none() && r.scheduled_time.is_none());
        let request = &scheduled[r.request_id as usize % scheduled.len()].request;
        // Completions prompts are counted as they are: exactly the generator's prompt_length.
        assert_eq!(Some(r.prompt_tokens), request.prompt_length);
        assert_eq!(Some(r.output_tokens), request.output_length);
        assert!(
            r.start_time < 1.5 + 0.1,
            "no request starts after the duration"
        );
    }
    // Never more than `concurrency` in flight: sort the start/end events and count.
    let mut events: Vec<(f64, i32)> = records
        .iter()
        .flat_map(|r| [(r.start_time, 1), (r.end_time, -1)])
        .collect();
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut in_flight = 0;
    for (_, delta) in events {
        in_flight += delta;
        assert!(in_flight <= 4);
    }
    check_against_histograms(&server, &records).await;
    server.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_timeouts_and_refused_connections_are_recorded() {
    let server = start_mock(|args| args.api_key = Some("secret".into())).await;
    let client = reqwest::Client::new();
    let faults = format!("{}/mock/faults", base_url(&server));
    client
        .post(&faults)
        .json(&serde_json::json!({"error_rate": 1.0, "error_status": 503}))
        .send()
        .await
        .expect("POST /mock/faults")
        .error_for_status()
        .expect("accepted");
    let current: serde_json::Value = client
        .get(&faults)
        .send()
        .await
        .expect("GET /mock/faults")
        .json()
        .await
        .expect("json");
    assert_eq!(current["error_rate"], 1.0);

    let trace = workload(50.0, 400, 16, 4, 3);
    let n = trace.num_requests();
    let mut config = ReplayConfig::new(base_url(&server), MODEL);
    config.api_key = Some("secret".into());
    let records = replay(&trace, &config, CancellationToken::new(), |_| {})
        .await
        .expect("errors are records, not failures");
    assert_eq!(records.len(), n);
    for r in &records {
        assert_eq!(r.status, "error");
        assert_eq!(r.status_code, Some(503));
        assert_eq!(r.error_type.as_deref(), Some("HttpStatus"));
        assert!(
            r.error_message
                .as_deref()
                .is_some_and(|m| m.contains("Injected failure")),
            "{r:?}"
        );
        assert_eq!((r.output_tokens, r.ttft, r.tpot), (0, None, None));
    }
    let summary = Summary::from_records(&records, None);
    assert_eq!(summary.failures, n);
    assert_eq!(summary.status_codes.get("503"), Some(&n));

    // A wrong key: 401 rows.
    client
        .post(&faults)
        .json(&serde_json::json!({"error_rate": 0.0, "extra_latency_ms": 2000}))
        .send()
        .await
        .expect("POST /mock/faults");
    config.api_key = Some("wrong".into());
    let records = replay_all(&trace, &config).await;
    assert!(records.iter().all(|r| r.status_code == Some(401)));

    // Slower than the timeout: Timeout rows without a status code.
    config.api_key = Some("secret".into());
    config.timeout = Duration::from_millis(200);
    let records = replay_all(&trace, &config).await;
    assert_eq!(records.len(), n);
    for r in &records {
        assert_eq!(r.error_type.as_deref(), Some("Timeout"), "{r:?}");
        assert_eq!(r.status_code, None);
        assert!(r.latency >= 0.2);
    }
    server.shutdown().await.expect("shutdown");

    // Nobody listening: ConnectError rows.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let config = ReplayConfig::new(format!("http://{closed_port}"), MODEL);
    let records = replay_all(&trace, &config).await;
    assert_eq!(records.len(), n);
    assert!(
        records
            .iter()
            .all(|r| r.error_type.as_deref() == Some("ConnectError")),
        "{:?}",
        records.first()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_stops_sending_and_returns_what_was_collected() {
    let server = start_mock(|_| {}).await;
    // 20 RPS for 10 s with 1,500-token outputs (~1.5 s each at this scale).
    let trace = workload(20.0, 10_000, 16, 1500, 4);
    let n = trace.num_requests();
    let mut config = sending_lengths(&server);
    config.cancel_grace = Duration::from_millis(200);
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(600)).await;
        trigger.cancel();
    });
    let started = std::time::Instant::now();
    let records = replay(&trace, &config, cancel, |_| {})
        .await
        .expect("replays");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "returned after {took:?}");
    assert!(
        !records.is_empty() && records.len() < n,
        "{} of {n}",
        records.len()
    );
    for r in &records {
        assert!(r.start_time < 0.7, "nothing is sent after the cancellation");
        assert_eq!(r.error_type.as_deref(), Some("Cancelled"), "{r:?}");
        assert_eq!(r.status_code, None);
    }
    server.shutdown().await.expect("shutdown");
}
