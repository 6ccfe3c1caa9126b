//! The comparison run on a cluster: for each strategy a namespace, the repository's mock-vllm Deployment pinned
//! to its own 8-GPU node with a NodePort Service, and an AIBrix PodAutoscaler on `gpu_cache_usage_perc`
//! (target `0.5` for KPA/APA, `50` for HPA, whose metrics adapter serves KV usage ×100; min 1, max 8). One
//! generated workload is replayed open loop against every strategy at once, through the gateway, while an
//! observer records pods per second; a live line per strategy goes to stderr.
//!
//! The replay client returns records only when a replay ends, so each strategy's trace is cut into 20-second
//! chunks that are replayed concurrently on one schedule (every chunk starts at the same instant and keeps its
//! original timestamps). The open-loop schedule is unchanged, and the live view gets latencies (for P99 so far)
//! as each chunk completes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::{join_all, try_join_all};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::Client;
use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::report::{PodCount, StrategyRun};
use super::DemoError;
use crate::cluster::apply::{read_manifests, set_container_arg, Applier};
use crate::gateway::{Gateway, ServiceKey};
use crate::observe::observer::{LoadGauge, Observer, ObserverConfig};
use crate::workload::replay::{replay, Dispatcher, ReplayConfig, ReplayProgress, RequestRecord};
use crate::workload::summary::percentile;
use crate::workload::trace::Trace;
use crate::workload::{generate, GenerateConfig, GeneratedWorkload, Pattern, StepShape};

/// The Deployment, Service and PodAutoscaler name in every namespace.
pub const TARGET: &str = "mock-vllm";
/// The served model.
pub const MODEL: &str = "deepseek-llm-7b-chat";
/// The experiment's RPS trend.
pub const RPS_STEPS: &str = "1,4,8,10,2,6";

/// A strategy under comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Strategy {
    /// `scalingStrategy`.
    pub name: &'static str,
    /// `targetValue` for `gpu_cache_usage_perc`.
    pub target_value: &'static str,
}

/// APA, KPA, HPA, as in AIBrix's figure.
pub const STRATEGIES: [Strategy; 3] = [
    Strategy {
        name: "APA",
        target_value: "0.5",
    },
    Strategy {
        name: "KPA",
        target_value: "0.5",
    },
    Strategy {
        name: "HPA",
        target_value: "50",
    },
];

impl Strategy {
    /// Its namespace.
    pub fn namespace(&self) -> String {
        format!("demo-{}", self.name.to_lowercase())
    }

    /// Its node.
    pub fn node(&self) -> String {
        format!("node-demo-{}", self.name.to_lowercase())
    }

    fn error(&self, message: impl std::fmt::Display) -> DemoError {
        DemoError::Setup {
            strategy: self.name.to_string(),
            message: message.to_string(),
        }
    }
}

/// How to run the demo.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The 25-minute shape instead of the compressed 8-minute one.
    pub full: bool,
    /// Seed of the workload.
    pub seed: u64,
    /// Mean prompt length, tokens.
    pub prompt_tokens: f64,
    /// Mean output length, tokens (sent as `max_tokens` = `min_tokens`).
    pub output_tokens: f64,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Simulated model load of each new pod (`None`: the manifest's).
    pub startup_delay_s: Option<f64>,
    /// The repository's mock-vllm kustomization.
    pub manifests: PathBuf,
    /// NodePort of the first strategy; the others follow.
    pub node_port_base: u16,
    /// Where the recorded data goes (`workload.jsonl`, `<strategy>.json`, `<strategy>-timeline.jsonl`).
    pub data_dir: PathBuf,
    /// Live view period.
    pub live_interval: Duration,
}

/// The demo's workload: the experiment's RPS trend (linear between the knots) over 480 s, or 1,500 s with
/// `full`; prompts and outputs drawn around the given means (σ = 20%), synthetic text of exactly that length.
pub fn workload(options: &DemoOptions) -> Result<GeneratedWorkload, DemoError> {
    let wl = |e: crate::workload::WorkloadError| DemoError::Workload(e.to_string());
    let duration_ms = if options.full { 1_500_000 } else { 480_000 };
    let mut config = GenerateConfig::new(
        duration_ms,
        Pattern::parse_steps(RPS_STEPS, StepShape::Linear).map_err(wl)?,
    );
    config.seed = options.seed;
    let around = |mean: f64| Pattern::Steps {
        values: vec![mean],
        shape: StepShape::Hold,
        noise: mean * 0.2,
    };
    config.prompt_len = Some(around(options.prompt_tokens));
    config.completion_len = Some(around(options.output_tokens));
    generate(&config, None, &mock_vllm::Tokenizer::new()).map_err(wl)
}

