//! Fault injection: the test hooks a harness uses to check how gateways and autoscalers cope with a sick pod.
//!
//! Three knobs, switchable at run time without a restart (`GET`/`POST /mock/faults`, or [`Faults::update`] for
//! in-process users): a fraction of completion requests answered with an error status in vLLM's envelope, extra
//! latency before every completion request reaches the engine, and a `/metrics` that fails (500) or hangs. The
//! initial values come from the `--fault-*` flags. A std `RwLock` is enough: it is never held across `.await`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use crate::config::{EngineArgs, MetricsFault};

/// The current fault settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FaultConfig {
    /// Fraction (0..1) of completion requests that fail with `error_status`.
    pub error_rate: f64,
    /// Status of injected errors (400–599).
    pub error_status: u16,
    /// Added before a completion request is admitted, in milliseconds.
    pub extra_latency_ms: u64,
    /// `/metrics` behaviour.
    pub metrics: MetricsFault,
}

/// A partial update; absent fields keep their value.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultUpdate {
    /// New error rate.
    pub error_rate: Option<f64>,
    /// New error status.
    pub error_status: Option<u16>,
    /// New extra latency.
    pub extra_latency_ms: Option<u64>,
    /// New `/metrics` behaviour.
    pub metrics: Option<MetricsFault>,
}

/// An update that would leave the faults invalid.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidFault(pub String);

/// Shared, switchable fault state.
#[derive(Debug)]
pub struct Faults {
    config: RwLock<FaultConfig>,
    rng: Mutex<ChaCha8Rng>,
}

impl Faults {
    /// Faults as the `--fault-*` flags set them.
    pub fn from_args(args: &EngineArgs) -> Self {
        Self {
            config: RwLock::new(FaultConfig {
                error_rate: args.fault_error_rate,
                error_status: args.fault_error_status,
                extra_latency_ms: args.fault_extra_latency_ms,
                metrics: args.fault_metrics,
            }),
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(args.seed ^ 0xfa17)),
        }
    }

    /// The current settings.
    pub fn current(&self) -> FaultConfig {
        *self.config.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies a partial update after validating it; returns the new settings.
    pub fn update(&self, update: &FaultUpdate) -> Result<FaultConfig, InvalidFault> {
        let mut next = self.current();
        if let Some(rate) = update.error_rate {
            if !(0.0..=1.0).contains(&rate) {
                return Err(InvalidFault(format!(
                    "error_rate must be within [0, 1], got {rate}"
                )));
            }
            next.error_rate = rate;
        }
        if let Some(status) = update.error_status {
            if !(400..=599).contains(&status) {
                return Err(InvalidFault(format!(
                    "error_status must be an HTTP error status (400-599), got {status}"
                )));
            }
            next.error_status = status;
        }
        if let Some(ms) = update.extra_latency_ms {
            next.extra_latency_ms = ms;
        }
        if let Some(metrics) = update.metrics {
            next.metrics = metrics;
        }
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = next;
        tracing::info!(?next, "fault injection updated");
        Ok(next)
    }

    /// Draws whether this request gets an injected error; returns its status.
    pub fn injected_error(&self) -> Option<u16> {
        let config = self.current();
        if config.error_rate <= 0.0 {
            return None;
        }
        let roll: f64 = self.rng.lock().unwrap_or_else(|p| p.into_inner()).random();
        (roll < config.error_rate).then_some(config.error_status)
    }

    /// Latency to add before admitting a request.
    pub fn extra_latency(&self) -> Duration {
        Duration::from_millis(self.current().extra_latency_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_rate_is_honoured_statistically() {
        let faults = Faults::from_args(&EngineArgs::for_tests());
        assert!(faults.injected_error().is_none());
        faults
            .update(&FaultUpdate {
                error_rate: Some(0.25),
                error_status: Some(503),
                ..Default::default()
            })
            .expect("valid");
        let errors = (0..10_000)
            .filter_map(|_| faults.injected_error())
            .collect::<Vec<_>>();
        assert!((2_200..2_800).contains(&errors.len()), "{}", errors.len());
        assert!(errors.iter().all(|&s| s == 503));
    }

    #[test]
    fn invalid_updates_are_rejected_and_change_nothing() {
        let faults = Faults::from_args(&EngineArgs::for_tests());
        let before = faults.current();
        assert!(faults
            .update(&FaultUpdate {
                error_rate: Some(2.0),
                ..Default::default()
            })
            .is_err());
        assert!(faults
            .update(&FaultUpdate {
                error_status: Some(200),
                extra_latency_ms: Some(5),
                ..Default::default()
            })
            .is_err());
        assert_eq!(faults.current(), before);
    }
}
