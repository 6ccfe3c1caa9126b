//! The simulated engine: one task that owns the scheduler and KV cache and steps them on tokio's clock.
//!
//! Plays vLLM's `EngineCore` busy loop. The task alone owns [`Scheduler`] (and through it the KV cache), so neither
//! needs a lock. Everything else talks to it through an [`EngineHandle`] (a cheap clone around an mpsc sender, like
//! mini-redis's `Db`): [`EngineHandle::generate`] enqueues a request and returns a [`RequestStream`] of its tokens;
//! dropping the stream (a client that disconnected) aborts the request and frees its blocks.
//!
//! One step: absorb commands → `schedule()` → sleep for the step time given by the
//! [`timing::StepTimeModel`] → `update_from_output()` → send tokens, record metrics, publish [`EngineState`]. All
//! waiting is `tokio::time`, so with a paused clock a test runs hours of simulated serving in milliseconds and
//! every latency is exact. Steps are laid back to back on the simulated timeline: host time spent between steps is
//! not added to the GPU's (it shows up as [`StepLateness`] instead), up to a bounded catch-up.

pub mod kv_cache;
pub mod request;
pub mod scheduler;
pub mod stats;
pub mod timing;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, Instrument};

use crate::config::EngineConfig;
use crate::metrics::{EngineMetrics, FinishedRequestStats};
use crate::tokenizer::Tokenizer;
use kv_cache::KvCacheManager;
use request::{FinishReason, Request, RequestId, TokenSource};
use scheduler::{Scheduler, SchedulerConfig};
use stats::StepLateness;
pub use stats::{EngineState, LatenessSummary};

/// How often the V0 throughput gauges are recomputed (vLLM's local logging interval).
const THROUGHPUT_INTERVAL: Duration = Duration::from_secs(5);
/// Host lateness the simulated timeline absorbs before it restarts from "now".
const MAX_CATCH_UP: Duration = Duration::from_millis(20);

/// What the API layer asks the engine to generate.
#[derive(Debug, Clone)]
pub struct GenerateRequest {
    /// Prompt length in tokens.
    pub prompt_tokens: u64,
    /// Effective cap on generated tokens (already checked against `max_model_len`).
    pub max_tokens: u64,
    /// `max_tokens` as the client sent it, for `vllm:request_params_max_tokens`.
    pub params_max_tokens: Option<u64>,
    /// End-of-sequence is suppressed until this many tokens.
    pub min_tokens: u64,
    /// Generate exactly `max_tokens`.
    pub ignore_eos: bool,
    /// Per-request seed (text and natural length); `None` derives one from the server seed.
    pub seed: Option<u64>,
    /// `n` of the client request, set on its first engine request only (for `vllm:request_params_n`).
    pub params_n: Option<u64>,
    /// When the HTTP request arrived (TTFT and e2e latency start here).
    pub arrival: Instant,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    /// Why it ended.
    pub reason: FinishReason,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Tokens generated.
    pub completion_tokens: u64,
}

/// What a [`RequestStream`] yields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineEvent {
    /// One generated token; the last one carries how the request ended.
    Token {
        /// The token id.
        token: u32,
        /// Set on the request's last token.
        finished: Option<Completion>,
    },
    /// The request ended without a token in this step (abort, or ignored by the scheduler).
    Finished(Completion),
}

impl EngineEvent {
    /// True for the request's last event.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            EngineEvent::Finished(_)
                | EngineEvent::Token {
                    finished: Some(_),
                    ..
                }
        )
    }
}

/// The engine is not running.
#[derive(Debug, thiserror::Error)]
#[error("the engine is not running")]
pub struct EngineDead;

enum Command {
    /// A request that reaches the scheduler at the given time (after the simulated frontend).
    Add(Box<Admission>),
    Abort(RequestId),
    ResetLateness,
}

/// A new request on its way to the scheduler: it joins the waiting queue at `ready_at`.
struct Admission {
    request: Request,
    tracker: Tracker,
    ready_at: Instant,
}

/// Per-request bookkeeping that lives in the engine task.
struct Tracker {
    events: mpsc::UnboundedSender<EngineEvent>,
    arrival: Instant,
    first_scheduled: Option<Instant>,
    first_token: Option<Instant>,
    last_token: Option<Instant>,
    prompt_tokens: u64,
    max_tokens: u64,
    params_max_tokens: Option<u64>,
    params_n: Option<u64>,
}