/// Live counters of one strategy.
#[derive(Debug, Default)]
struct Live {
    sent: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    latencies: Mutex<Vec<f64>>,
}

/// Runs the comparison on a cluster whose agent has every strategy's node; returns what each strategy recorded
/// (also written to `data_dir`). `progress` receives setup lines and the live view.
pub async fn run(
    client: &Client,
    gateway: &Gateway,
    options: &DemoOptions,
    progress: &(dyn Fn(String) + Sync),
) -> Result<Vec<StrategyRun>, DemoError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DemoError::Io { path, source }
    };
    std::fs::create_dir_all(&options.data_dir).map_err(io(&options.data_dir))?;
    let generated = workload(options)?;
    let trace = generated.trace;
    let workload_path = options.data_dir.join("workload.jsonl");
    trace
        .write_path(&workload_path)
        .map_err(|e| DemoError::Workload(e.to_string()))?;
    progress(format!(
        "workload: {} requests over {:.0} s, RPS trend {RPS_STEPS}",
        trace.num_requests(),
        trace.span_ms() as f64 / 1000.0
    ));

    let fronts = try_join_all(STRATEGIES.iter().enumerate().map(|(i, s)| {
        set_up(
            client,
            gateway,
            options,
            *s,
            options.node_port_base + i as u16,
        )
    }))
    .await?;
    progress("all strategies at 1 ready pod; starting observers and PodAutoscalers".into());

    let mut observers = Vec::new();
    for s in STRATEGIES {
        let ns = s.namespace();
        observers.push(Observer::start(
            client.clone(),
            ObserverConfig {
                namespace: ns.clone(),
                deployment: TARGET.into(),
                podautoscaler: TARGET.into(),
                selector: "app=mock-vllm".into(),
                metrics_port: 8000,
                interval: Duration::from_secs(1),
                output: Some(options.data_dir.join(format!("{}-timeline.jsonl", s.name))),
            },
            Arc::new(LoadGauge::default()),
        ));
        let applier = Applier::new(client.clone()).await.map_err(|e| s.error(e))?;
        applier
            .apply(&podautoscaler(s), &ns)
            .await
            .map_err(|e| s.error(e))?;
    }

    let chunks = chunks(&trace, 20_000);
    let lives: Vec<Arc<Live>> = STRATEGIES
        .iter()
        .map(|_| Arc::new(Live::default()))
        .collect();
    let done = CancellationToken::new();
    let replays = STRATEGIES
        .iter()
        .zip(&fronts)
        .zip(&observers)
        .zip(&lives)
        .map(|(((_, front), observer), live)| {
            let base = std::time::Instant::now() - Duration::from_secs_f64(observer.now());
            let mut config = ReplayConfig::new(format!("http://{front}"), MODEL);
            config.stream = false;
            config.timeout = options.timeout;
            config.send_output_length = true;
            config.time_base = Some(base);
            config.dispatcher = Dispatcher::Tokio;
            replay_chunks(&chunks, config, live.clone())
        });
    let live_view = async {
        let started = Instant::now();
        let mut last_sent = vec![0u64; STRATEGIES.len()];
        loop {
            tokio::select! {
                _ = tokio::time::sleep(options.live_interval) => {}
                _ = done.cancelled() => return,
            }
            let elapsed = started.elapsed().as_secs_f64();
            for (i, s) in STRATEGIES.iter().enumerate() {
                let live = &lives[i];
                let sample = observers[i].snapshot().samples.last().cloned();
                let (ready, starting, pending, desired) = sample
                    .map(|x| {
                        // Running but not yet ready: the simulated model load.
                        let starting = x
                            .pods
                            .iter()
                            .filter(|p| p.phase == "Running" && !p.ready && !p.terminating)
                            .count();
                        (
                            x.ready_pods,
                            starting,
                            x.pending_pods,
                            x.spec_replicas.unwrap_or(0),
                        )
                    })
                    .unwrap_or_default();
                let sent = live.sent.load(Ordering::Relaxed);
                let rps = (sent - last_sent[i]) as f64 / options.live_interval.as_secs_f64();
                last_sent[i] = sent;
                let p99 = {
                    let mut l = live
                        .latencies
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clone();
                    l.sort_by(f64::total_cmp);
                    percentile(&l, 0.99).map_or_else(|| "-".to_string(), |p| format!("{p:.1} s"))
                };
                progress(format!(
                    "t={elapsed:>4.0}s {:<3} replicas {desired} (ready {ready}, starting {starting}, pending {pending}) | sent {rps:>5.1} rps | done {:>5} | P99 so far {p99:>7} | failed {}",
                    s.name,
                    live.completed.load(Ordering::Relaxed),
                    live.failed.load(Ordering::Relaxed),
                ));
            }
        }
    };
    let (results, ()) = futures::join!(
        async {
            let r = join_all(replays).await;
            done.cancel();
            r
        },
        live_view
    );

    let mut runs = Vec::new();
    for ((s, observer), records) in STRATEGIES.iter().zip(observers).zip(results) {
        let timeline = observer.finish().await;
        let records = records?;
        let run = StrategyRun {
            name: s.name.to_string(),
            workload_lines: trace
                .entries
                .iter()
                .filter(|e| !e.requests.is_empty())
                .count(),
            records,
            pods: PodCount::from_timeline(&timeline),
        };
        let path = options.data_dir.join(format!("{}.json", s.name));
        let text = serde_json::to_string(&run).map_err(|e| DemoError::Data(e.to_string()))?;
        std::fs::write(&path, text).map_err(io(&path))?;
        runs.push(run);
    }
    Ok(runs)
}

