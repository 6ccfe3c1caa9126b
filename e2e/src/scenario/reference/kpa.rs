//! The Knative KPA with AIBrix's parameters: stable and panic windows over the *total* demand, panic entry and
//! exit, rate limits and AIBrix's tolerance dead band ([`kpa_desired`]), and a stepped decision loop ([`KpaSim`]).

use std::collections::VecDeque;

use super::{ceil_eps, floor_eps, window_mean, within_tolerance, ScalingParams, Stabilizer, EPS};

/// The KPA recommendation from one windowed total (Knative §9.2 plus AIBrix's dead band), before panic logic,
/// stabilization and bounds.
///
/// With `ready = max(1, ready_pods)`: if the per-pod ratio `total / (ready × target)` is inside the tolerance band
/// the recommendation is `ready_pods` (no change); otherwise `ceil(total / target)`. The result is then kept within
/// the rate limits `[floor(ready / max-scale-down-rate), ceil(max-scale-up-rate × ready)]`.
pub fn kpa_desired(windowed_total: f64, ready_pods: i64, params: &ScalingParams) -> i64 {
    let raw = kpa_raw(windowed_total, ready_pods, params);
    let (down, up) = rate_bounds(ready_pods, params);
    raw.clamp(down, up)
}

/// The KPA recommendation before rate limits (what panic entry compares with `ready × threshold`).
fn kpa_raw(windowed_total: f64, ready_pods: i64, params: &ScalingParams) -> i64 {
    let ready = ready_pods.max(1) as f64;
    let ratio = windowed_total / (ready * params.target_value);
    if within_tolerance(
        ratio,
        params.scale_up_tolerance,
        params.scale_down_tolerance,
    ) {
        ready_pods
    } else {
        ceil_eps(windowed_total / params.target_value).max(0)
    }
}

/// `[floor(ready / down-rate), ceil(up-rate × ready)]` with `ready = max(1, ready_pods)`; the upper limit is ≥ 1.
fn rate_bounds(ready_pods: i64, params: &ScalingParams) -> (i64, i64) {
    let ready = ready_pods.max(1) as f64;
    let up = ceil_eps(params.max_scale_up_rate * ready).max(1);
    let down = floor_eps(ready / params.max_scale_down_rate);
    (down.min(up), up)
}

/// What one KPA decision saw and chose.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KpaDecision {
    /// Stable-window total demand.
    pub stable_total: f64,
    /// Panic-window total demand.
    pub panic_total: f64,
    /// `desiredStable` after rate limits.
    pub desired_stable: i64,
    /// `desiredPanic` after rate limits.
    pub desired_panic: i64,
    /// Panicking after this decision.
    pub in_panic: bool,
    /// The replica count set.
    pub replicas: i64,
}

/// A stepped Knative KPA over total demand, with AIBrix's parameters (reference §9.2).
///
/// [`KpaSim::record`] adds a total-demand observation; [`KpaSim::decide`] makes one decision:
/// 1. bounds first (outside `[min, max]` → moved inside; 0 replicas with min ≠ 0 → no action);
/// 2. `desiredStable` / `desiredPanic` from the stable/panic window means via [`kpa_desired`];
/// 3. panic entry when the panic recommendation before rate limits `/ max(1, ready) ≥ panic-threshold`; every
///    such decision extends panic; panic ends once a full stable window has passed without the condition;
/// 4. in panic: `max(desiredStable, desiredPanic)`, never below the count at panic entry or any count chosen in
///    this panic (no scale-down);
/// 5. the cooldown windows as a [`Stabilizer`] (the scale-down cooldown is Knative's scale-down delay: the
///    highest recommendation within it is applied), then bounds.
#[derive(Debug, Clone)]
pub struct KpaSim {
    params: ScalingParams,
    replicas: i64,
    history: VecDeque<(f64, f64)>,
    panic_enabled: bool,
    panic_since: Option<f64>,
    last_over_threshold: f64,
    max_panic_pods: i64,
    stabilizer: Stabilizer,
}

