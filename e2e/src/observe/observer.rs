//! The observer: once per tick, reads the scenario's Deployment, pods, PodAutoscaler, generated HPA and events
//! from the API server, scrapes each pod's vLLM gauges, and appends a [`Sample`] to the timeline (and to a JSONL
//! file as it goes, so a crashed run still leaves its record).
//!
//! Pod metrics are read the way AIBrix's KPA/APA read them: `GET http://<podIP>:<port>/metrics`, the first sample
//! of each `vllm:*` gauge family. A pod that does not answer within the timeout has no metrics in that tick.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams};
use kube::Client;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use mock_vllm::metrics::names;

use crate::http_client::http_client;
use crate::k8s::pod::{is_serving, is_terminating};
use crate::k8s::quantity::parse_quantity;
use crate::k8s::{PodAutoscaler, PodAutoscalerStatus};
use crate::prometheus::{scrape, Exposition, MetricKind};

use super::timeline::{
    AutoscalerSample, ConditionSnapshot, FinalState, HpaSample, HpaSnapshot, LoadSample,
    PodAutoscalerSnapshot, PodSample, Sample, Timeline, TimelineEvent,
};

/// The gauges the observer records for each pod, as vLLM families; a pod's [`PodSample`] keys them by canonical
/// name (without `vllm:`).
pub(crate) const POD_GAUGES: &[&str] = &[
    names::NUM_REQUESTS_RUNNING,
    names::NUM_REQUESTS_WAITING,
    names::GPU_CACHE_USAGE_PERC,
    names::KV_CACHE_USAGE_PERC,
    names::AVG_PROMPT_THROUGHPUT,
    names::AVG_GENERATION_THROUGHPUT,
];

/// Load counters the workload driver updates and the observer reads.
#[derive(Debug, Default)]
pub(crate) struct LoadGauge {
    /// Closed-loop concurrency (0 when open loop or idle).
    pub concurrency: AtomicU64,
    /// Open-loop rate × 1000 (requests/s in milli-units).
    pub rps_milli: AtomicU64,
    /// Requests in flight.
    pub in_flight: AtomicU64,
    /// Requests completed.
    pub completed: AtomicU64,
    /// Requests failed.
    pub failed: AtomicU64,
}

