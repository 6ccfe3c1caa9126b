//! The AIBrix APA as documented: a per-pod ratio against the target with a tolerance dead band and rate limits
//! ([`apa_desired`]), and a stepped decision loop over the stable window's per-pod means ([`ApaSim`]).

use std::collections::VecDeque;

use super::{ceil_eps, floor_eps, window_mean, ScalingParams, Stabilizer, EPS};

/// The APA recommendation (reference §9.3) before stabilization and bounds.
///
/// `r = per-pod mean / target`. Above `1 + up-tolerance`: `ceil(current × r)`, at most `ceil(max-scale-up-rate ×
/// current)`. Below `1 − down-tolerance`: `ceil(current × r)`, at least `floor(current / max-scale-down-rate)`.
/// Otherwise `current`.
pub fn apa_desired(current: i64, per_pod_mean: f64, params: &ScalingParams) -> i64 {
    if current <= 0 {
        return current.max(0);
    }
    let n = current as f64;
    let ratio = per_pod_mean / params.target_value;
    if ratio > 1.0 + params.scale_up_tolerance + EPS {
        ceil_eps(n * ratio).min(ceil_eps(params.max_scale_up_rate * n))
    } else if ratio < 1.0 - params.scale_down_tolerance - EPS {
        ceil_eps(n * ratio).max(floor_eps(n / params.max_scale_down_rate))
    } else {
        current
    }
}

/// A stepped AIBrix APA as documented (reference §9.3).
///
/// [`ApaSim::record`] stores the per-pod mean `total / max(1, replicas)` at `t`; [`ApaSim::decide`] takes the mean
/// of those over the stable window, applies [`apa_desired`] and bounds, then the cooldown windows
/// ([`Stabilizer`]), then bounds. Because the window mixes per-pod means taken at older replica counts, the
/// documented APA can overshoot after a step; that is the reference's behavior, not a simulator artefact.
#[derive(Debug, Clone)]
pub struct ApaSim {
    params: ScalingParams,
    replicas: i64,
    history: VecDeque<(f64, f64)>,
    stabilizer: Stabilizer,
}

impl ApaSim {
    /// An APA starting at `initial` replicas.
    pub fn new(params: &ScalingParams, initial: i64) -> Self {
        Self {
            params: params.clone(),
            replicas: initial,
            history: VecDeque::new(),
            stabilizer: Stabilizer::new(params.scale_up_cooldown_s, params.scale_down_cooldown_s),
        }
    }

    /// Current replicas.
    pub fn replicas(&self) -> i64 {
        self.replicas
    }

    /// Records the total demand observed at `t` as a per-pod mean at the current replica count.
    pub fn record(&mut self, t: f64, total_demand: f64) {
        self.history
            .push_back((t, total_demand / self.replicas.max(1) as f64));
        while self
            .history
            .front()
            .is_some_and(|&(at, _)| at <= t - self.params.stable_window_s - EPS)
        {
            self.history.pop_front();
        }
    }

    /// One decision at `t`; returns the new replica count.
    pub(crate) fn decide(&mut self, t: f64) -> i64 {
        let p = &self.params;
        let current = self.replicas;
        if current == 0 && p.min_replicas != 0 {
            return current;
        }
        if current > p.max_replicas || current < p.min_replicas {
            self.replicas = p.clamp(current);
            return self.replicas;
        }
        let Some(mean) = window_mean(&self.history, t, p.stable_window_s) else {
            return current;
        };
        let desired = p.clamp(apa_desired(current, mean, p));
        let stabilized = self.stabilizer.apply(t, current, desired);
        self.replicas = self.params.clamp(stabilized);
        self.replicas
    }

    /// [`ApaSim::record`] then [`ApaSim::decide`].
    pub fn step(&mut self, t: f64, total_demand: f64) -> i64 {
        self.record(t, total_demand);
        self.decide(t)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::params;
    use super::*;
    use crate::scenario::reference::{simulate, Strategy};

    #[test]
    fn apa_dead_band_rates_and_overshoot() {
        let p = params(1, 10, 10.0);
        // Ratio 1.1 and 0.9 are inside the band.
        assert_eq!(apa_desired(4, 11.0, &p), 4);
        assert_eq!(apa_desired(4, 9.0, &p), 4);
        // 1.15 → ceil(4 × 1.15) = 5; 0.5 → 2.
        assert_eq!(apa_desired(4, 11.5, &p), 5);
        assert_eq!(apa_desired(4, 5.0, &p), 2);
        // Rates: at most ×2 up, at least ÷2 down.
        assert_eq!(apa_desired(2, 50.0, &p), 4);
        assert_eq!(apa_desired(8, 0.0, &p), 4);

        // Load inside the band never moves the simulator.
        let trajectory = simulate(Strategy::Apa, &p, 4, 0.0, 600.0, |_| 43.0);
        assert!(trajectory.iter().all(|&(_, r)| r == 4), "{trajectory:?}");
        // Above the band it scales up.
        let trajectory = simulate(Strategy::Apa, &p, 4, 0.0, 600.0, |_| 60.0);
        assert!(trajectory.iter().any(|&(_, r)| r > 4));
    }
}