/// The token stream of one request. Dropping it before the end aborts the request.
#[derive(Debug)]
pub struct RequestStream {
    id: RequestId,
    events: mpsc::UnboundedReceiver<EngineEvent>,
    commands: mpsc::UnboundedSender<Command>,
    done: bool,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Add(a) => write!(f, "Add({:?}, {:?})", a.request.id, a.ready_at),
            Command::Abort(id) => write!(f, "Abort({id:?})"),
            Command::ResetLateness => write!(f, "ResetLateness"),
        }
    }
}

impl RequestStream {
    /// The engine's id for this request.
    pub fn id(&self) -> RequestId {
        self.id
    }

    /// The next event; `None` after `Finished`, or if the engine stopped (its requests are aborted first).
    pub async fn recv(&mut self) -> Option<EngineEvent> {
        let event = self.events.recv().await;
        if event.as_ref().is_none_or(EngineEvent::is_final) {
            self.done = true;
        }
        event
    }
}

impl Drop for RequestStream {
    fn drop(&mut self) {
        if !self.done {
            // The engine may already be gone; then there is nothing left to free.
            let _ = self.commands.send(Command::Abort(self.id));
        }
    }
}

/// A cheap, cloneable handle to the engine task.
#[derive(Debug, Clone)]
pub struct EngineHandle {
    commands: mpsc::UnboundedSender<Command>,
    state: watch::Receiver<EngineState>,
    lateness: Arc<Mutex<StepLateness>>,
    next_id: Arc<AtomicU64>,
    config: Arc<EngineConfig>,
    vocabulary: Arc<[u32]>,
    /// When the simulated API server is next free (requests pass it one at a time).
    frontend_free_at: Arc<Mutex<Instant>>,
}

impl EngineHandle {
    /// Enqueues a request; its tokens arrive on the returned stream.
    pub fn generate(&self, request: GenerateRequest) -> Result<RequestStream, EngineDead> {
        let id = RequestId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let seed = request
            .seed
            .unwrap_or_else(|| splitmix64(self.config.args.seed ^ splitmix64(id.0)));
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let target = self.target_output_len(&request, &mut rng);
        let engine_request = Request::new(
            id,
            request.prompt_tokens,
            request.max_tokens,
            target,
            TokenSource::new(rng, self.vocabulary.clone()),
        );
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let tracker = Tracker {
            events: events_tx,
            arrival: request.arrival,
            first_scheduled: None,
            first_token: None,
            last_token: None,
            prompt_tokens: request.prompt_tokens,
            max_tokens: request.max_tokens,
            params_max_tokens: request.params_max_tokens,
            params_n: request.params_n,
        };
        // The frontend is FIFO: compute the slot and send while holding the lock, so that the engine receives
        // requests in `ready_at` order.
        let overhead = Duration::from_secs_f64(self.config.args.frontend_overhead_ms / 1e3);
        let mut free_at = self
            .frontend_free_at
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let ready_at = (*free_at).max(request.arrival) + overhead;
        self.commands
            .send(Command::Add(Box::new(Admission {
                request: engine_request,
                tracker,
                ready_at,
            })))
            .map_err(|_| EngineDead)?;
        *free_at = ready_at;
        drop(free_at);
        Ok(RequestStream {
            id,
            events: events_rx,
            commands: self.commands.clone(),
            done: false,
        })
    }

    /// How many tokens a request will generate: the cap when forced, else a seeded natural length.
    fn target_output_len(&self, request: &GenerateRequest, rng: &mut ChaCha8Rng) -> u64 {
        let cap = request.max_tokens.max(1);
        if request.ignore_eos || request.min_tokens >= cap {
            return cap;
        }
        let args = &self.config.args;
        let natural = LogNormal::new((args.output_len_median as f64).ln(), args.output_len_sigma)
            .map(|d| d.sample(rng).round() as u64)
            .unwrap_or(args.output_len_median);
        natural.clamp(request.min_tokens.max(1), cap)
    }

    /// The latest published state.
    pub fn state(&self) -> EngineState {
        *self.state.borrow()
    }

