//! The status, event, HPA-object, rate and range expectations judged on hand-made timelines.

use super::*;
use crate::observe::timeline::{
    ConditionSnapshot, FinalState, HpaSnapshot, PodAutoscalerSnapshot, Sample, TimelineEvent,
};
use crate::scenario::reference::{ScalingParams, Strategy};

fn steps(points: &[(f64, i64)]) -> Timeline {
    let end = points.last().map_or(0.0, |p| p.0);
    let samples = (0..=end as usize)
        .map(|t| {
            let t = t as f64;
            let r = points.iter().take_while(|p| p.0 <= t).last().map(|p| p.1);
            Sample {
                t,
                spec_replicas: r,
                ..Sample::default()
            }
        })
        .collect();
    Timeline {
        samples,
        ..Timeline::default()
    }
}

fn ctx(strategy: Strategy, up: f64, down: f64, phases: &[(&str, f64)]) -> EvalContext {
    let mut params = ScalingParams::new(1, 8, "num_requests_running", 4.0);
    params.max_scale_up_rate = up;
    params.max_scale_down_rate = down;
    params.scale_up_cooldown_s = 60.0;
    EvalContext::new(
        strategy,
        params,
        Phase::sequence(0.0, phases.iter().copied()),
    )
}

fn yaml(text: &str) -> Expectation {
    serde_yaml::from_str(text).expect("valid expectation")
}

fn with_final(mut timeline: Timeline) -> Timeline {
    timeline.final_state = FinalState {
        podautoscalers: vec![PodAutoscalerSnapshot {
            name: "mock-vllm".into(),
            conditions: vec![
                ConditionSnapshot {
                    type_: "ValidSpec".into(),
                    status: "False".into(),
                    reason: "MetricsConfigError".into(),
                    message: "invalid targetValue".into(),
                },
                ConditionSnapshot {
                    type_: "AbleToScale".into(),
                    status: "False".into(),
                    reason: "InvalidSpec".into(),
                    message: String::new(),
                },
            ],
            ..PodAutoscalerSnapshot::default()
        }],
        hpas: vec![HpaSnapshot {
            name: "mock-vllm-hpa".into(),
            min_replicas: Some(1),
            max_replicas: 8,
            metrics: vec!["Pods/num_requests_running averageValue=4".into()],
            owners: vec!["PodAutoscaler/mock-vllm".into()],
            behavior: None,
        }],
    };
    timeline.events = vec![TimelineEvent {
        t: 12.0,
        kind: "PodAutoscaler".into(),
        object: "mock-vllm".into(),
        reason: "SuccessfulRescale".into(),
        message: "New size: 4; reason: KPA above target".into(),
        count: 1,
    }];
    timeline
}

#[test]
fn conditions_are_read_from_the_final_state() {
    let t = with_final(steps(&[(0.0, 1), (40.0, 1)]));
    let c = ctx(Strategy::Kpa, 2.0, 2.0, &[("load", 40.0)]);
    let held =
        yaml("{kind: condition, type: ValidSpec, status: 'False', reason: MetricsConfigError}");
    let v = held.evaluate(&t, &c);
    assert!(v.passed, "{}", v.summary);
    assert!(v.summary.contains("invalid targetValue"), "{}", v.summary);
    let wrong_reason =
        yaml("{kind: condition, type: ValidSpec, status: 'False', reason: InvalidBounds}");
    assert!(!wrong_reason.evaluate(&t, &c).passed);
    let missing = yaml("{kind: condition, type: MultiPodAutoscalerConflict, status: 'False'}");
    assert!(!missing.evaluate(&t, &c).passed);
    let other = yaml("{kind: condition, type: ValidSpec, status: 'True', podautoscaler: second}");
    assert!(other
        .evaluate(&t, &c)
        .summary
        .contains("no PodAutoscaler `second`"));
}

