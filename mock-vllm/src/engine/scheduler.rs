//! Continuous batching: which requests run in the next engine step, and how many tokens each computes.
//!
//! Plays vLLM's scheduler (`v1/core/sched/scheduler.py`, and `core/scheduler.py` for the V0 rules). A plain
//! synchronous struct: no clock, no channels, so every rule is unit-tested directly. The engine loop calls
//! [`Scheduler::schedule`], sleeps for the step time, then calls [`Scheduler::update_from_output`].
//!
//! Two step compositions, chosen by `--enable-chunked-prefill`:
//! - **Prefill-first** (V0, chunked prefill off; the default for the V100 profile). If waiting requests can be
//!   admitted (FCFS; whole prompts within the token budget and `max_num_seqs`; enough free blocks above a 1%
//!   watermark), the step is prefill-only and running requests wait. Otherwise every running request decodes one
//!   token. A prompt that could never fit in the cache is finished at once ("ignored").
//! - **Chunked** (V1). Running requests first (one token each, or the rest of their prefill chunk), then waiting
//!   requests FCFS while the token budget lasts; prompts are cut into chunks to fit the budget. Nothing is admitted
//!   in a step that preempted.
//!
//! In both, when a running request cannot get its next block, the most recently admitted running request is
//! preempted by recompute: its blocks are freed, its progress reset, and it goes to the front of the waiting queue,
//! keeping its generated tokens (they are prefilled again on re-admission).

use std::collections::VecDeque;

use crate::config::EngineConfig;

use super::kv_cache::KvCacheManager;
use super::request::{FinishReason, Request, RequestId, RequestStatus};
use super::timing::StepShape;

/// How a step is composed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedulingMode {
    /// V0: prefill-only steps take priority over decode steps; prompts are never chunked.
    PrefillFirst,
    /// V1: mixed steps, chunked prefill.
    Chunked,
}

/// The scheduler's limits.
#[derive(Debug, Clone, Copy)]
pub struct SchedulerConfig {
    /// `--max-num-seqs`: size limit of the running set.
    pub max_num_seqs: u64,
    /// `--max-num-batched-tokens`: token budget of one step.
    pub max_num_batched_tokens: u64,
    /// Step composition.
    pub mode: SchedulingMode,
    /// Blocks kept free at admission (V0: 1% of the pool; 0 in chunked mode).
    pub watermark_blocks: u64,
}

/// The engine reads its limits off the validated configuration: chunked prefill picks the V1 composition, and V0
/// keeps 1% of the blocks free at admission.
impl From<&EngineConfig> for SchedulerConfig {
    fn from(config: &EngineConfig) -> Self {
        let (mode, watermark_blocks) = if config.args.enable_chunked_prefill {
            (SchedulingMode::Chunked, 0)
        } else {
            (SchedulingMode::PrefillFirst, config.num_gpu_blocks / 100)
        };
        Self {
            max_num_seqs: config.args.max_num_seqs,
            max_num_batched_tokens: config.max_num_batched_tokens,
            mode,
            watermark_blocks,
        }
    }
}

/// What [`Scheduler::schedule`] decided for the coming step.
#[derive(Debug, Default)]
pub struct SchedulerOutput {
    /// Requests that compute in this step, with their token counts, in running order.
    pub scheduled: Vec<(RequestId, u64)>,
    /// The step's shape for the time model.
    pub shape: StepShape,
    /// Requests preempted while scheduling this step.
    pub preempted: Vec<RequestId>,
    /// Requests finished without running because they can never fit (V0 "ignored").
    pub ignored: Vec<Request>,
}

/// A request that finished during [`Scheduler::update_from_output`].
#[derive(Debug)]
pub struct Finished {
    /// The request, removed from the scheduler, with its blocks freed.
    pub request: Request,
    /// Why it finished.
    pub reason: FinishReason,
}

/// What one step produced.
#[derive(Debug, Default)]
pub struct StepOutput {
    /// One new token per request that sampled this step, in running order.
    pub new_tokens: Vec<(RequestId, u32)>,
    /// Requests that sampled their first token this step, with their prompt lengths.
    pub first_tokens: Vec<(RequestId, u64)>,
    /// Requests that finished this step.
    pub finished: Vec<Finished>,
}

/// Waiting queue, running set and the KV cache they share.
#[derive(Debug)]
pub struct Scheduler {
    config: SchedulerConfig,
    kv: KvCacheManager,
    waiting: VecDeque<Request>,
    running: Vec<Request>,
    total_preemptions: u64,
}

