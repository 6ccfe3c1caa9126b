//! The reference autoscaling algorithms the harness judges the pinned controller against, as pure functions and
//! small deterministic simulators (no cluster, no clock).
//!
//! This module owns the *documented* semantics of the three strategies (reference §9), parameterised by the
//! PodAutoscaler under test ([`ScalingParams`], reference §3 annotations, §2 windows, §6 HPA mapping):
//! - **HPA** ([`hpa_desired`], [`HpaSim`]): the Kubernetes core formula with tolerance, scale-up/-down
//!   stabilization and rate policies, with the behavior AIBrix writes into the generated HPA ([`HpaBehavior::aibrix`]).
//! - **KPA** ([`kpa_desired`], [`KpaSim`]): Knative's stable/panic windows over the *total* demand, panic entry at
//!   `desiredPanic / ready ≥ panic-threshold`, no scale-down while panicking, rate limits, scale-down delay, plus
//!   AIBrix's tolerance dead band.
//! - **APA** ([`apa_desired`], [`ApaSim`]): the per-pod ratio with a tolerance dead band, rate limits and
//!   HPA-style cooldown windows.
//! - [`steady_state`]: the replica counts each algorithm rests at for a constant total demand.
//!
//! It is deliberately *not* a port of the v0.7.0 controller: where the controller deviates from the documented
//! semantics, the expectations fail and the scenario marks them `expected_failure`. Keeping this module pure lets
//! expectations be unit-tested on hand-made timelines.
//!
//! Conventions shared by every simulator:
//! - "Total demand" is the sum over pods of the target metric (what [`Sample::metric_total`] measures). Pods are
//!   assumed to share it evenly and to become ready at once when created (no startup latency).
//! - Windowed averages are the mean of the values recorded at decision ticks within `(t − window, t]`, as AIBrix
//!   feeds its windows with the values scraped at each reconcile (reference §5.4).
//! - Ceilings subtract 1e-9 first so that float noise (`6.000000000001`) does not add a replica.
//!
//! Layout: [`params`] (annotations, defaults, [`ScalingParams`]), [`strategy`], [`duration`] (Go durations),
//! [`stabilizer`] (the cooldown/stabilization rule all three share), one file per algorithm ([`hpa`], [`kpa`],
//! [`apa`]) and [`steady`] (fixed points and the simulator driver). This file keeps the float helpers and the
//! windowed mean the algorithms share.
//!
//! [`Sample::metric_total`]: crate::observe::timeline::Sample::metric_total

use std::collections::VecDeque;

pub mod apa;
pub mod hpa;
pub mod kpa;
pub mod params;
pub mod stabilizer;
pub mod steady;

pub use crate::k8s::duration::{parse_go_duration, DurationError};
pub use crate::k8s::strategy::Strategy;
pub use apa::{apa_desired, ApaSim};
pub use hpa::{hpa_desired, HpaBehavior, HpaPolicy, HpaRules, HpaSim, PolicyKind, SelectPolicy};
pub use kpa::{kpa_desired, KpaDecision, KpaSim};
pub use params::{
    ParamsError, ScalingParams, HPA_SYNC_PERIOD_S, HPA_TOLERANCE, MAX_SCALE_DOWN_RATE,
    MAX_SCALE_UP_RATE, PANIC_THRESHOLD, PANIC_WINDOW_S, RESYNC_PERIOD_S,
    SCALE_DOWN_COOLDOWN_WINDOW, SCALE_DOWN_TOLERANCE, SCALE_UP_COOLDOWN_WINDOW, SCALE_UP_TOLERANCE,
    STABLE_WINDOW_S,
};
pub use stabilizer::Stabilizer;
pub use steady::{simulate, steady_state, Simulator};

const EPS: f64 = 1e-9;

/// `ceil` that ignores float noise just above an integer.
fn ceil_eps(x: f64) -> i64 {
    (x - EPS).ceil() as i64
}

/// `floor` that ignores float noise just below an integer.
fn floor_eps(x: f64) -> i64 {
    (x + EPS).floor() as i64
}

/// True when `ratio` (observed per-pod value / target) lies inside the dead band `[1 − down, 1 + up]`.
///
/// Both edges are inside, as in Kubernetes (`|1 − ratio| ≤ tolerance` means no change) and AIBrix (scales only
/// when the ratio is strictly above `1 + up` or strictly below `1 − down`).
pub(crate) fn within_tolerance(ratio: f64, up_tolerance: f64, down_tolerance: f64) -> bool {
    ratio <= 1.0 + up_tolerance + EPS && ratio >= 1.0 - down_tolerance - EPS
}

/// Mean of the values recorded within `(t − window, t]`.
fn window_mean(history: &VecDeque<(f64, f64)>, t: f64, window_s: f64) -> Option<f64> {
    let (sum, n) = history
        .iter()
        .filter(|&&(at, _)| at > t - window_s + EPS && at <= t + EPS)
        .fold((0.0, 0usize), |(s, n), &(_, v)| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

#[cfg(test)]
mod test_support {
    use super::ScalingParams;

    pub(crate) fn params(min: i64, max: i64, target: f64) -> ScalingParams {
        ScalingParams::new(min, max, "num_requests_running", target)
    }

    /// The replica count of a trajectory at the last decision at or before `t`.
    pub(crate) fn at(trajectory: &[(f64, i64)], t: f64) -> i64 {
        trajectory
            .iter()
            .take_while(|&&(at, _)| at <= t)
            .last()
            .map(|&(_, r)| r)
            .unwrap_or(-1)
    }
}
