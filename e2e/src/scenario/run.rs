//! Running scenarios: each in its own namespace on its own simulated node, all side by side on one cluster,
//! judged against their expectations, with the evidence written to the artifacts directory.
//!
//! For one scenario: create the namespace; apply the repository's mock-vllm Deployment (with the scenario's
//! overrides, pinned to the scenario's node) and a NodePort Service; wait for the initial replicas; apply the
//! PodAutoscaler; start the observer; drive the load phases through the gateway; judge every expectation on the
//! timeline; cut the controller log around each finding. [`run_all`] does this for every scenario concurrently.
//!
//! On a cluster other than the local one (kind, an existing cluster) the [`FrontDoor`] is a NodePort address
//! instead of the gateway: pods are not pinned to per-scenario nodes, and scenarios run one after another.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::future::join_all;
use kube::Client;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::expect::{overall, EvalContext, Judgement, Outcome, Phase};
use super::faults::{self, FaultRecord};
use super::front_door::FrontDoor;
use super::load;
use super::reference::{ScalingParams, Strategy};
use super::spec::{Isolation, Scenario};
use crate::deploy::{self, Target, METRICS_PORT};
use crate::gateway::ServiceKey;
use crate::k8s::pod::is_serving;
use crate::k8s::wait::TooFew;
use crate::observe::decisions;
use crate::observe::observer::LoadGauge;

pub use crate::deploy::{MODEL, TARGET};

/// Why a scenario could not run (as opposed to failing its expectations).
#[derive(Debug, thiserror::Error)]
pub(crate) enum RunError {
    /// Setting it up in the cluster failed.
    #[error("scenario {scenario}: {message}")]
    Setup {
        /// Scenario.
        scenario: String,
        /// What went wrong.
        message: String,
    },
}

fn setup(scenario: &str, message: impl std::fmt::Display) -> RunError {
    RunError::Setup {
        scenario: scenario.to_string(),
        message: message.to_string(),
    }
}

/// Where things are, for a run.
#[derive(Clone)]
pub struct RunContext {
    /// Admin client.
    pub client: Client,
    /// Artifacts root (one sub-directory per scenario).
    pub artifacts: PathBuf,
    /// The component logs (controller log excerpts come from here).
    pub logs: PathBuf,
    /// The repository's mock-vllm kustomization.
    pub manifests: PathBuf,
    /// First NodePort; scenario `i` uses `node_port_base + i`.
    pub node_port_base: u16,
    /// HPA sync period the control plane runs with.
    pub hpa_sync_period_s: f64,
    /// Catalogue entries the controller build under test fixes (their marks do not apply).
    pub fixed_deviations: std::collections::BTreeSet<String>,
    /// The controllers run as pods of the cluster (kind, an existing cluster): their logs are copied into `logs`
    /// through the API server before each scenario is judged ([`crate::observe::pod_logs`]).
    pub logs_from_pods: bool,
    /// Leave each scenario's namespace in place when it is done (to inspect it). By default, on a cluster that runs
    /// scenarios one after another, each scenario's namespace is deleted (and the deletion awaited) before the next
    /// one starts, so its pods' CPU requests are free again.
    pub keep_namespaces: bool,
}

impl std::fmt::Debug for RunContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunContext")
            .field("artifacts", &self.artifacts)
            .field("node_port_base", &self.node_port_base)
            .finish_non_exhaustive()
    }
}

/// One expectation's result, with the controller log around it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finding {
    /// The judgement (expectation, outcome, verdict with the timeline excerpt).
    #[serde(flatten)]
    pub judgement: Judgement,
    /// Controller log lines around the relevant time.
    pub controller_log: Vec<String>,
}

/// A scenario's result: the `summary.json` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioResult {
    /// Scenario name.
    pub name: String,
    /// Strategy.
    pub strategy: Strategy,
    /// Description.
    pub description: String,
    /// Overall outcome: fail > unexpected-pass > expected-fail > intermittent > pass.
    pub outcome: Outcome,
    /// Wall time, seconds.
    pub duration_s: f64,
    /// One per expectation.
    pub findings: Vec<Finding>,
    /// A run error, if it could not run at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Where the timeline is.
    pub timeline: PathBuf,
    /// The scenario's tags (its own and the strategy's).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Timed faults that ran, with their times.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<FaultRecord>,
    /// Why the reference parameters could not be read from the PodAutoscaler (an invalid spec on purpose).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params_note: Option<String>,
}

/// The node a scenario's pods run on.
pub fn node_name(scenario: &Scenario) -> String {
    format!("node-{}", scenario.name)
}

