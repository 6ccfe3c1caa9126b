//! Expectations: what a scenario asserts about its recorded [`Timeline`], and how each is judged.
//!
//! This module owns the assertion vocabulary of scenario files (the `expectations:` list) and its evaluation. It is
//! pure logic over a finished timeline, so every kind is unit-tested on hand-made timelines without a cluster.
//! Quantitative expectations are judged against the reference algorithms of [`super::reference`] with the
//! PodAutoscaler's own parameters, not against hard-coded numbers.
//!
//! Every item is a YAML map with a `kind` and the kind's fields; any item may add `expected_failure: "<reason>"`
//! for a known deviation of the pinned controller (then a failure is reported as expected and a pass as
//! unexpected, see [`outcome`]). Unknown fields are rejected, so a typo cannot silently weaken an assertion.
//!
//! ```yaml
//! - {kind: reaches_at_least, replicas: 3, within_s: 90, after_phase: burst}
//! - {kind: steady_state, phase: plateau, metric: num_requests_running, settle_s: 120, slack: 1}
//! - {kind: within_bounds}
//! - {kind: no_scale_down_before, after_phase: idle}   # seconds: default cooldown − one decision period
//! - {kind: back_to_min, after_phase: idle, within_s: 600}
//! - {kind: no_scaling, phase: in_band, settle_s: 30}
//! - {kind: max_direction_changes, max: 1, from_phase: burst, window_s: 600}
//! - kind: panic_scales_up_faster
//!   phase: spike
//!   within_s: 60
//!   expected_failure: "v0.7.0 KPA compares the per-pod mean with the target, not the total"
//! ```
//!
//! Times in a timeline are seconds since the scenario started; phases are given by the runner as
//! [`Phase`]`{name, start, end}` in the same clock. Replica counts are the target's `spec.replicas` (what the
//! autoscaler decided); samples without it are skipped.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::reference::{self, KpaSim, ScalingParams, Strategy};
use crate::observe::timeline::{Sample, Timeline};

/// At most this many samples go into a verdict's excerpt.
pub const EXCERPT_SAMPLES: usize = 20;

fn default_slack() -> i64 {
    1
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
        /// Known deviation of the pinned controller, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expected_failure: Option<String>,
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
        /// Known deviation of the pinned controller, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expected_failure: Option<String>,
    },
    /// `spec.replicas` never outside `[min, max]` over the whole timeline.
    WithinBounds {
        /// Known deviation of the pinned controller, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expected_failure: Option<String>,
    },
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
        /// Known deviation of the pinned controller, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expected_failure: Option<String>,
    },
    /// `spec.replicas` reaches `min` within `within_s` of the start of `after_phase` (load stopped).
    BackToMin {
        /// The phase whose start is the load stop.
        after_phase: String,
        /// Limit, seconds after the phase starts.
        within_s: f64,
        /// Known deviation of the pinned controller, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expected_failure: Option<String>,
    },
    /// `spec.replicas` does not change during `phase` (from `settle_s` after its start): load inside the tolerance
    /// band causes no scaling.
    NoScaling {
        /// The phase.
        phase: String,
        /// Seconds after the phase start to ignore (default 0).
        #[serde(default)]
        settle_s: f64,
        /// Known deviation of the pinned controller, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expected_failure: Option<String>,
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
        /// Known deviation of the pinned controller, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expected_failure: Option<String>,
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
        /// Known deviation of the pinned controller, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expected_failure: Option<String>,
    },
}

/// A load phase in timeline time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// The phase's name in the scenario.
    pub name: String,
    /// Start, seconds since the scenario started.
    pub start: f64,
    /// End (exclusive), seconds since the scenario started.
    pub end: f64,
}

impl Phase {
    /// Consecutive phases from `(name, duration)` pairs, the first starting at `start`.
    pub fn sequence<'a>(
        start: f64,
        phases: impl IntoIterator<Item = (&'a str, f64)>,
    ) -> Vec<Phase> {
        let mut t = start;
        phases
            .into_iter()
            .map(|(name, duration)| {
                let phase = Phase {
                    name: name.to_string(),
                    start: t,
                    end: t + duration,
                };
                t += duration;
                phase
            })
            .collect()
    }
}

/// What an evaluation needs besides the timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalContext {
    /// The scenario's load phases.
    pub phases: Vec<Phase>,
    /// `minReplicas` as the controller applies it.
    pub min_replicas: i64,
    /// `maxReplicas`.
    pub max_replicas: i64,
    /// The PodAutoscaler's parameters (its bounds are overridden by the two fields above).
    pub params: ScalingParams,
    /// The strategy under test.
    pub strategy: Strategy,
}

impl EvalContext {
    /// A context whose bounds are the parameters' own.
    pub fn new(strategy: Strategy, params: ScalingParams, phases: Vec<Phase>) -> Self {
        Self {
            phases,
            min_replicas: params.min_replicas,
            max_replicas: params.max_replicas,
            params,
            strategy,
        }
    }

    /// The phase called `name`.
    pub fn phase(&self, name: &str) -> Option<&Phase> {
        self.phases.iter().find(|p| p.name == name)
    }

    /// The parameters with this context's bounds.
    pub fn scaling_params(&self) -> ScalingParams {
        ScalingParams {
            min_replicas: self.min_replicas,
            max_replicas: self.max_replicas,
            ..self.params.clone()
        }
    }

    fn metric<'a>(&'a self, metric: &'a Option<String>) -> &'a str {
        metric.as_deref().unwrap_or(&self.params.target_metric)
    }

    fn unknown_phase(&self, name: &str) -> Verdict {
        let known: Vec<&str> = self.phases.iter().map(|p| p.name.as_str()).collect();
        Verdict::failed(format!(
            "unknown phase `{name}` (phases: {})",
            known.join(", ")
        ))
    }
}

/// The judgement of one expectation on one timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Whether the expectation held.
    pub passed: bool,
    /// One human-readable line for the report.
    pub summary: String,
    /// The samples that matter (at most [`EXCERPT_SAMPLES`], change points kept).
    pub excerpt: Vec<Sample>,
    /// The time range that matters, for cutting the controller log.
    pub at: Option<(f64, f64)>,
}

impl Verdict {
    fn failed(summary: String) -> Self {
        Self {
            passed: false,
            summary,
            excerpt: Vec::new(),
            at: None,
        }
    }

    fn new(passed: bool, summary: String, timeline: &Timeline, at: (f64, f64)) -> Self {
        Self {
            passed,
            summary,
            excerpt: excerpt(timeline, at.0, at.1),
            at: Some(at),
        }
    }
}

