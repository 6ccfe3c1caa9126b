//! Where each algorithm comes to rest under constant demand, in closed form ([`steady_state`]), and how to run any of
//! the three simulators over a demand curve ([`Simulator`], [`simulate`]). Steady-state expectations accept this
//! range; the simulator tests check that every simulator really settles inside it.

use std::ops::RangeInclusive;

use super::{
    apa_desired, ceil_eps, hpa_desired, kpa_desired, ApaSim, HpaSim, KpaSim, ScalingParams,
    Strategy, EPS,
};

/// The replica counts a strategy rests at under a constant total demand (sum over pods of the target metric,
/// spread evenly): every `N` in `[min, max]` whose one-step recommendation is `N` itself.
///
/// How tolerance shapes the fixed points. With target `T` (the HPA's integer target for HPA), up/down tolerance
/// `u`/`d` (the HPA uses its single `hpa_tolerance` for both) and `N₀ = ceil(D / T)`:
/// - `N` is stable when its per-pod ratio `D / (N·T)` is inside `[1 − d, 1 + u]` (no change), or when `N = N₀`
///   (outside the band every strategy recommends exactly `N₀`).
/// - So the fixed points are the integers in `[D / (T(1 + u)), D / (T(1 − d))] ∪ {N₀}`, which is one contiguous
///   range `ceil(D/(T(1+u))) ..= max(N₀, floor(D/(T(1−d))))`, clamped to `[min, max]`. Rate limits never remove a
///   fixed point (`N` is always within its own limits) and panic mode agrees with stable mode at constant demand.
/// - Which member is reached depends on history: starting outside the band the algorithms jump to `N₀`, but a
///   rate-limited step can land inside the band and stop there (e.g. `D/T = 10.5` from 5 replicas with rate 2 stops
///   at 10, not 11). Expectations therefore accept the whole range (± their slack).
///
/// Zero (or negative) demand gives `min ..= min`.
pub fn steady_state(
    strategy: Strategy,
    total_demand: f64,
    params: &ScalingParams,
) -> RangeInclusive<i64> {
    let (min, max) = (params.min_replicas, params.max_replicas);
    if total_demand.is_nan() || total_demand <= 0.0 {
        return min..=min;
    }
    let one_step = |n: i64| -> i64 {
        let rec = match strategy {
            Strategy::Hpa => hpa_desired(
                n,
                total_demand / n as f64,
                params.effective_target(Strategy::Hpa),
                params.hpa_tolerance,
            ),
            Strategy::Kpa => kpa_desired(total_demand, n, params),
            Strategy::Apa => apa_desired(n, total_demand / n as f64, params),
        };
        params.clamp(rec)
    };
    let fixed: Vec<i64> = (min.max(1)..=max).filter(|&n| one_step(n) == n).collect();
    match (fixed.first(), fixed.last()) {
        (Some(&lo), Some(&hi)) => lo..=hi,
        _ => {
            let target = params.effective_target(strategy);
            let n0 = if target > 0.0 {
                params.clamp(ceil_eps(total_demand / target))
            } else {
                min
            };
            n0..=n0
        }
    }
}

/// Any of the three simulators.
#[derive(Debug, Clone)]
pub enum Simulator {
    /// HPA.
    Hpa(HpaSim),
    /// KPA.
    Kpa(KpaSim),
    /// APA.
    Apa(ApaSim),
}

impl Simulator {
    /// The reference for `strategy`, starting at `initial` replicas.
    pub fn new(strategy: Strategy, params: &ScalingParams, initial: i64) -> Self {
        match strategy {
            Strategy::Hpa => Simulator::Hpa(HpaSim::new(params, initial)),
            Strategy::Kpa => Simulator::Kpa(KpaSim::new(params, initial)),
            Strategy::Apa => Simulator::Apa(ApaSim::new(params, initial)),
        }
    }

