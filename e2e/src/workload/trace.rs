//! The workload file: AIBrix's JSONL trace format, its record types, a reader and a writer.
//!
//! This module owns the on-disk contract shared with AIBrix's tooling (`workloads.md` §1): one JSON object per
//! line, `{"timestamp": <ms since trace start>, "requests": [...]}`, every request on a line due at that
//! timestamp. The writer emits the *current* keys (`prompt`, `prompt_length`, `output_length`, `session_id`);
//! the reader accepts the current keys, the *legacy* keys of the committed autoscaling traces (`"Prompt Length"`,
//! `"Output Length"`) and the GPU-optimizer variant (`"Timestamp"`, `"Requests"`, `"Prompt"`, `"Metadata"`),
//! preferring the current keys when both are present. A missing or null output length means "unknown". The
//! reader also accepts the `--output-format json` form (the same rows as one JSON list).
//!
//! Bad input never panics: every malformed line is a [`WorkloadError::Parse`] naming its line number.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::WorkloadError;

/// One request of a workload line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceRequest {
    /// The prompt text (sent as the user message, or as the completions prompt).
    pub prompt: String,
    /// Prompt length in tokens as the generator counted it (mock-vllm's tokenizer), if known.
    #[serde(default)]
    pub prompt_length: Option<u64>,
    /// Intended output length in tokens; `None` (JSON `null`) means unknown.
    #[serde(default)]
    pub output_length: Option<u64>,
    /// Multi-turn grouping; omitted from the file when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}

/// One line of a workload: the requests due `timestamp` milliseconds after the trace starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceEntry {
    /// Milliseconds since the start of the trace.
    pub timestamp: u64,
    /// Requests due at that time (may be empty).
    pub requests: Vec<TraceRequest>,
}

/// A whole workload, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trace {
    /// The lines.
    pub entries: Vec<TraceEntry>,
}

/// A request with its due time, as the replay client schedules it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledRequest {
    /// Position in the flattened trace (line order, then order on the line); the record's `request_id`.
    pub index: u64,
    /// Milliseconds since the start of the trace.
    pub timestamp_ms: u64,
    /// The request.
    pub request: TraceRequest,
}

impl Trace {
    /// Number of requests (a line may hold several or none).
    pub fn num_requests(&self) -> usize {
        self.entries.iter().map(|e| e.requests.len()).sum()
    }

    /// Timestamp of the last line in milliseconds (0 for an empty trace).
    pub fn span_ms(&self) -> u64 {
        self.entries.iter().map(|e| e.timestamp).max().unwrap_or(0)
    }

    /// Every request with its due time, numbered in file order and stably sorted by timestamp.
    pub fn scheduled(&self) -> Vec<ScheduledRequest> {
        let mut out: Vec<ScheduledRequest> = Vec::with_capacity(self.num_requests());
        for entry in &self.entries {
            for request in &entry.requests {
                out.push(ScheduledRequest {
                    index: out.len() as u64,
                    timestamp_ms: entry.timestamp,
                    request: request.clone(),
                });
            }
        }
        out.sort_by_key(|r| r.timestamp_ms);
        out
    }