/// How an expectation ended, given whether it was expected to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Held, as expected.
    Pass,
    /// Did not hold, unexpectedly.
    Fail,
    /// Did not hold, as recorded in `expected_failure`.
    ExpectedFail,
    /// Held although marked `expected_failure`: the deviation may be fixed; remove the mark.
    UnexpectedPass,
    /// Marked intermittent by its scenario (a known deviation that shows in some runs and not in others, e.g. a
    /// race between the controller's reconciles and pod readiness): reported with its verdict, never gating.
    Intermittent,
}

impl Outcome {
    /// `pass`, `FAIL`, `expected-fail`, `UNEXPECTED-PASS`.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "FAIL",
            Outcome::ExpectedFail => "expected-fail",
            Outcome::UnexpectedPass => "UNEXPECTED-PASS",
            Outcome::Intermittent => "intermittent",
        }
    }

    /// True for the outcomes that keep a run green (`Pass`, `ExpectedFail`). An unexpected pass is not green, so a
    /// stale `expected_failure` mark gets noticed (strict xfail).
    pub fn is_ok(self) -> bool {
        matches!(
            self,
            Outcome::Pass | Outcome::ExpectedFail | Outcome::Intermittent
        )
    }
}

/// The outcome of a verdict for an expectation that may be marked `expected_failure`.
pub fn outcome(passed: bool, expected_failure: Option<&str>) -> Outcome {
    match (passed, expected_failure.is_some()) {
        (true, false) => Outcome::Pass,
        (false, false) => Outcome::Fail,
        (false, true) => Outcome::ExpectedFail,
        (true, true) => Outcome::UnexpectedPass,
    }
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
        }
    }

    /// The `expected_failure` reason, if marked.
    pub fn expected_failure(&self) -> Option<&str> {
        match self {
            Expectation::ReachesAtLeast {
                expected_failure, ..
            }
            | Expectation::SteadyState {
                expected_failure, ..
            }
            | Expectation::WithinBounds { expected_failure }
            | Expectation::NoScaleDownBefore {
                expected_failure, ..
            }
            | Expectation::BackToMin {
                expected_failure, ..
            }
            | Expectation::NoScaling {
                expected_failure, ..
            }
            | Expectation::MaxDirectionChanges {
                expected_failure, ..
            }
            | Expectation::PanicScalesUpFaster {
                expected_failure, ..
            } => expected_failure.as_deref(),
        }
    }

    /// A one-line description for the report, e.g. "reaches_at_least 3 replicas within 90 s of `burst`".
    pub fn describe(&self) -> String {
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
        }
    }

    /// Judges the expectation on `timeline`.
    pub fn evaluate(&self, timeline: &Timeline, ctx: &EvalContext) -> Verdict {
        match self {
            Expectation::ReachesAtLeast {
                replicas,
                within_s,
                after_phase,
                ..
            } => reaches_at_least(timeline, ctx, *replicas, *within_s, after_phase),
            Expectation::SteadyState {
                phase,
                metric,
                settle_s,
                slack,
                ..
            } => steady_state(timeline, ctx, phase, ctx.metric(metric), *settle_s, *slack),
            Expectation::WithinBounds { .. } => within_bounds(timeline, ctx),
            Expectation::NoScaleDownBefore {
                after_phase,
                seconds,
                ..
            } => no_scale_down_before(timeline, ctx, after_phase, *seconds),
            Expectation::BackToMin {
                after_phase,
                within_s,
                ..
            } => back_to_min(timeline, ctx, after_phase, *within_s),
            Expectation::NoScaling {
                phase, settle_s, ..
            } => no_scaling(timeline, ctx, phase, *settle_s),
            Expectation::MaxDirectionChanges {
                max,
                from_phase,
                window_s,
                ..
            } => max_direction_changes(timeline, ctx, *max, from_phase.as_deref(), *window_s),
            Expectation::PanicScalesUpFaster {
                phase,
                within_s,
                metric,
                ..
            } => panic_scales_up_faster(timeline, ctx, phase, *within_s, ctx.metric(metric)),
        }
    }

    /// Evaluates and applies the `expected_failure` mark.
    pub fn judge(&self, timeline: &Timeline, ctx: &EvalContext) -> Judgement {
        let verdict = self.evaluate(timeline, ctx);
        Judgement {
            expectation: self.describe(),
            outcome: outcome(verdict.passed, self.expected_failure()),
            expected_failure: self.expected_failure().map(str::to_string),
            verdict,
        }
    }
}

/// An expectation's verdict with its outcome, as the report shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    /// [`Expectation::describe`].
    pub expectation: String,
    /// Pass / fail / expected-fail / unexpected-pass.
    pub outcome: Outcome,
    /// The reason it was expected to fail, if marked.
    pub expected_failure: Option<String>,
    /// The verdict.
    pub verdict: Verdict,
}

/// Seconds for limits: `90`, `1.5`.
fn secs(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x:.1}")
    }
}

fn plural(n: i64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// `(t, spec_replicas)` of the samples that have it.
fn replicas(timeline: &Timeline) -> impl Iterator<Item = (f64, i64)> + '_ {
    timeline
        .samples
        .iter()
        .filter_map(|s| s.spec_replicas.map(|r| (s.t, r)))
}

/// The replica count in force at `t` (the last sample at or before it).
fn replicas_at(timeline: &Timeline, t: f64) -> Option<i64> {
    replicas(timeline)
        .take_while(|&(at, _)| at <= t)
        .last()
        .map(|(_, r)| r)
}

fn timeline_end(timeline: &Timeline) -> f64 {
    timeline.samples.last().map_or(0.0, |s| s.t)
}

/// The samples with `from ≤ t ≤ to`, trimmed to [`EXCERPT_SAMPLES`]: first, last and replica change points first,
/// then evenly spaced ones.
pub fn excerpt(timeline: &Timeline, from: f64, to: f64) -> Vec<Sample> {
    let window: Vec<&Sample> = timeline
        .samples
        .iter()
        .filter(|s| s.t >= from && s.t <= to)
        .collect();
    if window.len() <= EXCERPT_SAMPLES {
        return window.into_iter().cloned().collect();
    }
    let last = window.len() - 1;
    let mut keep = BTreeSet::from([0, last]);
    let changes: Vec<usize> = (1..window.len())
        .filter(|&i| window[i].spec_replicas != window[i - 1].spec_replicas)
        .collect();
    let room = EXCERPT_SAMPLES - keep.len();
    if changes.len() <= room {
        keep.extend(changes);
    } else {
        keep.extend((0..room).map(|j| changes[j * changes.len() / room]));
    }
    let grid = EXCERPT_SAMPLES - 1;
    for j in 0..=grid {
        if keep.len() >= EXCERPT_SAMPLES {
            break;
        }
        keep.insert((j * last + grid / 2) / grid);
    }
    keep.into_iter().map(|i| window[i].clone()).collect()
}

