//! Expectations: what a scenario asserts about its recorded [`Timeline`], and how each is judged.
//!
//! This module owns the assertion vocabulary of scenario files (the `expectations:` list) and its evaluation. It is
//! pure logic over a finished timeline, so every kind is unit-tested on hand-made timelines without a cluster.
//! Quantitative expectations are judged against the reference algorithms of [`super::reference`] with the
//! PodAutoscaler's own parameters, not against hard-coded numbers.
//!
//! Every item is a YAML map with a `kind` and the kind's fields ([`Expectation`]); any item may add one mark,
//! `expected_failure: "<reason>"` or `intermittent: "<reason>"`, for a known deviation of the pinned controller
//! ([`Mark`], which alone decides what the mark does to the outcome). Unknown fields are rejected, so a typo cannot
//! silently weaken an assertion.
//!
//! ```yaml
//! - {kind: reaches_at_least, replicas: 3, within_s: 90, after_phase: burst}
//! - {kind: steady_state, phase: plateau, metric: num_requests_running, settle_s: 120, slack: 1}
//! - {kind: within_bounds}
//! - {kind: no_scale_down_before, after_phase: idle}   # seconds: default cooldown − one decision period
//! - {kind: back_to_min, after_phase: idle, within_s: 600}
//! - {kind: no_scaling, phase: in_band, settle_s: 30}
//! - {kind: cooldown_window, direction: down, seconds: 180}  # the window the controller logged it applied
//! - {kind: max_direction_changes, max: 1, from_phase: burst, window_s: 600}
//! - kind: panic_scales_up_faster
//!   phase: spike
//!   within_s: 60
//!   expected_failure: "v0.7.0 KPA compares the per-pod mean with the target, not the total"
//! ```
//!
//! Times in a timeline are seconds since the scenario started; phases are given by the runner as
//! [`Phase`]`{name, start, end}` in the same clock.
//!
//! Layout: this file holds the vocabulary ([`Expectation`], [`ExpectationItem`]) and sends each kind to its check:
//! `reach.rs` (time to a count: `reaches_at_least`, `back_to_min`), `stability.rs` (`steady_state`,
//! `within_bounds`, `no_scaling`, `max_direction_changes`), `cooldown.rs` (`no_scale_down_before`,
//! `no_scale_up_before`, `cooldown_window`) and `panic.rs` (`panic_scales_up_faster`). The checks share
//! `timeline_query.rs` and `context.rs`; `verdict.rs` holds what a check returns and how outcomes combine; `mark.rs`
//! applies an item's mark.

use serde::{Deserialize, Serialize};

mod context;
mod cooldown;
mod decisions;
mod mark;
mod panic;
mod rates;
mod reach;
mod stability;
mod status;
mod timeline_query;
mod verdict;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_status;

pub use context::{EvalContext, Phase};
pub use cooldown::Direction;
pub use mark::{Mark, MarkKeys, TwoMarks};
pub use timeline_query::{excerpt, EXCERPT_SAMPLES};
pub use verdict::{overall, Judgement, Outcome, Verdict};

use crate::observe::timeline::Timeline;
use verdict::secs;

fn default_slack() -> i64 {
    1
}

fn yes() -> bool {
    true
}