impl Scheduler {
    /// An empty scheduler over `kv`.
    pub fn new(config: SchedulerConfig, kv: KvCacheManager) -> Self {
        Self {
            config,
            kv,
            waiting: VecDeque::new(),
            running: Vec::new(),
            total_preemptions: 0,
        }
    }

    /// Appends a request to the waiting queue (FCFS).
    pub fn add_request(&mut self, request: Request) {
        self.waiting.push_back(request);
    }

    /// Removes a request wherever it is and frees its blocks. `None` if it is unknown or already finished.
    pub fn abort(&mut self, id: RequestId) -> Option<Request> {
        let request = if let Some(pos) = self.running.iter().position(|r| r.id == id) {
            self.running.remove(pos)
        } else {
            let pos = self.waiting.iter().position(|r| r.id == id)?;
            self.waiting.remove(pos)?
        };
        self.kv.free(id);
        Some(request)
    }

    /// Removes every request (engine shutdown).
    pub fn abort_all(&mut self) -> Vec<Request> {
        let mut all: Vec<Request> = self.running.drain(..).collect();
        all.extend(self.waiting.drain(..));
        for request in &all {
            self.kv.free(request.id);
        }
        all
    }

    /// True when there is anything to schedule.
    pub fn has_work(&self) -> bool {
        !self.waiting.is_empty() || !self.running.is_empty()
    }

    /// Requests in the running set.
    pub fn num_running(&self) -> usize {
        self.running.len()
    }

    /// Requests in the waiting queue, preempted ones included.
    pub fn num_waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Preemptions since start.
    pub fn total_preemptions(&self) -> u64 {
        self.total_preemptions
    }

    /// The KV cache.
    pub fn kv_cache(&self) -> &KvCacheManager {
        &self.kv
    }

    /// Decides the next step.
    pub fn schedule(&mut self) -> SchedulerOutput {
        let mut out = SchedulerOutput::default();
        let mut budget = self.config.max_num_batched_tokens;
        match self.config.mode {
            SchedulingMode::PrefillFirst => {
                self.admit_whole_prompts(&mut out, &mut budget);
                if out.scheduled.is_empty() {
                    self.schedule_running(&mut out, &mut budget);
                }
            }
            SchedulingMode::Chunked => {
                self.schedule_running(&mut out, &mut budget);
                if out.preempted.is_empty() {
                    self.admit_chunks(&mut out, &mut budget);
                }
            }
        }
        out
    }

    /// V0 admission: whole prompts, FCFS, stop at the first that does not fit.
    fn admit_whole_prompts(&mut self, out: &mut SchedulerOutput, budget: &mut u64) {
        while let Some(front) = self.waiting.front() {
            let tokens = front.num_uncomputed_tokens();
            let blocks = self.kv.blocks_for(front.num_tokens());
            if blocks + self.config.watermark_blocks > self.kv.num_blocks() {
                if let Some(request) = self.waiting.pop_front() {
                    out.ignored.push(request);
                }
                continue;
            }
            let fits_memory = blocks + self.config.watermark_blocks <= self.kv.num_free_blocks();
            let fits_budget = tokens <= *budget;
            let fits_seqs = (self.running.len() as u64) < self.config.max_num_seqs;
            if !(fits_memory && fits_budget && fits_seqs) {
                break;
            }
            let Some(mut request) = self.waiting.pop_front() else {
                break;
            };
            let allocated = self.kv.allocate_slots(request.id, request.num_tokens());
            debug_assert!(allocated, "free blocks were checked above");
            *budget -= tokens;
            self.start_running(&mut request, tokens, out);
            self.running.push(request);
        }
    }

    /// V1 admission: FCFS while the budget and `max_num_seqs` allow, chunking the last prompt to the budget.
    fn admit_chunks(&mut self, out: &mut SchedulerOutput, budget: &mut u64) {
        while *budget > 0 && (self.running.len() as u64) < self.config.max_num_seqs {
            let Some(front) = self.waiting.front() else {
                break;
            };
            let tokens = front.num_uncomputed_tokens().min(*budget);
            let target = front.num_computed_tokens + tokens;
            if !self.kv.allocate_slots(front.id, target) {
                break;
            }
            let Some(mut request) = self.waiting.pop_front() else {
                break;
            };
            *budget -= tokens;
            self.start_running(&mut request, tokens, out);
            self.running.push(request);
        }
    }

    fn start_running(&mut self, request: &mut Request, tokens: u64, out: &mut SchedulerOutput) {
        request.status = RequestStatus::Running;
        Self::record(request, tokens, out);
    }