impl KpaSim {
    /// A KPA starting at `initial` replicas.
    pub fn new(params: &ScalingParams, initial: i64) -> Self {
        Self {
            params: params.clone(),
            replicas: initial,
            history: VecDeque::new(),
            panic_enabled: true,
            panic_since: None,
            last_over_threshold: f64::NEG_INFINITY,
            max_panic_pods: 0,
            stabilizer: Stabilizer::new(params.scale_up_cooldown_s, params.scale_down_cooldown_s),
        }
    }

    /// The same KPA with panic mode switched off: the stable window alone.
    pub(crate) fn without_panic(mut self) -> Self {
        self.panic_enabled = false;
        self
    }

    /// Current replicas.
    pub fn replicas(&self) -> i64 {
        self.replicas
    }

    /// True while panicking.
    pub(crate) fn in_panic(&self) -> bool {
        self.panic_since.is_some()
    }

    /// Records the total demand observed at `t` (times must not decrease).
    pub fn record(&mut self, t: f64, total_demand: f64) {
        self.history.push_back((t, total_demand));
        let keep = self.params.stable_window_s.max(self.params.panic_window_s);
        while self
            .history
            .front()
            .is_some_and(|&(at, _)| at <= t - keep - EPS)
        {
            self.history.pop_front();
        }
    }

    /// One decision at `t`.
    pub(crate) fn decide(&mut self, t: f64) -> KpaDecision {
        let p = &self.params;
        let current = self.replicas;
        let stable_total = window_mean(&self.history, t, p.stable_window_s).unwrap_or(0.0);
        let panic_total = window_mean(&self.history, t, p.panic_window_s).unwrap_or(0.0);
        let mut decision = KpaDecision {
            stable_total,
            panic_total,
            desired_stable: current,
            desired_panic: current,
            in_panic: self.in_panic(),
            replicas: current,
        };
        if current == 0 && p.min_replicas != 0 {
            return decision;
        }
        if current > p.max_replicas || current < p.min_replicas {
            self.replicas = p.clamp(current);
            decision.replicas = self.replicas;
            return decision;
        }
        let ready = current.max(1) as f64;
        let desired_stable = kpa_desired(stable_total, current, p);
        let desired_panic = kpa_desired(panic_total, current, p);
        let over = self.panic_enabled
            && kpa_raw(panic_total, current, p) as f64 / ready >= p.panic_threshold - EPS;
        if over {
            if self.panic_since.is_none() {
                self.panic_since = Some(t);
                self.max_panic_pods = current;
            }
            self.last_over_threshold = t;
        } else if self.panic_since.is_some()
            && t - self.last_over_threshold > p.stable_window_s - EPS
        {
            self.panic_since = None;
            self.max_panic_pods = 0;
        }
        let mut desired = desired_stable;
        if self.panic_since.is_some() {
            desired = desired.max(desired_panic).max(self.max_panic_pods);
            self.max_panic_pods = desired;
        }
        let stabilized = self.stabilizer.apply(t, current, desired);
        self.replicas = self.params.clamp(stabilized);
        KpaDecision {
            stable_total,
            panic_total,
            desired_stable,
            desired_panic,
            in_panic: self.in_panic(),
            replicas: self.replicas,
        }
    }

