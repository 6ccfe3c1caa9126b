//! The `autoscale-harness workload` commands as a user runs them: generate a file (and its plot), replay a legacy
//! AIBrix file against an in-process mock-vllm, and errors that say what to fix.

mod common;

use std::process::Output;

use e2e::workload::Trace;
use mock_vllm::Tokenizer;
use serde_json::Value;

use common::mock::start_mock;
use common::{harness, run_harness, temp_dir};

fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn generate_writes_a_readable_workload_and_a_plot() {
    let dir = temp_dir("cli-generate");
    let (file, plot) = (dir.join("w.jsonl"), dir.join("w.svg"));
    let output = run_harness(
        "workload generate --trace-type steps --steps 1,4,8,10,2,6 --duration-s 12 --target-prompt-len 32 \
         --seed 5 --completion-len-pattern slight_fluctuation --completion-len-mean 40",
        &[("--output", &file), ("--plot", &plot)],
    )
    .await;
    assert!(output.status.success(), "{}", text(&output));
    let trace = Trace::read_path(&file).expect("reads back");
    assert!(trace.num_requests() > 20, "{}", trace.num_requests());
    let tokenizer = Tokenizer::new();
    for r in trace.entries.iter().flat_map(|e| &e.requests) {
        assert_eq!(r.prompt_length, Some(32));
        assert_eq!(tokenizer.count(&r.prompt), 32);
        assert!(r.output_length.is_some_and(|o| (35..=45).contains(&o)));
    }
    let raw = std::fs::read_to_string(&file).expect("file");
    assert!(raw.contains("\"prompt_length\":32") && !raw.contains("Prompt Length"));
    assert!(std::fs::read_to_string(&plot)
        .expect("plot")
        .starts_with("<svg"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn bad_flags_say_what_to_fix() {
    let dir = temp_dir("cli-errors");
    let out = dir.join("w.jsonl");
    let cases: [(&[&str], &str); 4] = [
        (&["--trace-type", "synthetic"], "--traffic-pattern"),
        (&["--trace-type", "steps"], "--steps 1,4,8,10,2,6"),
        (
            &[
                "--trace-type",
                "synthetic",
                "--traffic-pattern-config",
                "{\"mean\": 6}",
            ],
            "fluctuate",
        ),
        (&["--trace-type", "steps", "--steps", "1,x"], "\"x\""),
    ];
    for (args, hint) in cases {
        let output = harness()
            .args(["workload", "generate"])
            .args(args)
            .arg("--output")
            .arg(&out)
            .output()
            .await
            .expect("runs");
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(hint), "{args:?}: {stderr}");
    }
    let bad = dir.join("bad.jsonl");
    std::fs::write(&bad, "{\"timestamp\": 0, \"requests\": []}\nnot json\n").expect("write");
    let output = run_harness(
        "workload replay --model m",
        &[("--workload", &bad), ("--output", &dir.join("r.jsonl"))],
    )
    .await;
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("line 2"),
        "{}",
        text(&output)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_reads_a_legacy_file_and_writes_records_and_a_summary() {
    let server = start_mock(|_| {}).await;
    let dir = temp_dir("cli-replay");
    let workload = dir.join("legacy.jsonl");
    std::fs::write(
        &workload,
        concat!(
            "{\"timestamp\": 0, \"requests\": [{\"Prompt Length\": 3, \"Output Length\": 5, \"prompt\": \"Where is Beijing\"}]}\n",
            "{\"timestamp\": 100, \"requests\": [{\"Prompt Length\": 2, \"Output Length\": 3, \"prompt\": \"hello world\"}, {\"Prompt Length\": 1, \"Output Length\": 4, \"prompt\": \"hi\"}]}\n",
            "{\"timestamp\": 300, \"requests\": [{\"Prompt Length\": 1, \"Output Length\": null, \"prompt\": \"ok\"}]}\n",
        ),
    )
    .expect("write");
    let (records, summary) = (dir.join("out.jsonl"), dir.join("summary.json"));
    let command = format!(
        "workload replay --model deepseek-ai/deepseek-llm-7b-chat --endpoint http://{} --send-output-length \
         --output-token-limit 8 --slo-ttft-ms 5000 --no-progress",
        server.addr
    );
    let output = run_harness(
        &command,
        &[
            ("--workload", &workload),
            ("--output", &records),
            ("--summary", &summary),
        ],
    )
    .await;
    assert!(output.status.success(), "{}", text(&output));
    let rows: Vec<Value> = std::fs::read_to_string(&records)
        .expect("records")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json row"))
        .collect();
    assert_eq!(rows.len(), 4);
    // The fields AIBrix's plot-everything.py requires, and the harness's own.
    for row in &rows {
        for key in [
            "request_id",
            "status",
            "status_code",
            "start_time",
            "end_time",
            "latency",
            "throughput",
            "prompt_tokens",
            "output_tokens",
            "total_tokens",
            "input",
            "output",
            "ttft",
            "tpot",
            "error_type",
            "error_message",
            "scheduled_time",
            "send_error_ms",
            "start_unix",
        ] {
            assert!(row.get(key).is_some(), "{key} missing in {row}");
        }
        assert_eq!(row["status_code"], 200, "{row}");
    }
    let outputs: Vec<u64> = rows
        .iter()
        .map(|r| r["output_tokens"].as_u64().expect("tokens"))
        .collect();
    assert_eq!(
        &outputs[..3],
        &[5, 3, 4],
        "the workload's lengths were sent"
    );
    assert!(outputs[3] <= 8, "no length: capped by --output-token-limit");
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).expect("summary")).expect("json");
    assert_eq!(summary["count"], 4);
    assert_eq!(summary["failures"], 0);
    assert_eq!(summary["goodput"]["requests"], 4);
    assert!(String::from_utf8_lossy(&output.stdout).contains("requests 4"));
    server.shutdown().await.expect("shutdown");
    let _ = std::fs::remove_dir_all(&dir);
}