/// Reads a finished run's `<strategy>.json` files back (to redraw the report).
pub fn read_runs(data_dir: &Path) -> Result<Vec<StrategyRun>, DemoError> {
    STRATEGIES
        .iter()
        .map(|s| {
            let path = data_dir.join(format!("{}.json", s.name));
            let text = std::fs::read_to_string(&path).map_err(|source| DemoError::Io {
                path: path.clone(),
                source,
            })?;
            serde_json::from_str(&text)
                .map_err(|e| DemoError::Data(format!("{}: {e}", path.display())))
        })
        .collect()
}

/// The trace cut into chunks of `chunk_ms` (timestamps kept); empty chunks are dropped.
fn chunks(trace: &Trace, chunk_ms: u64) -> Vec<Trace> {
    let mut out: Vec<Trace> = Vec::new();
    let mut current_index = None;
    for entry in trace.entries.iter().filter(|e| !e.requests.is_empty()) {
        let index = entry.timestamp / chunk_ms;
        if current_index != Some(index) {
            out.push(Trace::default());
            current_index = Some(index);
        }
        if let Some(last) = out.last_mut() {
            last.entries.push(entry.clone());
        }
    }
    out
}

/// Replays every chunk concurrently on one schedule; records are renumbered in trace order.
async fn replay_chunks(
    chunks: &[Trace],
    config: ReplayConfig,
    live: Arc<Live>,
) -> Result<Vec<RequestRecord>, DemoError> {
    let runs = chunks.iter().map(|chunk| {
        let live = live.clone();
        let config = config.clone();
        async move {
            let mut seen = ReplayProgress::default();
            let records = replay(
                chunk,
                &config,
                CancellationToken::new(),
                |p: &ReplayProgress| {
                    live.sent
                        .fetch_add((p.sent - seen.sent.min(p.sent)) as u64, Ordering::Relaxed);
                    live.completed.fetch_add(
                        (p.completed - seen.completed.min(p.completed)) as u64,
                        Ordering::Relaxed,
                    );
                    live.failed.fetch_add(
                        (p.failed - seen.failed.min(p.failed)) as u64,
                        Ordering::Relaxed,
                    );
                    seen = *p;
                },
            )
            .await
            .map_err(|e| DemoError::Workload(e.to_string()))?;
            live.latencies
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(records.iter().map(|r| r.latency));
            Ok::<_, DemoError>(records)
        }
    });
    let mut all = Vec::new();
    for records in join_all(runs).await {
        all.extend(records?);
    }
    for (i, record) in all.iter_mut().enumerate() {
        record.request_id = i as u64;
    }
    Ok(all)
}

