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
use kube::Client;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::report::{PodCount, StrategyRun};
use super::DemoError;
use crate::deploy::{self, Target, METRICS_PORT};
use crate::gateway::{Gateway, ServiceKey};
use crate::k8s::pod::is_ready;
use crate::k8s::{MetricSource, PodAutoscaler};
use crate::observe::observer::LoadGauge;
pub use crate::scenario::reference::Strategy;
use crate::workload::replay::{replay, Dispatcher, ReplayConfig, ReplayProgress, RequestRecord};
use crate::workload::summary::percentile;
use crate::workload::trace::Trace;
use crate::workload::{generate, GenerateConfig, GeneratedWorkload, Pattern, StepShape};

pub use crate::deploy::{MODEL, TARGET};
/// The experiment's RPS trend.
pub(crate) const RPS_STEPS: &str = "1,4,8,10,2,6";

/// APA, KPA, HPA, as in AIBrix's figure.
pub const STRATEGIES: [Strategy; 3] = [Strategy::Apa, Strategy::Kpa, Strategy::Hpa];

/// The strategy's `targetValue` for `gpu_cache_usage_perc`: a fraction for KPA/APA, which read the pods' gauge,
/// and a percentage for HPA, whose metrics adapter serves KV usage ×100.
pub(crate) fn target_value(s: Strategy) -> &'static str {
    match s {
        Strategy::Hpa => "50",
        Strategy::Kpa | Strategy::Apa => "0.5",
    }
}

/// The strategy's namespace (`demo-apa`, …).
pub fn namespace(s: Strategy) -> String {
    format!("demo-{}", s.as_str().to_lowercase())
}

/// The strategy's simulated node (`node-demo-apa`, …).
pub fn node(s: Strategy) -> String {
    format!("node-demo-{}", s.as_str().to_lowercase())
}

fn setup_error(s: Strategy, message: impl std::fmt::Display) -> DemoError {
    DemoError::Setup {
        strategy: s.as_str().to_string(),
        message: message.to_string(),
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
        observers.push(deploy::start_observer(
            client,
            &namespace(s),
            deploy::TARGET,
            Some(options.data_dir.join(format!("{s}-timeline.jsonl"))),
            Arc::new(LoadGauge::default()),
        ));
        deploy::apply_podautoscaler(client, &podautoscaler(s))
            .await
            .map_err(|e| setup_error(s, e))?;
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
                    s.as_str(),
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
            name: s.as_str().to_string(),
            workload_lines: trace
                .entries
                .iter()
                .filter(|e| !e.requests.is_empty())
                .count(),
            records,
            pods: PodCount::from_timeline(&timeline),
        };
        let path = options.data_dir.join(format!("{s}.json"));
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
            let path = data_dir.join(format!("{s}.json"));
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
    let ns = namespace(s);
    let target = Target {
        namespace: ns.clone(),
        replicas: 1,
        node: Some(node(s)),
        startup_delay_s: options.startup_delay_s,
        extra_args: Vec::new(),
        readiness_period_s: None,
        node_port,
    };
    target
        .apply(client, &options.manifests)
        .await
        .map_err(|e| setup_error(s, e))?;
    deploy::wait_for_pods(client, &ns, 1, Duration::from_secs(180), is_ready)
        .await
        .map_err(|_| setup_error(s, "the first pod was not Ready within 180 s"))?;
    let service = ServiceKey::new(ns.clone(), TARGET);
    if !gateway
        .wait_until(Duration::from_secs(30), |g| {
            !g.ready_pods(&service).is_empty()
        })
        .await
    {
        return Err(setup_error(s, "the gateway never saw the first pod ready"));
    }
    gateway.address_of(&service).ok_or_else(|| {
        setup_error(
            s,
            format!("the gateway does not serve node port {node_port}"),
        )
    })
}

/// The PodAutoscaler of a strategy, like AIBrix's experiment manifests: min 1, max 8, on the pods'
/// `gpu_cache_usage_perc`.
pub(crate) fn podautoscaler(s: Strategy) -> PodAutoscaler {
    PodAutoscaler::for_deployment(
        TARGET,
        &namespace(s),
        TARGET,
        s,
        (Some(1), 8),
        vec![MetricSource::pod_http(
            METRICS_PORT,
            "gpu_cache_usage_perc",
            target_value(s),
        )],
    )
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
        assert_eq!(hpa.spec.metrics_sources[0].target_value, "50");
        assert_eq!(
            podautoscaler(STRATEGIES[0]).spec.scaling_strategy,
            Strategy::Apa
        );
        assert_eq!(hpa.spec.max_replicas, 8);
        assert_eq!(hpa.metadata.namespace.as_deref(), Some("demo-hpa"));
        assert_eq!(node(Strategy::Kpa), "node-demo-kpa");
    }
}
