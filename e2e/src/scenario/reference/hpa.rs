//! The Kubernetes HPA as AIBrix generates it: the core formula with its tolerance ([`hpa_desired`]), the
//! `behavior` AIBrix writes (stabilization and rate policies, [`HpaBehavior`]) and a stepped sync loop ([`HpaSim`]).

use super::{ceil_eps, within_tolerance, ScalingParams, Stabilizer, Strategy, EPS};

/// The Kubernetes HPA core formula: `ceil(current × mean / target)`, or `current` while `|mean/target − 1| ≤
/// tolerance`.
///
/// `metric_mean_per_pod` is the mean over the pods that reported (for `Pods` metrics with `AverageValue`), so with
/// every pod reporting this equals `ceil(total / target)` outside the band. With `current = 0` (scaling disabled) or
/// a non-positive target (an AIBrix `targetValue` below 1 truncates to 0 for the HPA) nothing changes.
pub fn hpa_desired(current: i64, metric_mean_per_pod: f64, target: f64, tolerance: f64) -> i64 {
    if current <= 0 || target <= 0.0 || !metric_mean_per_pod.is_finite() {
        return current.max(0);
    }
    let ratio = metric_mean_per_pod / target;
    if within_tolerance(ratio, tolerance, tolerance) {
        current
    } else {
        ceil_eps(ratio * current as f64)
    }
}

/// An HPA scaling policy type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// An absolute number of pods per period.
    Pods,
    /// A percentage of the replicas at the start of the period.
    Percent,
}

/// One HPA scaling policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HpaPolicy {
    /// Pods or Percent.
    pub kind: PolicyKind,
    /// The amount.
    pub value: i64,
    /// `periodSeconds`.
    pub period_s: f64,
}

/// `selectPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectPolicy {
    /// The policy allowing the largest change.
    Max,
    /// The policy allowing the smallest change.
    Min,
    /// No scaling in this direction.
    Disabled,
}

/// One direction of `HorizontalPodAutoscalerBehavior`.
#[derive(Debug, Clone, PartialEq)]
pub struct HpaRules {
    /// `stabilizationWindowSeconds`.
    pub stabilization_s: f64,
    /// `policies`.
    pub policies: Vec<HpaPolicy>,
    /// `selectPolicy`.
    pub select: SelectPolicy,
}

/// `HorizontalPodAutoscalerBehavior`.
#[derive(Debug, Clone, PartialEq)]
pub struct HpaBehavior {
    /// `scaleUp`.
    pub scale_up: HpaRules,
    /// `scaleDown`.
    pub scale_down: HpaRules,
}

impl HpaBehavior {
    /// What AIBrix writes into the generated HPA (reference §6, `buildHPABehavior`): scale-up `Percent
    /// trunc((rate − 1) × 100)` per 60 s, `Max`, stabilization = scale-up cooldown; scale-down `Percent
    /// trunc((1 − 1/rate) × 100)` per 60 s, `Min`, stabilization = scale-down cooldown. A negative percentage becomes
    /// 100, as in AIBrix.
    pub fn aibrix(params: &ScalingParams) -> Self {
        let percent = |p: f64| {
            let p = p as i64;
            if p < 0 {
                100
            } else {
                p
            }
        };
        let policy = |value| HpaPolicy {
            kind: PolicyKind::Percent,
            value,
            period_s: 60.0,
        };
        Self {
            scale_up: HpaRules {
                stabilization_s: params.scale_up_cooldown_s.trunc(),
                policies: vec![policy(percent((params.max_scale_up_rate - 1.0) * 100.0))],
                select: SelectPolicy::Max,
            },
            scale_down: HpaRules {
                stabilization_s: params.scale_down_cooldown_s.trunc(),
                policies: vec![policy(percent(
                    (1.0 - 1.0 / params.max_scale_down_rate) * 100.0,
                ))],
                select: SelectPolicy::Min,
            },
        }
    }

    #[cfg(test)]
    /// Kubernetes' default behavior: up {100 % / 15 s, 4 pods / 15 s} Max with no stabilization; down 100 % / 15 s
    /// with 300 s stabilization.
    pub(crate) fn kubernetes_default() -> Self {
        Self {
            scale_up: HpaRules {
                stabilization_s: 0.0,
                policies: vec![
                    HpaPolicy {
                        kind: PolicyKind::Percent,
                        value: 100,
                        period_s: 15.0,
                    },
                    HpaPolicy {
                        kind: PolicyKind::Pods,
                        value: 4,
                        period_s: 15.0,
                    },
                ],
                select: SelectPolicy::Max,
            },
            scale_down: HpaRules {
                stabilization_s: 300.0,
                policies: vec![HpaPolicy {
                    kind: PolicyKind::Percent,
                    value: 100,
                    period_s: 15.0,
                }],
                select: SelectPolicy::Max,
            },
        }
    }
}

