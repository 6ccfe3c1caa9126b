//! Small queries over a recorded [`Timeline`] that every check shares: the replica trajectory, the count in force at
//! a time, the first sample meeting a condition, the demand at a time, and the short excerpt a verdict carries.
//!
//! Replica counts are the target's `spec.replicas` (what the autoscaler decided); samples without one are skipped.

use std::collections::BTreeSet;

use crate::observe::timeline::{Sample, Timeline};

/// At most this many samples go into a verdict's excerpt.
pub const EXCERPT_SAMPLES: usize = 20;

/// `(t, spec_replicas)` of the samples that have it.
pub(super) fn replicas(timeline: &Timeline) -> impl Iterator<Item = (f64, i64)> + '_ {
    timeline
        .samples
        .iter()
        .filter_map(|s| s.spec_replicas.map(|r| (s.t, r)))
}

/// The replica count in force at `t` (the last sample at or before it).
pub(super) fn replicas_at(timeline: &Timeline, t: f64) -> Option<i64> {
    replicas(timeline)
        .take_while(|&(at, _)| at <= t)
        .last()
        .map(|(_, r)| r)
}

/// The first change of the replica count at or after `from` for which `wanted(before, after)` holds, as
/// `(t, before, after)`; `before` starts as the count in force just before `from`.
pub(super) fn first_change_after(
    timeline: &Timeline,
    from: f64,
    wanted: impl Fn(i64, i64) -> bool,
) -> Option<(f64, i64, i64)> {
    let mut previous = replicas_at(timeline, from - 1e-9);
    for (t, r) in replicas(timeline).filter(|&(t, _)| t >= from) {
        if let Some(before) = previous {
            if r != before && wanted(before, r) {
                return Some((t, before, r));
            }
        }
        previous = Some(r);
    }
    None
}

pub(super) fn timeline_end(timeline: &Timeline) -> f64 {
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
pub(super) fn first_after(
    timeline: &Timeline,
    start: f64,
    hit: impl Fn(i64) -> bool,
) -> Option<(f64, i64)> {
    replicas(timeline).find(|&(t, r)| t >= start && hit(r))
}

pub(super) fn median(values: &mut [f64]) -> Option<f64> {
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

/// The observed total of `metric` in force at `t` (the last sample at or before `t`; 0 before the first).
pub(super) fn demand_at(timeline: &Timeline, metric: &str, t: f64) -> f64 {
    let after = timeline.samples.partition_point(|s| s.t <= t + 1e-9);
    after
        .checked_sub(1)
        .map_or(0.0, |i| timeline.samples[i].metric_total(metric))
}