/// Namespace, Deployment and Service; waits for the first pod to be ready behind the gateway. Returns the
/// gateway's address for the strategy's NodePort.
async fn set_up(
    client: &Client,
    gateway: &Gateway,
    options: &DemoOptions,
    s: Strategy,
    node_port: u16,
) -> Result<std::net::SocketAddr, DemoError> {
    let ns = s.namespace();
    let applier = Applier::new(client.clone()).await.map_err(|e| s.error(e))?;
    applier
        .apply(
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            &ns,
        )
        .await
        .map_err(|e| s.error(e))?;
    let mut objects = read_manifests(&options.manifests).map_err(|e| s.error(e))?;
    for object in &mut objects {
        object["metadata"]["namespace"] = json!(ns);
        match object["kind"].as_str() {
            Some("Deployment") => {
                object["spec"]["replicas"] = json!(1);
                let pod = &mut object["spec"]["template"]["spec"];
                pod["nodeSelector"] = json!({"kubernetes.io/hostname": s.node()});
                if let Some(delay) = options.startup_delay_s {
                    set_container_arg(&mut pod["containers"][0], "startup-delay", delay);
                }
            }
            Some("Service") => object["spec"]["ports"][0]["nodePort"] = json!(node_port),
            _ => {}
        }
        applier.apply(object, &ns).await.map_err(|e| s.error(e))?;
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let ready = pods
            .list(&ListParams::default().labels("app=mock-vllm"))
            .await
            .map(|l| {
                l.items.iter().any(|p| {
                    p.status
                        .as_ref()
                        .and_then(|st| st.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                })
            })
            .unwrap_or(false);
        if ready {
            break;
        }
        if Instant::now() > deadline {
            return Err(s.error("the first pod was not Ready within 180 s"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let service = ServiceKey::new(ns.clone(), TARGET);
    if !gateway
        .wait_until(Duration::from_secs(30), |g| {
            !g.ready_pods(&service).is_empty()
        })
        .await
    {
        return Err(s.error("the gateway never saw the first pod ready"));
    }
    gateway
        .address_of(&service)
        .ok_or_else(|| s.error(format!("the gateway does not serve node port {node_port}")))
}

/// The PodAutoscaler of a strategy, like AIBrix's experiment manifests.
pub fn podautoscaler(s: Strategy) -> serde_json::Value {
    json!({
        "apiVersion": "autoscaling.aibrix.ai/v1alpha1",
        "kind": "PodAutoscaler",
        "metadata": {"name": TARGET, "namespace": s.namespace()},
        "spec": {
            "scalingStrategy": s.name,
            "minReplicas": 1,
            "maxReplicas": 8,
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": TARGET},
            "metricsSources": [{
                "metricSourceType": "pod", "protocolType": "http", "port": "8000", "path": "/metrics",
                "targetMetric": "gpu_cache_usage_perc", "targetValue": s.target_value,
            }],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> DemoOptions {
        DemoOptions {
            full: false,
            seed: 7,
            prompt_tokens: 300.0,
            output_tokens: 200.0,
            timeout: Duration::from_secs(120),
            startup_delay_s: None,
            manifests: PathBuf::new(),
            node_port_base: 31100,
            data_dir: PathBuf::new(),
            live_interval: Duration::from_secs(5),
        }
    }

    #[test]
    fn the_workload_follows_the_experiment_trend() {
        let w = workload(&options()).expect("workload");
        assert_eq!(w.rps.len(), 481);
        assert!((w.rps[0] - 1.0).abs() < 1e-9 && (w.rps[480] - 6.0).abs() < 1e-9);
        let peak = w.rps.iter().cloned().fold(0.0, f64::max);
        assert!((peak - 10.0).abs() < 1e-9);
        // ≈ 5.5 RPS on average over 480 s.
        let n = w.trace.num_requests();
        assert!((2300..3000).contains(&n), "{n} requests");
        let chunked = chunks(&w.trace, 20_000);
        assert_eq!(chunked.iter().map(Trace::num_requests).sum::<usize>(), n);
        assert!(chunked.iter().all(|c| !c.entries.is_empty()));
    }

    #[test]
    fn podautoscalers_use_the_experiment_targets() {
        let hpa = podautoscaler(STRATEGIES[2]);
        assert_eq!(hpa["spec"]["metricsSources"][0]["targetValue"], "50");
        assert_eq!(
            podautoscaler(STRATEGIES[0])["spec"]["scalingStrategy"],
            "APA"
        );
        assert_eq!(hpa["spec"]["maxReplicas"], 8);
    }
}