    fn record(request: &mut Request, tokens: u64, out: &mut SchedulerOutput) {
        request.scheduled_tokens = tokens;
        out.scheduled.push((request.id, tokens));
        if request.is_decoding() {
            out.shape.add_decode(request.num_tokens());
        } else {
            out.shape
                .add_prefill(tokens, request.num_computed_tokens + tokens);
        }
    }

    /// Gives every running request its next tokens (decode: 1; unfinished prefill: a chunk within the budget),
    /// preempting the newest running requests when blocks run out.
    fn schedule_running(&mut self, out: &mut SchedulerOutput, budget: &mut u64) {
        let mut index = 0;
        while index < self.running.len() {
            let request = &self.running[index];
            let tokens = request.num_uncomputed_tokens().min(*budget);
            if tokens == 0 {
                index += 1;
                continue;
            }
            let target = request.num_computed_tokens + tokens;
            let id = request.id;
            let mut preempted_self = false;
            while !self.kv.allocate_slots(id, target) {
                let Some(mut victim) = self.running.pop() else {
                    break;
                };
                let victim_is_self = victim.id == id;
                self.preempt(&mut victim);
                out.preempted.push(victim.id);
                self.waiting.push_front(victim);
                if victim_is_self {
                    preempted_self = true;
                    break;
                }
            }
            if preempted_self {
                break;
            }
            *budget -= tokens;
            Self::record(&mut self.running[index], tokens, out);
            index += 1;
        }
    }

    fn preempt(&mut self, victim: &mut Request) {
        self.kv.free(victim.id);
        victim.num_computed_tokens = 0;
        victim.scheduled_tokens = 0;
        victim.status = RequestStatus::Preempted;
        victim.num_preemptions += 1;
        self.total_preemptions += 1;
    }

    /// Applies a finished step: advances computed tokens, samples a token for every request whose KV is complete,
    /// and removes (and frees) requests that reached their length.
    pub fn update_from_output(&mut self) -> StepOutput {
        let mut step = StepOutput::default();
        let mut index = 0;
        while index < self.running.len() {
            let request = &mut self.running[index];
            if request.scheduled_tokens == 0 {
                index += 1;
                continue;
            }
            request.num_computed_tokens += request.scheduled_tokens;
            request.scheduled_tokens = 0;
            if request.num_computed_tokens < request.num_tokens() {
                index += 1; // a prefill chunk; no token yet
                continue;
            }
            if request.output_tokens.is_empty() {
                step.first_tokens.push((request.id, request.prompt_len));
            }
            let token = request.sample_next_token();
            step.new_tokens.push((request.id, token));
            if let Some(reason) = request.finish_reason() {
                let request = self.running.remove(index);
                self.kv.free(request.id);
                step.finished.push(Finished { request, reason });
            } else {
                index += 1;
            }
        }
        step
    }
}

#[cfg(test)]
mod tests {
    use super::super::request::fixtures::request;
    use super::*;

    fn scheduler(mode: SchedulingMode, blocks: u64, max_num_seqs: u64, budget: u64) -> Scheduler {
        let watermark = match mode {
            SchedulingMode::PrefillFirst => blocks / 100,
            SchedulingMode::Chunked => 0,
        };
        Scheduler::new(
            SchedulerConfig {
                max_num_seqs,
                max_num_batched_tokens: budget,
                mode,
                watermark_blocks: watermark,
            },
            KvCacheManager::new(blocks, 16),
        )
    }

    /// Runs steps until idle; returns (steps, finished ids in order) and checks invariants at every step.
    fn run_to_completion(s: &mut Scheduler) -> (usize, Vec<RequestId>) {
        let mut steps = 0;
        let mut finished = Vec::new();
        while s.has_work() {
            let out = s.schedule();
            check_invariants(s, &out);
            let step = s.update_from_output();
            finished.extend(step.finished.iter().map(|f| f.request.id));
            finished.extend(out.ignored.iter().map(|r| r.id));
            steps += 1;
            assert!(steps < 100_000, "no progress");
        }
        assert_eq!(s.kv_cache().num_free_blocks(), s.kv_cache().num_blocks());
        (steps, finished)
    }