    /// Reads a workload file (JSONL, or one JSON list).
    pub fn read_path(path: &Path) -> Result<Self, WorkloadError> {
        let file = File::open(path).map_err(|source| WorkloadError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::read(BufReader::new(file)).map_err(|e| e.with_path(path))
    }

    /// Reads a workload from any reader (JSONL, or one JSON list).
    pub fn read(mut reader: impl BufRead) -> Result<Self, WorkloadError> {
        // Peek at the first non-blank byte to tell the JSON-list form from JSONL.
        let first = loop {
            let buf = reader.fill_buf().map_err(WorkloadError::read)?;
            if buf.is_empty() {
                return Ok(Self::default());
            }
            match buf.iter().position(|b| !b.is_ascii_whitespace()) {
                Some(pos) => {
                    let byte = buf[pos];
                    reader.consume(pos);
                    break byte;
                }
                None => {
                    let len = buf.len();
                    reader.consume(len);
                }
            }
        };
        if first == b'[' {
            let mut text = String::new();
            reader
                .read_to_string(&mut text)
                .map_err(WorkloadError::read)?;
            let rows: Vec<Value> =
                serde_json::from_str(&text).map_err(|e| WorkloadError::Parse {
                    path: None,
                    line: e.line(),
                    message: e.to_string(),
                })?;
            let entries = rows
                .iter()
                .enumerate()
                .map(|(i, row)| {
                    parse_entry(row).map_err(|message| WorkloadError::Parse {
                        path: None,
                        line: 0,
                        message: format!("element {} of the JSON list: {message}", i + 1),
                    })
                })
                .collect::<Result<_, _>>()?;
            return Ok(Self { entries });
        }
        let mut entries = Vec::new();
        for (number, line) in reader.lines().enumerate() {
            let line_no = number + 1;
            let line = line.map_err(WorkloadError::read)?;
            let trimmed = line.trim();
            if trimmed.is_empty() {
                continue;
            }
            let parse_error = |message: String| WorkloadError::Parse {
                path: None,
                line: line_no,
                message,
            };
            let value: Value =
                serde_json::from_str(trimmed).map_err(|e| parse_error(e.to_string()))?;
            entries.push(parse_entry(&value).map_err(parse_error)?);
        }
        Ok(Self { entries })
    }

    /// Writes the workload as JSONL with the current keys.
    pub fn write(&self, mut writer: impl Write) -> Result<(), WorkloadError> {
        for entry in &self.entries {
            serde_json::to_writer(&mut writer, entry)
                .map_err(|e| WorkloadError::write(std::io::Error::other(e)))?;
            writer.write_all(b"\n").map_err(WorkloadError::write)?;
        }
        writer.flush().map_err(WorkloadError::write)
    }

    /// Writes the workload to `path` as JSONL with the current keys.
    pub fn write_path(&self, path: &Path) -> Result<(), WorkloadError> {
        let file = File::create(path).map_err(|source| WorkloadError::Io {
            path: path.display().to_string(),
            source,
        })?;
        self.write(BufWriter::new(file))
            .map_err(|e| e.with_path(path))
    }
}

/// The first key of `keys` present in `object` (current keys come first, so they win).
fn lookup<'a>(object: &'a Map<String, Value>, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().find_map(|k| object.get(*k))
}

fn parse_entry(value: &Value) -> Result<TraceEntry, String> {
    let object = value
        .as_object()
        .ok_or_else(|| format!("expected a JSON object, got {}", kind(value)))?;
    let timestamp = lookup(object, &["timestamp", "Timestamp"]).ok_or("missing \"timestamp\"")?;
    let timestamp = as_millis(timestamp).map_err(|e| format!("\"timestamp\": {e}"))?;
    let requests = lookup(object, &["requests", "Requests"]).ok_or("missing \"requests\"")?;
    let requests = requests
        .as_array()
        .ok_or_else(|| format!("\"requests\" must be a list, got {}", kind(requests)))?;
    let requests = requests
        .iter()
        .enumerate()
        .map(|(i, r)| parse_request(r).map_err(|e| format!("request {}: {e}", i + 1)))
        .collect::<Result<_, _>>()?;
    Ok(TraceEntry {
        timestamp,
        requests,
    })
}

fn parse_request(value: &Value) -> Result<TraceRequest, String> {
    let object = value
        .as_object()
        .ok_or_else(|| format!("expected a JSON object, got {}", kind(value)))?;
    let prompt = match lookup(object, &["prompt", "Prompt"]) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => return Err(format!("\"prompt\" must be a string, got {}", kind(other))),
        None => return Err("missing \"prompt\"".into()),
    };
    let prompt_length = optional_count(object, &["prompt_length", "Prompt Length"])?;
    let output_length = optional_count(object, &["output_length", "Output Length"])?;
    let session_id = match object.get("session_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(other) => {
            return Err(format!(
                "\"session_id\" must be a string or number, got {}",
                kind(other)
            ))
        }
    };
    Ok(TraceRequest {
        prompt,
        prompt_length,
        output_length,
        session_id,
    })
}

