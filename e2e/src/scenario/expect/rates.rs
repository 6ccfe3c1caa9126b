//! How far and where replicas may go: the rate limits of one decision (`rate_limited`, from the PodAutoscaler's
//! `max-scale-up-rate` / `max-scale-down-rate`) and a plain range during a phase (`replicas_between`).
//!
//! KPA and APA write `spec.replicas` once per decision, so each change of the trajectory is one decision and is held
//! to Knative's bounds: up to `ceil(up-rate × before)`, down to no less than `floor(before / down-rate)`. The HPA
//! strategy hands the rates to the generated HPA as `Percent` policies over 60 s periods, so there the bound is on
//! the count 60 s earlier: `ceil(up-rate × r(t−60))` and `ceil(r(t−60) / down-rate)` (Kubernetes' rounding).

use super::context::EvalContext;
use super::timeline_query::{first_change_after, replicas, replicas_at, timeline_end};
use super::verdict::{secs, Verdict};
use crate::observe::timeline::Timeline;
use crate::scenario::reference::Strategy;

/// Kubernetes' HPA policy period that AIBrix generates for the rates.
const HPA_POLICY_PERIOD_S: f64 = 60.0;

/// How much earlier than one policy period the HPA's previous change may show in the timeline: the observer samples
/// once a second, so two HPA decisions exactly 60 s apart (four 15 s syncs) can be recorded 59.x s apart.
const SAMPLING_SLACK_S: f64 = 2.0;

pub(super) fn rate_limited(timeline: &Timeline, ctx: &EvalContext) -> Verdict {
    let up = ctx.params.max_scale_up_rate;
    let down = ctx.params.max_scale_down_rate;
    let trajectory: Vec<(f64, i64)> = replicas(timeline).collect();
    // KPA/APA: the controller's own rescales when its log has them (two decisions can fall in one observer tick);
    // otherwise, and for HPA, each change of the sampled trajectory.
    let logged = crate::observe::decisions::rescales(&timeline.decisions);
    let changes: Vec<(f64, i64, i64)> = if ctx.strategy != Strategy::Hpa && !logged.is_empty() {
        logged
    } else {
        trajectory
            .windows(2)
            .map(|pair| (pair[1].0, pair[0].1, pair[1].1))
            .collect()
    };
    let mut steps = 0;
    let mut worst: Option<(f64, i64, i64, String)> = None;
    for &(t, before, after) in &changes {
        if before == after {
            continue;
        }
        steps += 1;
        let base = if ctx.strategy == Strategy::Hpa {
            replicas_at(timeline, t - HPA_POLICY_PERIOD_S + SAMPLING_SLACK_S)
                .unwrap_or(trajectory[0].1)
        } else {
            before
        };
        let (ok, rule) = if after > before {
            let limit = (up * base as f64 - 1e-9).ceil() as i64;
            (
                after <= limit.max(1),
                format!("at most ceil({up} × {base}) = {limit}"),
            )
        } else {
            let limit = if ctx.strategy == Strategy::Hpa {
                (base as f64 / down - 1e-9).ceil() as i64
            } else {
                (base as f64 / down + 1e-9).floor() as i64
            };
            (
                after >= limit,
                format!("at least {limit} (from {base} at rate {down})"),
            )
        };
        if !ok && worst.is_none() {
            worst = Some((t, before, after, rule));
        }
    }
    let end = timeline_end(timeline);
    let basis = if ctx.strategy == Strategy::Hpa {
        "per 60 s policy period"
    } else {
        "per decision"
    };
    match worst {
        Some((t, before, after, rule)) => Verdict::new(
            false,
            format!(
                "{before} → {after} at t={t:.1} s breaks the rate limits {basis} (up-rate {up}, down-rate {down}): \
                 expected {rule}"
            ),
            timeline,
            ((t - 60.0).max(0.0), t + 5.0),
        ),
        None if steps == 0 => Verdict::new(
            false,
            "inconclusive: replicas never changed, so no rate limit was exercised".to_string(),
            timeline,
            (0.0, end),
        ),
        None => Verdict::new(
            true,
            format!("all {steps} changes within up-rate {up} / down-rate {down} {basis}"),
            timeline,
            (0.0, end),
        ),
    }
}

pub(super) fn replicas_between(
    timeline: &Timeline,
    ctx: &EvalContext,
    phase: Option<&str>,
    settle_s: f64,
    min: i64,
    max: i64,
) -> Verdict {
    let (from, to, what) = match phase {
        Some(name) => {
            let Some(p) = ctx.phase(name) else {
                return ctx.unknown_phase(name);
            };
            (p.start + settle_s, p.end, format!("phase `{name}`"))
        }
        None => (settle_s, f64::INFINITY, "the run".to_string()),
    };
    let window: Vec<(f64, i64)> = replicas(timeline)
        .filter(|&(t, _)| t >= from && t < to)
        .collect();
    let Some(&(first_t, _)) = window.first() else {
        return Verdict::failed(format!("no samples in {what} after {} s", secs(settle_s)));
    };
    let last_t = window.last().map_or(first_t, |&(t, _)| t);
    let outside = window.iter().find(|&&(_, r)| r < min || r > max);
    let lo = window.iter().map(|&(_, r)| r).min().unwrap_or_default();
    let hi = window.iter().map(|&(_, r)| r).max().unwrap_or_default();
    match outside {
        Some(&(t, r)) => Verdict::new(
            false,
            format!("{r} replicas at t={t:.1} s in {what}; expected {min}..={max} (seen {lo}..={hi})"),
            timeline,
            ((t - 20.0).max(first_t), t + 5.0),
        ),
        None => Verdict::new(
            true,
            format!(
                "replicas stayed within {min}..={max} in {what} (seen {lo}..={hi}, t={first_t:.0}–{last_t:.0} s)"
            ),
            timeline,
            (first_t, last_t),
        ),
    }
}

pub(super) fn first_change(
    timeline: &Timeline,
    ctx: &EvalContext,
    after_phase: Option<&str>,
    to: i64,
) -> Verdict {
    let from_t = match after_phase {
        Some(name) => match ctx.phase(name) {
            Some(p) => p.start,
            None => return ctx.unknown_phase(name),
        },
        None => 0.0,
    };
    // The controller's first logged rescale when there is one (a second decision can follow within the same
    // observer tick), else the first change of the sampled trajectory.
    let logged = crate::observe::decisions::rescales(&timeline.decisions)
        .into_iter()
        .find(|&(t, from, to)| t >= from_t && from != to);
    let change = logged.or_else(|| first_change_after(timeline, from_t, |_, _| true));
    let end = timeline_end(timeline);
    match change {
        Some((t, before, after)) => Verdict::new(
            after == to,
            format!("first change {before} → {after} at t={t:.1} s; expected → {to}"),
            timeline,
            ((t - 20.0).max(from_t), t + 10.0),
        ),
        None => Verdict::new(
            false,
            format!("replicas never changed (expected a first change to {to})"),
            timeline,
            (from_t, end.max(from_t)),
        ),
    }
}