/// Shared by `reaches_at_least` and `back_to_min`: the first sample at or after `start` meeting `hit`.
fn first_after(timeline: &Timeline, start: f64, hit: impl Fn(i64) -> bool) -> Option<(f64, i64)> {
    replicas(timeline).find(|&(t, r)| t >= start && hit(r))
}

fn reaches_at_least(
    timeline: &Timeline,
    ctx: &EvalContext,
    target: i64,
    within_s: f64,
    phase: &str,
) -> Verdict {
    let Some(p) = ctx.phase(phase) else {
        return ctx.unknown_phase(phase);
    };
    let deadline = p.start + within_s;
    let noun = format!("{target} replica{}", plural(target));
    match first_after(timeline, p.start, |r| r >= target) {
        Some((t, _)) if t <= deadline => Verdict::new(
            true,
            format!(
                "reached {noun} {:.1} s after phase `{phase}` started (limit {} s)",
                t - p.start,
                secs(within_s)
            ),
            timeline,
            (p.start, t),
        ),
        Some((t, _)) => Verdict::new(
            false,
            format!(
                "reached {noun} only {:.1} s after phase `{phase}` started (limit {} s)",
                t - p.start,
                secs(within_s)
            ),
            timeline,
            (p.start, t),
        ),
        None => {
            let end = deadline.min(timeline_end(timeline)).max(p.start);
            let best = replicas(timeline)
                .filter(|&(t, _)| t >= p.start)
                .max_by_key(|&(_, r)| r);
            let best = best.map_or("no replica counts recorded".to_string(), |(t, r)| {
                format!("highest {r} at t={t:.1} s")
            });
            Verdict::new(
                false,
                format!(
                    "never reached {noun} after phase `{phase}` started (limit {} s; {best}; timeline ends at t={:.1} s)",
                    secs(within_s),
                    timeline_end(timeline)
                ),
                timeline,
                (p.start, end),
            )
        }
    }
}

