//! `autoscale-harness workload generate|replay`: flags, checks that say what to fix, progress and output files.
//!
//! Everything substantive is in [`e2e::workload`]; this module turns flags into its configs, draws the progress
//! bar, wires Ctrl-C to the replay's cancellation token, and writes the records, summary and plot.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use e2e::workload::patterns::{LENGTH_PRESET_MEAN, TRAFFIC_PRESET_MEAN};
use e2e::workload::plot::plot_svg;
use e2e::workload::{
    generate, replay, replay_closed_loop, ApiKind, ClosedLoopConfig, Dataset, Dispatcher,
    GenerateConfig, Pattern, Preset, ReplayConfig, ReplayProgress, RequestRecord, SinePatternJson,
    Slo, StepShape, Summary, Trace,
};
use indicatif::{ProgressBar, ProgressStyle};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Workload subcommands.
#[derive(Debug, Subcommand)]
pub enum WorkloadCommand {
    /// Generate a workload file (AIBrix JSONL, current keys).
    Generate(GenerateArgs),
    /// Replay a workload file (current or legacy keys) and record every request.
    Replay(ReplayArgs),
}

/// How the per-second rate is described.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TraceType {
    /// `--target-qps` every second.
    Constant,
    /// A sine preset (`--traffic-pattern`) or JSON config (`--traffic-pattern-config`).
    Synthetic,
    /// A step or trend list (`--steps 1,4,8,10,2,6`).
    Steps,
}

/// `workload generate` flags.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// How the request rate is described.
    #[arg(long, value_enum, default_value = "constant")]
    trace_type: TraceType,
    /// Length of the trace in seconds.
    #[arg(long, default_value_t = 60.0)]
    duration_s: f64,
    /// Length of one pattern interval in milliseconds.
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
    /// Seed of every random choice (arrivals, noise, prompt selection).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Requests per second (constant).
    #[arg(long, default_value_t = 1.0)]
    target_qps: f64,
    /// Traffic preset (synthetic).
    #[arg(long, value_enum)]
    traffic_pattern: Option<Preset>,
    /// Traffic as AIBrix JSON, inline or a file: {"fluctuate", "mean", "noise", "period_len_ms", "only_rise"}.
    #[arg(long, conflicts_with = "traffic_pattern")]
    traffic_pattern_config: Option<String>,
    /// Mean RPS of the traffic preset.
    #[arg(long, default_value_t = TRAFFIC_PRESET_MEAN)]
    traffic_mean: f64,
    /// RPS levels for --trace-type steps, e.g. "1,4,8,10,2,6" (equal shares of the duration).
    #[arg(long)]
    steps: Option<String>,
    /// hold: a staircase; linear: a trend through the levels.
    #[arg(long, value_enum, default_value = "hold")]
    step_shape: StepShape,
    /// Standard deviation of Gaussian noise added to the step levels (RPS).
    #[arg(long, default_value_t = 0.0)]
    step_noise: f64,
    /// Divides every rate (AIBrix's --qps-scale).
    #[arg(long, default_value_t = 1.0)]
    qps_scale: f64,
    /// Every prompt this many tokens long (or the nearest dataset match).
    #[arg(long, conflicts_with_all = ["prompt_len_pattern", "prompt_len_pattern_config"])]
    target_prompt_len: Option<u64>,
    /// Prompt-length preset.
    #[arg(long, value_enum)]
    prompt_len_pattern: Option<Preset>,
    /// Prompt length as AIBrix JSON, inline or a file.
    #[arg(long, conflicts_with = "prompt_len_pattern")]
    prompt_len_pattern_config: Option<String>,
    /// Mean of the prompt-length preset (tokens).
    #[arg(long, default_value_t = LENGTH_PRESET_MEAN)]
    prompt_len_mean: f64,
    /// Every request asks for this many output tokens (written as output_length).
    #[arg(long, conflicts_with_all = ["completion_len_pattern", "completion_len_pattern_config"])]
    target_completion_len: Option<u64>,
    /// Output-length preset.
    #[arg(long, value_enum)]
    completion_len_pattern: Option<Preset>,
    /// Output length as AIBrix JSON, inline or a file.
    #[arg(long, conflicts_with = "completion_len_pattern")]
    completion_len_pattern_config: Option<String>,
    /// Mean of the output-length preset (tokens).
    #[arg(long, default_value_t = LENGTH_PRESET_MEAN)]
    completion_len_mean: f64,
    /// ShareGPT-format dataset (JSON list or JSONL; or {"prompt","completion"} rows). Without it prompts are
    /// synthetic text of exactly the target length.
    #[arg(long, visible_alias = "prompt-file")]
    sharegpt: Option<PathBuf>,
    /// Synthetic prompt length when no prompt length is given.
    #[arg(long, default_value_t = 1024)]
    default_prompt_len: u64,
    /// Where to write the workload (JSONL).
    #[arg(long)]
    output: PathBuf,
    /// Also draw the RPS and lengths over time to this .svg file.
    #[arg(long)]
    plot: Option<PathBuf>,
}