    fn check_invariants(s: &Scheduler, out: &SchedulerOutput) {
        let kv = s.kv_cache();
        assert_eq!(kv.num_used_blocks() + kv.num_free_blocks(), kv.num_blocks());
        assert!(s.num_running() as u64 <= s.config.max_num_seqs);
        let tokens: u64 = out.scheduled.iter().map(|(_, t)| t).sum();
        assert!(tokens <= s.config.max_num_batched_tokens);
        let held: u64 = s.running.iter().map(|r| kv.blocks_of(r.id)).sum();
        assert_eq!(
            held,
            kv.num_used_blocks(),
            "only running requests hold blocks"
        );
        for r in &s.waiting {
            assert_eq!(kv.blocks_of(r.id), 0, "waiting requests hold no blocks");
        }
    }

    #[test]
    fn v0_prefill_step_runs_before_decodes() {
        let mut s = scheduler(SchedulingMode::PrefillFirst, 1000, 256, 4096);
        s.add_request(request(1, 100, 10));
        let out = s.schedule();
        assert_eq!(out.shape.prefill_tokens, 100);
        s.update_from_output();
        // A new arrival preempts the decode step: the next step is prefill-only.
        s.add_request(request(2, 50, 10));
        let out = s.schedule();
        assert_eq!(out.scheduled, vec![(RequestId(2), 50)]);
        assert_eq!(out.shape.decode_seqs, 0);
        s.update_from_output();
        let out = s.schedule();
        assert_eq!(out.shape.decode_seqs, 2);
        assert_eq!(out.shape.prefill_tokens, 0);
        assert_eq!(out.shape.decode_context_tokens, 101 + 51);
    }

    #[test]
    fn running_set_is_limited_by_max_num_seqs() {
        let mut s = scheduler(SchedulingMode::PrefillFirst, 10_000, 4, 4096);
        for id in 0..10 {
            s.add_request(request(id, 20, 5));
        }
        s.schedule();
        assert_eq!(s.num_running(), 4);
        assert_eq!(s.num_waiting(), 6);
        let (_, finished) = run_to_completion(&mut s);
        assert_eq!(finished.len(), 10);
    }

    #[test]
    fn v0_admission_respects_the_token_budget() {
        let mut s = scheduler(SchedulingMode::PrefillFirst, 10_000, 256, 1000);
        for id in 0..5 {
            s.add_request(request(id, 400, 5));
        }
        let out = s.schedule();
        assert_eq!(
            out.shape.prefill_tokens, 800,
            "two prompts fit in 1,000 tokens"
        );
        assert_eq!(s.num_waiting(), 3);
    }

    #[test]
    fn v0_ignores_a_prompt_that_can_never_fit() {
        let mut s = scheduler(SchedulingMode::PrefillFirst, 10, 256, 4096);
        s.add_request(request(1, 16 * 11, 1));
        s.add_request(request(2, 16, 1));
        let out = s.schedule();
        assert_eq!(out.ignored.len(), 1);
        assert_eq!(out.ignored[0].id, RequestId(1));
        assert_eq!(out.scheduled, vec![(RequestId(2), 16)]);
    }

    #[test]
    fn chunked_prefill_splits_long_prompts_by_budget() {
        let mut s = scheduler(SchedulingMode::Chunked, 10_000, 256, 512);
        s.add_request(request(1, 1200, 3));
        let chunks: Vec<u64> = (0..3)
            .map(|_| {
                let out = s.schedule();
                s.update_from_output();
                out.shape.prefill_tokens
            })
            .collect();
        assert_eq!(chunks, vec![512, 512, 176]);
        assert_eq!(
            s.running[0].output_tokens.len(),
            1,
            "first token after the last chunk"
        );
    }

    #[test]
    fn chunked_mode_mixes_decodes_and_prefills() {
        let mut s = scheduler(SchedulingMode::Chunked, 10_000, 256, 2048);
        s.add_request(request(1, 100, 10));
        s.schedule();
        s.update_from_output();
        s.add_request(request(2, 300, 10));
        let out = s.schedule();
        assert_eq!(out.shape.decode_seqs, 1);
        assert_eq!(out.shape.prefill_tokens, 300);
    }

    #[test]
    fn blocks_grow_with_generated_tokens() {
        let mut s = scheduler(SchedulingMode::PrefillFirst, 100, 256, 4096);
        s.add_request(request(1, 16, 40));
        s.schedule();
        s.update_from_output();
        assert_eq!(s.kv_cache().blocks_of(RequestId(1)), 1);
        // The first decode writes token 17's KV: a second block.
        s.schedule();
        assert_eq!(s.kv_cache().blocks_of(RequestId(1)), 2);
        run_to_completion(&mut s);
    }

