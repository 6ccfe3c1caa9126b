//! Token counting, chat rendering and output text.
//!
//! Prompt lengths decide everything downstream (prefill time, KV blocks, length errors), so they come from a real
//! byte-level BPE: OpenAI's `cl100k_base` (100k tokens, close to deepseek-llm's 102k vocabulary), whose ranks ship
//! inside the `tiktoken-rs` crate, so nothing is downloaded at run time. The same tokenizer serves `/tokenize` and
//! `/detokenize`, and the e2e workload generator counts prompt lengths with it, so a workload's `prompt_length`
//! is exactly what the mock sees.
//!
//! Chat messages are rendered with deepseek-llm-chat's template (`User: …\n\nAssistant: …`), the default model's
//! own, for every model: the count is deterministic, and close to what a real template adds.
//!
//! Output text is made of single-token English words, so every generated token id decodes on its own to a word
//! and streaming one token per chunk gives readable text.

use std::sync::Arc;

use tiktoken_rs::CoreBPE;

/// A token id outside the vocabulary.
#[derive(Debug, thiserror::Error)]
#[error("token id {0} is out of vocabulary")]
pub struct UnknownToken(pub u32);

/// Words whose leading-space form is a single cl100k token; the output vocabulary.
const OUTPUT_WORDS: &[&str] = &[
    "the",
    "of",
    "and",
    "to",
    "in",
    "a",
    "is",
    "that",
    "for",
    "it",
    "as",
    "was",
    "with",
    "be",
    "by",
    "on",
    "not",
    "he",
    "this",
    "are",
    "or",
    "his",
    "from",
    "at",
    "which",
    "but",
    "have",
    "an",
    "had",
    "they",
    "you",
    "were",
    "their",
    "one",
    "all",
    "we",
    "can",
    "her",
    "has",
    "there",
    "been",
    "if",
    "more",
    "when",
    "will",
    "would",
    "who",
    "so",
    "no",
    "model",
    "data",
    "system",
    "time",
    "request",
    "server",
    "token",
    "cache",
    "memory",
    "batch",
    "latency",
    "scale",
    "load",
    "queue",
    "block",
    "step",
    "engine",
    "value",
    "result",
    "first",
    "new",
    "other",
    "some",
    "what",
    "only",
    "also",
    "into",
    "after",
    "over",
    "then",
    "most",
    "these",
    "two",
    "may",
    "any",
    "like",
    "such",
    "each",
    "than",
    "many",
    "where",
    "well",
    "through",
    "between",
    "under",
    "while",
    "because",
    "same",
    "work",
    "part",
    "use",
    "number",
    "way",
    "even",
    "good",
    "high",
    "long",
    "small",
    "large",
    "next",
    "early",
    "last",
    "own",
    "right",
    "still",
    "here",
    "about",
    "just",
    "very",
    "make",
    "made",
    "know",
    "take",
    "see",
    "come",
    "think",
    "look",
    "want",
    "give",
    "find",
    "tell",
    "ask",
    "seem",
    "feel",
    "try",
    "leave",
    "call",
    "run",
    "set",
    "keep",
    "hold",
    "turn",
    "start",
    "show",
    "hear",
    "play",
    "move",
    "live",
    "believe",
    "bring",
    "happen",
    "write",
    "provide",
    "sit",
    "stand",
    "lose",
    "pay",
    "meet",
    "include",
    "continue",
    "learn",
    "change",
    "lead",
    "understand",
    "watch",
    "follow",
    "stop",
    "create",
    "speak",
    "read",
    "allow",
    "add",
    "spend",
    "grow",
    "open",
    "walk",
    "win",
    "offer",
    "remember",
    "love",
    "consider",
    "appear",
    "buy",
    "wait",
    "serve",
    "die",
    "send",
    "expect",
    "build",
    "stay",
    "fall",
    "cut",
    "reach",
    "remain",
    "suggest",
    "raise",
    "pass",
    "sell",
    "require",
    "report",
    "decide",
    "pull",
];

/// Cheap-to-clone tokenizer handle.
#[derive(Clone)]
pub struct Tokenizer {
    bpe: &'static CoreBPE,
    output_vocabulary: Arc<[u32]>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("encoding", &"cl100k_base")
            .field("output_vocabulary", &self.output_vocabulary.len())
            .finish()
    }
}

impl Default for Tokenizer {
    fn default() -> Self {
        Self::new()
    }
}

/// One chat message, reduced to what the template needs.
#[derive(Debug, Clone, Copy)]
pub struct ChatTurn<'a> {
    /// `system`, `user`, `assistant`, `tool` …
    pub role: &'a str,
    /// The message text (parts concatenated).
    pub content: &'a str,
}

