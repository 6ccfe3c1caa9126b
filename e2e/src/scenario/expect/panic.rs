//! The KPA panic-mode expectation (`panic_scales_up_faster`): the observed scale-up after a spike is compared with
//! the reference KPA fed the same observed demand, once with panic and once with the stable window alone. It passes
//! when some replica count within the limit was reached before the stable window alone would have reached it.

use super::context::EvalContext;
use super::timeline_query::{demand_at, first_after, replicas, replicas_at, timeline_end};
use super::verdict::{secs, Verdict};
use crate::observe::timeline::Timeline;
use crate::scenario::reference::{KpaSim, ScalingParams, Strategy};

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

pub(super) fn panic_scales_up_faster(
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
    // When the reference KPA, with or without panic, fed this timeline's demand from the spike on, reaches a count.
    let reference = |reach: i64, panic: bool| {
        kpa_time_to_reach(timeline, &params, metric, p.start, baseline, reach, panic)
    };
    // The highest count within the limit, and when it was first reached.
    let peak = replicas(timeline)
        .filter(|&(t, _)| t >= p.start && t <= deadline)
        .map(|(_, r)| r)
        .max()
        .filter(|&r| r > baseline);
    let Some(reach) = peak else {
        let stable = reference(baseline + 1, false);
        let panic = reference(baseline + 1, true);
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
    // Every count above the baseline reached within the limit, when it was first reached, and when the stable
    // window alone would have reached it. Panic mode shows as a count reached before the stable window alone
    // reaches it. Judging only the peak fails a controller that panics early and then climbs slowly (its later
    // steps sized from a window still full of quiet seconds): it can reach its peak later than the stable reference,
    // and its early lead is the evidence asked for. The verdict names the level with the largest lead (a level the
    // stable window never reaches leads the most).
    let lead = |&(_, t, stable): &(i64, f64, Option<f64>)| stable.map_or(f64::INFINITY, |s| s - t);
    let best = (baseline + 1..=reach)
        .filter_map(|level| {
            first_after(timeline, p.start, |r| r >= level)
                .map(|(t, _)| (level, t, reference(level, false)))
        })
        .max_by(|a, b| lead(a).total_cmp(&lead(b)));
    let Some((level, t, stable)) = best else {
        return Verdict::failed(format!("no sample reaches {reach} after phase `{phase}`"));
    };
    let faster = lead(&(level, t, stable)) > 0.0;
    let judgement = if faster {
        ""
    } else {
        " — no count came sooner than the stable window alone would reach it, so no evidence of panic mode"
    };
    let panic = reference(level, true);
    Verdict::new(
        faster,
        format!(
            "scaled {baseline} → {level} at t={t:.1} s, {:.1} s after phase `{phase}` started (limit {} s, peak {reach}){judgement}; \
             the stable window alone would have reached {level} at {} (reference KPA with panic: {})",
            t - p.start,
            secs(within_s),
            when(stable),
            when(panic)
        ),
        timeline,
        (p.start, deadline.min(end).max(t)),
    )
}