#[test]
fn events_must_be_there_or_absent() {
    let t = with_final(steps(&[(0.0, 1), (40.0, 1)]));
    let c = ctx(Strategy::Kpa, 2.0, 2.0, &[("load", 40.0)]);
    let there = yaml("{kind: event, reason: SuccessfulRescale, message_contains: 'New size: 4'}");
    assert!(there.evaluate(&t, &c).passed);
    let wrong_text =
        yaml("{kind: event, reason: SuccessfulRescale, message_contains: 'New size: 5'}");
    assert!(!wrong_text.evaluate(&t, &c).passed);
    let absent = yaml("{kind: event, reason: SuccessfulRescale, present: false}");
    assert!(!absent.evaluate(&t, &c).passed);
    let none = yaml("{kind: event, reason: FailedComputeScale, present: false}");
    assert!(none.evaluate(&t, &c).passed);
}

#[test]
fn the_generated_hpa_is_checked_field_by_field() {
    let t = with_final(steps(&[(0.0, 1), (40.0, 1)]));
    let e = yaml(
        "{kind: hpa_object, min_replicas: 1, max_replicas: 8, metric_contains: averageValue=4}",
    );
    assert!(e.evaluate(&t, &ctx(Strategy::Hpa, 2.0, 2.0, &[])).passed);
    let e = yaml("{kind: hpa_object, max_replicas: 4}");
    assert!(!e.evaluate(&t, &ctx(Strategy::Hpa, 2.0, 2.0, &[])).passed);
    let e = yaml("{kind: hpa_object, present: false}");
    assert!(!e.evaluate(&t, &ctx(Strategy::Hpa, 2.0, 2.0, &[])).passed);
    assert!(
        e.evaluate(&steps(&[(0.0, 1)]), &ctx(Strategy::Hpa, 2.0, 2.0, &[]))
            .passed
    );
}

#[test]
fn rate_limits_hold_per_decision_for_kpa_and_per_period_for_hpa() {
    let e = yaml("{kind: rate_limited}");
    // Rate 1.5: 1 → 2 → 3 → 5 is within ceil(1.5 × n); 2 → 4 is not.
    let ok = steps(&[(0.0, 1), (10.0, 2), (20.0, 3), (30.0, 5), (60.0, 5)]);
    assert!(e.evaluate(&ok, &ctx(Strategy::Kpa, 1.5, 2.0, &[])).passed);
    let fast = steps(&[(0.0, 1), (10.0, 2), (20.0, 4), (60.0, 4)]);
    let v = e.evaluate(&fast, &ctx(Strategy::Kpa, 1.5, 2.0, &[]));
    assert!(!v.passed && v.summary.contains("2 → 4"), "{}", v.summary);
    // Down-rate 2: 8 → 4 holds, 8 → 3 does not.
    let down = steps(&[(0.0, 8), (10.0, 4), (20.0, 2), (30.0, 1)]);
    assert!(e.evaluate(&down, &ctx(Strategy::Apa, 2.0, 2.0, &[])).passed);
    let cliff = steps(&[(0.0, 8), (10.0, 3), (20.0, 3)]);
    assert!(
        !e.evaluate(&cliff, &ctx(Strategy::Apa, 2.0, 2.0, &[]))
            .passed
    );
    // HPA: ×2 per 60 s — 1 → 2 → 4 within one minute breaks it, 1 → 2 … 4 after 60 s does not.
    let quick = steps(&[(0.0, 1), (15.0, 2), (30.0, 4), (90.0, 4)]);
    assert!(
        !e.evaluate(&quick, &ctx(Strategy::Hpa, 2.0, 2.0, &[]))
            .passed
    );
    let paced = steps(&[(0.0, 1), (15.0, 2), (80.0, 4), (150.0, 4)]);
    assert!(
        e.evaluate(&paced, &ctx(Strategy::Hpa, 2.0, 2.0, &[]))
            .passed
    );
    // No change at all proves nothing.
    let flat = steps(&[(0.0, 2), (60.0, 2)]);
    assert!(e
        .evaluate(&flat, &ctx(Strategy::Kpa, 2.0, 2.0, &[]))
        .summary
        .contains("inconclusive"));
}