/// A stepped Kubernetes HPA (kube-controller-manager's `reconcileAutoscaler` with behaviors) over total demand.
///
/// Each [`HpaSim::step`] is one sync: bounds first (a count outside `[min, max]` is moved inside directly), then the
/// core formula on `mean = total / current`, then stabilization (the scale-down window is seeded with the starting
/// count), then the rate policies (replicas changed within each policy's period are subtracted to find the
/// period-start count; `Percent` up rounds up, down rounds down), then bounds.
#[derive(Debug, Clone)]
pub struct HpaSim {
    min: i64,
    max: i64,
    target: f64,
    tolerance: f64,
    behavior: HpaBehavior,
    stabilizer: Stabilizer,
    replicas: i64,
    up_events: Vec<(f64, i64)>,
    down_events: Vec<(f64, i64)>,
}

impl HpaSim {
    /// An HPA as AIBrix generates it for `params`, starting at `initial` replicas.
    pub fn new(params: &ScalingParams, initial: i64) -> Self {
        Self::with_behavior(params, initial, HpaBehavior::aibrix(params))
    }

    /// An HPA with an explicit behavior.
    pub(crate) fn with_behavior(
        params: &ScalingParams,
        initial: i64,
        behavior: HpaBehavior,
    ) -> Self {
        Self {
            min: params.min_replicas,
            max: params.max_replicas,
            target: params.effective_target(Strategy::Hpa),
            tolerance: params.hpa_tolerance,
            stabilizer: Stabilizer::new(
                behavior.scale_up.stabilization_s,
                behavior.scale_down.stabilization_s,
            ),
            behavior,
            replicas: initial,
            up_events: Vec::new(),
            down_events: Vec::new(),
        }
    }

    /// Current replicas.
    pub fn replicas(&self) -> i64 {
        self.replicas
    }

    /// One sync at time `t` with `total_demand` summed over the pods; returns the new replica count.
    pub fn step(&mut self, t: f64, total_demand: f64) -> i64 {
        let current = self.replicas;
        if current == 0 && self.min != 0 {
            return 0;
        }
        let new = if current > self.max {
            self.max
        } else if current < self.min {
            self.min
        } else {
            let raw = hpa_desired(
                current,
                total_demand / current.max(1) as f64,
                self.target,
                self.tolerance,
            );
            let stabilized = self.stabilizer.apply(t, current, raw);
            self.rate_limit(t, current, stabilized)
        };
        if new > current {
            self.up_events.push((t, new - current));
        } else if new < current {
            self.down_events.push((t, current - new));
        }
        let keep = self
            .behavior
            .scale_up
            .policies
            .iter()
            .chain(&self.behavior.scale_down.policies)
            .map(|p| p.period_s)
            .fold(0.0, f64::max);
        self.up_events.retain(|&(at, _)| at > t - keep);
        self.down_events.retain(|&(at, _)| at > t - keep);
        self.replicas = new;
        new
    }

    fn changed_within(events: &[(f64, i64)], t: f64, period_s: f64) -> i64 {
        events
            .iter()
            .filter(|&&(at, _)| at > t - period_s)
            .map(|&(_, d)| d)
            .sum()
    }

