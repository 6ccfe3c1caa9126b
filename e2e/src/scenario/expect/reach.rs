//! Expectations about *time to reach* a replica count after a load step: up to a count (`reaches_at_least`) or back
//! down to `min` once the load stops (`back_to_min`). Both ask the same question (the first sample after a phase
//! starts that meets a goal, against a deadline), so one function, [`time_to_goal`], judges both; only the goal,
//! its wording and what a miss reports differ.

use super::context::EvalContext;
use super::timeline_query::{first_after, replicas, timeline_end};
use super::verdict::{plural, secs, Verdict};
use crate::observe::timeline::Timeline;

/// A replica count to reach, as a summary names it.
struct Goal<Hit> {
    /// The verb of every summary: `reached` (3 replicas), `back to` (min 1 replica).
    verb: &'static str,
    /// `3 replicas`, `min 1 replica`.
    noun: String,
    /// Whether a replica count meets the goal.
    hit: Hit,
}

pub(super) fn reaches_at_least(
    timeline: &Timeline,
    ctx: &EvalContext,
    target: i64,
    within_s: f64,
    phase: &str,
) -> Verdict {
    let goal = Goal {
        verb: "reached",
        noun: format!("{target} replica{}", plural(target)),
        hit: |r| r >= target,
    };
    time_to_goal(timeline, ctx, phase, within_s, goal, |start, end| {
        let best = replicas(timeline)
            .filter(|&(t, _)| t >= start)
            .max_by_key(|&(_, r)| r);
        let best = best.map_or("no replica counts recorded".to_string(), |(t, r)| {
            format!("highest {r} at t={t:.1} s")
        });
        format!("{best}; timeline ends at t={end:.1} s")
    })
}

pub(super) fn back_to_min(
    timeline: &Timeline,
    ctx: &EvalContext,
    phase: &str,
    within_s: f64,
) -> Verdict {
    let min = ctx.min_replicas;
    let goal = Goal {
        verb: "back to",
        noun: format!("min {min} replica{}", plural(min)),
        hit: |r| r <= min,
    };
    time_to_goal(timeline, ctx, phase, within_s, goal, |_, end| {
        let last = replicas(timeline)
            .last()
            .map_or("none".to_string(), |(_, r)| r.to_string());
        format!("last {last} at t={end:.1} s")
    })
}

/// Judges "`goal` within `within_s` of the start of `phase`": in time passes, late or never fails. `missed(start,
/// end)` says what the timeline shows instead when the goal is never met (`end` is the timeline's last sample).
fn time_to_goal(
    timeline: &Timeline,
    ctx: &EvalContext,
    phase: &str,
    within_s: f64,
    goal: Goal<impl Fn(i64) -> bool>,
    missed: impl FnOnce(f64, f64) -> String,
) -> Verdict {
    let Some(p) = ctx.phase(phase) else {
        return ctx.unknown_phase(phase);
    };
    let Goal { verb, noun, hit } = goal;
    let deadline = p.start + within_s;
    let limit = secs(within_s);
    match first_after(timeline, p.start, hit) {
        Some((t, _)) => {
            let in_time = t <= deadline;
            let only = if in_time { "" } else { "only " };
            Verdict::new(
                in_time,
                format!(
                    "{verb} {noun} {only}{:.1} s after phase `{phase}` started (limit {limit} s)",
                    t - p.start
                ),
                timeline,
                (p.start, t),
            )
        }
        None => {
            let end = timeline_end(timeline);
            Verdict::new(
                false,
                format!(
                    "never {verb} {noun} after phase `{phase}` started (limit {limit} s; {})",
                    missed(p.start, end)
                ),
                timeline,
                (p.start, deadline.min(end).max(p.start)),
            )
        }
    }
}