#[test]
fn replicas_stay_in_a_range_during_a_phase() {
    let c = ctx(Strategy::Kpa, 2.0, 2.0, &[("quiet", 30.0), ("busy", 60.0)]);
    let t = steps(&[(0.0, 1), (40.0, 3), (90.0, 3)]);
    assert!(
        yaml("{kind: replicas_between, phase: busy, settle_s: 15, min: 3, max: 4}")
            .evaluate(&t, &c)
            .passed
    );
    assert!(
        !yaml("{kind: replicas_between, phase: busy, min: 3, max: 4}")
            .evaluate(&t, &c)
            .passed
    );
    assert!(
        yaml("{kind: replicas_between, min: 1, max: 3}")
            .evaluate(&t, &c)
            .passed
    );
}

#[test]
fn no_scale_up_before_the_up_cooldown() {
    let c = ctx(Strategy::Apa, 2.0, 2.0, &[("quiet", 20.0), ("step", 120.0)]);
    let e = yaml("{kind: no_scale_up_before, after_phase: step}");
    // Up cooldown 60 s minus the 10 s period: a scale-up 55 s after the step is fine, 20 s is not.
    let waited = steps(&[(0.0, 1), (75.0, 2), (140.0, 2)]);
    assert!(e.evaluate(&waited, &c).passed);
    let eager = steps(&[(0.0, 1), (40.0, 2), (140.0, 2)]);
    assert!(!e.evaluate(&eager, &c).passed);
    let never = steps(&[(0.0, 1), (140.0, 1)]);
    assert!(e.evaluate(&never, &c).summary.contains("inconclusive"));
}

#[test]
fn the_first_decision_has_the_expected_size() {
    let c = ctx(Strategy::Kpa, 4.0, 2.0, &[("step", 60.0)]);
    let t = steps(&[(0.0, 1), (12.0, 4), (60.0, 4)]);
    assert!(yaml("{kind: first_change, to: 4}").evaluate(&t, &c).passed);
    let t = steps(&[(0.0, 1), (12.0, 2), (22.0, 4), (60.0, 4)]);
    let v = yaml("{kind: first_change, to: 4, after_phase: step}").evaluate(&t, &c);
    assert!(!v.passed && v.summary.contains("1 → 2"), "{}", v.summary);
    assert!(
        !yaml("{kind: first_change, to: 4}")
            .evaluate(&steps(&[(0.0, 1), (9.0, 1)]), &c)
            .passed
    );
}

#[test]
fn decisions_are_judged_on_the_controllers_own_inputs() {
    use crate::observe::decisions::ControllerDecision;
    let mut t = steps(&[(0.0, 2), (60.0, 2)]);
    let decision = |at: f64, desired: i64, mode: &str| ControllerDecision {
        t: at,
        algorithm: "kpa".into(),
        values: vec![8.0, 8.0],
        stable_avg: Some(8.0),
        panic_avg: Some(8.0),
        desired,
        mode: Some(mode.into()),
        ..ControllerDecision::default()
    };
    // Two pods at 8 running each, target 4: the total 16 asks for 4 (rate ×2 from 2 allows it).
    t.decisions = vec![decision(10.0, 4, "stable"), decision(20.0, 4, "stable")];
    let c = ctx(Strategy::Kpa, 2.0, 2.0, &[]);
    let e = yaml("{kind: decisions}");
    let v = e.evaluate(&t, &c);
    assert!(v.passed, "{}", v.summary);
    // A controller that sizes from the per-pod mean asks for 2.
    t.decisions[1].desired = 2;
    let v = e.evaluate(&t, &c);
    assert!(
        !v.passed && v.summary.contains("controller 2, reference 4"),
        "{}",
        v.summary
    );
    assert!(
        yaml("{kind: decisions, max_mismatches: 1}")
            .evaluate(&t, &c)
            .passed
    );
    // APA on the same inputs: mean 8 / target 4 on 2 replicas → 4.
    t.decisions[1].desired = 4;
    assert!(e.evaluate(&t, &ctx(Strategy::Apa, 2.0, 2.0, &[])).passed);
    // No decision logged: nothing was judged, which is a failure, not a pass.
    t.decisions.clear();
    assert!(!e.evaluate(&t, &c).passed);
}