/// Runs every scenario, concurrently where the front door allows it ([`FrontDoor::side_by_side`]); `progress`
/// receives one line per notable step.
pub async fn run_all(
    ctx: &RunContext,
    front_door: &FrontDoor<'_>,
    scenarios: &[Scenario],
    progress: &(dyn Fn(String) + Sync),
) -> Vec<ScenarioResult> {
    let runs = scenarios
        .iter()
        .enumerate()
        .map(|(index, scenario)| async move {
            let started = Instant::now();
            match run_one(ctx, front_door, scenario, index, progress).await {
                Ok(result) => result,
                Err(e) => {
                    let e = crate::error_chain::error_chain(&e);
                    progress(format!("{}: could not run: {e}", scenario.name));
                    ScenarioResult {
                        name: scenario.name.clone(),
                        strategy: scenario.strategy,
                        description: scenario.description.clone(),
                        outcome: Outcome::Fail,
                        duration_s: started.elapsed().as_secs_f64(),
                        findings: Vec::new(),
                        error: Some(e),
                        timeline: PathBuf::new(),
                        tags: scenario.all_tags(),
                        faults: Vec::new(),
                        params_note: None,
                    }
                }
            }
        });
    if !front_door.side_by_side() {
        let mut results = Vec::new();
        for (run, scenario) in runs.zip(scenarios) {
            // A namespace of the same name from an earlier, aborted run would mix its pods into this one.
            clear_namespace(ctx, &scenario.name, "left from an earlier run", progress).await;
            results.push(run.await);
            if !ctx.keep_namespaces {
                clear_namespace(ctx, &scenario.name, "done", progress).await;
            }
        }
        return results;
    }
    // Shared scenarios side by side, then each exclusive one alone (it would disturb the others' controller).
    let (shared, exclusive): (Vec<_>, Vec<_>) = runs
        .zip(scenarios)
        .partition(|(_, s)| s.isolation == Isolation::Shared);
    let mut results: Vec<(usize, ScenarioResult)> = join_all(
        shared
            .into_iter()
            .map(|(run, s)| async move { (position(scenarios, s), run.await) }),
    )
    .await;
    if !exclusive.is_empty() {
        progress(format!(
            "{} exclusive scenario(s) next, one at a time",
            exclusive.len()
        ));
    }
    for (run, s) in exclusive {
        results.push((position(scenarios, s), run.await));
    }
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// Deletes a scenario's namespace on a shared cluster and waits for it to go ([`deploy::delete_namespace`]); a
/// failure is reported and the run goes on (the next scenario's own setup then says what is wrong).
async fn clear_namespace(
    ctx: &RunContext,
    namespace: &str,
    why: &str,
    progress: &(dyn Fn(String) + Sync),
) {
    let started = Instant::now();
    match deploy::delete_namespace(&ctx.client, namespace, Duration::from_secs(180)).await {
        Ok(true) => progress(format!(
            "{namespace}: namespace deleted ({why}) in {:.0} s",
            started.elapsed().as_secs_f64()
        )),
        Ok(false) => {}
        Err(e) => progress(format!("{namespace}: could not delete its namespace: {e}")),
    }
}

fn position(scenarios: &[Scenario], scenario: &Scenario) -> usize {
    scenarios
        .iter()
        .position(|s| s.name == scenario.name)
        .unwrap_or(usize::MAX)
}

async fn run_one(
    ctx: &RunContext,
    front_door: &FrontDoor<'_>,
    scenario: &Scenario,
    index: usize,
    progress: &(dyn Fn(String) + Sync),
) -> Result<ScenarioResult, RunError> {
    let started = Instant::now();
    let wall_start = SystemTime::now();
    let name = scenario.name.as_str();
    let dir = ctx.artifacts.join(name);
    std::fs::create_dir_all(&dir)
        .map_err(|e| setup(name, format!("creating {}: {e}", dir.display())))?;
    let node_port = ctx.node_port_base + index as u16;
    let target = Target {
        namespace: name.to_string(),
        replicas: scenario.target.replicas,
        node: front_door.pins_nodes().then(|| node_name(scenario)),
        startup_delay_s: Some(scenario.target.startup_delay_s),
        extra_args: scenario.target.extra_args.clone(),
        readiness_period_s: Some(scenario.target.readiness_period_s),
        node_port,
    };
    target
        .apply(&ctx.client, &ctx.manifests)
        .await
        .map_err(|e| setup(name, e))?;
    let initial = scenario.target.replicas as usize;
    let ready_timeout = Duration::from_secs(120);
    deploy::wait_for_pods(&ctx.client, name, initial, ready_timeout, is_serving)
        .await
        .map_err(|TooFew { matched: ready }| {
            setup(
                name,
                format!(
                    "only {ready} of {initial} initial pods Ready after {} s",
                    ready_timeout.as_secs()
                ),
            )
        })?;
    let service = ServiceKey {
        namespace: name.to_string(),
        name: TARGET.to_string(),
    };
    let front = front_door
        .wait_serving(&service, node_port, initial, Duration::from_secs(30))
        .await
        .map_err(|e| setup(name, e))?;

    let built = scenario
        .autoscaler
        .build(scenario.strategy, name, TARGET, METRICS_PORT, &scenario.dir)
        .map_err(|e| setup(name, e))?;
    let pa_name = built.main_name();
    // Reference parameters come from the PodAutoscaler when it reads as one the reference can model; a
    // scenario of an invalid spec (an unparsable target, min > max) still runs and asserts what the user sees.
    let params_error;
    let mut params = match built
        .typed
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|pa| ScalingParams::from_pod_autoscaler(pa).map_err(|e| e.to_string()))
    {
        Ok(params) => {
            params_error = None;
            params
        }
        Err(e) => {
            params_error = Some(e);
            ScalingParams::fallback(&built.main)
        }
    };
    params.hpa_sync_period_s = ctx.hpa_sync_period_s;
    let gauge = Arc::new(LoadGauge::default());
    let observer = deploy::start_observer(
        &ctx.client,
        name,
        &pa_name,
        Some(dir.join("timeline.jsonl")),
        gauge.clone(),
    );
    progress(format!(
        "{name}: {} on {}, load for {:.0} s",
        scenario.strategy,
        params.target_metric,
        scenario.duration_s()
    ));
    if let Some(e) = &params_error {
        progress(format!("{name}: no reference parameters ({e})"));
    }

    let fault_records = std::sync::Mutex::new(Vec::<FaultRecord>::new());
    // Phase boundaries on the observer's clock.
    let phase_starts = Arc::new(std::sync::Mutex::new(Vec::<f64>::new()));
    let stop = CancellationToken::new();
    {
        let phase_starts = phase_starts.clone();
        let observer_clock = Instant::now() - Duration::from_secs_f64(observer.now());
        let names: Vec<String> = scenario
            .load
            .phases
            .iter()
            .map(|p| p.name.clone())
            .collect();
        // The PodAutoscaler comes in once the first phase's load has reached the pods: its first readings then
        // reflect the offered load, not the instant the clients connected (which made some first reconciles
        // scale on a half-started load).
        let apply_autoscaler = async {
            tokio::time::sleep(Duration::from_secs_f64(scenario.target.autoscaler_delay_s)).await;
            deploy::apply_podautoscaler_json(&ctx.client, name, &built.main)
                .await
                .map_err(|e| setup(name, e))?;
            for extra in &built.extra {
                deploy::apply_podautoscaler_json(&ctx.client, name, extra)
                    .await
                    .map_err(|e| setup(name, e))?;
            }
            Ok::<(), RunError>(())
        };
        let node = front_door.pins_nodes().then(|| node_name(scenario));
        let fault_records = &fault_records;
        let phase_starts_for_faults = phase_starts.clone();
        let faults = async {
            for fault in &scenario.faults {
                let phase_index = fault
                    .after_phase
                    .as_ref()
                    .and_then(|p| names.iter().position(|n| n == p))
                    .unwrap_or(0);
                // Wait for the phase to start, then for `at_s`.
                let phase_start = loop {
                    let start = phase_starts_for_faults
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get(phase_index)
                        .copied();
                    if let Some(start) = start {
                        break start;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                };
                let due = phase_start + fault.at_s;
                let now = observer_clock.elapsed().as_secs_f64();
                if due > now {
                    tokio::time::sleep(Duration::from_secs_f64(due - now)).await;
                }
                let t = observer_clock.elapsed().as_secs_f64();
                let record = faults::apply(&ctx.client, name, node.as_deref(), fault, t).await;
                progress(format!(
                    "{name}: fault at t={t:.0} s: {}{}",
                    record.action,
                    record
                        .error
                        .as_ref()
                        .map(|e| format!(" (error: {e})"))
                        .unwrap_or_default()
                ));
                fault_records
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(record);
            }
        };
        let load = load::drive(
            format!("http://{front}/v1/chat/completions"),
            MODEL.to_string(),
            scenario.load.clone(),
            gauge.clone(),
            index as u64 + 1,
            stop.clone(),
            |i| {
                let t = observer_clock.elapsed().as_secs_f64();
                phase_starts
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(t);
                progress(format!("{name}: phase `{}` at t={t:.0} s", names[i]));
            },
        );
        let faults = async {
            tokio::select! {
                _ = faults => {}
                _ = stop.cancelled() => {}
            }
        };
        let load = async {
            let loaded = load.await;
            stop.cancel();
            loaded
        };
        let (loaded, applied, ()) = tokio::join!(load, apply_autoscaler, faults);
        if let Err(e) = applied.and_then(|()| loaded.map_err(|e| setup(name, e))) {
            stop.cancel();
            let _ = observer.finish().await;
            return Err(e);
        }
    }
    stop.cancel();
    let observer_start = SystemTime::now() - Duration::from_secs_f64(observer.now());
    let mut timeline = observer.finish().await;
    if ctx.logs_from_pods {
        if let Err(e) = crate::observe::pod_logs::copy_controller_logs(&ctx.client, &ctx.logs).await
        {
            warn!(error = %e, "cannot read the controllers' logs from the cluster");
        }
    }
    if scenario.strategy != Strategy::Hpa {
        if let Ok(log) = std::fs::read_to_string(ctx.logs.join("aibrix-controller-manager.log")) {
            timeline.decisions = decisions::parse(&log, name, &pa_name, observer_start);
        }
    }
    let timeline_path = dir.join("timeline.jsonl");
    if let Err(e) = timeline.write_jsonl(&timeline_path) {
        warn!(error = %e, "cannot write the timeline");
    }

    let starts = phase_starts
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let phases: Vec<Phase> = scenario
        .load
        .phases
        .iter()
        .zip(&starts)
        .map(|(phase, start)| Phase {
            name: phase.name.clone(),
            start: *start,
            end: start + phase.duration_s,
        })
        .collect();
    let faults = fault_records
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    let mut eval = EvalContext::new(scenario.strategy, params, phases);
    eval.podautoscaler = pa_name.clone();
    eval.fixed_deviations = ctx.fixed_deviations.clone();
    let findings: Vec<Finding> = scenario
        .expectations
        .iter()
        .map(|expectation| {
            let judgement = expectation.judge(&timeline, &eval);
            let controller_log = judgement
                .verdict
                .at
                .map(|(from, to)| controller_log(ctx, scenario, wall_start, from, to))
                .unwrap_or_default();
            Finding {
                judgement,
                controller_log,
            }
        })
        .collect();
    let outcome = overall(findings.iter().map(|f| f.judgement.outcome));
    progress(format!("{name}: {}", outcome.label()));
    info!(scenario = name, outcome = outcome.label(), "scenario done");
    let result = ScenarioResult {
        name: name.to_string(),
        strategy: scenario.strategy,
        description: scenario.description.clone(),
        outcome,
        duration_s: started.elapsed().as_secs_f64(),
        findings,
        error: None,
        timeline: timeline_path,
        tags: scenario.all_tags(),
        faults,
        params_note: params_error,
    };
    if let Ok(text) = serde_json::to_string_pretty(&result) {
        let _ = std::fs::write(dir.join("result.json"), text);
    }
    Ok(result)
}

/// klog lines (`I1127 20:19:37.553836 …`) of the AIBrix controller (and, for HPA, the controller manager) that
/// mention the scenario, within 15 s of the finding's time range.
fn controller_log(
    ctx: &RunContext,
    scenario: &Scenario,
    start: SystemTime,
    from: f64,
    to: f64,
) -> Vec<String> {
    let window = |offset: f64| {
        start
            .checked_add(Duration::from_secs_f64(offset.max(0.0)))
            .unwrap_or(start)
    };
    let (lo, hi) = (window(from - 15.0), window(to + 15.0));
    let mut files = vec![ctx.logs.join("aibrix-controller-manager.log")];
    if scenario.strategy == Strategy::Hpa {
        files.push(ctx.logs.join("kube-controller-manager.log"));
    }
    let mut lines = Vec::new();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for line in text.lines() {
            if !line.contains(&scenario.name) {
                continue;
            }
            if let Some(at) = crate::observe::klog::klog_time(line, start) {
                if at >= lo && at <= hi {
                    lines.push(line.chars().take(400).collect());
                }
            }
        }
    }
    let skip = lines.len().saturating_sub(40);
    lines.into_iter().skip(skip).collect()
}