impl Tokenizer {
    /// The cl100k_base tokenizer. The encoding tables are parsed once per process (tiktoken-rs caches them).
    pub fn new() -> Self {
        let bpe = tiktoken_rs::cl100k_base_singleton();
        let vocabulary: Vec<u32> = OUTPUT_WORDS
            .iter()
            .filter_map(|word| {
                let ids = bpe.encode_ordinary(&format!(" {word}"));
                (ids.len() == 1).then(|| ids[0])
            })
            .collect();
        Self {
            bpe,
            output_vocabulary: vocabulary.into(),
        }
    }

    /// Token ids of `text`; special-token strings are encoded as ordinary text.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        self.bpe.encode_ordinary(text)
    }

    /// Number of tokens in `text`.
    pub fn count(&self, text: &str) -> usize {
        self.encode(text).len()
    }

    /// Text of `ids`; invalid UTF-8 at token boundaries becomes U+FFFD, as Hugging Face tokenizers do.
    pub fn decode(&self, ids: &[u32]) -> Result<String, UnknownToken> {
        let bytes = self
            .bpe
            .decode_bytes(ids)
            .map_err(|e| UnknownToken(e.token))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Text of one token.
    pub fn token_str(&self, id: u32) -> Result<String, UnknownToken> {
        self.decode(&[id])
    }

    /// The ids generated output is drawn from (each decodes to " word").
    pub fn output_vocabulary(&self) -> Arc<[u32]> {
        self.output_vocabulary.clone()
    }

    /// The prompt a chat request becomes: deepseek-llm-chat's template.
    pub fn render_chat(&self, messages: &[ChatTurn<'_>], add_generation_prompt: bool) -> String {
        let mut prompt = String::from("<｜begin▁of▁sentence｜>");
        for turn in messages {
            match turn.role {
                "user" => {
                    prompt.push_str("User: ");
                    prompt.push_str(turn.content);
                    prompt.push_str("\n\n");
                }
                "assistant" => {
                    prompt.push_str("Assistant: ");
                    prompt.push_str(turn.content);
                    prompt.push_str("<｜end▁of▁sentence｜>");
                }
                _ => {
                    prompt.push_str(turn.content);
                    prompt.push_str("\n\n");
                }
            }
        }
        if add_generation_prompt {
            prompt.push_str("Assistant:");
        }
        prompt
    }

    /// Synthetic text of exactly `tokens` tokens (used by workload generators when no dataset is given).
    pub fn synthetic_text(&self, tokens: usize, seed: u64) -> String {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let ids: Vec<u32> = (0..tokens)
            .map(|_| self.output_vocabulary[rng.random_range(0..self.output_vocabulary.len())])
            .collect();
        // Every id is a " word" token and words never merge across spaces, so this re-encodes to `tokens` tokens.
        self.decode(&ids).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_real_bpe_counts() {
        let t = Tokenizer::new();
        assert_eq!(t.count("hello world"), 2);
        assert_eq!(t.encode("hello world"), vec![15339, 1917]);
        assert_eq!(t.count(""), 0);
    }

    #[test]
    fn decode_round_trips_and_rejects_unknown_ids() {
        let t = Tokenizer::new();
        let text = "Where is Beijing? 北京 is in China.";
        assert_eq!(t.decode(&t.encode(text)).expect("decodes"), text);
        assert!(t.decode(&[u32::MAX]).is_err());
    }

    #[test]
    fn output_vocabulary_is_single_word_tokens() {
        let t = Tokenizer::new();
        let vocab = t.output_vocabulary();
        assert!(vocab.len() > 150, "{} words", vocab.len());
        for &id in vocab.iter() {
            let s = t.token_str(id).expect("known");
            assert!(s.starts_with(' ') && s.len() > 1, "{s:?}");
        }
    }

    #[test]
    fn synthetic_text_has_the_requested_length() {
        let t = Tokenizer::new();
        for n in [0, 1, 7, 300] {
            assert_eq!(t.count(&t.synthetic_text(n, 42)), n);
        }
        assert_eq!(t.synthetic_text(20, 1), t.synthetic_text(20, 1));
        assert_ne!(t.synthetic_text(20, 1), t.synthetic_text(20, 2));
    }

    #[test]
    fn chat_template_is_deepseek_style() {
        let t = Tokenizer::new();
        let turns = [
            ChatTurn {
                role: "system",
                content: "Be brief.",
            },
            ChatTurn {
                role: "user",
                content: "Hi",
            },
        ];
        let prompt = t.render_chat(&turns, true);
        assert!(
            prompt.ends_with("Be brief.\n\nUser: Hi\n\nAssistant:"),
            "{prompt}"
        );
        assert!(t.count(&prompt) > t.count("Be brief. Hi"));
    }
}