#[test]
fn two_decisions_in_one_tick_are_judged_as_two() {
    use crate::observe::decisions::ControllerDecision;
    // The observer saw 8 → 2 in one tick; the controller logged 8 → 4 and 4 → 2 a few milliseconds apart.
    let mut t = steps(&[(0.0, 8), (6.0, 2), (60.0, 2)]);
    let rescale = |at: f64, from: i64, to: i64| ControllerDecision {
        t: at,
        current_replicas: Some(from),
        rescaled_to: Some(to),
        ..ControllerDecision::default()
    };
    let c = ctx(Strategy::Kpa, 2.0, 2.0, &[]);
    assert!(
        !yaml("{kind: rate_limited}").evaluate(&t, &c).passed,
        "sampled alone: 8 → 2 breaks ÷2"
    );
    t.decisions = vec![rescale(5.1, 8, 4), rescale(5.101, 4, 2)];
    let v = yaml("{kind: rate_limited}").evaluate(&t, &c);
    assert!(v.passed, "{}", v.summary);
    let v = yaml("{kind: first_change, to: 4}").evaluate(&t, &c);
    assert!(v.passed, "{}", v.summary);
    t.decisions = vec![rescale(5.1, 8, 3)];
    assert!(!yaml("{kind: rate_limited}").evaluate(&t, &c).passed);
}

#[test]
fn cooldown_windows_are_read_from_the_controllers_steps() {
    use crate::observe::decisions::{ControllerDecision, Stabilization};
    let mut t = steps(&[(0.0, 4), (300.0, 1)]);
    let step = |at: f64, recommendation: i64, current: i64, window_s: f64| ControllerDecision {
        t: at,
        stabilization: Some(Stabilization {
            recommendation,
            current,
            stabilized: recommendation,
            window_s,
        }),
        ..ControllerDecision::default()
    };
    let c = ctx(Strategy::Kpa, 2.0, 2.0, &[]);
    // No step logged at all: nothing was judged, a failure.
    let down = yaml("{kind: cooldown_window, direction: down, seconds: 180}");
    let v = down.evaluate(&t, &c);
    assert!(
        !v.passed && v.summary.contains("inconclusive"),
        "{}",
        v.summary
    );
    // A scale-up step at 0 s and scale-downs at 180 s: only the downs are judged.
    t.decisions = vec![
        step(10.0, 6, 4, 60.0),
        step(200.0, 2, 4, 180.0),
        step(210.0, 1, 2, 180.0),
    ];
    let v = down.evaluate(&t, &c);
    assert!(
        v.passed && v.summary.contains("all 2 scale-down steps"),
        "{}",
        v.summary
    );
    // The window the controller used is not the one asked for (a skipped annotation: the 300 s default).
    t.decisions[2]
        .stabilization
        .as_mut()
        .expect("step")
        .window_s = 300.0;
    let v = down.evaluate(&t, &c);
    assert!(
        !v.passed && v.summary.contains("used a 300 s window; expected 180 s"),
        "{}",
        v.summary
    );
    // Without `seconds`, the PodAutoscaler's own window for the direction (here its 60 s scale-up window).
    let up = yaml("{kind: cooldown_window, direction: up}");
    let v = up.evaluate(&t, &c);
    assert!(v.passed, "{}", v.summary);
    t.decisions[0]
        .stabilization
        .as_mut()
        .expect("step")
        .window_s = 0.0;
    assert!(!up.evaluate(&t, &c).passed);
}