    fn rate_limit(&self, t: f64, current: i64, desired: i64) -> i64 {
        let period_start = |period_s: f64| {
            current - Self::changed_within(&self.up_events, t, period_s)
                + Self::changed_within(&self.down_events, t, period_s)
        };
        if desired > current {
            let rules = &self.behavior.scale_up;
            let proposals = rules.policies.iter().map(|p| {
                let start = period_start(p.period_s);
                match p.kind {
                    PolicyKind::Pods => start + p.value,
                    PolicyKind::Percent => ceil_eps(start as f64 * (1.0 + p.value as f64 / 100.0)),
                }
            });
            let limit = match rules.select {
                SelectPolicy::Disabled => current,
                SelectPolicy::Max => proposals.max().unwrap_or(current),
                SelectPolicy::Min => proposals.min().unwrap_or(current),
            }
            .max(current);
            desired.min(limit.min(self.max))
        } else if desired < current {
            let rules = &self.behavior.scale_down;
            let proposals = rules.policies.iter().map(|p| {
                let start = period_start(p.period_s);
                match p.kind {
                    PolicyKind::Pods => start - p.value,
                    PolicyKind::Percent => {
                        (start as f64 * (1.0 - p.value as f64 / 100.0) + EPS).floor() as i64
                    }
                }
            });
            // Max selects the largest change (the lowest count), Min the smallest change (the highest count).
            let limit = match rules.select {
                SelectPolicy::Disabled => current,
                SelectPolicy::Max => proposals.min().unwrap_or(current),
                SelectPolicy::Min => proposals.max().unwrap_or(current),
            }
            .min(current);
            desired.max(limit.max(self.min))
        } else {
            desired
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{at, params};
    use super::*;
    use crate::scenario::reference::{simulate, Strategy};

    #[test]
    fn hpa_formula_respects_the_tolerance_band() {
        // 2 pods at 4.4 per pod, target 4: ratio 1.1 is on the band's edge → no change.
        assert_eq!(hpa_desired(2, 4.4, 4.0, 0.1), 2);
        // Just outside: ceil(2 × 1.125) = 3.
        assert_eq!(hpa_desired(2, 4.5, 4.0, 0.1), 3);
        // Down: ratio 0.9 stays, 0.5 halves.
        assert_eq!(hpa_desired(4, 3.6, 4.0, 0.1), 4);
        assert_eq!(hpa_desired(4, 2.0, 4.0, 0.1), 2);
        // Large ratio: ceil(total / target).
        assert_eq!(hpa_desired(1, 30.0, 4.0, 0.1), 8);
        // Zero replicas or a zero target: no change.
        assert_eq!(hpa_desired(0, 10.0, 4.0, 0.1), 0);
        assert_eq!(hpa_desired(3, 10.0, 0.0, 0.1), 3);
    }

    #[test]
    fn hpa_with_aibrix_behavior_doubles_at_most_every_60_s() {
        let p = params(1, 8, 1.0);
        let behavior = HpaBehavior::aibrix(&p);
        assert_eq!(behavior.scale_up.policies[0].value, 100);
        assert_eq!(behavior.scale_down.policies[0].value, 50);
        assert_eq!(behavior.scale_down.stabilization_s, 300.0);
        let trajectory = simulate(Strategy::Hpa, &p, 1, 0.0, 240.0, |_| 100.0);
        assert_eq!(at(&trajectory, 0.0), 2);
        assert_eq!(at(&trajectory, 45.0), 2);
        assert_eq!(at(&trajectory, 60.0), 4);
        assert_eq!(at(&trajectory, 105.0), 4);
        assert_eq!(at(&trajectory, 120.0), 8);
        assert_eq!(at(&trajectory, 240.0), 8);
    }

    #[test]
    fn hpa_scale_down_waits_for_the_stabilization_window_then_halves_per_minute() {
        let p = params(1, 8, 1.0);
        let mut sim = HpaSim::new(&p, 8);
        let mut trajectory = Vec::new();
        let mut t = 0.0;
        while t <= 600.0 {
            // 8 replicas fully used until t=100, then no load.
            let demand = if t < 100.0 { 8.0 } else { 0.0 };
            trajectory.push((t, sim.step(t, demand)));
            t += 15.0;
        }
        // The last sync under load (t=90) recommended 8; it leaves the 300 s window at t=390, one sync period
        // before drop + window: the earliest scale-down is cooldown − period after the drop.
        assert_eq!(at(&trajectory, 389.0), 8);
        // Then at most −50 % per 60 s: 8 → 4 → 2 → 1.
        let first_down = trajectory
            .iter()
            .find(|&&(_, r)| r < 8)
            .copied()
            .expect("scales down");
        assert_eq!(first_down, (390.0, 4));
        assert_eq!(at(&trajectory, first_down.0 + 45.0), 4);
        assert_eq!(at(&trajectory, first_down.0 + 60.0), 2);
        assert_eq!(at(&trajectory, first_down.0 + 120.0), 1);
    }

    #[test]
    fn hpa_kubernetes_default_behavior_scales_up_faster() {
        let p = params(1, 20, 1.0);
        let mut sim = HpaSim::with_behavior(&p, 1, HpaBehavior::kubernetes_default());
        // Max of {+100 %, +4 pods} per 15 s: 1 → 5 → 10 → 20.
        assert_eq!(sim.step(0.0, 100.0), 5);
        assert_eq!(sim.step(15.0, 100.0), 10);
        assert_eq!(sim.step(30.0, 100.0), 20);
    }
}
