//! One generation request as the scheduler sees it: token counts, progress, and its own seeded token source.
//!
//! Plays vLLM's `v1/request.py`. A request never stores text: its prompt is a token count (the API layer has
//! tokenized it), its output is a list of token ids drawn from a per-request seeded RNG, and progress is
//! `num_computed_tokens` moving towards `num_tokens()` (prompt + output), so prefill, chunked prefill, decode and
//! recompute after preemption are all the same motion.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

/// Engine-internal request identity (unique per engine).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// Why a request stopped; the label values of `vllm:request_success_total{finished_reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// Natural end of the answer (EOS).
    Stop,
    /// `max_tokens` or `max_model_len` reached.
    Length,
    /// Cancelled by the client (disconnect) or the server (shutdown).
    Abort,
}

impl FinishReason {
    /// The OpenAI `finish_reason` / Prometheus label value.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Abort => "abort",
        }
    }
}

/// Where a request is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestStatus {
    /// In the waiting queue, never scheduled.
    Waiting,
    /// In the running set.
    Running,
    /// Back in the waiting queue after losing its blocks.
    Preempted,
}

/// A request inside the scheduler.
#[derive(Debug)]
pub struct Request {
    /// Identity.
    pub id: RequestId,
    /// Prompt length in tokens.
    pub prompt_len: u64,
    /// Upper bound on generated tokens (`max_tokens`, or what `max_model_len` leaves).
    pub max_tokens: u64,
    /// How many tokens this request will generate: the cap, or an earlier natural end.
    pub target_output_len: u64,
    /// Generated token ids so far.
    pub output_tokens: Vec<u32>,
    /// Tokens whose KV has been computed.
    pub num_computed_tokens: u64,
    /// Tokens scheduled in the step in flight (0 when not scheduled).
    pub scheduled_tokens: u64,
    /// Lifecycle state.
    pub status: RequestStatus,
    /// Times this request was preempted.
    pub num_preemptions: u64,
    token_source: TokenSource,
}

impl Request {
    /// A new waiting request. `target_output_len` is clamped to `1..=max_tokens`.
    pub fn new(
        id: RequestId,
        prompt_len: u64,
        max_tokens: u64,
        target_output_len: u64,
        token_source: TokenSource,
    ) -> Self {
        Self {
            id,
            prompt_len,
            max_tokens,
            target_output_len: target_output_len.clamp(1, max_tokens.max(1)),
            output_tokens: Vec::new(),
            num_computed_tokens: 0,
            scheduled_tokens: 0,
            status: RequestStatus::Waiting,
            num_preemptions: 0,
            token_source,
        }
    }

    /// Prompt plus generated tokens.
    pub fn num_tokens(&self) -> u64 {
        self.prompt_len + self.output_tokens.len() as u64
    }

    /// Tokens still to compute before the next token can be sampled.
    pub fn num_uncomputed_tokens(&self) -> u64 {
        self.num_tokens() - self.num_computed_tokens
    }

    /// True when the next step for this request is a one-token decode rather than (re)prefill.
    pub fn is_decoding(&self) -> bool {
        !self.output_tokens.is_empty() && self.num_uncomputed_tokens() == 1
    }

    /// Draws the next output token and appends it.
    pub fn sample_next_token(&mut self) -> u32 {
        let token = self.token_source.next_token();
        self.output_tokens.push(token);
        token
    }

    /// The finish reason once the target length is reached, else `None`.
    pub fn finish_reason(&self) -> Option<FinishReason> {
        let generated = self.output_tokens.len() as u64;
        if generated < self.target_output_len {
            None
        } else if self.target_output_len >= self.max_tokens {
            Some(FinishReason::Length)
        } else {
            Some(FinishReason::Stop)
        }
    }
}

/// Deterministic pseudo-text: token ids drawn uniformly from a fixed vocabulary by a seeded ChaCha8 RNG (whose
/// stream is specified, so the same seed gives the same text on every platform).
#[derive(Debug)]
pub struct TokenSource {
    rng: ChaCha8Rng,
    vocabulary: Arc<[u32]>,
}

impl TokenSource {
    /// A source over `vocabulary` (must not be empty) seeded with `rng`.
    pub fn new(rng: ChaCha8Rng, vocabulary: Arc<[u32]>) -> Self {
        Self { rng, vocabulary }
    }

    fn next_token(&mut self) -> u32 {
        if self.vocabulary.is_empty() {
            return 0;
        }
        let index = self.rng.random_range(0..self.vocabulary.len());
        self.vocabulary[index]
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Builders for scheduler tests.
    use super::*;
    use rand::SeedableRng;

    /// A request with `prompt` prompt tokens that generates exactly `output` tokens.
    pub fn request(id: u64, prompt: u64, output: u64) -> Request {
        request_with_cap(id, prompt, output, output)
    }

    /// A request capped at `max_tokens` that ends naturally after `target` tokens.
    pub fn request_with_cap(id: u64, prompt: u64, max_tokens: u64, target: u64) -> Request {
        let source = TokenSource::new(ChaCha8Rng::seed_from_u64(id), Arc::from(vec![1u32, 2, 3]));
        Request::new(RequestId(id), prompt, max_tokens, target, source)
    }
}
