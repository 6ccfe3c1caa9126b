//! Replays every third-party measured V100 point of `shared/reference/v100-calibration.md` §8 against the engine,
//! closed loop, in paused virtual time, and checks average TTFT and TPOT against the measurements.
//!
//! Setup as measured: Llama-2-7B fp16, vLLM 0.6.5 (V0 scheduling), `--enforce-eager`, max_model_len 4096, block
//! size 16, 32 requests per point at a fixed concurrency, every request generating exactly `out` tokens. The engine
//! runs on tokio's paused clock, so the whole table (≈ 10 simulated minutes) takes well under a second and the
//! numbers are exact and repeatable. `cargo test --test calibration -- --nocapture` prints the table.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use clap::Parser;
use mock_vllm::engine::{self, EngineEvent, EngineHandle, GenerateRequest};
use mock_vllm::metrics::EngineMetrics;
use mock_vllm::{EngineArgs, Tokenizer};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// One row of the measured table.
struct Point {
    row: usize,
    workload: &'static str,
    input: u64,
    output: u64,
    concurrency: usize,
    ttft_ms: f64,
    tpot_ms: f64,
    out_tok_s: f64,
}

#[allow(clippy::too_many_arguments)]
const fn p(
    row: usize,
    workload: &'static str,
    input: u64,
    output: u64,
    concurrency: usize,
    ttft_ms: f64,
    tpot_ms: f64,
    out_tok_s: f64,
) -> Point {
    Point {
        row,
        workload,
        input,
        output,
        concurrency,
        ttft_ms,
        tpot_ms,
        out_tok_s,
    }
}

/// §8: peisuke/flash-attention benchmarks/v100_vllm_serving/RESULTS.md (XFORMERS), Tesla V100-SXM2-32GB.
const MEASURED: &[Point] = &[
    p(1, "short", 128, 128, 1, 68.0, 26.6, 37.1),
    p(2, "short", 128, 128, 2, 89.0, 27.8, 70.6),
    p(3, "short", 128, 128, 4, 210.0, 28.9, 131.9),
    p(4, "short", 128, 128, 8, 219.0, 29.7, 256.4),
    p(5, "short", 128, 128, 16, 406.0, 31.8, 460.6),
    p(6, "medium", 512, 256, 1, 110.0, 28.1, 35.2),
    p(7, "medium", 512, 256, 2, 166.0, 29.4, 66.8),
    p(8, "medium", 512, 256, 4, 327.0, 29.9, 128.8),
    p(9, "medium", 512, 256, 8, 1298.0, 31.4, 220.0),
    p(10, "medium", 512, 256, 16, 1065.0, 37.8, 382.7),
    p(11, "long", 1024, 512, 1, 208.0, 28.1, 35.1),
    p(12, "long", 1024, 512, 2, 314.0, 28.6, 68.6),
    p(13, "long", 1024, 512, 4, 645.0, 29.7, 129.3),
    p(14, "long", 1024, 512, 8, 1038.0, 35.0, 216.7),
    p(15, "long", 1024, 512, 16, 1850.0, 45.1, 329.2),
    p(16, "very_long", 2048, 256, 1, 416.0, 28.6, 33.2),
    p(17, "very_long", 2048, 256, 2, 626.0, 30.5, 61.0),
    p(18, "very_long", 2048, 256, 4, 1043.0, 34.1, 105.1),
    p(19, "very_long", 2048, 256, 8, 1876.0, 44.2, 155.6),
    p(20, "very_long", 2048, 256, 16, 5548.0, 57.7, 172.3),
];

const REQUESTS_PER_POINT: usize = 32;

/// Rows whose measured TTFT average the source itself flags as contaminated; their TTFT is printed but held only to
/// the monotonicity check below. TPOT and throughput are still checked on them.
/// - Rows 1–3 (the "short" workload, run first): warm-up tails (p99 341 ms and 979 ms against averages of 68 and
///   210 ms). Every other concurrency-1 point (rows 6, 11, 16) agrees with the simulation within 2.5%, and so do
///   rows 4–5 of the same workload.
/// - Row 9: its TTFT (1,298 ms) is higher than row 10's at twice the concurrency (1,065 ms): measurement noise,
///   which the calibration doc excludes.
const TTFT_OUTLIERS: &[(usize, &str)] = &[
    (1, "warm-up tail in the measurement"),
    (2, "warm-up tail in the measurement"),
    (3, "warm-up tail in the measurement"),
    (9, "measurement noise (row 9 > row 10)"),
];

struct Simulated {
    ttft_ms: f64,
    tpot_ms: f64,
    out_tok_s: f64,
}

async fn one_request(engine: &EngineHandle, input: u64, output: u64) -> (f64, f64) {
    let arrival = Instant::now();
    let mut stream = engine
        .generate(GenerateRequest {
            prompt_tokens: input,
            max_tokens: output,
            params_max_tokens: Some(output),
            min_tokens: 0,
            ignore_eos: true,
            seed: None,
            params_n: Some(1),
            arrival,
        })
        .expect("engine runs");
    let mut first = None;
    let mut tokens = 0u64;
    while let Some(event) = stream.recv().await {
        if let EngineEvent::Token { finished, .. } = event {
            tokens += 1;
            first.get_or_insert_with(Instant::now);
            if finished.is_some() {
                break;
            }
        }
    }
    assert_eq!(tokens, output, "ignore_eos generates exactly max_tokens");
    let end = Instant::now();
    let first = first.expect("at least one token");
    let ttft = (first - arrival).as_secs_f64();
    let tpot = (end - first).as_secs_f64() / (output - 1) as f64;
    (ttft, tpot)
}

