//! The expectations that a scale-down waits for the scale-down cooldown after the load drops
//! (`no_scale_down_before`) and a scale-up for the scale-up cooldown after it rises (`no_scale_up_before`), with the
//! default hold derived from the PodAutoscaler's own window and decision period ([`hold`]); and that the controller
//! applied the window the PodAutoscaler asks for (`cooldown_window`, from its own log).

use serde::{Deserialize, Serialize};

use super::context::EvalContext;
use super::timeline_query::{first_change_after, timeline_end};
use super::verdict::{secs, Verdict};
use crate::observe::timeline::Timeline;

/// The hold of a cooldown check and how it was derived: `seconds` if given, else the `direction`'s cooldown minus
/// one decision period (the last recommendation before the load changed can precede the change by one period).
fn hold(ctx: &EvalContext, seconds: Option<f64>, direction: Direction) -> (f64, String) {
    match seconds {
        Some(s) => (s, String::new()),
        None => {
            let cooldown = direction.cooldown_s(ctx);
            let direction = direction.word();
            let period = ctx.params.decision_period_s(ctx.strategy);
            (
                (cooldown - period).max(0.0),
                format!(
                    " ({direction} cooldown {} s minus one {} s decision period)",
                    secs(cooldown),
                    secs(period)
                ),
            )
        }
    }
}

pub(super) fn no_scale_down_before(
    timeline: &Timeline,
    ctx: &EvalContext,
    phase: &str,
    seconds: Option<f64>,
) -> Verdict {
    let Some(p) = ctx.phase(phase) else {
        return ctx.unknown_phase(phase);
    };
    let (hold, origin) = hold(ctx, seconds, Direction::Down);
    let limit = p.start + hold;
    let first_down = first_change_after(timeline, p.start, |before, after| after < before);
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

/// After the load rises (start of `after_phase`), `spec.replicas` does not increase for `seconds` (default: the
/// scale-up cooldown window minus one decision period): the scale-up stabilization window keeps the lowest
/// recommendation of the window.
pub(super) fn no_scale_up_before(
    timeline: &Timeline,
    ctx: &EvalContext,
    phase: &str,
    seconds: Option<f64>,
) -> Verdict {
    let Some(p) = ctx.phase(phase) else {
        return ctx.unknown_phase(phase);
    };
    let (hold, origin) = hold(ctx, seconds, Direction::Up);
    let limit = p.start + hold;
    let first_up = first_change_after(timeline, p.start, |before, after| after > before);
    let end = timeline_end(timeline);
    match first_up {
        Some((t, from, to)) if t < limit => Verdict::new(
            false,
            format!(
                "scaled up {from} → {to} at t={t:.1} s, {:.1} s after phase `{phase}` started; expected none before \
                 {} s{origin}",
                t - p.start,
                secs(hold)
            ),
            timeline,
            (p.start, t),
        ),
        Some((t, from, to)) => Verdict::new(
            true,
            format!(
                "first scale-up {from} → {to} at t={t:.1} s, {:.1} s after phase `{phase}` started (hold {} s{origin})",
                t - p.start,
                secs(hold)
            ),
            timeline,
            (p.start, t),
        ),
        None => Verdict::new(
            false,
            format!(
                "inconclusive: no scale-up at all in the {:.1} s after phase `{phase}` started, so the hold of {} s{origin} \
                 was not exercised",
                end - p.start,
                secs(hold)
            ),
            timeline,
            (p.start, end.max(p.start)),
        ),
    }
}

/// A scaling direction, as scenario files write it (`up`, `down`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// More replicas.
    Up,
    /// Fewer replicas.
    Down,
}

impl Direction {
    pub(super) fn word(self) -> &'static str {
        match self {
            Direction::Up => "scale-up",
            Direction::Down => "scale-down",
        }
    }

    /// The PodAutoscaler's cooldown window in this direction, seconds (as the harness reads its annotations).
    fn cooldown_s(self, ctx: &EvalContext) -> f64 {
        match self {
            Direction::Up => ctx.params.scale_up_cooldown_s,
            Direction::Down => ctx.params.scale_down_cooldown_s,
        }
    }
}

/// Every cooldown step the controller logged in `direction` (from its log: the window of "Stabilization applied")
/// used a window of `seconds` (default: the PodAutoscaler's own cooldown window for that direction, as the
/// harness reads its annotations). This judges what the controller *parsed*, independently of what it then does
/// with the window, so an annotation it skips shows even where another deviation hides its effect on the replicas.
/// KPA/APA only; at least one step in that direction must have been logged.
pub(super) fn cooldown_window(
    timeline: &Timeline,
    ctx: &EvalContext,
    direction: Direction,
    seconds: Option<f64>,
) -> Verdict {
    let expected = seconds.unwrap_or_else(|| direction.cooldown_s(ctx));
    let steps: Vec<(f64, &crate::observe::decisions::Stabilization)> = timeline
        .decisions
        .iter()
        .filter_map(|d| Some((d.t, d.stabilization.as_ref()?)))
        .filter(|(_, s)| s.is_scale_down() == (direction == Direction::Down))
        .collect();
    let word = direction.word();
    let Some(&(first_t, _)) = steps.first() else {
        return Verdict::failed(format!(
            "inconclusive: the controller logged no {word} cooldown step ({} decisions; is it run with \
             -vmodule=podautoscaler_controller=4?)",
            timeline.decisions.len()
        ));
    };
    let last_t = steps.last().map_or(first_t, |(t, _)| *t);
    match steps
        .iter()
        .find(|(_, s)| (s.window_s - expected).abs() > 1e-6)
    {
        Some((t, s)) => Verdict::new(
            false,
            format!(
                "the {word} step at t={t:.1} s ({} → {}, stabilized {}) used a {} s window; expected {} s",
                s.current,
                s.recommendation,
                s.stabilized,
                secs(s.window_s),
                secs(expected)
            ),
            timeline,
            (*t, *t),
        ),
        None => Verdict::new(
            true,
            format!(
                "all {} {word} steps (t={first_t:.1}–{last_t:.1} s) used the {} s window",
                steps.len(),
                secs(expected)
            ),
            timeline,
            (first_t, last_t),
        ),
    }
}