fn optional_count(object: &Map<String, Value>, keys: &[&str]) -> Result<Option<u64>, String> {
    match lookup(object, keys) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => as_count(v)
            .map(Some)
            .map_err(|e| format!("\"{}\": {e}", keys[0])),
    }
}

/// A non-negative integer; integral floats (`12.0`) are accepted.
fn as_count(value: &Value) -> Result<u64, String> {
    if let Some(n) = value.as_u64() {
        return Ok(n);
    }
    match value.as_f64() {
        Some(f) if f >= 0.0 && f.fract() == 0.0 && f < u64::MAX as f64 => Ok(f as u64),
        Some(f) => Err(format!("expected a non-negative integer, got {f}")),
        None => Err(format!(
            "expected a non-negative integer, got {}",
            kind(value)
        )),
    }
}

/// Milliseconds: a non-negative number; fractions are truncated as AIBrix's `int()` does.
fn as_millis(value: &Value) -> Result<u64, String> {
    if let Some(n) = value.as_u64() {
        return Ok(n);
    }
    match value.as_f64() {
        Some(f) if f >= 0.0 && f.is_finite() && f < u64::MAX as f64 => Ok(f as u64),
        Some(f) => Err(format!("expected milliseconds >= 0, got {f}")),
        None => Err(format!("expected milliseconds >= 0, got {}", kind(value))),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Trace, WorkloadError> {
        Trace::read(text.as_bytes())
    }

    #[test]
    fn reads_current_keys() {
        let trace = read(concat!(
            r#"{"timestamp": 0, "requests": [{"prompt": "hi", "prompt_length": 1, "output_length": 5, "session_id": "s1"}]}"#,
            "\n",
            r#"{"timestamp": 250, "requests": [{"prompt": "a", "prompt_length": 1, "output_length": null}, {"prompt": "b"}]}"#,
            "\n\n"
        ))
        .expect("valid");
        assert_eq!(trace.entries.len(), 2);
        assert_eq!(trace.num_requests(), 3);
        let first = &trace.entries[0].requests[0];
        assert_eq!(first.prompt_length, Some(1));
        assert_eq!(first.output_length, Some(5));
        assert_eq!(first.session_id.as_deref(), Some("s1"));
        assert_eq!(trace.entries[1].timestamp, 250);
        assert_eq!(trace.entries[1].requests[0].output_length, None);
        assert_eq!(trace.entries[1].requests[1].prompt_length, None);
        assert_eq!(trace.span_ms(), 250);
    }

    #[test]
    fn reads_legacy_keys() {
        // The committed autoscaling traces' form (workloads.md §1).
        let trace = read(concat!(
            r#"{"timestamp": 0, "requests": [{"Prompt Length": 3, "Output Length": 22, "prompt": "Where is Beijing"}]}"#,
            "\n",
            r#"{"timestamp": 3827, "requests": [{"Prompt Length": 297, "Output Length": 96, "prompt": "Sure, here is"}]}"#,
        ))
        .expect("legacy");
        let r = &trace.entries[0].requests[0];
        assert_eq!(r.prompt, "Where is Beijing");
        assert_eq!((r.prompt_length, r.output_length), (Some(3), Some(22)));
        assert_eq!(trace.entries[1].timestamp, 3827);
        assert_eq!(trace.entries[1].requests[0].prompt_length, Some(297));
    }

    #[test]
    fn reads_gpu_optimizer_variant_and_prefers_current_keys() {
        let trace = read(concat!(
            r#"{"Timestamp": 12, "Requests": [{"Prompt": "x y", "Prompt Length": 2, "Output Length": 7}], "Metadata": {"rps": 1}}"#,
            "\n",
            r#"{"timestamp": 13, "requests": [{"prompt": "z", "prompt_length": 9, "Prompt Length": 1, "Output Length": 4}]}"#,
        ))
        .expect("variant");
        assert_eq!(trace.entries[0].timestamp, 12);
        assert_eq!(trace.entries[0].requests[0].prompt, "x y");
        assert_eq!(trace.entries[0].requests[0].output_length, Some(7));
        assert_eq!(trace.entries[1].requests[0].prompt_length, Some(9));
        assert_eq!(trace.entries[1].requests[0].output_length, Some(4));
    }

    #[test]
    fn reads_the_json_list_form() {
        let trace = read(r#" [{"timestamp": 1, "requests": [{"prompt": "p"}]}, {"timestamp": 2, "requests": []}]"#)
            .expect("list");
        assert_eq!(trace.entries.len(), 2);
        assert_eq!(trace.num_requests(), 1);
    }

    #[test]
    fn malformed_lines_name_their_line_number() {
        let cases = [
            (
                "{\"timestamp\": 0, \"requests\": []}\n{\"timestamp\": 1, \"requests\": [\n",
                2,
            ),
            (
                "{\"timestamp\": 0, \"requests\": []}\n\n{\"requests\": []}\n",
                3,
            ),
            ("{\"timestamp\": -5, \"requests\": []}\n", 1),
            (
                "{\"timestamp\": 0, \"requests\": [{\"prompt\": 3}]}\n",
                1,
            ),
            (
                "{\"timestamp\": 0, \"requests\": [{\"prompt\": \"a\", \"output_length\": \"many\"}]}\n",
                1,
            ),
            ("[1, 2]\n", 0),
        ];
        for (text, expected) in cases {
            match read(text) {
                Err(WorkloadError::Parse {
                    line, ref message, ..
                }) => {
                    assert_eq!(line, expected, "{text:?}: {message}")
                }
                other => panic!("{text:?}: expected a parse error, got {other:?}"),
            }
        }
        let message = read("{}\n").expect_err("bad").to_string();
        assert!(message.contains("line 1"), "{message}");
    }

    #[test]
    fn writes_current_keys_and_round_trips() {
        let trace = Trace {
            entries: vec![
                TraceEntry {
                    timestamp: 0,
                    requests: vec![TraceRequest {
                        prompt: "hello \"world\"\n".into(),
                        prompt_length: Some(4),
                        output_length: None,
                        session_id: None,
                    }],
                },
                TraceEntry {
                    timestamp: 10,
                    requests: vec![TraceRequest {
                        prompt: "b".into(),
                        prompt_length: Some(1),
                        output_length: Some(3),
                        session_id: Some("7".into()),
                    }],
                },
            ],
        };
        let mut out = Vec::new();
        trace.write(&mut out).expect("write");
        let text = String::from_utf8(out).expect("utf8");
        let first_line = text.lines().next().expect("a line");
        assert_eq!(
            first_line,
            r#"{"timestamp":0,"requests":[{"prompt":"hello \"world\"\n","prompt_length":4,"output_length":null}]}"#
        );
        assert_eq!(read(&text).expect("reads back"), trace);
    }

    #[test]
    fn scheduled_flattens_and_sorts_stably() {
        let req = |p: &str| TraceRequest {
            prompt: p.into(),
            prompt_length: None,
            output_length: None,
            session_id: None,
        };
        let trace = Trace {
            entries: vec![
                TraceEntry {
                    timestamp: 5,
                    requests: vec![req("a"), req("b")],
                },
                TraceEntry {
                    timestamp: 1,
                    requests: vec![req("c")],
                },
            ],
        };
        let s = trace.scheduled();
        let order: Vec<(&str, u64)> = s
            .iter()
            .map(|r| (r.request.prompt.as_str(), r.index))
            .collect();
        assert_eq!(order, vec![("c", 2), ("a", 0), ("b", 1)]);
    }
}