impl LoadGauge {
    fn sample(&self) -> LoadSample {
        let concurrency = self.concurrency.load(Ordering::Relaxed);
        let rps = self.rps_milli.load(Ordering::Relaxed);
        LoadSample {
            concurrency: (concurrency > 0).then_some(concurrency as u32),
            rps: (rps > 0).then_some(rps as f64 / 1000.0),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            completed: self.completed.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}

/// What to observe.
#[derive(Debug, Clone)]
pub(crate) struct ObserverConfig {
    /// Namespace of everything.
    pub namespace: String,
    /// The target Deployment.
    pub deployment: String,
    /// The PodAutoscaler.
    pub podautoscaler: String,
    /// Label selector of the pods.
    pub selector: String,
    /// Metrics port of the pods.
    pub metrics_port: u16,
    /// Tick.
    pub interval: Duration,
    /// JSONL file appended to on every tick.
    pub output: Option<PathBuf>,
}

/// A running observer; [`Observer::finish`] stops it and returns the timeline.
pub(crate) struct Observer {
    timeline: Arc<Mutex<Timeline>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    started: Instant,
    client: Client,
    namespace: String,
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observer")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl Observer {
    /// Starts observing; `t = 0` is now.
    pub fn start(client: Client, config: ObserverConfig, load: Arc<LoadGauge>) -> Self {
        let timeline = Arc::new(Mutex::new(Timeline::default()));
        let stop = CancellationToken::new();
        let started = Instant::now();
        let namespace = config.namespace.clone();
        let task = tokio::spawn(run(
            client.clone(),
            config,
            load,
            timeline.clone(),
            stop.clone(),
            started,
        ));
        Self {
            timeline,
            stop,
            task,
            started,
            client,
            namespace,
        }
    }

    /// Seconds since the observer started (the timeline's clock).
    pub fn now(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// A copy of the timeline so far.
    pub(crate) fn snapshot(&self) -> Timeline {
        self.timeline
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Stops and returns the full timeline, with the namespace's PodAutoscalers and HPAs as they are now.
    pub async fn finish(self) -> Timeline {
        self.stop.cancel();
        let _ = self.task.await;
        let final_state = final_state(&self.client, &self.namespace).await;
        let mut timeline = self
            .timeline
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        timeline.final_state = final_state;
        timeline
    }
}

async fn run(
    client: Client,
    config: ObserverConfig,
    load: Arc<LoadGauge>,
    timeline: Arc<Mutex<Timeline>>,
    stop: CancellationToken,
    started: Instant,
) {
    let http = match http_client(Duration::from_millis(800)) {
        Ok(http) => http,
        Err(e) => {
            warn!(error = %e, "the observer cannot scrape pods; it stops");
            return;
        }
    };
    let mut file = config.output.as_ref().and_then(|p| {
        std::fs::File::create(p)
            .map_err(|e| warn!(path = %p.display(), error = %e, "cannot write the timeline"))
            .ok()
    });
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let t = started.elapsed().as_secs_f64();
        let sample = observe_once(&client, &http, &config, &load, t).await;
        let events = events(&client, &config, started).await;
        if let Some(file) = file.as_mut() {
            if let Ok(line) = serde_json::to_string(&sample) {
                let _ = writeln!(file, "{line}");
            }
        }
        let mut timeline = timeline.lock().unwrap_or_else(|p| p.into_inner());
        timeline.samples.push(sample);
        if let Some(events) = events {
            timeline.events = events;
        }
    }
}

async fn observe_once(
    client: &Client,
    http: &reqwest::Client,
    config: &ObserverConfig,
    load: &LoadGauge,
    t: f64,
) -> Sample {
    let ns = config.namespace.as_str();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pas: Api<PodAutoscaler> = Api::namespaced(client.clone(), ns);
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), ns);

    let spec_replicas = deployments
        .get_opt(&config.deployment)
        .await
        .ok()
        .flatten()
        .and_then(|d| d.spec?.replicas.map(i64::from));
    let pods = pods_api
        .list(&ListParams::default().labels(&config.selector))
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    let scrapes = futures::future::join_all(pods.iter().map(|pod| async {
        let status = pod.status.clone().unwrap_or_default();
        let ready = is_serving(pod);
        let metrics = match (&status.pod_ip, ready) {
            (Some(ip), true) => scrape(http, ip, config.metrics_port, "/metrics")
                .await
                .map(|exposition| gauges(&exposition))
                .unwrap_or_default(),
            _ => BTreeMap::new(),
        };
        PodSample {
            name: pod.metadata.name.clone().unwrap_or_default(),
            phase: status.phase.unwrap_or_default(),
            ready,
            terminating: is_terminating(pod),
            metrics,
        }
    }))
    .await;
    let autoscaler = pas
        .get_opt(&config.podautoscaler)
        .await
        .ok()
        .flatten()
        .and_then(|pa| pa.status)
        .map(|status| autoscaler_sample(&status))
        .unwrap_or_default();
    let hpa = hpas
        .get_opt(&format!("{}-hpa", config.podautoscaler))
        .await
        .ok()
        .flatten()
        .map(|h| hpa_sample(&h));
    Sample {
        t,
        spec_replicas,
        ready_pods: scrapes.iter().filter(|p| p.ready).count() as u32,
        pending_pods: scrapes
            .iter()
            .filter(|p| p.phase == "Pending" && !p.terminating)
            .count() as u32,
        terminating_pods: scrapes.iter().filter(|p| p.terminating).count() as u32,
        pods: scrapes,
        autoscaler,
        hpa,
        load: load.sample(),
    }
}

/// What the timeline keeps of the PodAutoscaler's status; conditions the controller left without a type or a
/// status are skipped.
fn autoscaler_sample(status: &PodAutoscalerStatus) -> AutoscalerSample {
    AutoscalerSample {
        desired_scale: status.desired_scale,
        actual_scale: status.actual_scale,
        conditions: status
            .conditions
            .iter()
            .filter(|c| !c.type_.is_empty() && !c.status.is_empty())
            .map(|c| (c.type_.clone(), c.status.clone()))
            .collect(),
        reasons: status
            .conditions
            .iter()
            .filter_map(|c| Some((c.type_.clone(), c.reason.clone().filter(|r| !r.is_empty())?)))
            .collect(),
    }
}

/// Every PodAutoscaler and HPA of `namespace`, read now.
async fn final_state(client: &Client, namespace: &str) -> FinalState {
    let pas: Api<PodAutoscaler> = Api::namespaced(client.clone(), namespace);
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), namespace);
    let podautoscalers = pas
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .map(|pa| {
            let status = pa.status.clone().unwrap_or_default();
            PodAutoscalerSnapshot {
                name: pa.metadata.name.clone().unwrap_or_default(),
                desired_scale: status.desired_scale,
                actual_scale: status.actual_scale,
                conditions: status
                    .conditions
                    .iter()
                    .map(|c| ConditionSnapshot {
                        type_: c.type_.clone(),
                        status: c.status.clone(),
                        reason: c.reason.clone().unwrap_or_default(),
                        message: c.message.clone().unwrap_or_default(),
                    })
                    .collect(),
                scaling_history: status
                    .scaling_history
                    .iter()
                    .map(|h| format!("{} → {} ({})", h.previous_scale, h.new_scale, h.reason))
                    .collect(),
            }
        })
        .collect();
    let hpas = hpas
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .map(|hpa| {
            let spec = hpa.spec.clone().unwrap_or_default();
            let metrics = spec
                .metrics
                .iter()
                .flatten()
                .map(|m| {
                    let (name, target) = match (&m.pods, &m.resource, &m.object, &m.external) {
                        (Some(p), ..) => (p.metric.name.clone(), &p.target),
                        (_, Some(r), ..) => (r.name.clone(), &r.target),
                        (_, _, Some(o), _) => (o.metric.name.clone(), &o.target),
                        (_, _, _, Some(e)) => (e.metric.name.clone(), &e.target),
                        _ => (String::new(), &Default::default()),
                    };
                    let value = target
                        .average_value
                        .as_ref()
                        .map(|q| format!("averageValue={}", q.0))
                        .or_else(|| target.value.as_ref().map(|q| format!("value={}", q.0)))
                        .or_else(|| {
                            target
                                .average_utilization
                                .map(|u| format!("averageUtilization={u}"))
                        })
                        .unwrap_or_default();
                    format!("{}/{name} {value}", m.type_)
                })
                .collect();
            HpaSnapshot {
                name: hpa.metadata.name.clone().unwrap_or_default(),
                min_replicas: spec.min_replicas.map(i64::from),
                max_replicas: i64::from(spec.max_replicas),
                metrics,
                owners: hpa
                    .metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .map(|o| format!("{}/{}", o.kind, o.name))
                    .collect(),
                behavior: spec.behavior.and_then(|b| serde_json::to_value(b).ok()),
            }
        })
        .collect();
    FinalState {
        podautoscalers,
        hpas,
    }
}

