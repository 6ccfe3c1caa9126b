//! The controller's own record of each scaling decision, read from its klog output (`-v=4`), so that a decision can
//! be judged against the reference recomputed from the very inputs the controller used, not from the observer's
//! samples (which race with the controller's reconciles).
//!
//! AIBrix v0.7.0 logs, per reconcile of a KPA/APA PodAutoscaler `ns/name`, in this order (file:line of the pinned
//! tag in the klog header):
//!
//! ```text
//! I1207 03:35:16.975429 4952 autoscaler.go:257] "Collecting metrics" source="ns/name" pods=2
//! I1207 03:35:16.985559 4952 autoscaler.go:267] "Processing metrics snapshot" source="ns/name" healthy metrics pods=2 values=[32,0]
//! I1207 03:35:16.985602 4952 client.go:183] "Metrics window aggregation" metricKey="ns/name/num_requests_running" stableAvg=24 panicAvg=24 stableWindowValues=[32,16] panicWindowValues=[32,16]
//! I1207 03:35:16.985632 4952 autoscaler.go:314] "Scaling recommendation computed" source="ns/name" algorithm="apa" recommendation={"DesiredReplicas":3,…,"Metadata":{"current_value":24,…}}
//! I1207 03:35:16.985700 4952 podautoscaler_controller.go:1200] "Stabilization applied" pa="ns/name" recommendation=3 current=2 stabilized=3 windowDuration="0s" selectMax=true historyCount=4
//! I1207 03:35:11.584091 4952 podautoscaler_controller.go:776] "Successfully rescaled" PodAutoscaler="ns/name" currentReplicas=1 desiredReplicas=2 reason="apa above target"
//! ```
//!
//! [`parse`] turns those lines into one [`ControllerDecision`] per "Scaling recommendation computed". The
//! "Stabilization applied" line is at `V(4)` and only logged when the recommendation differs from the current count
//! (`podautoscaler_controller.go:1160-1169` returns earlier otherwise); the harness runs the controller with
//! `-vmodule=podautoscaler_controller=4` to get it without the fetchers' per-pod `V(4)` lines.

use std::time::SystemTime;

use super::klog::klog_time;

use serde::{Deserialize, Serialize};

/// One recommendation of the controller, with what it saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ControllerDecision {
    /// Seconds since the scenario's observer started.
    pub t: f64,
    /// `algorithm` (`kpa`, `apa`).
    pub algorithm: String,
    /// Pods the controller listed ("Collecting metrics" `pods`).
    pub pods_listed: Option<i64>,
    /// Per-pod values of this reconcile ("Processing metrics snapshot" `values`).
    pub values: Vec<f64>,
    /// The stable window's average, as the controller computed it.
    pub stable_avg: Option<f64>,
    /// The panic window's average.
    pub panic_avg: Option<f64>,
    /// How many values the stable window held.
    pub stable_window_len: usize,
    /// `recommendation.DesiredReplicas` (before the cooldown windows and bounds).
    pub desired: i64,
    /// `recommendation.Reason`.
    pub reason: String,
    /// `recommendation.Metadata.mode` (KPA: `stable`/`panic`).
    pub mode: Option<String>,
    /// `recommendation.Metadata.current_value`.
    pub current_value: Option<f64>,
    /// The replica count the controller decided from: `currentReplicas` of this reconcile's "Successfully
    /// rescaled", else the count its last rescale wrote (the controller is the only writer of a KPA/APA target's
    /// replicas). `None` before its first rescale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_replicas: Option<i64>,
    /// `desiredReplicas` of this reconcile's "Successfully rescaled": the count it wrote, if it wrote one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rescaled_to: Option<i64>,
    /// This reconcile's cooldown-window step ("Stabilization applied"), when the recommendation differed from the
    /// current count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stabilization: Option<Stabilization>,
}

/// What the cooldown windows did to one recommendation, as the controller logged it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stabilization {
    /// The recommendation it started from.
    pub recommendation: i64,
    /// The current count it compared with (a higher recommendation is a scale-up, a lower one a scale-down).
    pub current: i64,
    /// What the window made of it.
    pub stabilized: i64,
    /// The window it applied (`windowDuration`): the scale-up or scale-down cooldown, as the controller parsed it.
    pub window_s: f64,
}

impl Stabilization {
    /// Whether this was a scale-down step (recommendation below the current count).
    pub fn is_scale_down(&self) -> bool {
        self.recommendation < self.current
    }
}

/// Every rescale the controller logged, as `(t, from, to)`: one per decision, even when several fall within one
/// observer tick (watch-triggered reconciles can follow each other within milliseconds).
pub fn rescales(decisions: &[ControllerDecision]) -> Vec<(f64, i64, i64)> {
    decisions
        .iter()
        .filter_map(|d| Some((d.t, d.current_replicas?, d.rescaled_to?)))
        .collect()
}

