//! Engine state published to the rest of the process, and the simulation's own health figures.
//!
//! [`EngineState`] is what the engine loop publishes on a `watch` channel after every step and every command: the
//! gauges behind `vllm:num_requests_*` and the KV usage, readable without touching the engine (readiness, draining,
//! tests). [`StepLateness`] records, for each step, how long after its simulated deadline the last of its tokens was
//! handed to its stream: an upper bound on every token's emission lateness, i.e. the mock's scheduling jitter, which
//! must stay small against step times for the simulated latencies to mean anything.

use serde::Serialize;
use std::time::Duration;

/// A snapshot of the engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct EngineState {
    /// Requests in the running set.
    pub running: usize,
    /// Requests waiting (preempted included).
    pub waiting: usize,
    /// KV blocks in use.
    pub used_blocks: u64,
    /// KV blocks in the pool.
    pub num_blocks: u64,
    /// `used_blocks / num_blocks`.
    pub kv_cache_usage: f64,
    /// Preemptions since start.
    pub total_preemptions: u64,
    /// Engine steps since start.
    pub steps: u64,
    /// False once the engine loop has stopped.
    pub alive: bool,
}

impl EngineState {
    /// Requests the engine still owes an answer.
    pub fn in_flight(&self) -> usize {
        self.running + self.waiting
    }
}

/// Quantiles of step lateness (last token of the step handed over, minus the step's simulated deadline).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatenessSummary {
    /// Steps recorded (the most recent ones, up to the window).
    pub samples: usize,
    /// Median lateness, seconds.
    pub p50_s: f64,
    /// 99th percentile, seconds.
    pub p99_s: f64,
    /// Maximum, seconds.
    pub max_s: f64,
}

/// A bounded window of recent step lateness values, in microseconds.
#[derive(Debug)]
pub struct StepLateness {
    window: Vec<u32>,
    next: usize,
    filled: bool,
}

impl StepLateness {
    /// Keeps the last `capacity` steps.
    pub fn new(capacity: usize) -> Self {
        Self {
            window: vec![0; capacity.max(1)],
            next: 0,
            filled: false,
        }
    }

    /// Records one step.
    pub fn record(&mut self, lateness: Duration) {
        let micros = lateness.as_micros().min(u32::MAX as u128) as u32;
        self.window[self.next] = micros;
        self.next = (self.next + 1) % self.window.len();
        self.filled |= self.next == 0;
    }

    /// Forgets everything (a benchmark's warm-up).
    pub fn reset(&mut self) {
        self.next = 0;
        self.filled = false;
    }

    /// Quantiles over the window.
    pub fn summary(&self) -> LatenessSummary {
        let len = if self.filled {
            self.window.len()
        } else {
            self.next
        };
        if len == 0 {
            return LatenessSummary::default();
        }
        let mut sorted = self.window[..len].to_vec();
        sorted.sort_unstable();
        let at = |q: f64| sorted[((len - 1) as f64 * q).round() as usize] as f64 / 1e6;
        LatenessSummary {
            samples: len,
            p50_s: at(0.5),
            p99_s: at(0.99),
            max_s: at(1.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_over_a_wrapping_window() {
        let mut l = StepLateness::new(100);
        for i in 0..250u64 {
            l.record(Duration::from_micros(i));
        }
        let s = l.summary();
        assert_eq!(s.samples, 100);
        assert_eq!(s.max_s, 249e-6);
        assert!((s.p50_s - 200e-6).abs() < 2e-6);
        l.reset();
        assert_eq!(l.summary().samples, 0);
    }
}