    /// One decision at `t` with the total demand observed then.
    pub fn step(&mut self, t: f64, total_demand: f64) -> i64 {
        match self {
            Simulator::Hpa(s) => s.step(t, total_demand),
            Simulator::Kpa(s) => s.step(t, total_demand),
            Simulator::Apa(s) => s.step(t, total_demand),
        }
    }

    /// Current replicas.
    pub fn replicas(&self) -> i64 {
        match self {
            Simulator::Hpa(s) => s.replicas(),
            Simulator::Kpa(s) => s.replicas(),
            Simulator::Apa(s) => s.replicas(),
        }
    }
}

/// Runs the reference for `strategy` from `start` to `end` (inclusive), one decision per decision period
/// ([`ScalingParams::decision_period_s`]), with `demand(t)` the total demand at `t`. Returns `(t, replicas)` after
/// each decision.
pub fn simulate(
    strategy: Strategy,
    params: &ScalingParams,
    initial: i64,
    start: f64,
    end: f64,
    demand: impl Fn(f64) -> f64,
) -> Vec<(f64, i64)> {
    let period = params.decision_period_s(strategy);
    let mut sim = Simulator::new(strategy, params, initial);
    let mut out = Vec::new();
    let mut k = 0u32;
    loop {
        let t = start + f64::from(k) * period;
        if t > end + EPS {
            break;
        }
        out.push((t, sim.step(t, demand(t))));
        k += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::test_support::params;
    use super::*;

    #[test]
    fn steady_state_is_the_tolerance_band_plus_the_ceiling() {
        let p = params(1, 20, 1.0);
        for strategy in [Strategy::Hpa, Strategy::Kpa, Strategy::Apa] {
            // D/T = 5: band [4.55, 5.56] → only 5.
            assert_eq!(steady_state(strategy, 5.0, &p), 5..=5, "{strategy}");
            // D/T = 10.5: band [9.55, 11.67] → 10 and 11 (N₀ = 11).
            assert_eq!(steady_state(strategy, 10.5, &p), 10..=11, "{strategy}");
            // D/T = 2.5: band [2.27, 2.78] holds no integer → N₀ = 3 only.
            assert_eq!(steady_state(strategy, 2.5, &p), 3..=3, "{strategy}");
            // Bounds.
            assert_eq!(steady_state(strategy, 0.0, &p), 1..=1, "{strategy}");
            assert_eq!(steady_state(strategy, 100.0, &p), 20..=20, "{strategy}");
        }
        // Wider tolerances widen the band: 0.3 → [D/1.3, D/0.7] = [7.7, 14.3] for D = 10.
        let mut wide = p.clone();
        wide.scale_up_tolerance = 0.3;
        wide.scale_down_tolerance = 0.3;
        assert_eq!(steady_state(Strategy::Kpa, 10.0, &wide), 8..=14);
        // The HPA ignores the AIBrix tolerances (its own 0.1 gives [9.09, 11.11]) and uses the integer target.
        assert_eq!(steady_state(Strategy::Hpa, 10.0, &wide), 10..=11);
        let mut fractional = p;
        fractional.target_value = 2.5;
        assert_eq!(
            steady_state(Strategy::Hpa, 10.0, &fractional),
            5..=5,
            "HPA target 2.5 → 2"
        );
        assert_eq!(steady_state(Strategy::Kpa, 10.0, &fractional), 4..=4);
    }

    #[test]
    fn simulators_settle_inside_their_steady_state() {
        let p = params(1, 20, 1.0);
        for strategy in [Strategy::Hpa, Strategy::Kpa, Strategy::Apa] {
            for demand in [3.0, 7.5, 10.5, 14.0] {
                let trajectory = simulate(strategy, &p, 1, 0.0, 1200.0, |_| demand);
                let last = trajectory.last().map(|&(_, r)| r).expect("ran");
                let range = steady_state(strategy, demand, &p);
                assert!(
                    range.contains(&last),
                    "{strategy} at demand {demand}: {last} not in {range:?}"
                );
            }
        }
    }
}