/// The value of `key=` in a klog structured line: a quoted string, a `[…]` list, a `{…}` JSON object or a bare
/// token.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let needle = format!(" {key}=");
    let start = line.find(&needle)? + needle.len();
    let rest = &line[start..];
    let end = match rest.chars().next()? {
        '"' => return rest[1..].find('"').map(|e| &rest[1..1 + e]),
        '[' => rest.find(']').map(|e| e + 1)?,
        '{' => {
            let mut depth = 0usize;
            let mut end = None;
            for (i, c) in rest.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(i + 1);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            end?
        }
        _ => rest.find(' ').unwrap_or(rest.len()),
    };
    Some(&rest[..end])
}

/// The fields of a "Stabilization applied" line; `None` if one is missing.
fn stabilization(line: &str) -> Option<Stabilization> {
    let int = |key| field(line, key).and_then(|v| v.parse().ok());
    let window = field(line, "windowDuration")?;
    Some(Stabilization {
        recommendation: int("recommendation")?,
        current: int("current")?,
        stabilized: int("stabilized")?,
        window_s: crate::k8s::duration::parse_go_duration(window)
            .ok()?
            .as_secs_f64(),
    })
}

fn numbers(list: &str) -> Vec<f64> {
    list.trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect()
}

/// Every decision the controller logged for PodAutoscaler `namespace/name` in `log`, on the clock of an observer
/// that started at `observer_start`.
pub fn parse(
    log: &str,
    namespace: &str,
    name: &str,
    observer_start: SystemTime,
) -> Vec<ControllerDecision> {
    let source = format!("{namespace}/{name}");
    let quoted_source = format!("source=\"{source}\"");
    let metric_key = format!("metricKey=\"{source}/");
    let pa_field = format!("PodAutoscaler=\"{source}\"");
    let stabilization_field = format!(" pa=\"{source}\"");
    let mut decisions: Vec<ControllerDecision> = Vec::new();
    let mut current = ControllerDecision::default();
    let mut written: Option<i64> = None;
    for line in log.lines() {
        // The log outlives one run (and earlier scenarios of the same namespace): only this observer's time.
        if klog_time(line, observer_start).is_some_and(|at| at < observer_start) {
            continue;
        }
        let is_ours = line.contains(&quoted_source);
        if line.contains(&stabilization_field) && line.contains("\"Stabilization applied\"") {
            if let Some(last) = decisions.last_mut() {
                last.stabilization = stabilization(line);
            }
            continue;
        }
        if line.contains(&pa_field) && line.contains("\"Successfully rescaled\"") {
            let from = field(line, "currentReplicas").and_then(|v| v.parse().ok());
            written = field(line, "desiredReplicas").and_then(|v| v.parse().ok());
            if let (Some(last), Some(from)) = (decisions.last_mut(), from) {
                last.current_replicas = Some(from);
                last.rescaled_to = written;
            }
            continue;
        }
        if is_ours && line.contains("\"Collecting metrics\"") {
            current = ControllerDecision {
                pods_listed: field(line, "pods").and_then(|p| p.parse().ok()),
                ..ControllerDecision::default()
            };
        } else if is_ours && line.contains("\"Processing metrics snapshot\"") {
            current.values = field(line, "values").map(numbers).unwrap_or_default();
        } else if line.contains(&metric_key) && line.contains("\"Metrics window aggregation\"") {
            // With several sources the last one logged before the recommendation is kept.
            current.stable_avg = field(line, "stableAvg").and_then(|v| v.parse().ok());
            current.panic_avg = field(line, "panicAvg").and_then(|v| v.parse().ok());
            current.stable_window_len =
                field(line, "stableWindowValues").map_or(0, |v| numbers(v).len());
        } else if is_ours && line.contains("\"Scaling recommendation computed\"") {
            let Some(recommendation) = field(line, "recommendation")
                .and_then(|r| serde_json::from_str::<serde_json::Value>(r).ok())
            else {
                continue;
            };
            let Some(at) = klog_time(line, observer_start) else {
                continue;
            };
            // The log outlives one run (and earlier scenarios of the same namespace): only this observer's time.
            let Ok(since) = at.duration_since(observer_start) else {
                current = ControllerDecision::default();
                continue;
            };
            let t = since.as_secs_f64();
            let meta = &recommendation["Metadata"];
            decisions.push(ControllerDecision {
                t,
                algorithm: field(line, "algorithm").unwrap_or_default().to_string(),
                desired: recommendation["DesiredReplicas"].as_i64().unwrap_or(-1),
                reason: recommendation["Reason"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                mode: meta["mode"].as_str().map(str::to_string),
                current_value: meta["current_value"].as_f64(),
                current_replicas: written,
                ..std::mem::take(&mut current)
            });
        }
    }
    decisions
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = r#"I1207 03:35:16.975429    4952 autoscaler.go:257] "Collecting metrics" source="apa-x/mock-vllm" pods=2
I1207 03:35:16.985559    4952 autoscaler.go:267] "Processing metrics snapshot" source="apa-x/mock-vllm" healthy metrics pods=2 values=[32,0]
I1207 03:35:16.985600    4952 autoscaler.go:267] "Processing metrics snapshot" source="other/mock-vllm" healthy metrics pods=1 values=[7]
I1207 03:35:16.985602    4952 client.go:183] "Metrics window aggregation" metricKey="apa-x/mock-vllm/num_requests_running" stableAvg=24 panicAvg=20.5 stableWindowValues=[32,16] panicWindowValues=[32,16]
I1207 03:35:16.985632    4952 autoscaler.go:314] "Scaling recommendation computed" source="apa-x/mock-vllm" algorithm="apa" recommendation={"DesiredReplicas":3,"Confidence":0,"Reason":"apa scaling based on current metrics","Algorithm":"apa","ScaleValid":true,"Metadata":{"current_value":24,"trend":0}}
I1207 03:35:16.985700    4952 podautoscaler_controller.go:1200] "Stabilization applied" pa="apa-x/mock-vllm" recommendation=3 current=2 stabilized=3 windowDuration="1m30s" selectMax=true historyCount=4
I1207 03:35:16.985701    4952 podautoscaler_controller.go:1200] "Stabilization applied" pa="other/mock-vllm" recommendation=1 current=2 stabilized=1 windowDuration="5m0s" selectMax=false historyCount=4
I1207 03:35:16.990000    4952 podautoscaler_controller.go:776] "Successfully rescaled" PodAutoscaler="apa-x/mock-vllm" currentReplicas=2 desiredReplicas=3 reason="apa above target"
I1207 03:35:26.861942    4043 autoscaler.go:314] "Scaling recommendation computed" source="apa-x/mock-vllm" algorithm="kpa" recommendation={"DesiredReplicas":1,"Confidence":0,"Reason":"stable mode scaling","Algorithm":"kpa","ScaleValid":true,"Metadata":{"current_value":16,"mode":"stable","panic_value":16,"stable_value":16}}
"#;

    #[test]
    fn decisions_are_read_with_their_inputs() {
        let start = crate::observe::klog::tests::utc(2026, 12, 7, 3, 35, 10);
        let decisions = parse(LOG, "apa-x", "mock-vllm", start);
        assert_eq!(decisions.len(), 2);
        let d = &decisions[0];
        assert!((d.t - 6.985632).abs() < 1e-3, "{}", d.t);
        assert_eq!(d.pods_listed, Some(2));
        assert_eq!(d.values, vec![32.0, 0.0]);
        assert_eq!(d.stable_avg, Some(24.0));
        assert_eq!(d.panic_avg, Some(20.5));
        assert_eq!(d.stable_window_len, 2);
        assert_eq!(d.desired, 3);
        assert_eq!(d.algorithm, "apa");
        assert_eq!(d.current_value, Some(24.0));
        assert_eq!(d.current_replicas, Some(2), "from this reconcile's rescale");
        assert_eq!(d.rescaled_to, Some(3));
        assert_eq!(rescales(&decisions), vec![(d.t, 2, 3)]);
        let step = d
            .stabilization
            .as_ref()
            .expect("this reconcile's stabilization");
        assert_eq!(
            (step.recommendation, step.current, step.stabilized),
            (3, 2, 3)
        );
        assert!((step.window_s - 90.0).abs() < 1e-9 && !step.is_scale_down());
        // A recommendation without the lines before it keeps empty inputs rather than the previous ones.
        let d = &decisions[1];
        assert_eq!(d.mode.as_deref(), Some("stable"));
        assert!(d.values.is_empty() && d.stable_avg.is_none() && d.stabilization.is_none());
        assert_eq!(d.current_replicas, Some(3), "what the last rescale wrote");
        assert!(parse(LOG, "other", "mock-vllm", start).is_empty());
    }

    #[test]
    fn an_earlier_runs_decisions_from_before_midnight_are_not_this_runs() {
        // CI's failure: the pristine run of a scenario logged before midnight, the patched run of the same
        // scenario (same namespace, same controller log file) started after it. Its decisions are its own only.
        let log = format!(
            "{}\n{}",
            LOG.lines()
                .take(5)
                .collect::<Vec<_>>()
                .join("\n")
                .replace("I1207 03:35", "I1207 23:50"),
            LOG.lines()
                .take(5)
                .collect::<Vec<_>>()
                .join("\n")
                .replace("I1207 03:35", "I1208 00:06"),
        );
        let start = crate::observe::klog::tests::utc(2026, 12, 8, 0, 5, 0);
        let decisions = parse(&log, "apa-x", "mock-vllm", start);
        assert_eq!(decisions.len(), 1, "{decisions:?}");
        assert!(
            (decisions[0].t - 76.985632).abs() < 1e-3,
            "{}",
            decisions[0].t
        );
    }
}