    /// A receiver that sees every published state (for waiting on a condition).
    pub fn watch_state(&self) -> watch::Receiver<EngineState> {
        self.state.clone()
    }

    /// True while the engine loop runs.
    pub fn is_alive(&self) -> bool {
        self.state.borrow().alive && !self.commands.is_closed()
    }

    /// The engine's configuration.
    pub fn config(&self) -> &Arc<EngineConfig> {
        &self.config
    }

    /// Step lateness over the recent window.
    pub fn lateness(&self) -> LatenessSummary {
        self.lateness
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .summary()
    }

    /// Clears the lateness window (benchmarks call this after warm-up).
    pub fn reset_lateness(&self) {
        let _ = self.commands.send(Command::ResetLateness);
    }
}

/// A 64-bit mix (SplitMix64's finaliser), to derive independent seeds from counters.
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Starts the engine task. It runs until `shutdown` is cancelled or every handle is dropped; either way it aborts
/// what is left and publishes `alive: false`.
pub fn spawn(
    config: Arc<EngineConfig>,
    tokenizer: &Tokenizer,
    metrics: EngineMetrics,
    shutdown: CancellationToken,
) -> (EngineHandle, tokio::task::JoinHandle<()>) {
    let (commands_tx, commands_rx) = mpsc::unbounded_channel();
    let initial = EngineState {
        num_blocks: config.num_gpu_blocks,
        alive: true,
        ..EngineState::default()
    };
    let (state_tx, state_rx) = watch::channel(initial);
    let lateness = Arc::new(Mutex::new(StepLateness::new(100_000)));
    let kv = KvCacheManager::new(config.num_gpu_blocks, config.args.block_size);
    let core = EngineCore {
        scheduler: Scheduler::new(SchedulerConfig::from(&*config), kv),
        trackers: HashMap::new(),
        arriving: Vec::new(),
        metrics,
        commands: commands_rx,
        state: state_tx,
        lateness: lateness.clone(),
        config: config.clone(),
        steps: 0,
        window_start: Instant::now(),
        window_prompt_tokens: 0,
        window_generation_tokens: 0,
    };
    let span = tracing::info_span!("engine", model = %config.primary_model_name());
    let task = tokio::spawn(core.run(shutdown).instrument(span));
    let handle = EngineHandle {
        commands: commands_tx,
        state: state_rx,
        lateness,
        next_id: Arc::new(AtomicU64::new(0)),
        vocabulary: tokenizer.output_vocabulary(),
        frontend_free_at: Arc::new(Mutex::new(Instant::now())),
        config,
    };
    (handle, task)
}

struct EngineCore {
    scheduler: Scheduler,
    trackers: HashMap<RequestId, Tracker>,
    /// Requests still in the simulated frontend, in order of `ready_at` (the frontend is FIFO).
    arriving: Vec<(Instant, Request)>,
    metrics: EngineMetrics,
    commands: mpsc::UnboundedReceiver<Command>,
    state: watch::Sender<EngineState>,
    lateness: Arc<Mutex<StepLateness>>,
    config: Arc<EngineConfig>,
    steps: u64,
    window_start: Instant,
    window_prompt_tokens: u64,
    window_generation_tokens: u64,
}

impl EngineCore {
    async fn run(mut self, shutdown: CancellationToken) {
        info!(
            num_gpu_blocks = self.config.num_gpu_blocks,
            kv_tokens = self.config.num_gpu_blocks * self.config.args.block_size,
            max_model_len = self.config.max_model_len,
            "engine started"
        );
        let scale = self.config.args.step_time_scale;
        let time_model = timing::StepTimeModel::from(&*self.config);
        // End of the previous step on the simulated timeline, while the engine stays busy.
        let mut previous_deadline: Option<Instant> = None;
        'engine: loop {
            loop {
                match self.commands.try_recv() {
                    Ok(command) => self.handle(command),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => break 'engine,
                }
            }
            self.admit_arrivals(Instant::now());
            if !self.scheduler.has_work() {
                previous_deadline = None;
                self.publish();
                let wake = match self.arriving.first() {
                    Some((ready_at, _)) => *ready_at,
                    None => Instant::now() + THROUGHPUT_INTERVAL,
                };
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => break 'engine,
                    command = self.commands.recv() => match command {
                        Some(command) => self.handle(command),
                        None => break 'engine,
                    },
                    _ = tokio::time::sleep_until(wake) => {
                        if self.arriving.is_empty() {
                            self.refresh_throughput(Instant::now());
                        }
                    }
                }
                continue;
            }

