//! Send-time precision of the open-loop replay client: how late each request leaves compared with its schedule.
//!
//! For each schedule (constant 1,000 and 5,000 RPS Poisson arrivals for 5 s; `E2E_BENCH_SECONDS` changes the
//! length) the client replays against a loopback HTTP server and reports the distribution of
//! `send_error_ms` = actual dispatch − scheduled instant, plus the same for the first and last second (drift).
//!
//! Two targets:
//! - `sink`: a minimal axum handler answering every chat request at once with a canned 1-token SSE stream, so
//!   the numbers are the client's own (the server never lags).
//! - `mock`: mock-vllm with `step_time_scale` 0 and no frontend overhead, one output token per request, to show
//!   the same client while a real simulated engine shares the 2 cores.
//!
//! Both open-loop dispatchers are measured (hybrid: tokio timers nudged by a sleeping thread, the default; and
//! tokio timers only). The server runs on its own one-worker runtime and thread, as a separate process would.
//!
//! Run with `cargo bench -p e2e --bench replay_precision` (add `-- sink` or `-- mock` for one target). No
//! thresholds: it prints numbers.

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use e2e::workload::summary::percentile;
use e2e::workload::{
    generate, Dispatcher, GenerateConfig, Pattern, ReplayConfig, RequestRecord, Trace,
};
use mock_vllm::{EngineArgs, Tokenizer};
use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;

const SSE: &str = concat!(
    "data: {\"id\":\"b\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
    "data: {\"id\":\"b\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" ok\"},\"finish_reason\":\"length\"}]}\n\n",
    "data: {\"id\":\"b\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":8,\"completion_tokens\":1,\"total_tokens\":9}}\n\n",
    "data: [DONE]\n\n",
);

async fn sink() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/event-stream")], SSE)
}

fn listener() -> TcpListener {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_nodelay(true).expect("nodelay");
    socket
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    socket.listen(4096).expect("listen")
}

fn trace(rps: f64, seconds: u64) -> Trace {
    let mut config = GenerateConfig::new(seconds * 1000 - 1, Pattern::Constant(rps));
    config.prompt_len = Some(Pattern::Constant(8.0));
    config.completion_len = Some(Pattern::Constant(1.0));
    config.seed = 1;
    generate(&config, None, &Tokenizer::new())
        .expect("generates")
        .trace
}

fn row(label: &str, values: &mut [f64]) -> String {
    values.sort_by(f64::total_cmp);
    let p = |q| percentile(values, q).map_or("-".into(), |v| format!("{v:.3}"));
    format!(
        "{label:<26} n={:<6} p50 {:>7}  p90 {:>7}  p99 {:>7}  max {:>8} ms",
        values.len(),
        p(0.5),
        p(0.9),
        p(0.99),
        values.last().map_or("-".into(), |v| format!("{v:.3}"))
    )
}

fn report(target: &str, rps: f64, seconds: u64, n: usize, records: &[RequestRecord]) {
    let ok = records.iter().filter(|r| r.is_success()).count();
    let mut all: Vec<f64> = records.iter().filter_map(|r| r.send_error_ms).collect();
    let first = records
        .iter()
        .filter_map(|r| r.scheduled_time)
        .reduce(f64::min)
        .unwrap_or(0.0);
    let window = |from: f64, to: f64| -> Vec<f64> {
        records
            .iter()
            .filter(|r| {
                r.scheduled_time
                    .is_some_and(|t| t - first >= from && t - first < to)
            })
            .filter_map(|r| r.send_error_ms)
            .collect()
    };
    let end = seconds as f64;
    println!(
        "{target} @ {rps} RPS x {seconds} s: {n} scheduled, {} sent, {ok} ok",
        records.len()
    );
    println!("  {}", row("send error (all)", &mut all));
    println!(
        "  {}",
        row("send error (first second)", &mut window(0.0, 1.0))
    );
    println!(
        "  {}",
        row("send error (last second)", &mut window(end - 1.0, end))
    );
}

async fn run(target: &str, url: &str, dispatcher: Dispatcher, rps: f64, seconds: u64) {
    let trace = trace(rps, seconds);
    let mut config = ReplayConfig::new(url, "deepseek-ai/deepseek-llm-7b-chat");
    config.send_output_length = true;
    config.timeout = Duration::from_secs(30);
    config.dispatcher = dispatcher;
    let records = e2e::workload::replay(&trace, &config, CancellationToken::new(), |_| {})
        .await
        .expect("replays");
    let label = format!("{target}, {dispatcher:?} dispatcher");
    report(&label, rps, seconds, trace.num_requests(), &records);
}

/// Serves `target` on its own one-worker runtime and thread (as a separate server process would be), until
/// the returned token is cancelled.
fn serve(target: &'static str) -> (SocketAddr, CancellationToken, std::thread::JoinHandle<()>) {
    let stop = CancellationToken::new();
    let token = stop.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("server runtime");
        runtime.block_on(async move {
            let listener = listener();
            let addr = listener.local_addr().expect("addr");
            if target == "sink" {
                let app = Router::new().route("/v1/chat/completions", post(sink));
                let _ = tx.send(addr);
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(token.cancelled_owned())
                    .await;
            } else {
                let mut args = EngineArgs::for_tests();
                args.step_time_scale = 0.0;
                args.frontend_overhead_ms = 0.0;
                let config = args.validate().expect("valid");
                let server =
                    mock_vllm::start(config, listener, Tokenizer::new(), CancellationToken::new())
                        .expect("mock starts");
                let _ = tx.send(addr);
                token.cancelled().await;
                let _ = server.shutdown().await;
            }
        });
    });
    let addr = rx.recv().expect("server address");
    (addr, stop, thread)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let targets: Vec<&'static str> = ["sink", "mock"]
        .into_iter()
        .filter(|t| !args.iter().any(|a| a == "sink" || a == "mock") || args.iter().any(|a| a == t))
        .collect();
    let seconds: u64 = std::env::var("E2E_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "replay_precision: client on a tokio multi-thread runtime, server on its own 1-worker runtime, {} CPUs, \
         {seconds} s per schedule",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    for target in targets {
        let (addr, stop, thread) = serve(target);
        let url = format!("http://{addr}");
        runtime.block_on(async {
            for dispatcher in [Dispatcher::Hybrid, Dispatcher::Tokio] {
                for rps in [1000.0, 5000.0] {
                    run(target, &url, dispatcher, rps, seconds).await;
                }
            }
        });
        stop.cancel();
        let _ = thread.join();
    }
}