/// One assertion of a scenario (`kind` selects the variant; see the module doc for YAML).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Expectation {
    /// `spec.replicas ≥ replicas` at some sample within `within_s` of the start of phase `after_phase` (a load step).
    ReachesAtLeast {
        /// Replica count to reach.
        replicas: i64,
        /// Limit, seconds after the phase starts.
        within_s: f64,
        /// The phase whose start is the load step.
        after_phase: String,
    },
    /// From `settle_s` after the start of `phase` to its end, every replica count lies within the reference
    /// [`steady_state`](reference::steady_state) for the median observed total of `metric`, ± `slack`.
    SteadyState {
        /// The phase (constant load).
        phase: String,
        /// Metric whose total over Ready pods is the demand (default: the PodAutoscaler's target metric).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        metric: Option<String>,
        /// Seconds after the phase start before the window begins.
        settle_s: f64,
        /// Accepted distance from the reference range (default 1).
        #[serde(default = "default_slack")]
        slack: i64,
    },
    /// `spec.replicas` never outside `[min, max]` over the whole timeline.
    WithinBounds {},
    /// After the load drops (start of `after_phase`), `spec.replicas` does not decrease for `seconds`. The timeline
    /// must cover that time.
    ///
    /// Default: the scale-down cooldown window minus one decision period (10 s resync for KPA/APA, the HPA sync
    /// period for HPA). Every reference applies a reduction only once no higher recommendation is left in the
    /// window, and the last recommendation made under load can precede the drop by up to one period, so this is
    /// the earliest a reference may scale down (assuming replicas had converged before the drop).
    NoScaleDownBefore {
        /// The phase whose start is the load drop.
        after_phase: String,
        /// Hold time, seconds (default: `scale-down-cooldown-window`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seconds: Option<f64>,
    },
    /// `spec.replicas` reaches `min` within `within_s` of the start of `after_phase` (load stopped).
    BackToMin {
        /// The phase whose start is the load stop.
        after_phase: String,
        /// Limit, seconds after the phase starts.
        within_s: f64,
    },
    /// `spec.replicas` does not change during `phase` (from `settle_s` after its start): load inside the tolerance
    /// band causes no scaling.
    NoScaling {
        /// The phase.
        phase: String,
        /// Seconds after the phase start to ignore (default 0).
        #[serde(default)]
        settle_s: f64,
    },
    /// No flapping: the replica trajectory changes direction (up→down or down→up) at most `max` times, counted from
    /// the start of `from_phase` (default: the timeline's start) for `window_s` (default: to the end).
    MaxDirectionChanges {
        /// Allowed direction changes.
        max: u32,
        /// Start counting at this phase's start.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from_phase: Option<String>,
        /// Count for this many seconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        window_s: Option<f64>,
    },
    /// KPA panic mode: a spike at the start of `phase` scales up within `within_s`, and reaches its count earlier
    /// than the stable window alone would allow.
    ///
    /// Let `N` be the highest `spec.replicas` within `within_s` of the spike (it must exceed the count at the spike)
    /// and `t` the first time it was reached. The reference KPA with panic switched off
    /// ([`KpaSim::without_panic`]) is fed the observed total of `metric` (the stable window's worth of history
    /// before the spike, then the spike) from the count at the spike, at every tick phase within the resync period;
    /// the expectation holds when `t` is earlier than the earliest time that stable-only reference reaches `N`.
    /// (Comparing *first* scale-ups would prove nothing: with the 10 % band the 180 s mean crosses the up threshold
    /// almost as soon as the 60 s one; what panic buys is reaching the spike's count sooner.)
    ///
    /// Choosing `within_s`: after a step from `D₀` to `D₁` (per-pod target `T`) the 60 s panic mean reaches `D₁` in
    /// 60 s and the 180 s stable mean in 180 s. The panic reference therefore reaches `ceil(D₁/T)` roughly 40–60 s
    /// after the spike (at most ×2 per 10 s decision), while the stable-only one gets there only once the stable
    /// mean exceeds `(ceil(D₁/T) − 1)·T·(1 + up-tolerance)`, typically 150 s or more. A limit of 60–90 s (the panic
    /// window plus a resync period and scrape time) separates the two. The verdict prints both reference times,
    /// e.g. "scaled 1 → 6 at t=340.0 s, 40.0 s after phase `spike` started (limit 60 s); the stable window alone
    /// would have reached 6 at t≈460 s (reference KPA with panic: t≈340 s)".
    PanicScalesUpFaster {
        /// The phase whose start is the spike.
        phase: String,
        /// Limit, seconds after the phase starts.
        within_s: f64,
        /// Metric whose total is the demand (default: the PodAutoscaler's target metric).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        metric: Option<String>,
    },
    /// After the load rises (start of `after_phase`), `spec.replicas` does not increase for `seconds` (default:
    /// `scale-up-cooldown-window` minus one decision period). Inconclusive (failed) if it never scales up.
    NoScaleUpBefore {
        /// The phase whose start is the load rise.
        after_phase: String,
        /// Hold time, seconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seconds: Option<f64>,
    },
    /// Every change of `spec.replicas` respects `max-scale-up-rate` / `max-scale-down-rate` (per decision for
    /// KPA/APA, per 60 s policy period for HPA). Inconclusive (failed) if replicas never change.
    RateLimited {},
    /// Every recommendation the controller logged (from `from_phase` on) equals the reference recomputed from the
    /// controller's own inputs (its per-pod values and window averages); at most `max_mismatches` may differ.
    /// KPA/APA only.
    Decisions {
        /// Judge from this phase's start (default: every decision).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from_phase: Option<String>,
        /// Differences allowed (default 0).
        #[serde(default)]
        max_mismatches: usize,
    },
    /// The first change of `spec.replicas` (after the start of `after_phase`, default: the run's start) goes to
    /// exactly `to`: one decision's size, e.g. what `max-scale-up-rate` allows from the starting count.
    FirstChange {
        /// The count the first decision must reach.
        to: i64,
        /// Count from this phase's start.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after_phase: Option<String>,
    },
    /// `spec.replicas` stays within `min..=max` during `phase` (default: the whole run) from `settle_s` on.
    ReplicasBetween {
        /// The phase (default: the whole timeline).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        phase: Option<String>,
        /// Seconds after the start to ignore.
        #[serde(default)]
        settle_s: f64,
        /// Lowest allowed.
        min: i64,
        /// Highest allowed.
        max: i64,
    },
    /// A status condition of a PodAutoscaler (default: the one under test) when the load ended.
    Condition {
        /// Condition type (`ValidSpec`, `AbleToScale`, `ScalingActive`, `MultiPodAutoscalerConflict` …).
        #[serde(rename = "type")]
        type_: String,
        /// `True`, `False` or `Unknown`.
        status: String,
        /// The reason, if it matters.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// Which PodAutoscaler (name).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        podautoscaler: Option<String>,
    },
    /// An event with this reason was recorded (or, with `present: false`, never was) on a PodAutoscaler, its HPA or
    /// the Deployment.
    Event {
        /// `reason` (`SuccessfulRescale`, `FailedComputeScale` …).
        reason: String,
        /// Text the message must contain.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message_contains: Option<String>,
        /// The involved object's name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        object: Option<String>,
        /// Whether it must be there (default) or must not.
        #[serde(default = "yes")]
        present: bool,
    },
    /// Every cooldown step the controller logged in `direction` used a window of `seconds` (default: the
    /// PodAutoscaler's own window for that direction): what it parsed from the annotations, judged apart from what
    /// it does with the window. KPA/APA only.
    CooldownWindow {
        /// `up` or `down`.
        direction: Direction,
        /// The window, seconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seconds: Option<f64>,
    },
    /// The HPA the controller generated for the HPA strategy (or, with `present: false`, that there is none).
    HpaObject {
        /// Whether it must exist (default) or must not.
        #[serde(default = "yes")]
        present: bool,
        /// Its `spec.minReplicas`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min_replicas: Option<i64>,
        /// Its `spec.maxReplicas`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_replicas: Option<i64>,
        /// Text one of its metrics must contain, e.g. `Pods/num_requests_running averageValue=4`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        metric_contains: Option<String>,
    },
}

