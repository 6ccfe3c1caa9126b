//! The one stabilization rule every reference shares: Kubernetes' HPA stabilization windows, which AIBrix reuses
//! for its cooldown windows (KPA, APA) and which is also Knative's scale-down delay.

use std::collections::VecDeque;

/// HPA-style stabilization over a history of recommendations (also used for AIBrix's cooldown windows in the
/// KPA/APA references and Knative's scale-down delay, which is the same rule).
///
/// Each decision records its raw recommendation. A scale-up goes no higher than the *lowest* recommendation within
/// the up window; a scale-down goes no lower than the *highest* within the down window (the result starts from the
/// current count and is raised to the first bound, then lowered to the second, as in kube-controller-manager). The
/// first decision seeds the history with the current count, as Kubernetes does for the scale-down window.
#[derive(Debug, Clone)]
pub struct Stabilizer {
    up_window_s: f64,
    down_window_s: f64,
    history: VecDeque<(f64, i64)>,
    seeded: bool,
}

impl Stabilizer {
    /// Windows in seconds.
    pub fn new(up_window_s: f64, down_window_s: f64) -> Self {
        Self {
            up_window_s,
            down_window_s,
            history: VecDeque::new(),
            seeded: false,
        }
    }

    /// Records `recommendation` at `t` and returns the stabilized value for a target now at `current`.
    pub fn apply(&mut self, t: f64, current: i64, recommendation: i64) -> i64 {
        if !self.seeded {
            self.seeded = true;
            if self.down_window_s > 0.0 {
                self.history.push_back((t, current));
            }
        }
        let keep = self.up_window_s.max(self.down_window_s);
        while self.history.front().is_some_and(|&(at, _)| at <= t - keep) {
            self.history.pop_front();
        }
        let mut up = recommendation;
        let mut down = recommendation;
        for &(at, rec) in &self.history {
            if at > t - self.up_window_s {
                up = up.min(rec);
            }
            if at > t - self.down_window_s {
                down = down.max(rec);
            }
        }
        self.history.push_back((t, recommendation));
        let mut result = current;
        if result < up {
            result = up;
        }
        if result > down {
            result = down;
        }
        result
    }
}