fn hpa_sample(hpa: &HorizontalPodAutoscaler) -> HpaSample {
    let status = hpa.status.clone().unwrap_or_default();
    let mut current_metrics = BTreeMap::new();
    for metric in status.current_metrics.unwrap_or_default() {
        if let Some(pods) = metric.pods {
            if let Some(value) = pods
                .current
                .average_value
                .as_ref()
                .and_then(|q| parse_quantity(&q.0))
            {
                current_metrics.insert(pods.metric.name.clone(), value);
            }
        }
        if let Some(resource) = metric.resource {
            if let Some(u) = resource.current.average_utilization {
                current_metrics.insert(resource.name.clone(), f64::from(u));
            }
        }
    }
    HpaSample {
        current_replicas: status.current_replicas.map(i64::from),
        desired_replicas: Some(i64::from(status.desired_replicas)),
        current_metrics,
    }
}

/// Scrapes `/metrics` and returns the first sample of each gauge in [`POD_GAUGES`].
/// The first sample of each gauge family in [`POD_GAUGES`], as AIBrix reads them, keyed by canonical name. A family
/// counts as a gauge when its `# TYPE` says so or it has none (untyped); a counter or histogram of the same name is
/// not read.
pub(crate) fn gauges(exposition: &Exposition) -> BTreeMap<String, f64> {
    POD_GAUGES
        .iter()
        .filter(|family| {
            matches!(
                exposition.kind(family),
                MetricKind::Gauge | MetricKind::Untyped
            )
        })
        .filter_map(|family| {
            let sample = exposition.samples(family).first()?;
            let name = family.strip_prefix("vllm:").unwrap_or(family);
            Some((name.to_string(), sample.value))
        })
        .collect()
}