impl Expectation {
    /// The `kind` as written in YAML.
    pub fn kind(&self) -> &'static str {
        match self {
            Expectation::ReachesAtLeast { .. } => "reaches_at_least",
            Expectation::SteadyState { .. } => "steady_state",
            Expectation::WithinBounds { .. } => "within_bounds",
            Expectation::NoScaleDownBefore { .. } => "no_scale_down_before",
            Expectation::BackToMin { .. } => "back_to_min",
            Expectation::NoScaling { .. } => "no_scaling",
            Expectation::MaxDirectionChanges { .. } => "max_direction_changes",
            Expectation::PanicScalesUpFaster { .. } => "panic_scales_up_faster",
            Expectation::NoScaleUpBefore { .. } => "no_scale_up_before",
            Expectation::RateLimited { .. } => "rate_limited",
            Expectation::FirstChange { .. } => "first_change",
            Expectation::Decisions { .. } => "decisions",
            Expectation::ReplicasBetween { .. } => "replicas_between",
            Expectation::Condition { .. } => "condition",
            Expectation::Event { .. } => "event",
            Expectation::HpaObject { .. } => "hpa_object",
            Expectation::CooldownWindow { .. } => "cooldown_window",
        }
    }

    /// A one-line description for the report, e.g. "reaches_at_least 3 replicas within 90 s of `burst`".
    pub(crate) fn describe(&self) -> String {
        match self {
            Expectation::ReachesAtLeast {
                replicas,
                within_s,
                after_phase,
                ..
            } => format!(
                "reaches_at_least {replicas} replicas within {} s of `{after_phase}`",
                secs(*within_s)
            ),
            Expectation::SteadyState {
                phase,
                metric,
                settle_s,
                slack,
                ..
            } => {
                let metric = metric
                    .as_deref()
                    .map(|m| format!(" on {m}"))
                    .unwrap_or_default();
                format!(
                    "steady_state in `{phase}`{metric} after {} s (slack {slack})",
                    secs(*settle_s)
                )
            }
            Expectation::WithinBounds { .. } => "within_bounds".to_string(),
            Expectation::NoScaleDownBefore {
                after_phase,
                seconds,
                ..
            } => match seconds {
                Some(s) => format!("no_scale_down_before {} s after `{after_phase}`", secs(*s)),
                None => {
                    format!("no_scale_down_before the scale-down cooldown after `{after_phase}`")
                }
            },
            Expectation::BackToMin {
                after_phase,
                within_s,
                ..
            } => {
                format!(
                    "back_to_min within {} s of `{after_phase}`",
                    secs(*within_s)
                )
            }
            Expectation::NoScaling { phase, .. } => format!("no_scaling during `{phase}`"),
            Expectation::MaxDirectionChanges {
                max,
                from_phase,
                window_s,
                ..
            } => {
                let from = from_phase
                    .as_deref()
                    .map(|p| format!(" from `{p}`"))
                    .unwrap_or_default();
                let window = window_s
                    .map(|w| format!(" for {} s", secs(w)))
                    .unwrap_or_default();
                format!("max_direction_changes {max}{from}{window}")
            }
            Expectation::PanicScalesUpFaster {
                phase, within_s, ..
            } => {
                format!(
                    "panic_scales_up_faster within {} s of `{phase}`",
                    secs(*within_s)
                )
            }
            Expectation::NoScaleUpBefore {
                after_phase,
                seconds,
            } => match seconds {
                Some(s) => format!("no_scale_up_before {} s after `{after_phase}`", secs(*s)),
                None => format!("no_scale_up_before the scale-up cooldown after `{after_phase}`"),
            },
            Expectation::RateLimited {} => "rate_limited".to_string(),
            Expectation::Decisions { from_phase, .. } => match from_phase {
                Some(p) => format!("decisions match the reference from `{p}`"),
                None => "decisions match the reference".to_string(),
            },
            Expectation::FirstChange { to, after_phase } => match after_phase {
                Some(p) => format!("first_change to {to} after `{p}`"),
                None => format!("first_change to {to}"),
            },
            Expectation::ReplicasBetween {
                phase, min, max, ..
            } => match phase {
                Some(p) => format!("replicas_between {min}..={max} in `{p}`"),
                None => format!("replicas_between {min}..={max}"),
            },
            Expectation::Condition {
                type_,
                status,
                reason,
                podautoscaler,
            } => format!(
                "condition {type_}={status}{}{}",
                reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default(),
                podautoscaler
                    .as_deref()
                    .map(|p| format!(" on `{p}`"))
                    .unwrap_or_default()
            ),
            Expectation::Event {
                reason,
                message_contains,
                present,
                ..
            } => format!(
                "event {reason}{}{}",
                message_contains
                    .as_deref()
                    .map(|m| format!(" \"{m}\""))
                    .unwrap_or_default(),
                if *present { "" } else { " absent" }
            ),
            Expectation::CooldownWindow { direction, seconds } => match seconds {
                Some(s) => format!("cooldown_window {} = {} s", direction.word(), secs(*s)),
                None => format!("cooldown_window {} = the PodAutoscaler's", direction.word()),
            },
            Expectation::HpaObject { present, .. } => {
                if *present {
                    "hpa_object".to_string()
                } else {
                    "hpa_object absent".to_string()
                }
            }
        }
    }

    /// Judges the expectation on `timeline`.
    pub(crate) fn evaluate(&self, timeline: &Timeline, ctx: &EvalContext) -> Verdict {
        match self {
            Expectation::ReachesAtLeast {
                replicas,
                within_s,
                after_phase,
                ..
            } => reach::reaches_at_least(timeline, ctx, *replicas, *within_s, after_phase),
            Expectation::SteadyState {
                phase,
                metric,
                settle_s,
                slack,
                ..
            } => {
                stability::steady_state(timeline, ctx, phase, ctx.metric(metric), *settle_s, *slack)
            }
            Expectation::WithinBounds { .. } => stability::within_bounds(timeline, ctx),
            Expectation::NoScaleDownBefore {
                after_phase,
                seconds,
                ..
            } => cooldown::no_scale_down_before(timeline, ctx, after_phase, *seconds),
            Expectation::BackToMin {
                after_phase,
                within_s,
                ..
            } => reach::back_to_min(timeline, ctx, after_phase, *within_s),
            Expectation::NoScaling {
                phase, settle_s, ..
            } => stability::no_scaling(timeline, ctx, phase, *settle_s),
            Expectation::MaxDirectionChanges {
                max,
                from_phase,
                window_s,
                ..
            } => stability::max_direction_changes(
                timeline,
                ctx,
                *max,
                from_phase.as_deref(),
                *window_s,
            ),
            Expectation::PanicScalesUpFaster {
                phase,
                within_s,
                metric,
                ..
            } => panic::panic_scales_up_faster(timeline, ctx, phase, *within_s, ctx.metric(metric)),
            Expectation::NoScaleUpBefore {
                after_phase,
                seconds,
            } => cooldown::no_scale_up_before(timeline, ctx, after_phase, *seconds),
            Expectation::RateLimited {} => rates::rate_limited(timeline, ctx),
            Expectation::Decisions {
                from_phase,
                max_mismatches,
            } => decisions::decisions(timeline, ctx, from_phase.as_deref(), *max_mismatches),
            Expectation::FirstChange { to, after_phase } => {
                rates::first_change(timeline, ctx, after_phase.as_deref(), *to)
            }
            Expectation::ReplicasBetween {
                phase,
                settle_s,
                min,
                max,
            } => rates::replicas_between(timeline, ctx, phase.as_deref(), *settle_s, *min, *max),
            Expectation::Condition {
                type_,
                status,
                reason,
                podautoscaler,
            } => status::condition(
                timeline,
                ctx,
                type_,
                status,
                reason.as_deref(),
                podautoscaler.as_deref(),
            ),
            Expectation::Event {
                reason,
                message_contains,
                object,
                present,
            } => status::event(
                timeline,
                ctx,
                reason,
                message_contains.as_deref(),
                object.as_deref(),
                *present,
            ),
            Expectation::CooldownWindow { direction, seconds } => {
                cooldown::cooldown_window(timeline, ctx, *direction, *seconds)
            }
            Expectation::HpaObject {
                present,
                min_replicas,
                max_replicas,
                metric_contains,
            } => status::hpa_object(
                timeline,
                *present,
                *min_replicas,
                *max_replicas,
                metric_contains.as_deref(),
            ),
        }
    }
}