    /// [`KpaSim::record`] then [`KpaSim::decide`]; returns the new replica count.
    pub fn step(&mut self, t: f64, total_demand: f64) -> i64 {
        self.record(t, total_demand);
        self.decide(t).replicas
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::params;
    use super::*;

    #[test]
    fn kpa_panic_reaches_the_spike_count_sooner_than_the_stable_window() {
        let p = params(1, 8, 1.0);
        let spike = |t: f64| if t < 200.0 { 1.0 } else { 8.0 };
        let mut sim = KpaSim::new(&p, 1);
        let mut stable_only = KpaSim::new(&p, 1).without_panic();
        let (mut with_panic, mut without) = (Vec::new(), Vec::new());
        let mut t = 0.0;
        while t <= 600.0 {
            with_panic.push((t, sim.step(t, spike(t))));
            if t == 200.0 {
                // Panic mean (5·1 + 8)/6 = 2.17 → desiredPanic 3 ≥ 2 × 1 ready.
                assert!(sim.in_panic());
            }
            without.push((t, stable_only.step(t, spike(t))));
            t += 10.0;
        }
        let first = |trajectory: &[(f64, i64)], n: i64| {
            trajectory.iter().find(|&&(_, r)| r >= n).map(|&(t, _)| t)
        };
        // Both leave 1 at the first spiked decision (the 10 % band is crossed by either mean) …
        assert_eq!(first(&with_panic, 2), Some(200.0));
        assert_eq!(first(&without, 2), Some(200.0));
        // … but panic follows the 60 s mean (×2 per decision at first): 2, 4, 5, 6, 7, 8 by t=250, while the 180 s
        // mean must exceed 7.7 (7 pods × 1.1) before the stable window alone gets to 8, at t=370.
        assert_eq!(first(&with_panic, 8), Some(250.0));
        assert_eq!(first(&without, 8), Some(370.0));
        assert_eq!(sim.replicas(), 8);
    }

    #[test]
    fn kpa_panic_holds_replicas_then_exits_after_a_stable_window() {
        let mut p = params(1, 8, 1.0);
        p.scale_down_cooldown_s = 0.0;
        let mut sim = KpaSim::new(&p, 1);
        let mut t = 0.0;
        // Spike of 6 for 60 s, then back to 1.
        let mut during = Vec::new();
        while t <= 700.0 {
            let demand = if (0.0..60.0).contains(&t) { 6.0 } else { 1.0 };
            let r = sim.step(t, demand);
            during.push((t, r, sim.in_panic()));
            t += 10.0;
        }
        // Panic entered at once (6/1 ≥ 2) and the count never drops while panicking.
        assert!(during[0].2);
        let mut peak = 0;
        for &(t, r, panic) in &during {
            if panic {
                assert!(r >= peak, "scaled down to {r} at {t} while panicking");
                peak = peak.max(r);
            }
        }
        // The condition stops once the panic window mean falls below 2 × ready; a stable window later panic ends.
        let exit = during
            .iter()
            .find(|&&(t, _, panic)| t > 0.0 && !panic)
            .expect("panic ends");
        assert!(exit.0 > 180.0, "{exit:?}");
        // With no scale-down delay the count returns to the one-replica demand afterwards.
        assert_eq!(during.last().map(|&(_, r, _)| r), Some(1));
    }

    #[test]
    fn kpa_scale_down_delay_holds_the_highest_recommendation() {
        let mut p = params(1, 8, 1.0);
        p.scale_down_cooldown_s = 120.0;
        p.stable_window_s = 10.0;
        p.panic_window_s = 10.0;
        let mut sim = KpaSim::new(&p, 4);
        let mut t = 0.0;
        let mut first_down = None;
        while t <= 400.0 {
            let demand = if t < 100.0 { 4.0 } else { 1.0 };
            if sim.step(t, demand) < 4 && first_down.is_none() {
                first_down = Some(t);
            }
            t += 10.0;
        }
        // The lower recommendation starts at t=100; the 4 recorded at t=90 leaves the 120 s window at t=210.
        assert_eq!(first_down, Some(210.0));
    }

    #[test]
    fn kpa_rate_limits_and_tolerance() {
        let p = params(1, 100, 1.0);
        // 1 ready pod, total 10: at most ceil(2 × 1) = 2.
        assert_eq!(kpa_desired(10.0, 1, &p), 2);
        // 8 ready, total 1: at least floor(8 / 2) = 4.
        assert_eq!(kpa_desired(1.0, 8, &p), 4);
        // 5 ready, total 5.4: ratio 1.08 inside the band → 5; total 5.6 → ceil = 6.
        assert_eq!(kpa_desired(5.4, 5, &p), 5);
        assert_eq!(kpa_desired(5.6, 5, &p), 6);
    }
}