/// `workload replay` flags.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Workload file (AIBrix JSONL, current or legacy keys).
    #[arg(long)]
    workload: PathBuf,
    /// Server base URL.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    endpoint: String,
    /// Model name sent in every request.
    #[arg(long)]
    model: String,
    /// Sent as "Authorization: Bearer <key>".
    #[arg(long, env = "AUTOSCALE_HARNESS_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Which endpoint to call.
    #[arg(long, value_enum, default_value = "chat")]
    api: ApiKind,
    /// Ask for whole responses instead of SSE streams (no TTFT/TPOT).
    #[arg(long)]
    no_stream: bool,
    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 60.0)]
    timeout_s: f64,
    /// Multiplies the workload's timestamps (0.5 replays twice as fast).
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
    /// Caps max_tokens.
    #[arg(long)]
    output_token_limit: Option<u64>,
    /// Send each request's output_length as max_tokens = min_tokens.
    #[arg(long)]
    send_output_length: bool,
    /// Extra request header, "Name: value" (repeatable), e.g. "routing-strategy: random".
    #[arg(long = "header")]
    headers: Vec<String>,
    /// Where to write one JSON record per request.
    #[arg(long)]
    output: PathBuf,
    /// Also write the summary as JSON here.
    #[arg(long)]
    summary: Option<PathBuf>,
    /// Goodput SLO on time to first token, milliseconds.
    #[arg(long)]
    slo_ttft_ms: Option<f64>,
    /// Goodput SLO on time per output token, milliseconds.
    #[arg(long)]
    slo_tpot_ms: Option<f64>,
    /// Goodput SLO on end-to-end latency, milliseconds.
    #[arg(long)]
    slo_e2e_ms: Option<f64>,
    /// Closed loop: keep --concurrency requests in flight for --duration-s, ignoring timestamps.
    #[arg(long, requires_all = ["concurrency", "duration_s"])]
    closed_loop: bool,
    /// Closed loop: requests in flight.
    #[arg(long, requires = "closed_loop")]
    concurrency: Option<usize>,
    /// Closed loop: how long to send, seconds.
    #[arg(long, requires = "closed_loop")]
    duration_s: Option<f64>,
    /// After Ctrl-C, seconds that requests in flight may still take before they are recorded as cancelled.
    #[arg(long, default_value_t = 5.0)]
    cancel_grace_s: f64,
    /// Open loop: hybrid (tokio timers, nudged early by a thread that sleeps to each send time: ~0.1–0.2 ms
    /// late) or tokio (tokio timers only: ~1 ms late).
    #[arg(long, value_enum, default_value = "hybrid")]
    dispatcher: Dispatcher,
    /// No progress bar.
    #[arg(long)]
    no_progress: bool,
}

/// Runs a workload subcommand.
pub async fn run(command: WorkloadCommand) -> Result<()> {
    match command {
        WorkloadCommand::Generate(args) => generate_command(args),
        WorkloadCommand::Replay(args) => replay_command(args).await,
    }
}

fn seconds(name: &str, value: f64) -> Result<Duration> {
    if !(value.is_finite() && value > 0.0) {
        bail!("--{name} must be a number of seconds > 0, got {value}");
    }
    Ok(Duration::from_secs_f64(value))
}

/// A pattern config given inline (`{...}`) or as a file.
fn sine_config(flag: &str, value: &str, duration_ms: u64) -> Result<Pattern> {
    let text = if value.trim_start().starts_with('{') {
        value.to_string()
    } else {
        std::fs::read_to_string(value).with_context(|| {
            format!("--{flag} {value:?} is neither inline JSON nor a readable file")
        })?
    };
    let json = SinePatternJson::parse(&text).with_context(|| format!("--{flag}"))?;
    Ok(Pattern::Sine(
        json.to_config(duration_ms)
            .with_context(|| format!("--{flag}"))?,
    ))
}