    #[test]
    fn recompute_preemption_evicts_the_newest_request_and_requeues_it_first() {
        // 6 blocks: two requests of 2 prompt blocks each, growing until they collide.
        for mode in [SchedulingMode::PrefillFirst, SchedulingMode::Chunked] {
            let mut s = scheduler(mode, 6, 256, 4096);
            s.add_request(request(1, 32, 40));
            s.add_request(request(2, 32, 40));
            let mut preempted = Vec::new();
            let mut steps = 0;
            while preempted.is_empty() {
                let out = s.schedule();
                check_invariants(&s, &out);
                preempted = out.preempted.clone();
                s.update_from_output();
                steps += 1;
                assert!(steps < 1000);
            }
            assert_eq!(
                preempted,
                vec![RequestId(2)],
                "{mode:?}: the newest running request"
            );
            assert_eq!(s.waiting.front().map(|r| r.id), Some(RequestId(2)));
            let victim = &s.waiting[0];
            assert_eq!(victim.num_computed_tokens, 0);
            assert!(
                !victim.output_tokens.is_empty(),
                "generated tokens are kept"
            );
            assert_eq!(s.total_preemptions(), 1);
            let (_, finished) = run_to_completion(&mut s);
            assert!(finished.contains(&RequestId(1)) && finished.contains(&RequestId(2)));
        }
    }

    #[test]
    fn a_resumed_request_recomputes_prompt_and_output() {
        let mut s = scheduler(SchedulingMode::PrefillFirst, 6, 256, 4096);
        s.add_request(request(1, 32, 40));
        s.add_request(request(2, 32, 40));
        loop {
            let out = s.schedule();
            if !out.preempted.is_empty() {
                s.update_from_output();
                break;
            }
            s.update_from_output();
        }
        let generated = s.waiting[0].output_tokens.len() as u64;
        // Run until the victim is admitted again; its prefill covers prompt + generated tokens.
        loop {
            let out = s.schedule();
            if let Some(&(_, tokens)) = out.scheduled.iter().find(|(id, _)| *id == RequestId(2)) {
                if out.shape.prefill_tokens > 0 {
                    assert_eq!(tokens, 32 + generated);
                    break;
                }
            }
            s.update_from_output();
        }
    }

    #[test]
    fn every_request_finishes_with_its_exact_length_under_pressure() {
        for mode in [SchedulingMode::PrefillFirst, SchedulingMode::Chunked] {
            let mut s = scheduler(mode, 60, 8, 256);
            for id in 0..40 {
                s.add_request(request(id, 10 + (id * 37) % 200, 1 + (id * 53) % 120));
            }
            let mut generated = std::collections::HashMap::new();
            while s.has_work() {
                let out = s.schedule();
                check_invariants(&s, &out);
                assert!(out.ignored.is_empty());
                for f in s.update_from_output().finished {
                    generated.insert(f.request.id.0, f.request.output_tokens.len() as u64);
                }
            }
            for id in 0..40u64 {
                assert_eq!(generated[&id], 1 + (id * 53) % 120, "{mode:?} request {id}");
            }
            assert!(
                s.total_preemptions() > 0,
                "{mode:?}: the cache was small enough to preempt"
            );
        }
    }

    #[test]
    fn abort_frees_blocks_from_running_and_waiting() {
        let mut s = scheduler(SchedulingMode::PrefillFirst, 100, 1, 4096);
        s.add_request(request(1, 100, 10));
        s.add_request(request(2, 100, 10));
        s.schedule();
        s.update_from_output();
        assert!(s.kv_cache().num_used_blocks() > 0);
        assert!(s.abort(RequestId(2)).is_some());
        assert!(s.abort(RequestId(1)).is_some());
        assert!(s.abort(RequestId(1)).is_none());
        assert_eq!(s.kv_cache().num_used_blocks(), 0);
        assert!(!s.has_work());
    }

    #[test]
    fn finish_reason_is_length_at_the_cap_and_stop_before_it() {
        use super::super::request::fixtures::request_with_cap;
        let mut s = scheduler(SchedulingMode::PrefillFirst, 100, 8, 4096);
        s.add_request(request(1, 10, 3));
        s.add_request(request_with_cap(2, 10, 50, 4));
        let mut reasons = Vec::new();
        while s.has_work() {
            s.schedule();
            reasons.extend(
                s.update_from_output()
                    .finished
                    .into_iter()
                    .map(|f| (f.request.id.0, f.reason)),
            );
        }
        assert_eq!(
            reasons,
            vec![(1, FinishReason::Length), (2, FinishReason::Stop)]
        );
    }
}