/// One item of a scenario's `expectations:` list: the check and the mark it may carry.
///
/// Both are flattened into one YAML map. `mark` comes first on purpose: serde hands a flattened *struct* only its
/// own keys and removes them, and the enum, deserialized next, sees the rest; in the other order the enum would see
/// `expected_failure` and its `deny_unknown_fields` would reject it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpectationItem {
    /// `expected_failure` or `intermittent`, if any.
    #[serde(flatten)]
    pub mark: Mark,
    /// `kind` and the kind's fields.
    #[serde(flatten)]
    pub check: Expectation,
}

impl ExpectationItem {
    /// Evaluates the check and applies the mark.
    pub(crate) fn judge(&self, timeline: &Timeline, ctx: &EvalContext) -> Judgement {
        let verdict = self.check.evaluate(timeline, ctx);
        let mark = self.mark.judged_on(&ctx.fixed_deviations);
        let fixed_on_build = mark != &self.mark;
        Judgement {
            expectation: self.check.describe(),
            outcome: mark.outcome(verdict.passed),
            expected_failure: if fixed_on_build {
                self.mark
                    .reason()
                    .map(|r| format!("fixed on this build, so it must pass: {r}"))
            } else {
                self.mark.note(verdict.passed)
            },
            mark_reason: self.mark.reason().map(str::to_string),
            fixed_on_build,
            verdict,
        }
    }
}