fn length_pattern(
    flag: &str,
    constant: Option<u64>,
    preset: Option<Preset>,
    config: Option<&str>,
    mean: f64,
    duration_ms: u64,
) -> Result<Option<Pattern>> {
    Ok(match (constant, preset, config) {
        (Some(0), _, _) => bail!("--target-{flag}-len must be at least 1"),
        (Some(n), _, _) => Some(Pattern::Constant(n as f64)),
        (None, Some(preset), _) => Some(Pattern::Sine(preset.config(mean))),
        (None, None, Some(config)) => Some(sine_config(
            &format!("{flag}-len-pattern-config"),
            config,
            duration_ms,
        )?),
        (None, None, None) => None,
    })
}

fn generate_command(args: GenerateArgs) -> Result<()> {
    let duration = seconds("duration-s", args.duration_s)?;
    let duration_ms = duration.as_millis() as u64;
    if args.interval_ms == 0 {
        bail!("--interval-ms must be at least 1");
    }
    let traffic_flags_used =
        args.traffic_pattern.is_some() || args.traffic_pattern_config.is_some();
    let traffic = match args.trace_type {
        TraceType::Constant => {
            if traffic_flags_used || args.steps.is_some() {
                bail!("--trace-type constant takes --target-qps; use --trace-type synthetic for --traffic-pattern(-config) or steps for --steps");
            }
            if !(args.target_qps.is_finite() && args.target_qps >= 0.0) {
                bail!("--target-qps must be a number >= 0, got {}", args.target_qps);
            }
            Pattern::Constant(args.target_qps)
        }
        TraceType::Synthetic => match (&args.traffic_pattern, &args.traffic_pattern_config) {
            (Some(preset), _) => Pattern::Sine(preset.config(args.traffic_mean)),
            (None, Some(config)) => sine_config("traffic-pattern-config", config, duration_ms)?,
            (None, None) => bail!(
                "--trace-type synthetic needs --traffic-pattern (quick_rising, slow_rising, slight_fluctuation, \
                 severe_fluctuation, constant) or --traffic-pattern-config '{{\"fluctuate\": 2, \"mean\": 6, \
                 \"noise\": 0.1, \"period_len_ms\": 300000}}'"
            ),
        },
        TraceType::Steps => {
            let Some(steps) = &args.steps else {
                bail!("--trace-type steps needs --steps, e.g. --steps 1,4,8,10,2,6");
            };
            match Pattern::parse_steps(steps, args.step_shape)? {
                Pattern::Steps { values, shape, .. } => Pattern::Steps {
                    values,
                    shape,
                    noise: args.step_noise.max(0.0),
                },
                other => other,
            }
        }
    };
    let mut config = GenerateConfig::new(duration_ms, traffic);
    config.interval_ms = args.interval_ms;
    config.seed = args.seed;
    config.qps_scale = args.qps_scale;
    config.default_prompt_len = args.default_prompt_len.max(1);
    config.prompt_len = length_pattern(
        "prompt",
        args.target_prompt_len,
        args.prompt_len_pattern,
        args.prompt_len_pattern_config.as_deref(),
        args.prompt_len_mean,
        duration_ms,
    )?;
    config.completion_len = length_pattern(
        "completion",
        args.target_completion_len,
        args.completion_len_pattern,
        args.completion_len_pattern_config.as_deref(),
        args.completion_len_mean,
        duration_ms,
    )?;

    let tokenizer = mock_vllm::Tokenizer::new();
    let dataset = match &args.sharegpt {
        Some(path) => {
            let dataset = Dataset::load(path, &tokenizer)?;
            info!(rows = dataset.len(), path = %path.display(), "dataset loaded");
            Some(dataset)
        }
        None => None,
    };
    let workload = generate(&config, dataset.as_ref(), &tokenizer)?;
    workload.trace.write_path(&args.output)?;
    let n = workload.trace.num_requests();
    println!(
        "wrote {n} requests on {} lines spanning {:.1} s ({:.2} RPS on average) to {}",
        workload.trace.entries.len(),
        workload.trace.span_ms() as f64 / 1000.0,
        n as f64 / duration.as_secs_f64(),
        args.output.display()
    );
    if let Some(plot) = &args.plot {
        plot_svg(&workload, plot)?;
        println!("plot: {}", plot.display());
    }
    Ok(())
}

fn parse_header(text: &str) -> Result<(String, String)> {
    match text.split_once(':') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_string(), value.trim().to_string()))
        }
        _ => bail!("--header {text:?} must look like \"Name: value\""),
    }
}

