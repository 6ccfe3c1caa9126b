//! Expectations about *holding still*: the replica count rests in the reference steady-state range under constant
//! load (`steady_state`), never leaves `[min, max]` (`within_bounds`), does not move inside the tolerance band
//! (`no_scaling`), and does not flap (`max_direction_changes`).

use std::fmt::Write as _;

use super::context::EvalContext;
use super::timeline_query::{median, replicas, replicas_at, timeline_end};
use super::verdict::{plural, range_text, secs, Verdict};
use crate::observe::timeline::{Sample, Timeline};
use crate::scenario::reference;

pub(super) fn steady_state(
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

pub(super) fn within_bounds(timeline: &Timeline, ctx: &EvalContext) -> Verdict {
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

pub(super) fn no_scaling(
    timeline: &Timeline,
    ctx: &EvalContext,
    phase: &str,
    settle_s: f64,
) -> Verdict {
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

pub(super) fn max_direction_changes(
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
