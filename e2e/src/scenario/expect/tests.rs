//! Every expectation kind judged on hand-made timelines, and the YAML form of an expectation list.

use super::*;
use crate::observe::timeline::{PodSample, Sample};
use crate::scenario::reference::{ScalingParams, Strategy};

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
        ..Timeline::default()
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

fn item(text: &str) -> ExpectationItem {
    serde_yaml::from_str(text).expect("valid expectation item")
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

    let unknown = yaml("{kind: reaches_at_least, replicas: 3, within_s: 60, after_phase: nope}");
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
    let other =
        yaml("{kind: steady_state, phase: plateau, metric: gpu_cache_usage_perc, settle_s: 120}");
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
    let windowed = yaml("{kind: max_direction_changes, max: 1, from_phase: burst, window_s: 100}");
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
        "scaled 1 → 6 at t=340.0 s, 40.0 s after phase `spike` started (limit 60 s, peak 6); the stable \
         window alone would have reached 6 at t≈460 s (reference KPA with panic: t≈340 s)"
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
    // An early jump then a slow climb: the peak comes after the stable window alone would reach it, but the jump
    // to 4 came long before the stable window alone gets there (about 80 s after the spike). That lead is panic.
    let jump_then_climb = with_metric(
        timeline_from_replicas(&[(0.0, 1), (310.0, 4), (480.0, 6), (600.0, 6)]),
        METRIC,
        spike_demand,
    );
    let v = lenient.evaluate(&jump_then_climb, &ctx);
    assert!(v.passed, "{}", v.summary);
    assert!(
        v.summary.starts_with("scaled 1 → 4 at t=310.0 s") && v.summary.contains("peak 6"),
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
    let known = Mark::ExpectedFailure {
        reason: "known".into(),
    };
    assert_eq!(Mark::Unmarked.outcome(true), Outcome::Pass);
    assert_eq!(Mark::Unmarked.outcome(false), Outcome::Fail);
    assert_eq!(known.outcome(false), Outcome::ExpectedFail);
    assert_eq!(known.outcome(true), Outcome::UnexpectedPass);
    assert!(Outcome::Pass.is_ok() && Outcome::ExpectedFail.is_ok());
    assert!(!Outcome::Fail.is_ok() && !Outcome::UnexpectedPass.is_ok());

    let ctx = ctx(Strategy::Kpa, &[("all", 100.0)]);
    let e = item("{kind: within_bounds, expected_failure: \"overshoots max\"}");
    let bad = timeline_from_replicas(&[(0.0, 1), (10.0, 9), (100.0, 9)]);
    let j = e.judge(&bad, &ctx);
    assert_eq!(j.outcome, Outcome::ExpectedFail);
    assert_eq!(j.expected_failure.as_deref(), Some("overshoots max"));
    assert_eq!(j.expectation, "within_bounds");

    // An intermittent mark reports the verdict of this run and never gates.
    let flaky = item("{kind: within_bounds, intermittent: races}");
    let j = flaky.judge(&bad, &ctx);
    assert_eq!(j.outcome, Outcome::Intermittent);
    assert_eq!(
        j.expected_failure.as_deref(),
        Some("intermittent (failed this run): races")
    );
    assert!(!j.verdict.passed);
    let fine = timeline_from_replicas(&[(0.0, 1), (100.0, 1)]);
    assert_eq!(
        flaky.judge(&fine, &ctx).expected_failure.as_deref(),
        Some("intermittent (held this run): races")
    );
}

#[test]
fn a_list_of_expectations_deserializes_from_yaml() {
    let text = r#"
- {kind: reaches_at_least, replicas: 3, within_s: 90, after_phase: burst}
- {kind: steady_state, phase: plateau, metric: num_requests_running, settle_s: 120, intermittent: "races"}
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
    let list: Vec<ExpectationItem> = serde_yaml::from_str(text).expect("parses");
    assert_eq!(list.len(), 8);
    assert_eq!(
        list[0].check,
        Expectation::ReachesAtLeast {
            replicas: 3,
            within_s: 90.0,
            after_phase: "burst".into(),
        }
    );
    assert_eq!(list[0].mark, Mark::Unmarked);
    assert_eq!(
        list[1].check,
        Expectation::SteadyState {
            phase: "plateau".into(),
            metric: Some("num_requests_running".into()),
            settle_s: 120.0,
            slack: 1,
        }
    );
    assert_eq!(
        list[1].mark,
        Mark::Intermittent {
            reason: "races".into()
        }
    );
    assert_eq!(list[2].check, Expectation::WithinBounds {});
    assert_eq!(
        list[3].check,
        Expectation::NoScaleDownBefore {
            after_phase: "idle".into(),
            seconds: None,
        }
    );
    assert_eq!(
        list[6].check,
        Expectation::MaxDirectionChanges {
            max: 1,
            from_phase: Some("burst".into()),
            window_s: Some(600.0),
        }
    );
    assert_eq!(
        list[7].mark,
        Mark::ExpectedFailure {
            reason: "v0.7.0 KPA compares the per-pod mean with the target".into()
        }
    );
    let kinds: Vec<&str> = list.iter().map(|i| i.check.kind()).collect();
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
    let again: Vec<ExpectationItem> =
        serde_yaml::from_str(&serde_yaml::to_string(&list).expect("serializes"))
            .expect("parses back");
    assert_eq!(again, list);
    // Typos and unknown kinds are errors, not silently ignored.
    assert!(serde_yaml::from_str::<Expectation>(
        "{kind: back_to_min, after_phase: idle, within: 600}"
    )
    .is_err());
    assert!(serde_yaml::from_str::<Expectation>("{kind: reaches_at_most, replicas: 3}").is_err());
    assert!(serde_yaml::from_str::<Expectation>("{kind: back_to_min, after_phase: idle}").is_err());
}

/// The mark is flattened next to the check: the enum's `deny_unknown_fields` must still see every other key.
#[test]
fn a_marked_item_still_rejects_unknown_fields() {
    let err = |text: &str| {
        serde_yaml::from_str::<ExpectationItem>(text)
            .expect_err(text)
            .to_string()
    };
    let typo = err("{kind: back_to_min, after_phase: idle, within: 600, expected_failure: slow}");
    assert!(typo.contains("unknown field `within`"), "{typo}");
    let misspelt_mark = err("{kind: within_bounds, expected_failures: slow}");
    assert!(
        misspelt_mark.contains("unknown field `expected_failures`"),
        "{misspelt_mark}"
    );
    let unknown_kind = err("{kind: reaches_at_most, replicas: 3}");
    assert!(
        unknown_kind.contains("unknown variant `reaches_at_most`"),
        "{unknown_kind}"
    );
    let both = err("{kind: within_bounds, expected_failure: a, intermittent: b}");
    assert!(both.contains("at most one mark"), "{both}");
}

#[test]
fn excerpts_keep_change_points_and_stay_short() {
    let tl = timeline_from_replicas(&[(0.0, 1), (100.0, 2), (200.0, 3), (250.0, 2), (600.0, 2)]);
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