fn create(path: &Path, what: &str) -> Result<BufWriter<File>> {
    let file = File::create(path)
        .with_context(|| format!("cannot create the {what} file {}", path.display()))?;
    Ok(BufWriter::new(file))
}

async fn replay_command(args: ReplayArgs) -> Result<()> {
    let trace = Trace::read_path(&args.workload)?;
    if trace.num_requests() == 0 {
        bail!("{} has no requests", args.workload.display());
    }
    let mut config = ReplayConfig::new(args.endpoint.clone(), args.model.clone());
    config.api_key = args.api_key.clone();
    config.api = args.api;
    config.stream = !args.no_stream;
    config.timeout = seconds("timeout-s", args.timeout_s)?;
    if !(args.time_scale.is_finite() && args.time_scale >= 0.0) {
        bail!(
            "--time-scale must be a number >= 0, got {}",
            args.time_scale
        );
    }
    config.time_scale = args.time_scale;
    config.output_token_limit = args.output_token_limit;
    config.send_output_length = args.send_output_length;
    config.dispatcher = args.dispatcher;
    config.cancel_grace = if args.cancel_grace_s >= 0.0 && args.cancel_grace_s.is_finite() {
        Duration::from_secs_f64(args.cancel_grace_s)
    } else {
        bail!("--cancel-grace-s must be >= 0, got {}", args.cancel_grace_s);
    };
    config.headers = args
        .headers
        .iter()
        .map(|h| parse_header(h))
        .collect::<Result<_>>()?;
    config.url()?;
    let slo = Slo {
        ttft_s: args.slo_ttft_ms.map(|ms| ms / 1e3),
        tpot_s: args.slo_tpot_ms.map(|ms| ms / 1e3),
        e2e_s: args.slo_e2e_ms.map(|ms| ms / 1e3),
    };

    // Open the outputs first: a typo in a path should not cost a whole run.
    let mut output = create(&args.output, "output")?;
    let summary_file = args
        .summary
        .as_deref()
        .map(|p| create(p, "summary"))
        .transpose()?;

    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            warn!("interrupted: no new requests; writing what was collected");
            on_signal.cancel();
        }
    });

    let bar = if args.no_progress {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    let closed = if args.closed_loop {
        let concurrency = args.concurrency.unwrap_or(1);
        if concurrency == 0 {
            bail!("--concurrency must be at least 1");
        }
        Some(ClosedLoopConfig {
            concurrency,
            duration: seconds("duration-s", args.duration_s.unwrap_or(0.0))?,
        })
    } else {
        None
    };
    let style = |template: &str| {
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
    };
    let on_progress = |p: &ReplayProgress| {
        match (p.total, closed) {
            (Some(total), _) => {
                bar.set_length(total as u64);
                bar.set_position(p.completed as u64);
            }
            (None, Some(c)) => {
                bar.set_length(c.duration.as_secs().max(1));
                bar.set_position(p.elapsed.as_secs().min(c.duration.as_secs()));
            }
            (None, None) => {}
        }
        bar.set_message(format!(
            "sent {} done {} failed {}",
            p.sent, p.completed, p.failed
        ));
    };
    let records = match closed {
        None => {
            bar.set_style(style("{elapsed_precise} [{bar:40}] {pos}/{len} {msg}"));
            replay(&trace, &config, cancel.clone(), on_progress).await?
        }
        Some(closed) => {
            bar.set_style(style("{elapsed_precise} [{bar:40}] {pos}/{len}s {msg}"));
            replay_closed_loop(&trace, &config, &closed, cancel.clone(), on_progress).await?
        }
    };
    bar.finish_and_clear();

    write_records(&mut output, &records)
        .with_context(|| format!("writing {}", args.output.display()))?;
    let summary = Summary::from_records(&records, Some(slo));
    if let (Some(mut file), Some(path)) = (summary_file, args.summary.as_deref()) {
        serde_json::to_writer_pretty(&mut file, &summary)
            .map_err(std::io::Error::other)
            .and_then(|()| file.write_all(b"\n"))
            .and_then(|()| file.flush())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if cancel.is_cancelled() && closed.is_none() {
        println!(
            "interrupted: {} of {} requests were sent",
            records.len(),
            trace.num_requests()
        );
    }
    print!("{}", summary.to_text());
    println!("records: {}", args.output.display());
    Ok(())
}

fn write_records(out: &mut impl Write, records: &[RequestRecord]) -> std::io::Result<()> {
    for record in records {
        serde_json::to_writer(&mut *out, record).map_err(std::io::Error::other)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}
