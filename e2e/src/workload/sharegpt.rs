//! Prompt datasets: loading ShareGPT-format files into prompts with token lengths.
//!
//! This module owns dataset parsing so the generator only sees `(prompt, prompt_len, completion_len)` rows.
//! Accepted forms, detected per file:
//! - ShareGPT: a JSON list (or JSONL) of `{"conversations": [{"from": "human", "value": …}, {"from": "gpt", …}]}`.
//!   The first human (`human`/`user`) turn is the prompt; the turn after it, if it is the model's
//!   (`gpt`/`assistant`/`chatgpt`/`bard`/`bing`), is the completion. Conversations without a human turn are skipped.
//! - AIBrix's `--prompt-file` plain form: JSONL (or a JSON list) of `{"prompt": …, "completion": …?}`.
//!
//! Lengths are counted with mock-vllm's tokenizer, the same one that counts prompts on the server, so a matched
//! `prompt_length` is what the mock will see (before the chat template). AIBrix's multi-turn form
//! (`{"session_id", "prompts": […]}`) is rejected with a message: the replay client has no conversation state yet.
//!
//! Rows are kept sorted by prompt length so the generator's length matching can select a range by binary search.

use std::path::Path;

use mock_vllm::Tokenizer;
use serde_json::Value;

use super::WorkloadError;

/// One usable prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetRow {
    /// The prompt text.
    pub prompt: String,
    /// Its length in tokens.
    pub prompt_len: u64,
    /// Length of the reference completion in tokens, when the dataset has one.
    pub completion_len: Option<u64>,
}

/// A prompt dataset, sorted by prompt length.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    rows: Vec<DatasetRow>,
}

impl Dataset {
    /// A dataset from rows (sorted here by prompt length; order among equal lengths is kept).
    pub(crate) fn from_rows(mut rows: Vec<DatasetRow>) -> Self {
        rows.sort_by_key(|r| r.prompt_len);
        Self { rows }
    }

