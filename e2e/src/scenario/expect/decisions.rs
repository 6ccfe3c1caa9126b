//! Decision-level judgement (`decisions`): every recommendation the controller logged, recomputed by the reference
//! from the controller's own inputs, compared one by one.
//!
//! The inputs are what the controller wrote next to its recommendation ([`ControllerDecision`]): the per-pod values
//! of that reconcile and its stable/panic window averages. The reference sees exactly those, so a difference is a
//! difference of algorithm, never a timing race between the observer's samples and the controller's reconciles:
//!
//! - KPA (Knative): with `n` the pods that reported, the windowed total is `average × n` (the stable window's, or
//!   the panic window's when the controller says it is in panic); the recommendation is [`kpa_desired`] of that
//!   total over `n` ready pods, and in panic never below the current count.
//! - APA (as documented): [`apa_desired`] of the stable window's per-pod average for the current replicas.
//!
//! On a build whose window holds totals (the patched one: `window-mixes-pod-counts` fixed), the logged window
//! values are totals already: KPA takes them as they are, APA divides them by the current replicas.
//!
//! Both sides are clamped to `[min, max]` before they are compared. The current replica count is the controller's
//! own (from its rescale log lines), falling back to the timeline's `spec.replicas` before its first rescale: the
//! controller can reconcile several times within one observer tick (watch events), so a sampled count would race.

use super::context::EvalContext;
use super::timeline_query::{replicas_at, timeline_end};
use super::verdict::Verdict;
use crate::observe::decisions::ControllerDecision;
use crate::observe::timeline::Timeline;
use crate::scenario::reference::{apa_desired, kpa_desired, Strategy};

/// The catalogue entry whose patch makes the controller's window hold the total over the pods of each reconcile
/// instead of their mean: on a build that fixes it, the logged `stableAvg` / `panicAvg` are windowed totals.
const WINDOW_OF_TOTALS: &str = "window-mixes-pod-counts";

/// The reference recommendation for one logged decision, and the inputs it used (for the verdict's text).
fn reference(d: &ControllerDecision, current: i64, ctx: &EvalContext) -> Option<(i64, String)> {
    let params = ctx.scaling_params();
    let clamp = |r: i64| r.clamp(ctx.min_replicas, ctx.max_replicas);
    let totals = ctx.fixed_deviations.contains(WINDOW_OF_TOTALS);
    match ctx.strategy {
        Strategy::Kpa => {
            let n = d.values.len() as i64;
            let panic = d.mode.as_deref() == Some("panic");
            let average = if panic { d.panic_avg? } else { d.stable_avg? };
            let total = if totals { average } else { average * n as f64 };
            let mut desired = kpa_desired(total, n, &params);
            if panic {
                desired = desired.max(current);
            }
            let inputs = if totals {
                format!("windowed total {total} over {n} pods")
            } else {
                format!("average {average} × {n} pods = total {total}")
            };
            Some((
                clamp(desired),
                format!(
                    "{} {inputs} at target {}",
                    if panic { "panic" } else { "stable" },
                    params.target_value
                ),
            ))
        }
        Strategy::Apa => {
            let mean = if totals {
                d.stable_avg? / current.max(1) as f64
            } else {
                d.stable_avg?
            };
            Some((
                clamp(apa_desired(current, mean, &params)),
                format!(
                    "stable per-pod average {mean} on {current} replicas at target {}",
                    params.target_value
                ),
            ))
        }
        Strategy::Hpa => None,
    }
}

pub(super) fn decisions(
    timeline: &Timeline,
    ctx: &EvalContext,
    from_phase: Option<&str>,
    max_mismatches: usize,
) -> Verdict {
    if ctx.strategy == Strategy::Hpa {
        return Verdict::failed(
            "decisions: KPA/APA only (HPA decisions are kube-controller-manager's, judged by the trajectory)".into(),
        );
    }
    let from = match from_phase {
        Some(name) => match ctx.phase(name) {
            Some(p) => p.start,
            None => return ctx.unknown_phase(name),
        },
        None => f64::NEG_INFINITY,
    };
    let mut judged = 0usize;
    let mut mismatches = Vec::new();
    for d in timeline.decisions.iter().filter(|d| d.t >= from) {
        let Some(current) = d
            .current_replicas
            .or_else(|| replicas_at(timeline, d.t))
            .or(d.pods_listed)
        else {
            continue;
        };
        let Some((want, inputs)) = reference(d, current, ctx) else {
            continue;
        };
        judged += 1;
        let got = d.desired.clamp(ctx.min_replicas, ctx.max_replicas);
        if got != want {
            mismatches.push((d.t, got, want, inputs, d.values.clone()));
        }
    }
    let end = timeline_end(timeline);
    if judged == 0 {
        return Verdict::new(
            false,
            format!(
                "no decision of the controller to judge ({} logged; is the controller's log at -v=4?)",
                timeline.decisions.len()
            ),
            timeline,
            (0.0, end),
        );
    }
    let passed = mismatches.len() <= max_mismatches;
    let Some((t, got, want, inputs, values)) = mismatches.first().cloned() else {
        return Verdict::new(
            true,
            format!("all {judged} decisions equal the reference recomputed from the controller's inputs"),
            timeline,
            (from.max(0.0), end),
        );
    };
    let values: Vec<String> = values.iter().map(|v| format!("{v}")).collect();
    Verdict::new(
        passed,
        format!(
            "{} of {judged} decisions differ from the reference on the same inputs (allowed {max_mismatches}); first at \
             t={t:.1} s: controller {got}, reference {want} ({inputs}; this reconcile's pod values [{}])",
            mismatches.len(),
            values.join(", ")
        ),
        timeline,
        ((t - 20.0).max(0.0), t + 10.0),
    )
}