fn back_to_min(timeline: &Timeline, ctx: &EvalContext, phase: &str, within_s: f64) -> Verdict {
    let Some(p) = ctx.phase(phase) else {
        return ctx.unknown_phase(phase);
    };
    let min = ctx.min_replicas;
    let deadline = p.start + within_s;
    let noun = format!("min {min} replica{}", plural(min));
    match first_after(timeline, p.start, |r| r <= min) {
        Some((t, _)) if t <= deadline => Verdict::new(
            true,
            format!(
                "back to {noun} {:.1} s after phase `{phase}` started (limit {} s)",
                t - p.start,
                secs(within_s)
            ),
            timeline,
            (p.start, t),
        ),
        Some((t, _)) => Verdict::new(
            false,
            format!(
                "back to {noun} only {:.1} s after phase `{phase}` started (limit {} s)",
                t - p.start,
                secs(within_s)
            ),
            timeline,
            (p.start, t),
        ),
        None => {
            let end = deadline.min(timeline_end(timeline)).max(p.start);
            let last = replicas(timeline)
                .last()
                .map_or("none".to_string(), |(_, r)| r.to_string());
            Verdict::new(
                false,
                format!(
                    "never back to {noun} after phase `{phase}` started (limit {} s; last {last} at t={:.1} s)",
                    secs(within_s),
                    timeline_end(timeline)
                ),
                timeline,
                (p.start, end),
            )
        }
    }
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

fn range_text(range: &std::ops::RangeInclusive<i64>) -> String {
    if range.start() == range.end() {
        range.start().to_string()
    } else {
        format!("{}..={}", range.start(), range.end())
    }
}

fn steady_state(
    timeline: &Timeline,
    ctx: &EvalContext,
    phase: &str,
    metric: &str,
    settle_s: f64,
    slack: i64,
) -> Verdict {
    let Some(p) = ctx.phase(phase) else {
        return ctx.unknown_phase(phase);
    };
    let (from, to) = (p.start + settle_s, p.end);
    if from >= to {
        return Verdict::failed(format!(
            "settle_s {} leaves no window in phase `{phase}` ({} s long)",
            secs(settle_s),
            secs(p.end - p.start)
        ));
    }
    let window: Vec<&Sample> = timeline
        .between(from, to)
        .filter(|s| s.spec_replicas.is_some())
        .collect();
    let mut totals: Vec<f64> = window.iter().map(|s| s.metric_total(metric)).collect();
    // `+ 0.0` turns the empty sum's `-0.0` into `0.0` for display.
    let Some(demand) = median(&mut totals).map(|d| d + 0.0) else {
        return Verdict::failed(format!(
            "no samples with replicas in t=[{from:.1}, {to:.1}) of phase `{phase}`"
        ));
    };
    let params = ctx.scaling_params();
    let reference = reference::steady_state(ctx.strategy, demand, &params);
    let accepted = (reference.start() - slack).max(ctx.min_replicas)
        ..=(reference.end() + slack).min(ctx.max_replicas);
    let observed: Vec<(f64, i64)> = window
        .iter()
        .filter_map(|s| s.spec_replicas.map(|r| (s.t, r)))
        .collect();
    let lo = observed.iter().map(|&(_, r)| r).min().unwrap_or_default();
    let hi = observed.iter().map(|&(_, r)| r).max().unwrap_or_default();
    let outside: Vec<&(f64, i64)> = observed
        .iter()
        .filter(|(_, r)| !accepted.contains(r))
        .collect();
    let basis = format!(
        "median total {metric} {demand:.2} → {} reference {} (target {}), accepted {}",
        ctx.strategy,
        range_text(&reference),
        params.effective_target(ctx.strategy),
        range_text(&accepted)
    );
    let at = (from, to.min(timeline_end(timeline)).max(from));
    match outside.first() {
        None => Verdict::new(
            true,
            format!(
                "replicas {} over t=[{from:.1}, {to:.1}) of phase `{phase}`; {basis}",
                range_text(&(lo..=hi))
            ),
            timeline,
            at,
        ),
        Some(&&(t, r)) => Verdict::new(
            false,
            format!(
                "replicas {r} at t={t:.1} s outside the accepted range ({} of {} samples outside; observed {}) in \
                 phase `{phase}` after {} s; {basis}",
                outside.len(),
                observed.len(),
                range_text(&(lo..=hi)),
                secs(settle_s)
            ),
            timeline,
            at,
        ),
    }
}

fn within_bounds(timeline: &Timeline, ctx: &EvalContext) -> Verdict {
    let (min, max) = (ctx.min_replicas, ctx.max_replicas);
    let outside: Vec<(f64, i64)> = replicas(timeline)
        .filter(|&(_, r)| r < min || r > max)
        .collect();
    let start = timeline.samples.first().map_or(0.0, |s| s.t);
    let end = timeline_end(timeline);
    match (outside.first(), outside.last()) {
        (Some(&(t0, r0)), Some(&(t1, _))) => Verdict::new(
            false,
            format!(
                "spec.replicas {r0} outside [{min}, {max}] at t={t0:.1} s ({} sample{} outside, last at t={t1:.1} s)",
                outside.len(),
                plural(outside.len() as i64)
            ),
            timeline,
            (t0, t1),
        ),
        _ => {
            let lo = replicas(timeline).map(|(_, r)| r).min();
            let hi = replicas(timeline).map(|(_, r)| r).max();
            let seen = match (lo, hi) {
                (Some(lo), Some(hi)) => format!("observed {}", range_text(&(lo..=hi))),
                _ => "no replica counts recorded".to_string(),
            };
            Verdict::new(
                true,
                format!("spec.replicas stayed within [{min}, {max}] ({seen}, t=[{start:.1}, {end:.1}])"),
                timeline,
                (start, end),
            )
        }
    }
}

fn no_scale_down_before(
    timeline: &Timeline,
    ctx: &EvalContext,
    phase: &str,
    seconds: Option<f64>,
) -> Verdict {
    let Some(p) = ctx.phase(phase) else {
        return ctx.unknown_phase(phase);
    };
    let (hold, origin) = match seconds {
        Some(s) => (s, String::new()),
        None => {
            let period = ctx.params.decision_period_s(ctx.strategy);
            let cooldown = ctx.params.scale_down_cooldown_s;
            (
                (cooldown - period).max(0.0),
                format!(
                    " (scale-down cooldown {} s minus one {} s decision period)",
                    secs(cooldown),
                    secs(period)
                ),
            )
        }
    };
    let limit = p.start + hold;
    let mut previous = replicas_at(timeline, p.start - 1e-9);
    let mut first_down = None;
    for (t, r) in replicas(timeline).filter(|&(t, _)| t >= p.start) {
        if let Some(prev) = previous {
            if r < prev {
                first_down = Some((t, prev, r));
                break;
            }
        }
        previous = Some(r);
    }
    let end = timeline_end(timeline);
    match first_down {
        Some((t, from, to)) if t < limit => Verdict::new(
            false,
            format!(
                "scaled down {from} → {to} at t={t:.1} s, {:.1} s after phase `{phase}` started; expected none before \
                 {} s{origin}",
                t - p.start,
                secs(hold)
            ),
            timeline,
            (p.start, t),
        ),
        _ if end < limit => Verdict::new(
            false,
            format!(
                "inconclusive: the timeline ends at t={end:.1} s, before the {} s hold{origin} after phase `{phase}` \
                 ends at t={limit:.1} s",
                secs(hold)
            ),
            timeline,
            (p.start, end.max(p.start)),
        ),
        Some((t, from, to)) => Verdict::new(
            true,
            format!(
                "no scale-down for {:.1} s after phase `{phase}` started (first {from} → {to} at t={t:.1} s; hold {} \
                 s{origin})",
                t - p.start,
                secs(hold)
            ),
            timeline,
            (p.start, t),
        ),
        None => Verdict::new(
            true,
            format!(
                "no scale-down in the {:.1} s after phase `{phase}` started (hold {} s{origin})",
                end - p.start,
                secs(hold)
            ),
            timeline,
            (p.start, limit),
        ),
    }
}

fn no_scaling(timeline: &Timeline, ctx: &EvalContext, phase: &str, settle_s: f64) -> Verdict {
    let Some(p) = ctx.phase(phase) else {
        return ctx.unknown_phase(phase);
    };
    let from = p.start + settle_s;
    if from >= p.end {
        return Verdict::failed(format!(
            "settle_s {} leaves no window in phase `{phase}`",
            secs(settle_s)
        ));
    }
    let baseline = replicas_at(timeline, from);
    let window: Vec<(f64, i64)> = replicas(timeline)
        .filter(|&(t, _)| t >= from && t < p.end)
        .collect();
    let Some(baseline) = baseline.or(window.first().map(|&(_, r)| r)) else {
        return Verdict::failed(format!("no replica counts recorded in phase `{phase}`"));
    };
    let mut previous = baseline;
    let mut changes = Vec::new();
    for &(t, r) in &window {
        if r != previous {
            changes.push((t, previous, r));
            previous = r;
        }
    }
    let at = (from, p.end.min(timeline_end(timeline)).max(from));
    match changes.first() {
        None => Verdict::new(
            true,
            format!(
                "spec.replicas stayed at {baseline} throughout phase `{phase}` (t=[{from:.1}, {:.1}))",
                p.end
            ),
            timeline,
            at,
        ),
        Some(&(t, a, b)) => Verdict::new(
            false,
            format!(
                "spec.replicas changed during phase `{phase}`: {a} → {b} at t={t:.1} s ({} change{} in the phase)",
                changes.len(),
                plural(changes.len() as i64)
            ),
            timeline,
            at,
        ),
    }
}

fn max_direction_changes(
    timeline: &Timeline,
    ctx: &EvalContext,
    max: u32,
    from_phase: Option<&str>,
    window_s: Option<f64>,
) -> Verdict {
    let from = match from_phase {
        Some(name) => match ctx.phase(name) {
            Some(p) => p.start,
            None => return ctx.unknown_phase(name),
        },
        None => timeline.samples.first().map_or(0.0, |s| s.t),
    };
    let to = window_s.map_or(f64::INFINITY, |w| from + w);
    let mut moves: Vec<(f64, i64, i64)> = Vec::new();
    let mut previous = replicas_at(timeline, from - 1e-9);
    for (t, r) in replicas(timeline).filter(|&(t, _)| t >= from && t < to) {
        if let Some(prev) = previous {
            if r != prev {
                moves.push((t, prev, r));
            }
        }
        previous = Some(r);
    }
    let flips: Vec<usize> = (1..moves.len())
        .filter(|&i| (moves[i].2 > moves[i].1) != (moves[i - 1].2 > moves[i - 1].1))
        .collect();
    let count = flips.len() as u32;
    let mut listing = String::new();
    for (i, &(t, a, b)) in moves.iter().enumerate().take(10) {
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(listing, "{sep}{a}→{b} at t={t:.0}");
    }
    if moves.len() > 10 {
        let _ = write!(listing, ", … ({} moves)", moves.len());
    }
    let end = to.min(timeline_end(timeline)).max(from);
    let scope = match (from_phase, window_s) {
        (Some(p), Some(w)) => format!(" in the {} s from phase `{p}`", secs(w)),
        (Some(p), None) => format!(" from phase `{p}` on"),
        (None, Some(w)) => format!(" in the first {} s", secs(w)),
        (None, None) => String::new(),
    };
    let moves_text = if moves.is_empty() {
        "no replica changes".to_string()
    } else {
        listing
    };
    let passed = count <= max;
    let at = match (flips.first(), flips.last()) {
        (Some(&i), Some(&j)) if !passed => (moves[i - 1].0, moves[j].0),
        _ => (from, end),
    };
    Verdict::new(
        passed,
        format!(
            "{count} direction change{}{scope} (limit {max}): {moves_text}",
            plural(i64::from(count))
        ),
        timeline,
        at,
    )
}

/// The observed total of `metric` in force at `t` (the last sample at or before `t`; 0 before the first).
fn demand_at(timeline: &Timeline, metric: &str, t: f64) -> f64 {
    let after = timeline.samples.partition_point(|s| s.t <= t + 1e-9);
    after
        .checked_sub(1)
        .map_or(0.0, |i| timeline.samples[i].metric_total(metric))
}

/// The earliest time (over the tick phases within one resync period) at which the reference KPA, fed the observed
/// total demand (the stable window's worth of history before `spike`, then what follows) and starting at `baseline`
/// replicas at `spike`, reaches `reach` replicas; `None` if not before the timeline ends.
fn kpa_time_to_reach(
    timeline: &Timeline,
    params: &ScalingParams,
    metric: &str,
    spike: f64,
    baseline: i64,
    reach: i64,
    panic: bool,
) -> Option<f64> {
    let period = params.resync_period_s;
    let end = timeline_end(timeline);
    let history_ticks = (params.stable_window_s / period).ceil() as i64;
    let mut earliest: Option<f64> = None;
    for offset in 0..(period.ceil() as i64).max(1) {
        let mut sim = KpaSim::new(params, baseline);
        if !panic {
            sim = sim.without_panic();
        }
        let first_tick = spike + offset as f64;
        for k in (1..=history_ticks).rev() {
            let t = first_tick - k as f64 * period;
            sim.record(t, demand_at(timeline, metric, t));
        }
        let mut t = first_tick;
        while t <= end && earliest.is_none_or(|e| t < e) {
            sim.record(t, demand_at(timeline, metric, t));
            if sim.decide(t).replicas >= reach {
                earliest = Some(t);
                break;
            }
            t += period;
        }
    }
    earliest
}

fn panic_scales_up_faster(
    timeline: &Timeline,
    ctx: &EvalContext,
    phase: &str,
    within_s: f64,
    metric: &str,
) -> Verdict {
    let Some(p) = ctx.phase(phase) else {
        return ctx.unknown_phase(phase);
    };
    if ctx.strategy != Strategy::Kpa {
        return Verdict::failed(format!(
            "panic_scales_up_faster applies to KPA only (strategy {})",
            ctx.strategy
        ));
    }
    let params = ctx.scaling_params();
    let Some(baseline) =
        replicas_at(timeline, p.start).or(first_after(timeline, p.start, |_| true).map(|(_, r)| r))
    else {
        return Verdict::failed(format!("no replica counts recorded at phase `{phase}`"));
    };
    let deadline = p.start + within_s;
    let end = timeline_end(timeline);
    let when = |t: Option<f64>| {
        t.map_or("not before the timeline ends".to_string(), |t| {
            format!("t≈{t:.0} s")
        })
    };
    // The highest count within the limit, and when it was first reached.
    let peak = replicas(timeline)
        .filter(|&(t, _)| t >= p.start && t <= deadline)
        .map(|(_, r)| r)
        .max()
        .filter(|&r| r > baseline);
    let Some(reach) = peak else {
        let stable = kpa_time_to_reach(
            timeline,
            &params,
            metric,
            p.start,
            baseline,
            baseline + 1,
            false,
        );
        let panic = kpa_time_to_reach(
            timeline,
            &params,
            metric,
            p.start,
            baseline,
            baseline + 1,
            true,
        );
        return Verdict::new(
            false,
            format!(
                "no scale-up above {baseline} within {} s of phase `{phase}` starting; the reference KPA would scale \
                 up at {} (stable window alone: {})",
                secs(within_s),
                when(panic),
                when(stable)
            ),
            timeline,
            (p.start, deadline.min(end).max(p.start)),
        );
    };
    let Some((t, _)) = first_after(timeline, p.start, |r| r >= reach) else {
        return Verdict::failed(format!("no sample reaches {reach} after phase `{phase}`"));
    };
    let stable = kpa_time_to_reach(timeline, &params, metric, p.start, baseline, reach, false);
    let panic = kpa_time_to_reach(timeline, &params, metric, p.start, baseline, reach, true);
    let faster = stable.is_none_or(|s| t < s);
    let judgement = if faster {
        ""
    } else {
        " — no faster than the stable window alone, so no evidence of panic mode"
    };
    Verdict::new(
        faster,
        format!(
            "scaled {baseline} → {reach} at t={t:.1} s, {:.1} s after phase `{phase}` started (limit {} s){judgement}; \
             the stable window alone would have reached {reach} at {} (reference KPA with panic: {})",
            t - p.start,
            secs(within_s),
            when(stable),
            when(panic)
        ),
        timeline,
        (p.start, deadline.min(end).max(t)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::timeline::PodSample;

    /// A timeline sampled every second from the first point's time to the last's, replicas following the step
    /// function through `points` (each point holds until the next).
    fn timeline_from_replicas(points: &[(f64, i64)]) -> Timeline {
        let (Some(&(start, _)), Some(&(end, _))) = (points.first(), points.last()) else {
            return Timeline::default();
        };
        let mut samples = Vec::new();
        let mut t = start;
        while t <= end + 1e-9 {
            let r = points
                .iter()
                .take_while(|&&(at, _)| at <= t)
                .last()
                .map(|&(_, r)| r);
            samples.push(Sample {
                t,
                spec_replicas: r,
                ready_pods: r.unwrap_or(0) as u32,
                ..Sample::default()
            });
            t += 1.0;
        }
        Timeline {
            samples,
            events: Vec::new(),
        }
    }

    /// Adds `spec_replicas` ready pods to every sample, sharing `total(t)` of `metric` evenly.
    fn with_metric(mut timeline: Timeline, metric: &str, total: impl Fn(f64) -> f64) -> Timeline {
        for sample in &mut timeline.samples {
            let n = sample.spec_replicas.unwrap_or(0).max(1);
            let per_pod = total(sample.t) / n as f64;
            sample.pods = (0..n)
                .map(|i| PodSample {
                    name: format!("mock-vllm-{i}"),
                    phase: "Running".into(),
                    ready: true,
                    terminating: false,
                    metrics: [(metric.to_string(), per_pod)].into_iter().collect(),
                })
                .collect();
        }
        timeline
    }

    const METRIC: &str = "num_requests_running";

    fn ctx(strategy: Strategy, phases: &[(&str, f64)]) -> EvalContext {
        let mut params = ScalingParams::new(1, 8, METRIC, 2.0);
        params.scale_down_cooldown_s = 60.0;
        EvalContext::new(
            strategy,
            params,
            Phase::sequence(0.0, phases.iter().copied()),
        )
    }

    fn yaml(text: &str) -> Expectation {
        serde_yaml::from_str(text).expect("valid expectation")
    }

    #[test]
    fn reaches_at_least_passes_in_time_and_fails_late_or_never() {
        let ctx = ctx(Strategy::Kpa, &[("idle", 20.0), ("burst", 200.0)]);
        let e = yaml("{kind: reaches_at_least, replicas: 3, within_s: 60, after_phase: burst}");
        let on_time = timeline_from_replicas(&[(0.0, 1), (40.0, 2), (62.0, 3), (220.0, 3)]);
        let v = e.evaluate(&on_time, &ctx);
        assert!(v.passed, "{}", v.summary);
        assert_eq!(
            v.summary,
            "reached 3 replicas 42.0 s after phase `burst` started (limit 60 s)"
        );
        assert_eq!(v.at, Some((20.0, 62.0)));
        assert!(!v.excerpt.is_empty() && v.excerpt.len() <= EXCERPT_SAMPLES);

        let late = timeline_from_replicas(&[(0.0, 1), (40.0, 2), (100.0, 3), (220.0, 3)]);
        let v = e.evaluate(&late, &ctx);
        assert!(!v.passed);
        assert!(v.summary.contains("only 80.0 s after"), "{}", v.summary);

        let never = timeline_from_replicas(&[(0.0, 1), (40.0, 2), (220.0, 2)]);
        let v = e.evaluate(&never, &ctx);
        assert!(!v.passed);
        assert!(
            v.summary.contains("never reached 3 replicas") && v.summary.contains("highest 2"),
            "{}",
            v.summary
        );

        let unknown =
            yaml("{kind: reaches_at_least, replicas: 3, within_s: 60, after_phase: nope}");
        let v = unknown.evaluate(&on_time, &ctx);
        assert!(
            !v.passed
                && v.summary
                    .contains("unknown phase `nope` (phases: idle, burst)"),
            "{}",
            v.summary
        );
    }

    #[test]
    fn steady_state_accepts_the_reference_range_with_slack() {
        // Target 2 per pod, constant total 6 → KPA reference 3 (band [2.73, 3.33]).
        let ctx = ctx(Strategy::Kpa, &[("ramp", 60.0), ("plateau", 300.0)]);
        let e = yaml("{kind: steady_state, phase: plateau, settle_s: 120}");
        let good = with_metric(
            timeline_from_replicas(&[(0.0, 1), (30.0, 2), (70.0, 3), (360.0, 3)]),
            METRIC,
            |_| 6.0,
        );
        let v = e.evaluate(&good, &ctx);
        assert!(v.passed, "{}", v.summary);
        assert!(v.summary.contains("reference 3"), "{}", v.summary);
        assert!(v.summary.contains("accepted 2..=4"), "{}", v.summary);
        assert_eq!(v.at, Some((180.0, 360.0)));
        assert!(v.excerpt.len() <= EXCERPT_SAMPLES);

        // Within slack (4 = 3 + 1) still passes; 6 fails.
        let off_by_one = with_metric(
            timeline_from_replicas(&[(0.0, 4), (360.0, 4)]),
            METRIC,
            |_| 6.0,
        );
        assert!(e.evaluate(&off_by_one, &ctx).passed);
        let strict = yaml("{kind: steady_state, phase: plateau, settle_s: 120, slack: 0}");
        assert!(!strict.evaluate(&off_by_one, &ctx).passed);
        let over = with_metric(
            timeline_from_replicas(&[(0.0, 1), (70.0, 6), (360.0, 6)]),
            METRIC,
            |_| 6.0,
        );
        let v = e.evaluate(&over, &ctx);
        assert!(!v.passed);
        assert!(
            v.summary
                .starts_with("replicas 6 at t=180.0 s outside the accepted range"),
            "{}",
            v.summary
        );

        // A metric other than the target's, by name.
        let other = yaml(
            "{kind: steady_state, phase: plateau, metric: gpu_cache_usage_perc, settle_s: 120}",
        );
        let v = other.evaluate(&good, &ctx);
        assert!(
            v.summary.contains("gpu_cache_usage_perc 0.00"),
            "{}",
            v.summary
        );
        assert!(
            !v.passed,
            "zero demand of another metric → min 1, and 3 is outside 1..=2: {}",
            v.summary
        );

        let too_long = yaml("{kind: steady_state, phase: plateau, settle_s: 400}");
        assert!(!too_long.evaluate(&good, &ctx).passed);
    }

    #[test]
    fn within_bounds_catches_any_excursion() {
        let ctx = ctx(Strategy::Apa, &[("all", 100.0)]);
        let e = yaml("{kind: within_bounds}");
        let fine = timeline_from_replicas(&[(0.0, 1), (10.0, 8), (50.0, 1), (100.0, 1)]);
        let v = e.evaluate(&fine, &ctx);
        assert!(v.passed, "{}", v.summary);
        assert!(
            v.summary.contains("within [1, 8] (observed 1..=8"),
            "{}",
            v.summary
        );
        let bad = timeline_from_replicas(&[(0.0, 1), (10.0, 9), (12.0, 8), (100.0, 8)]);
        let v = e.evaluate(&bad, &ctx);
        assert!(!v.passed);
        assert_eq!(
            v.summary,
            "spec.replicas 9 outside [1, 8] at t=10.0 s (2 samples outside, last at t=11.0 s)"
        );
        assert_eq!(v.at, Some((10.0, 11.0)));
    }

    #[test]
    fn no_scale_down_before_uses_the_cooldown_by_default() {
        // Cooldown 60 s; the load drops at t=100.
        let ctx = ctx(Strategy::Kpa, &[("load", 100.0), ("idle", 200.0)]);
        let e = yaml("{kind: no_scale_down_before, after_phase: idle}");
        let patient = timeline_from_replicas(&[(0.0, 4), (170.0, 2), (300.0, 1)]);
        let v = e.evaluate(&patient, &ctx);
        assert!(v.passed, "{}", v.summary);
        assert!(
            v.summary.contains("first 4 → 2 at t=170.0 s"),
            "{}",
            v.summary
        );
        assert!(
            v.summary
                .contains("(scale-down cooldown 60 s minus one 10 s decision period)"),
            "{}",
            v.summary
        );

        let hasty = timeline_from_replicas(&[(0.0, 4), (130.0, 2), (300.0, 1)]);
        let v = e.evaluate(&hasty, &ctx);
        assert!(!v.passed);
        assert!(
            v.summary
                .starts_with("scaled down 4 → 2 at t=130.0 s, 30.0 s after phase `idle`"),
            "{}",
            v.summary
        );

        let explicit = yaml("{kind: no_scale_down_before, after_phase: idle, seconds: 20}");
        assert!(explicit.evaluate(&hasty, &ctx).passed);

        let short = timeline_from_replicas(&[(0.0, 4), (120.0, 4)]);
        let v = e.evaluate(&short, &ctx);
        assert!(
            !v.passed && v.summary.starts_with("inconclusive"),
            "{}",
            v.summary
        );
    }

    #[test]
    fn back_to_min_in_time_or_not() {
        let ctx = ctx(Strategy::Hpa, &[("load", 100.0), ("idle", 400.0)]);
        let e = yaml("{kind: back_to_min, after_phase: idle, within_s: 300}");
        let good = timeline_from_replicas(&[(0.0, 4), (250.0, 2), (350.0, 1), (500.0, 1)]);
        let v = e.evaluate(&good, &ctx);
        assert!(v.passed, "{}", v.summary);
        assert_eq!(
            v.summary,
            "back to min 1 replica 250.0 s after phase `idle` started (limit 300 s)"
        );
        let slow = timeline_from_replicas(&[(0.0, 4), (250.0, 2), (450.0, 1), (500.0, 1)]);
        assert!(!e.evaluate(&slow, &ctx).passed);
        let stuck = timeline_from_replicas(&[(0.0, 4), (250.0, 2), (500.0, 2)]);
        let v = e.evaluate(&stuck, &ctx);
        assert!(
            !v.passed && v.summary.contains("never back to min 1 replica"),
            "{}",
            v.summary
        );
    }

    #[test]
    fn no_scaling_inside_the_band() {
        let ctx = ctx(Strategy::Apa, &[("warm", 30.0), ("in_band", 300.0)]);
        let e = yaml("{kind: no_scaling, phase: in_band}");
        let flat = timeline_from_replicas(&[(0.0, 2), (330.0, 2)]);
        let v = e.evaluate(&flat, &ctx);
        assert!(v.passed, "{}", v.summary);
        assert!(
            v.summary
                .starts_with("spec.replicas stayed at 2 throughout phase `in_band`"),
            "{}",
            v.summary
        );
        let moved = timeline_from_replicas(&[(0.0, 2), (100.0, 3), (200.0, 2), (330.0, 2)]);
        let v = e.evaluate(&moved, &ctx);
        assert!(!v.passed);
        assert_eq!(
            v.summary,
            "spec.replicas changed during phase `in_band`: 2 → 3 at t=100.0 s (2 changes in the phase)"
        );
        // A change before the phase (during warm-up) does not count; with settle_s an early change is ignored.
        let early = timeline_from_replicas(&[(0.0, 1), (10.0, 2), (40.0, 3), (330.0, 3)]);
        assert!(!e.evaluate(&early, &ctx).passed);
        let settled = yaml("{kind: no_scaling, phase: in_band, settle_s: 20}");
        assert!(settled.evaluate(&early, &ctx).passed);
    }

    #[test]
    fn max_direction_changes_counts_reversals() {
        let ctx = ctx(Strategy::Kpa, &[("calm", 50.0), ("burst", 600.0)]);
        // 1 → 2 → 4 → 2 → 1: one reversal.
        let monotone = timeline_from_replicas(&[
            (0.0, 1),
            (60.0, 2),
            (120.0, 4),
            (400.0, 2),
            (500.0, 1),
            (650.0, 1),
        ]);
        let e = yaml("{kind: max_direction_changes, max: 1}");
        let v = e.evaluate(&monotone, &ctx);
        assert!(v.passed, "{}", v.summary);
        assert!(
            v.summary
                .starts_with("1 direction change (limit 1): 1→2 at t=60"),
            "{}",
            v.summary
        );
        // Flapping 2 ↔ 3.
        let flapping = timeline_from_replicas(&[
            (0.0, 1),
            (60.0, 2),
            (100.0, 3),
            (140.0, 2),
            (180.0, 3),
            (220.0, 2),
            (650.0, 2),
        ]);
        let v = e.evaluate(&flapping, &ctx);
        assert!(!v.passed);
        assert!(
            v.summary.starts_with("3 direction changes (limit 1)"),
            "{}",
            v.summary
        );
        assert_eq!(v.at, Some((100.0, 220.0)));
        // Windowed from a phase: only the flapping after t=50 for 100 s counts (60 up, 100 up, 140 down).
        let windowed =
            yaml("{kind: max_direction_changes, max: 1, from_phase: burst, window_s: 100}");
        let v = windowed.evaluate(&flapping, &ctx);
        assert!(v.passed, "{}", v.summary);
        assert!(
            v.summary.contains("in the 100 s from phase `burst`"),
            "{}",
            v.summary
        );
    }

    /// KPA, target 2, panic threshold 2: demand 2 (one pod at target) for 300 s, then a spike to 12.
    fn spike_ctx() -> EvalContext {
        ctx(Strategy::Kpa, &[("calm", 300.0), ("spike", 300.0)])
    }

    fn spike_demand(t: f64) -> f64 {
        if t < 300.0 {
            2.0
        } else {
            12.0
        }
    }

    #[test]
    fn panic_scales_up_faster_than_the_stable_window() {
        let ctx = spike_ctx();
        let e = yaml("{kind: panic_scales_up_faster, phase: spike, within_s: 60}");
        // The reference with panic reaches 6 about 50 s after the spike (the 60 s panic mean), the stable window
        // alone about 160 s after (the 180 s mean must exceed 11 = 5 pods × 2 × 1.1).
        let fast = with_metric(
            timeline_from_replicas(&[(0.0, 1), (325.0, 2), (340.0, 6), (600.0, 6)]),
            METRIC,
            spike_demand,
        );
        let v = e.evaluate(&fast, &ctx);
        assert!(v.passed, "{}", v.summary);
        assert_eq!(
            v.summary,
            "scaled 1 → 6 at t=340.0 s, 40.0 s after phase `spike` started (limit 60 s); the stable window \
             alone would have reached 6 at t≈460 s (reference KPA with panic: t≈340 s)"
        );
        assert_eq!(v.at, Some((300.0, 360.0)));

        // Nothing within the limit.
        let slow = with_metric(
            timeline_from_replicas(&[(0.0, 1), (390.0, 2), (470.0, 6), (600.0, 6)]),
            METRIC,
            spike_demand,
        );
        let v = e.evaluate(&slow, &ctx);
        assert!(!v.passed);
        assert!(
            v.summary.starts_with("no scale-up above 1 within 60 s of phase `spike` starting; the reference KPA would scale up at t≈300 s"),
            "{}",
            v.summary
        );
        // With a lenient limit the late scale-up is judged against the stable window: no faster, no panic.
        let lenient = yaml("{kind: panic_scales_up_faster, phase: spike, within_s: 200}");
        let v = lenient.evaluate(&slow, &ctx);
        assert!(!v.passed);
        assert!(
            v.summary.contains("no evidence of panic mode"),
            "{}",
            v.summary
        );
        // A small early step is no evidence either: the stable window alone gets to 2 just as fast.
        let small = with_metric(
            timeline_from_replicas(&[(0.0, 1), (305.0, 2), (600.0, 2)]),
            METRIC,
            spike_demand,
        );
        let v = e.evaluate(&small, &ctx);
        assert!(!v.passed, "{}", v.summary);

        let hpa = EvalContext {
            strategy: Strategy::Hpa,
            ..spike_ctx()
        };
        assert!(e.evaluate(&fast, &hpa).summary.contains("KPA only"));
    }

    #[test]
    fn outcomes_combine_verdicts_and_expected_failures() {
        assert_eq!(outcome(true, None), Outcome::Pass);
        assert_eq!(outcome(false, None), Outcome::Fail);
        assert_eq!(outcome(false, Some("known")), Outcome::ExpectedFail);
        assert_eq!(outcome(true, Some("known")), Outcome::UnexpectedPass);
        assert!(Outcome::Pass.is_ok() && Outcome::ExpectedFail.is_ok());
        assert!(!Outcome::Fail.is_ok() && !Outcome::UnexpectedPass.is_ok());

        let ctx = ctx(Strategy::Kpa, &[("all", 100.0)]);
        let e = yaml("{kind: within_bounds, expected_failure: \"overshoots max\"}");
        let bad = timeline_from_replicas(&[(0.0, 1), (10.0, 9), (100.0, 9)]);
        let j = e.judge(&bad, &ctx);
        assert_eq!(j.outcome, Outcome::ExpectedFail);
        assert_eq!(j.expected_failure.as_deref(), Some("overshoots max"));
        assert_eq!(j.expectation, "within_bounds");
    }

    #[test]
    fn a_list_of_expectations_deserializes_from_yaml() {
        let text = r#"
- {kind: reaches_at_least, replicas: 3, within_s: 90, after_phase: burst}
- {kind: steady_state, phase: plateau, metric: num_requests_running, settle_s: 120}
- {kind: within_bounds}
- {kind: no_scale_down_before, after_phase: idle}
- {kind: back_to_min, after_phase: idle, within_s: 600}
- {kind: no_scaling, phase: in_band}
- {kind: max_direction_changes, max: 1, from_phase: burst, window_s: 600}
- kind: panic_scales_up_faster
  phase: spike
  within_s: 40.5
  expected_failure: "v0.7.0 KPA compares the per-pod mean with the target"
"#;
        let list: Vec<Expectation> = serde_yaml::from_str(text).expect("parses");
        assert_eq!(list.len(), 8);
        assert_eq!(
            list[0],
            Expectation::ReachesAtLeast {
                replicas: 3,
                within_s: 90.0,
                after_phase: "burst".into(),
                expected_failure: None
            }
        );
        assert_eq!(
            list[1],
            Expectation::SteadyState {
                phase: "plateau".into(),
                metric: Some("num_requests_running".into()),
                settle_s: 120.0,
                slack: 1,
                expected_failure: None
            }
        );
        assert_eq!(
            list[2],
            Expectation::WithinBounds {
                expected_failure: None
            }
        );
        assert_eq!(
            list[3],
            Expectation::NoScaleDownBefore {
                after_phase: "idle".into(),
                seconds: None,
                expected_failure: None
            }
        );
        assert_eq!(
            list[6],
            Expectation::MaxDirectionChanges {
                max: 1,
                from_phase: Some("burst".into()),
                window_s: Some(600.0),
                expected_failure: None
            }
        );
        assert_eq!(
            list[7].expected_failure(),
            Some("v0.7.0 KPA compares the per-pod mean with the target")
        );
        let kinds: Vec<&str> = list.iter().map(Expectation::kind).collect();
        assert_eq!(
            kinds,
            [
                "reaches_at_least",
                "steady_state",
                "within_bounds",
                "no_scale_down_before",
                "back_to_min",
                "no_scaling",
                "max_direction_changes",
                "panic_scales_up_faster"
            ]
        );
        // Round trip.
        let again: Vec<Expectation> =
            serde_yaml::from_str(&serde_yaml::to_string(&list).expect("serializes"))
                .expect("parses back");
        assert_eq!(again, list);
        // Typos and unknown kinds are errors, not silently ignored.
        assert!(serde_yaml::from_str::<Expectation>(
            "{kind: back_to_min, after_phase: idle, within: 600}"
        )
        .is_err());
        assert!(
            serde_yaml::from_str::<Expectation>("{kind: reaches_at_most, replicas: 3}").is_err()
        );
        assert!(
            serde_yaml::from_str::<Expectation>("{kind: back_to_min, after_phase: idle}").is_err()
        );
    }

    #[test]
    fn excerpts_keep_change_points_and_stay_short() {
        let tl =
            timeline_from_replicas(&[(0.0, 1), (100.0, 2), (200.0, 3), (250.0, 2), (600.0, 2)]);
        let ex = excerpt(&tl, 0.0, 600.0);
        assert!(
            ex.len() <= EXCERPT_SAMPLES && ex.len() >= EXCERPT_SAMPLES - 2,
            "{}",
            ex.len()
        );
        let times: Vec<f64> = ex.iter().map(|s| s.t).collect();
        for t in [0.0, 100.0, 200.0, 250.0, 600.0] {
            assert!(times.contains(&t), "{t} missing from {times:?}");
        }
        assert!(times.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(excerpt(&tl, 10.0, 14.0).len(), 5);
    }

    #[test]
    fn phases_follow_each_other() {
        let phases = Phase::sequence(5.0, [("a", 10.0), ("b", 20.0)]);
        assert_eq!(
            phases[0],
            Phase {
                name: "a".into(),
                start: 5.0,
                end: 15.0
            }
        );
        assert_eq!(
            phases[1],
            Phase {
                name: "b".into(),
                start: 15.0,
                end: 35.0
            }
        );
    }
}