    /// The rows, sorted by prompt length.
    pub fn rows(&self) -> &[DatasetRow] {
        &self.rows
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Index range of the rows whose prompt length lies in `[lo, hi]`.
    pub(crate) fn prompt_range(&self, lo: f64, hi: f64) -> std::ops::Range<usize> {
        let start = self.rows.partition_point(|r| (r.prompt_len as f64) < lo);
        let end = self.rows.partition_point(|r| (r.prompt_len as f64) <= hi);
        start..end.max(start)
    }

    /// Loads a dataset file, counting lengths with `tokenizer`.
    pub fn load(path: &Path, tokenizer: &Tokenizer) -> Result<Self, WorkloadError> {
        let text = std::fs::read_to_string(path).map_err(|source| WorkloadError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, tokenizer).map_err(|message| WorkloadError::Dataset {
            path: path.display().to_string(),
            message,
        })
    }

    /// Parses dataset text (a JSON list or JSONL). The error names the line or list element.
    pub fn parse(text: &str, tokenizer: &Tokenizer) -> Result<Self, String> {
        let trimmed = text.trim_start();
        let items: Vec<(String, Value)> = if trimmed.starts_with('[') {
            let list: Vec<Value> =
                serde_json::from_str(trimmed).map_err(|e| format!("not a JSON list: {e}"))?;
            list.into_iter()
                .enumerate()
                .map(|(i, v)| (format!("element {}", i + 1), v))
                .collect()
        } else {
            text.lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
                .map(|(i, l)| {
                    serde_json::from_str(l)
                        .map(|v| (format!("line {}", i + 1), v))
                        .map_err(|e| format!("line {}: {e}", i + 1))
                })
                .collect::<Result<_, _>>()?
        };
        let mut rows = Vec::with_capacity(items.len());
        for (place, item) in items {
            if let Some((prompt, completion)) =
                extract(&item).map_err(|e| format!("{place}: {e}"))?
            {
                if prompt.is_empty() {
                    continue;
                }
                rows.push(DatasetRow {
                    prompt_len: tokenizer.count(&prompt) as u64,
                    completion_len: completion.map(|c| tokenizer.count(&c) as u64),
                    prompt,
                });
            }
        }
        if rows.is_empty() {
            return Err("no usable prompts (expected ShareGPT conversations or {\"prompt\", \"completion\"} rows)".into());
        }
        Ok(Self::from_rows(rows))
    }
}

type Extracted = Option<(String, Option<String>)>;

/// The prompt and completion of one dataset item; `None` to skip it.
fn extract(item: &Value) -> Result<Extracted, String> {
    let object = item.as_object().ok_or("expected a JSON object")?;
    if let Some(conversations) = object
        .get("conversations")
        .or_else(|| object.get("conversation"))
    {
        let turns = conversations
            .as_array()
            .ok_or("\"conversations\" must be a list")?;
        let role = |t: &Value| {
            t.get("from")
                .or_else(|| t.get("role"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_ascii_lowercase()
        };
        let text = |t: &Value| {
            t.get("value")
                .or_else(|| t.get("content"))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let Some(first) = turns
            .iter()
            .position(|t| matches!(role(t).as_str(), "human" | "user"))
        else {
            return Ok(None);
        };
        let Some(prompt) = text(&turns[first]) else {
            return Ok(None);
        };
        let completion = turns
            .get(first + 1)
            .filter(|t| {
                matches!(
                    role(t).as_str(),
                    "gpt" | "assistant" | "chatgpt" | "bard" | "bing"
                )
            })
            .and_then(text);
        return Ok(Some((prompt, completion)));
    }
    if object.contains_key("prompts") {
        return Err(
            "multi-turn rows ({\"session_id\", \"prompts\"}) are not supported; use single-turn prompts".into(),
        );
    }
    match object.get("prompt") {
        Some(Value::String(prompt)) => {
            let completion = match object.get("completion") {
                None | Some(Value::Null) => None,
                Some(Value::String(c)) => Some(c.clone()),
                Some(_) => return Err("\"completion\" must be a string".into()),
            };
            Ok(Some((prompt.clone(), completion)))
        }
        Some(_) => Err("\"prompt\" must be a string".into()),
        None => Err("neither \"conversations\" nor \"prompt\"".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sharegpt_lists_and_counts_tokens() {
        let t = Tokenizer::new();
        let text = r#"[
            {"id": "a", "conversations": [{"from": "human", "value": "hello world"}, {"from": "gpt", "value": "hi there friend"}]},
            {"id": "b", "conversations": [{"from": "gpt", "value": "orphan"}]},
            {"id": "c", "conversations": [{"from": "system", "value": "s"}, {"from": "human", "value": "Where is Beijing"}]}
        ]"#;
        let ds = Dataset::parse(text, &t).expect("parses");
        assert_eq!(ds.len(), 2);
        let rows = ds.rows();
        assert_eq!(rows[0].prompt, "hello world");
        assert_eq!(rows[0].prompt_len, 2);
        assert_eq!(
            rows[0].completion_len,
            Some(t.count("hi there friend") as u64)
        );
        assert_eq!(rows[1].prompt, "Where is Beijing");
        assert_eq!(rows[1].completion_len, None);
    }

    #[test]
    fn reads_prompt_completion_jsonl_and_reports_bad_lines() {
        let t = Tokenizer::new();
        let ds = Dataset::parse(
            "{\"prompt\": \"one two three\", \"completion\": \"x\"}\n\n{\"prompt\": \"a\"}\n",
            &t,
        )
        .expect("parses");
        assert_eq!(ds.len(), 2);
        assert_eq!(ds.rows()[0].prompt, "a");
        let err = Dataset::parse("{\"prompt\": \"a\"}\n{oops\n", &t).expect_err("bad");
        assert!(err.starts_with("line 2"), "{err}");
        let err = Dataset::parse("{\"session_id\": 1, \"prompts\": [\"a\"]}\n", &t)
            .expect_err("multi-turn");
        assert!(err.contains("multi-turn"), "{err}");
        assert!(Dataset::parse("[]", &t).is_err());
    }

    #[test]
    fn prompt_range_selects_by_length() {
        let row = |len: u64| DatasetRow {
            prompt: format!("p{len}"),
            prompt_len: len,
            completion_len: None,
        };
        let ds = Dataset::from_rows(vec![row(50), row(10), row(30), row(30), row(90)]);
        let lens = |r: std::ops::Range<usize>| -> Vec<u64> {
            ds.rows()[r].iter().map(|r| r.prompt_len).collect()
        };
        assert_eq!(lens(ds.prompt_range(15.0, 50.0)), vec![30, 30, 50]);
        assert_eq!(lens(ds.prompt_range(91.0, 100.0)), Vec::<u64>::new());
        assert_eq!(lens(ds.prompt_range(0.0, 1e9)).len(), 5);
    }
}
