//! The expectations that a scale-down waits for the scale-down cooldown after the load drops
//! (`no_scale_down_before`) and a scale-up for the scale-up cooldown after it rises (`no_scale_up_before`), with the
//! default hold derived from the PodAutoscaler's own window and decision period ([`hold`]).

use super::context::EvalContext;
use super::timeline_query::{first_change_after, timeline_end};
use super::verdict::{secs, Verdict};
use crate::observe::timeline::Timeline;

/// The hold of a cooldown check and how it was derived: `seconds` if given, else the `direction`'s cooldown minus
/// one decision period (the last recommendation before the load changed can precede the change by one period).
fn hold(ctx: &EvalContext, seconds: Option<f64>, cooldown: f64, direction: &str) -> (f64, String) {
    match seconds {
        Some(s) => (s, String::new()),
        None => {
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
    let (hold, origin) = hold(ctx, seconds, ctx.params.scale_down_cooldown_s, "scale-down");
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
    let (hold, origin) = hold(ctx, seconds, ctx.params.scale_up_cooldown_s, "scale-up");
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