async fn events(
    client: &Client,
    config: &ObserverConfig,
    started: Instant,
) -> Option<Vec<TimelineEvent>> {
    let api: Api<Event> = Api::namespaced(client.clone(), &config.namespace);
    let list = api.list(&ListParams::default()).await.ok()?;
    let hpa_name = format!("{}-hpa", config.podautoscaler);
    let now = k8s_openapi::jiff::Timestamp::now();
    let since_start = started.elapsed().as_secs_f64();
    let mut events: Vec<TimelineEvent> = list
        .items
        .into_iter()
        .filter(|e| {
            let name = e.involved_object.name.as_deref().unwrap_or_default();
            let kind = e.involved_object.kind.as_deref().unwrap_or_default();
            name == config.podautoscaler
                || name == hpa_name
                || name == config.deployment
                || kind == "PodAutoscaler"
                || kind == "HorizontalPodAutoscaler"
        })
        .map(|e| {
            let at = e
                .last_timestamp
                .as_ref()
                .map(|t| t.0)
                .or_else(|| e.event_time.as_ref().map(|t| t.0))
                .unwrap_or(now);
            let age = (now.as_millisecond() - at.as_millisecond()) as f64 / 1000.0;
            TimelineEvent {
                t: (since_start - age).max(0.0),
                kind: e.involved_object.kind.clone().unwrap_or_default(),
                object: e.involved_object.name.clone().unwrap_or_default(),
                reason: e.reason.unwrap_or_default(),
                message: e.message.unwrap_or_default(),
                count: e.count.unwrap_or(1),
            }
        })
        .collect();
    events.sort_by(|a, b| a.t.total_cmp(&b.t));
    Some(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse() {
        assert_eq!(parse_quantity("460m"), Some(0.46));
        assert_eq!(parse_quantity("2"), Some(2.0));
        assert_eq!(parse_quantity("1k"), Some(1000.0));
        assert_eq!(parse_quantity("20Mi"), Some(20.0 * 1024.0 * 1024.0));
        assert_eq!(parse_quantity("x"), None);
    }

    #[test]
    fn gauges_are_read_from_the_first_sample_of_each_family() {
        let text = "# HELP vllm:num_requests_running x\n# TYPE vllm:num_requests_running gauge\n\
                    vllm:num_requests_running{engine=\"0\",model_name=\"m\"} 3.0\n\
                    vllm:num_requests_running{engine=\"1\",model_name=\"m\"} 9.0\n\
                    vllm:gpu_cache_usage_perc{engine=\"0\",model_name=\"m\"} 0.25\n\
                    vllm:time_to_first_token_seconds_count{engine=\"0\"} 5.0\n";
        let gauges = gauges(&Exposition::parse(text));
        assert_eq!(gauges.get("num_requests_running"), Some(&3.0));
        assert_eq!(gauges.get("gpu_cache_usage_perc"), Some(&0.25));
        assert_eq!(gauges.len(), 2);
    }

    #[test]
    fn counters_and_histograms_are_not_read_as_gauges() {
        let text = "# TYPE vllm:num_requests_running counter\n\
                    vllm:num_requests_running{engine=\"0\"} 3.0\n\
                    # TYPE vllm:num_requests_waiting histogram\n\
                    vllm:num_requests_waiting_bucket{le=\"+Inf\"} 2.0\n\
                    vllm:num_requests_waiting{quantile=\"0.5\"} 1.0\n\
                    vllm:num_requests_waiting_count 2.0\n\
                    # TYPE vllm:kv_cache_usage_perc gauge\n\
                    vllm:kv_cache_usage_perc{engine=\"0\"} 0.5 1700000000000\n";
        let gauges = gauges(&Exposition::parse(text));
        assert_eq!(gauges.get("num_requests_running"), None);
        assert_eq!(gauges.get("num_requests_waiting"), None);
        assert_eq!(
            gauges.get("kv_cache_usage_perc"),
            Some(&0.5),
            "the value, not the timestamp"
        );
        assert_eq!(gauges.len(), 1);
    }
}