async fn simulate(point: &Point) -> Simulated {
    let args = EngineArgs::try_parse_from([
        "mock-vllm",
        "--model",
        "meta-llama/Llama-2-7b-hf",
        "--enforce-eager",
        "--max-model-len",
        "4096",
        "--startup-delay",
        "0",
    ])
    .expect("args");
    let config = Arc::new(args.validate().expect("valid"));
    assert_eq!(
        config.num_gpu_blocks, 1846,
        "the validation profile's block count"
    );
    let shutdown = CancellationToken::new();
    let (engine, task) = engine::spawn(
        config.clone(),
        &Tokenizer::new(),
        EngineMetrics::new(&config),
        shutdown.clone(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..point.concurrency)
        .map(|_| {
            let engine = engine.clone();
            let next = next.clone();
            let (input, output) = (point.input, point.output);
            tokio::spawn(async move {
                let mut results = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < REQUESTS_PER_POINT {
                    results.push(one_request(&engine, input, output).await);
                }
                results
            })
        })
        .collect();
    let mut results = Vec::new();
    for worker in workers {
        results.extend(worker.await.expect("worker"));
    }
    let elapsed = start.elapsed().as_secs_f64();
    shutdown.cancel();
    task.await.expect("engine task");
    let n = results.len() as f64;
    Simulated {
        ttft_ms: results.iter().map(|r| r.0).sum::<f64>() / n * 1e3,
        tpot_ms: results.iter().map(|r| r.1).sum::<f64>() / n * 1e3,
        out_tok_s: REQUESTS_PER_POINT as f64 * point.output as f64 / elapsed,
    }
}

fn error(simulated: f64, measured: f64) -> f64 {
    (simulated - measured) / measured
}

#[tokio::test(start_paused = true)]
async fn every_measured_v100_point_within_tolerance() {
    const TOLERANCE: f64 = 0.15;
    const THROUGHPUT_TOLERANCE: f64 = 0.10;
    println!(
        "\n{:>3} {:<10} {:>9} {:>4} | {:>9} {:>9} {:>7} | {:>8} {:>8} {:>7} | {:>9} {:>9} {:>7}",
        "#",
        "workload",
        "in/out",
        "conc",
        "TTFT meas",
        "TTFT sim",
        "err",
        "TPOT mea",
        "TPOT sim",
        "err",
        "tok/s mea",
        "tok/s sim",
        "err"
    );
    let mut failures = Vec::new();
    let mut previous: Option<(&str, f64)> = None;
    for point in MEASURED {
        let sim = simulate(point).await;
        let measured_tok_s = point.out_tok_s;
        let ttft_err = error(sim.ttft_ms, point.ttft_ms);
        let tpot_err = error(sim.tpot_ms, point.tpot_ms);
        let tok_err = error(sim.out_tok_s, measured_tok_s);
        let outlier = TTFT_OUTLIERS.iter().find(|(row, _)| *row == point.row);
        println!(
            "{:>3} {:<10} {:>9} {:>4} | {:>9.0} {:>9.0} {:>+6.1}% | {:>8.1} {:>8.1} {:>+6.1}% | {:>9.1} {:>9.1} {:>+6.1}%{}",
            point.row,
            point.workload,
            format!("{}/{}", point.input, point.output),
            point.concurrency,
            point.ttft_ms,
            sim.ttft_ms,
            ttft_err * 100.0,
            point.tpot_ms,
            sim.tpot_ms,
            tpot_err * 100.0,
            measured_tok_s,
            sim.out_tok_s,
            tok_err * 100.0,
            outlier.map_or(String::new(), |(_, why)| format!("  (TTFT not held: {why})")),
        );
        if outlier.is_none() && ttft_err.abs() > TOLERANCE {
            failures.push(format!("row {} TTFT {:+.1}%", point.row, ttft_err * 100.0));
        }
        if tpot_err.abs() > TOLERANCE {
            failures.push(format!("row {} TPOT {:+.1}%", point.row, tpot_err * 100.0));
        }
        if tok_err.abs() > THROUGHPUT_TOLERANCE {
            failures.push(format!(
                "row {} out tok/s {:+.1}%",
                point.row,
                tok_err * 100.0
            ));
        }
        // Within a workload, queueing makes TTFT grow with concurrency.
        if let Some((workload, ttft)) = previous {
            if workload == point.workload && sim.ttft_ms <= ttft {
                failures.push(format!(
                    "row {} TTFT does not grow with concurrency",
                    point.row
                ));
            }
        }
        previous = Some((point.workload, sim.ttft_ms));
    }
    assert!(failures.is_empty(), "outside tolerance: {failures:?}");
}
