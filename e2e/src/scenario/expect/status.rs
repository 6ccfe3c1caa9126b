//! What a user sees besides the replica count: the PodAutoscaler's status conditions, the events on it, and the HPA
//! the controller generates (`condition`, `event`, `hpa_object`). They are judged on the objects as they were when
//! the load ended ([`FinalState`](crate::observe::timeline::FinalState)) and on the events collected over the run,
//! so invalid or conflicting specs are asserted by what the controller tells the user, not by the absence of scaling.

use super::context::EvalContext;
use super::timeline_query::timeline_end;
use super::verdict::Verdict;
use crate::observe::timeline::Timeline;

/// The last 30 s of the timeline: the window a final-state verdict shows.
fn tail(timeline: &Timeline) -> (f64, f64) {
    let end = timeline_end(timeline);
    ((end - 30.0).max(0.0), end)
}

pub(super) fn condition(
    timeline: &Timeline,
    ctx: &EvalContext,
    type_: &str,
    status: &str,
    reason: Option<&str>,
    podautoscaler: Option<&str>,
) -> Verdict {
    let name = podautoscaler.unwrap_or(&ctx.podautoscaler);
    let Some(pa) = timeline
        .final_state
        .podautoscalers
        .iter()
        .find(|p| p.name == name)
    else {
        let names: Vec<&str> = timeline
            .final_state
            .podautoscalers
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        return Verdict::failed(format!(
            "no PodAutoscaler `{name}` at the end (found: {})",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        ));
    };
    let all: Vec<String> = pa
        .conditions
        .iter()
        .map(|c| format!("{}={} ({})", c.type_, c.status, c.reason))
        .collect();
    let found = pa.conditions.iter().find(|c| c.type_ == type_);
    let wanted = match reason {
        Some(r) => format!("{type_}={status} ({r})"),
        None => format!("{type_}={status}"),
    };
    let (passed, seen) = match found {
        None => (false, format!("no {type_} condition")),
        Some(c) => (
            c.status == status && reason.is_none_or(|r| c.reason == r),
            format!(
                "{}={} ({}){}",
                c.type_,
                c.status,
                c.reason,
                if c.message.is_empty() {
                    String::new()
                } else {
                    format!(": \"{}\"", c.message)
                }
            ),
        ),
    };
    Verdict::new(
        passed,
        format!(
            "PodAutoscaler `{name}`: expected {wanted}, has {seen} [all: {}]",
            all.join(", ")
        ),
        timeline,
        tail(timeline),
    )
}

pub(super) fn event(
    timeline: &Timeline,
    ctx: &EvalContext,
    reason: &str,
    message_contains: Option<&str>,
    object: Option<&str>,
    present: bool,
) -> Verdict {
    let matching: Vec<_> = timeline
        .events
        .iter()
        .filter(|e| e.reason == reason)
        .filter(|e| object.is_none_or(|o| e.object == o))
        .filter(|e| message_contains.is_none_or(|m| e.message.contains(m)))
        .collect();
    let what = format!(
        "event {reason}{}{}",
        object.map(|o| format!(" on `{o}`")).unwrap_or_default(),
        message_contains
            .map(|m| format!(" with \"{m}\""))
            .unwrap_or_default()
    );
    let reasons: std::collections::BTreeSet<String> = timeline
        .events
        .iter()
        .map(|e| format!("{}/{}", e.object, e.reason))
        .collect();
    let _ = ctx;
    match (matching.first(), present) {
        (Some(e), true) => Verdict::new(
            true,
            format!("{what} at t={:.0} s (×{}): \"{}\"", e.t, e.count, e.message),
            timeline,
            ((e.t - 10.0).max(0.0), e.t + 10.0),
        ),
        (None, true) => Verdict::new(
            false,
            format!(
                "no {what} (events seen: {})",
                reasons.into_iter().collect::<Vec<_>>().join(", ")
            ),
            timeline,
            tail(timeline),
        ),
        (Some(e), false) => Verdict::new(
            false,
            format!(
                "unexpected {what} at t={:.0} s (×{}): \"{}\"",
                e.t, e.count, e.message
            ),
            timeline,
            ((e.t - 10.0).max(0.0), e.t + 10.0),
        ),
        (None, false) => Verdict::new(true, format!("no {what}"), timeline, tail(timeline)),
    }
}

pub(super) fn hpa_object(
    timeline: &Timeline,
    present: bool,
    min_replicas: Option<i64>,
    max_replicas: Option<i64>,
    metric_contains: Option<&str>,
) -> Verdict {
    let hpas = &timeline.final_state.hpas;
    let Some(hpa) = hpas.first() else {
        return Verdict::new(
            !present,
            if present {
                "no HPA object at the end".to_string()
            } else {
                "no HPA object, as expected".to_string()
            },
            timeline,
            tail(timeline),
        );
    };
    let shown = format!(
        "HPA `{}`: min {}, max {}, metrics [{}], owners [{}]",
        hpa.name,
        hpa.min_replicas
            .map_or("unset".to_string(), |m| m.to_string()),
        hpa.max_replicas,
        hpa.metrics.join(", "),
        hpa.owners.join(", ")
    );
    if !present {
        return Verdict::new(
            false,
            format!("unexpected {shown}"),
            timeline,
            tail(timeline),
        );
    }
    let mut problems = Vec::new();
    if let Some(m) = min_replicas {
        if hpa.min_replicas != Some(m) {
            problems.push(format!("minReplicas should be {m}"));
        }
    }
    if let Some(m) = max_replicas {
        if hpa.max_replicas != m {
            problems.push(format!("maxReplicas should be {m}"));
        }
    }
    if let Some(text) = metric_contains {
        if !hpa.metrics.iter().any(|m| m.contains(text)) {
            problems.push(format!("no metric with \"{text}\""));
        }
    }
    if hpas.len() > 1 {
        problems.push(format!("{} HPAs instead of one", hpas.len()));
    }
    Verdict::new(
        problems.is_empty(),
        if problems.is_empty() {
            shown
        } else {
            format!("{shown}: {}", problems.join("; "))
        },
        timeline,
        tail(timeline),
    )
}