            let output = self.scheduler.schedule();
            let now = Instant::now();
            for ignored in output.ignored {
                self.finish(ignored.id, FinishReason::Length, 0, now);
            }
            for (id, _) in &output.scheduled {
                if let Some(tracker) = self.trackers.get_mut(id) {
                    tracker.first_scheduled.get_or_insert(now);
                }
            }
            if output.scheduled.is_empty() {
                continue; // everything scheduled was ignored
            }
            let duration = time_model.step_time(&output.shape).mul_f64(scale);
            let start = match previous_deadline {
                Some(deadline) if now.saturating_duration_since(deadline) <= MAX_CATCH_UP => {
                    deadline
                }
                _ => now,
            };
            let deadline = start + duration;
            if duration.is_zero() {
                tokio::task::yield_now().await;
            } else {
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => break 'engine,
                    _ = tokio::time::sleep_until(deadline) => {}
                }
            }
            let woke = Instant::now();
            previous_deadline = Some(deadline);
            self.steps += 1;

            let step = self.scheduler.update_from_output();
            debug!(
                prefill_tokens = output.shape.prefill_tokens,
                decode_seqs = output.shape.decode_seqs,
                step_ms = duration.as_secs_f64() * 1e3,
                running = self.scheduler.num_running(),
                waiting = self.scheduler.num_waiting(),
                "step"
            );
            self.metrics.record_step(
                output.shape.prefill_tokens + output.shape.decode_seqs,
                step.new_tokens.len() as u64,
                output.preempted.len() as u64,
            );
            self.window_prompt_tokens += output.shape.prefill_tokens;
            self.window_generation_tokens += step.new_tokens.len() as u64;

            for (id, prompt_tokens) in &step.first_tokens {
                if let Some(tracker) = self.trackers.get_mut(id) {
                    tracker.first_token = Some(woke);
                    self.metrics
                        .record_first_token(woke - tracker.arrival, *prompt_tokens);
                }
            }
            let mut finished: HashMap<RequestId, (FinishReason, u64)> = step
                .finished
                .iter()
                .map(|f| {
                    (
                        f.request.id,
                        (f.reason, f.request.output_tokens.len() as u64),
                    )
                })
                .collect();
            let mut gone = Vec::new();
            for (id, token) in &step.new_tokens {
                let Some(tracker) = self.trackers.get_mut(id) else {
                    continue;
                };
                if let Some(previous) = tracker.last_token {
                    self.metrics.record_inter_token(woke - previous);
                }
                tracker.last_token = Some(woke);
                let completion = finished
                    .remove(id)
                    .and_then(|(reason, generated)| self.complete(*id, reason, generated, woke));
                let sink = match &completion {
                    Some((sink, _)) => sink,
                    None => match self.trackers.get(id) {
                        Some(tracker) => &tracker.events,
                        None => continue,
                    },
                };
                let event = EngineEvent::Token {
                    token: *token,
                    finished: completion.as_ref().map(|(_, c)| *c),
                };
                if sink.send(event).is_err() && completion.is_none() {
                    gone.push(*id);
                }
            }
            for id in gone {
                // The client hung up between its last token and now; the stream's drop also sends Abort.
                self.abort(id, woke);
            }
            // Every token of this step has been handed to its stream: this bounds each token's emission lateness.
            self.lateness
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .record(Instant::now().saturating_duration_since(deadline));
            if woke.saturating_duration_since(self.window_start) >= THROUGHPUT_INTERVAL {
                self.refresh_throughput(woke);
            }
            self.publish();
        }

        let now = Instant::now();
        let arriving: Vec<Request> = self.arriving.drain(..).map(|(_, r)| r).collect();
        for request in arriving.into_iter().chain(self.scheduler.abort_all()) {
            let generated = request.output_tokens.len() as u64;
            self.finish(request.id, FinishReason::Abort, generated, now);
        }
        self.publish();
        self.state.send_modify(|s| s.alive = false);
        info!(steps = self.steps, "engine stopped");
    }

    /// Moves requests whose frontend time is over into the scheduler's waiting queue.
    fn admit_arrivals(&mut self, now: Instant) {
        let ready = self.arriving.partition_point(|(at, _)| *at <= now);
        for (_, request) in self.arriving.drain(..ready) {
            self.scheduler.add_request(request);
        }
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Add(admission) => {
                let Admission {
                    request,
                    tracker,
                    ready_at,
                } = *admission;
                self.trackers.insert(request.id, tracker);
                // Commands arrive in send order and the frontend is FIFO, so `arriving` stays sorted.
                self.arriving.push((ready_at, request));
            }
            Command::Abort(id) => self.abort(id, Instant::now()),
            Command::ResetLateness => self
                .lateness
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .reset(),
        }
    }

    fn abort(&mut self, id: RequestId, now: Instant) {
        if let Some(pos) = self.arriving.iter().position(|(_, r)| r.id == id) {
            let (_, request) = self.arriving.remove(pos);
            self.finish(
                id,
                FinishReason::Abort,
                request.output_tokens.len() as u64,
                now,
            );
        } else if let Some(request) = self.scheduler.abort(id) {
            let generated = request.output_tokens.len() as u64;
            self.finish(id, FinishReason::Abort, generated, now);
        }
    }

    /// Ends a request without a token: records it and sends `Finished`.
    fn finish(&mut self, id: RequestId, reason: FinishReason, generated: u64, now: Instant) {
        if let Some((sink, completion)) = self.complete(id, reason, generated, now) {
            let _ = sink.send(EngineEvent::Finished(completion));
        }
    }

    /// Removes a request's tracker and records its request-level histograms; returns where to send its last event.
    fn complete(
        &mut self,
        id: RequestId,
        reason: FinishReason,
        generated: u64,
        now: Instant,
    ) -> Option<(mpsc::UnboundedSender<EngineEvent>, Completion)> {
        let tracker = self.trackers.remove(&id)?;
        let scheduled = tracker.first_scheduled.unwrap_or(now);
        let first_token = tracker.first_token.unwrap_or(now);
        let last_token = tracker.last_token.unwrap_or(now);
        self.metrics.record_finished(&FinishedRequestStats {
            finished_reason: reason.as_str(),
            prompt_tokens: tracker.prompt_tokens,
            generation_tokens: generated,
            max_tokens: tracker.max_tokens,
            params_max_tokens: tracker.params_max_tokens,
            params_n: tracker.params_n,
            e2e: now - tracker.arrival,
            queue: scheduled.saturating_duration_since(tracker.arrival),
            inference: last_token.saturating_duration_since(scheduled),
            prefill: first_token.saturating_duration_since(scheduled),
            decode: last_token.saturating_duration_since(first_token),
        });
        let completion = Completion {
            reason,
            prompt_tokens: tracker.prompt_tokens,
            completion_tokens: generated,
        };
        Some((tracker.events, completion))
    }

    fn refresh_throughput(&mut self, now: Instant) {
        let elapsed = now
            .saturating_duration_since(self.window_start)
            .as_secs_f64();
        if elapsed > 0.0 {
            self.metrics.set_throughput(
                self.window_prompt_tokens as f64 / elapsed,
                self.window_generation_tokens as f64 / elapsed,
            );
        }
        self.window_start = now;
        self.window_prompt_tokens = 0;
        self.window_generation_tokens = 0;
    }

    fn publish(&self) {
        let kv = self.scheduler.kv_cache();
        let state = EngineState {
            running: self.scheduler.num_running(),
            waiting: self.scheduler.num_waiting(),
            used_blocks: kv.num_used_blocks(),
            num_blocks: kv.num_blocks(),
            kv_cache_usage: kv.usage(),
            total_preemptions: self.scheduler.total_preemptions(),
            steps: self.steps,
            alive: true,
        };
        self.metrics
            .set_scheduler_state(state.running, state.waiting, state.kv_cache_usage);
        self.state.send_if_modified(|current| {
            let changed = *current != state;
            *current = state;
            changed
        });
    }
}
