//! The generator: per-interval rate and length series → Poisson arrivals → prompts of matching length.
//!
//! This module owns the two random steps of AIBrix's generator, seeded so a workload is reproducible:
//!
//! 1. **Arrivals** (`workloads.md` §4, `generate_synthetic_from_dist`): a non-homogeneous Poisson process, one
//!    request per line. With `rps[i]` the rate of interval i, starting at t = 0 ms:
//!    `t += 1 interval` when the rate is 0 (emitting an empty line, as AIBrix does), else
//!    `t += Exponential(mean = 1000 / rate ms)`; an arrival is kept while `t < len(rps) · interval`, and
//!    generation stops after the first arrival beyond `duration_ms`. Timestamps are truncated to whole ms.
//!    AIBrix advances the rate index every 1000 ms whatever `--interval-ms` is (so its `interval_ms ≠ 1000`
//!    traces stretch or squeeze); here the index advances every `interval_ms`, identical at the default 1000.
//! 2. **Prompts** (§5, `RequestFinder`): with a dataset and a target prompt and/or output length, candidates are
//!    rows within ±e of both targets (a row without a completion passes the output test), e starting at 0.5 and
//!    widening by 0.05 up to 1.0; one candidate is picked uniformly; failing that, the nearest row by Euclidean
//!    distance in (prompt_len, completion_len). With a dataset and no targets, a shuffled round-robin. Without a
//!    dataset, synthetic text of exactly the target length from mock-vllm's tokenizer.
//!
//! A matched request's `output_length` is the row's completion length, as AIBrix writes it, falling back to the
//! target when the row has none; a synthetic request's is the target (or `null` without a completion pattern).

use mock_vllm::Tokenizer;
use rand::seq::SliceRandom;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp};

use super::patterns::{num_intervals, Pattern};
use super::sharegpt::{Dataset, DatasetRow};
use super::trace::{Trace, TraceEntry, TraceRequest};
use super::WorkloadError;

/// Prompt length used for synthetic prompts when no prompt-length pattern is given (AIBrix's preset mean).
pub(crate) const DEFAULT_SYNTHETIC_PROMPT_LEN: u64 = 1024;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateConfig {
    /// Length of the trace in milliseconds.
    pub duration_ms: u64,
    /// Length of one pattern interval in milliseconds (AIBrix default 1000).
    pub interval_ms: u64,
    /// Requests per second, per interval.
    pub traffic: Pattern,
    /// Target prompt length per interval (tokens); `None` for no target.
    pub prompt_len: Option<Pattern>,
    /// Target output length per interval (tokens); `None` for no target.
    pub completion_len: Option<Pattern>,
    /// Divides every rate (AIBrix's `--qps-scale`); 1 for none.
    pub qps_scale: f64,
    /// Seed of every random choice.
    pub seed: u64,
    /// Synthetic prompt length when `prompt_len` is `None` and there is no dataset.
    pub default_prompt_len: u64,
}

impl GenerateConfig {
    /// A config with AIBrix's defaults (`interval_ms` 1000, no length targets, seed 0) for `traffic`.
    pub fn new(duration_ms: u64, traffic: Pattern) -> Self {
        Self {
            duration_ms,
            interval_ms: 1000,
            traffic,
            prompt_len: None,
            completion_len: None,
            qps_scale: 1.0,
            seed: 0,
            default_prompt_len: DEFAULT_SYNTHETIC_PROMPT_LEN,
        }
    }

    fn check(&self) -> Result<(), WorkloadError> {
        let bad = |m: String| Err(WorkloadError::Config(m));
        if self.duration_ms == 0 {
            return bad("the duration must be > 0".into());
        }
        if self.interval_ms == 0 {
            return bad("the interval must be > 0 ms".into());
        }
        if !(self.qps_scale > 0.0 && self.qps_scale.is_finite()) {
            return bad(format!("qps scale must be > 0, got {}", self.qps_scale));
        }
        Ok(())
    }
}

/// A generated workload and the series it was drawn from (for plots and checks).
#[derive(Debug, Clone)]
pub struct GeneratedWorkload {
    /// The workload.
    pub trace: Trace,
    /// Interval length in milliseconds.
    pub interval_ms: u64,
    /// Target rate per interval (requests/s, clamped at 0, before `qps_scale`).
    pub rps: Vec<f64>,
    /// Target prompt length per interval (clamped at 1), if any.
    pub prompt_len: Option<Vec<f64>>,
    /// Target output length per interval (clamped at 1), if any.
    pub completion_len: Option<Vec<f64>>,
}

/// Independent random streams, so changing one choice does not shift the others.
fn stream(seed: u64, id: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(id);
    rng
}

/// Generates a workload; prompts come from `dataset` when given, else synthetic text.
pub fn generate(
    config: &GenerateConfig,
    dataset: Option<&Dataset>,
    tokenizer: &Tokenizer,
) -> Result<GeneratedWorkload, WorkloadError> {
    config.check()?;
    let len = num_intervals(config.duration_ms, config.interval_ms);
    let rps: Vec<f64> = config
        .traffic
        .series(len, &mut stream(config.seed, 1))?
        .into_iter()
        .map(|v| v.max(0.0))
        .collect();
    let lengths = |pattern: &Option<Pattern>, id| -> Result<Option<Vec<f64>>, WorkloadError> {
        pattern
            .as_ref()
            .map(|p| {
                p.series(len, &mut stream(config.seed, id))
                    .map(|s| s.into_iter().map(|v| v.max(1.0)).collect())
            })
            .transpose()
    };
    let prompt_len = lengths(&config.prompt_len, 2)?;
    let completion_len = lengths(&config.completion_len, 3)?;

    let arrivals = poisson_arrivals(
        &rps,
        config.interval_ms,
        config.duration_ms,
        config.qps_scale,
        &mut stream(config.seed, 4),
    )?;

    let mut selector = Selector::new(dataset, tokenizer, stream(config.seed, 5));
    let mut entries = Vec::with_capacity(arrivals.len());
    for arrival in arrivals {
        let requests = match arrival.interval {
            None => Vec::new(),
            Some(i) => {
                let target = |s: &Option<Vec<f64>>| {
                    s.as_ref()
                        .and_then(|s| s.get(i).or(s.last()))
                        .map(|v| v.round().max(1.0) as u64)
                };
                vec![selector.pick(
                    target(&prompt_len),
                    target(&completion_len),
                    config.default_prompt_len,
                )]
            }
        };
        entries.push(TraceEntry {
            timestamp: arrival.timestamp_ms,
            requests,
        });
    }
    Ok(GeneratedWorkload {
        trace: Trace { entries },
        interval_ms: config.interval_ms,
        rps,
        prompt_len,
        completion_len,
    })
}

/// One line to emit: a request due at `timestamp_ms` drawn in interval `interval`, or an empty line (`None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Arrival {
    /// Milliseconds since the start (truncated).
    pub timestamp_ms: u64,
    /// The interval whose targets apply; `None` for AIBrix's empty line at a zero rate.
    pub interval: Option<usize>,
}

/// The arrival process of `workloads.md` §4 over the per-interval rates `rps` (requests per second).
pub(crate) fn poisson_arrivals(
    rps: &[f64],
    interval_ms: u64,
    duration_ms: u64,
    qps_scale: f64,
    rng: &mut impl Rng,
) -> Result<Vec<Arrival>, WorkloadError> {
    let interval = interval_ms.max(1) as f64;
    let bound = rps.len() as f64 * interval;
    let mut out = Vec::new();
    let mut t = 0.0_f64;
    while t < bound {
        let index = ((t / interval) as usize).min(rps.len().saturating_sub(1));
        let rate = rps.get(index).copied().unwrap_or(0.0) / qps_scale;
        let zero = rate.is_nan() || rate <= 0.0;
        if zero {
            t += interval;
        } else {
            let exp = Exp::new(rate / 1000.0)
                .map_err(|e| WorkloadError::Pattern(format!("rate {rate}/s: {e}")))?;
            t += exp.sample(rng);
        }
        if t < bound {
            out.push(Arrival {
                timestamp_ms: t as u64,
                interval: (!zero)
                    .then(|| ((t / interval) as usize).min(rps.len().saturating_sub(1))),
            });
        }
        if t > duration_ms as f64 {
            break;
        }
    }
    Ok(out)
}

/// Chooses prompts: dataset matching, dataset round-robin, or synthetic text.
struct Selector<'a> {
    dataset: Option<&'a Dataset>,
    tokenizer: &'a Tokenizer,
    rng: ChaCha8Rng,
    order: Vec<usize>,
    next: usize,
}

impl<'a> Selector<'a> {
    fn new(dataset: Option<&'a Dataset>, tokenizer: &'a Tokenizer, rng: ChaCha8Rng) -> Self {
        Self {
            dataset: dataset.filter(|d| !d.is_empty()),
            tokenizer,
            rng,
            order: Vec::new(),
            next: 0,
        }
    }

    fn pick(
        &mut self,
        prompt: Option<u64>,
        output: Option<u64>,
        default_prompt: u64,
    ) -> TraceRequest {
        let Some(dataset) = self.dataset else {
            let tokens = prompt.unwrap_or(default_prompt);
            let seed = self.rng.next_u64();
            return TraceRequest {
                prompt: self.tokenizer.synthetic_text(tokens as usize, seed),
                prompt_length: Some(tokens),
                output_length: output,
                session_id: None,
            };
        };
        let row = if prompt.is_none() && output.is_none() {
            self.round_robin(dataset)
        } else {
            find_request(dataset, prompt, output, &mut self.rng)
        };
        TraceRequest {
            prompt: row.prompt.clone(),
            prompt_length: Some(row.prompt_len),
            output_length: row.completion_len.or(output),
            session_id: None,
        }
    }

    fn round_robin(&mut self, dataset: &'a Dataset) -> &'a DatasetRow {
        if self.next >= self.order.len() {
            self.order = (0..dataset.len()).collect();
            self.order.shuffle(&mut self.rng);
            self.next = 0;
        }
        let row = &dataset.rows()[self.order[self.next]];
        self.next += 1;
        row
    }
}

/// AIBrix's `RequestFinder`: a uniformly random row within ±e of the targets (e = 0.5, 0.55 … 1.0), else the
/// nearest row. `dataset` must not be empty.
pub(crate) fn find_request<'d>(
    dataset: &'d Dataset,
    prompt: Option<u64>,
    output: Option<u64>,
    rng: &mut impl Rng,
) -> &'d DatasetRow {
    let rows = dataset.rows();
    for step in 0..=10 {
        let e = 0.5 + 0.05 * step as f64;
        let range = match prompt {
            Some(p) => dataset.prompt_range(p as f64 * (1.0 - e), p as f64 * (1.0 + e)),
            None => 0..rows.len(),
        };
        let output_ok = |row: &DatasetRow| match (output, row.completion_len) {
            (Some(o), Some(c)) => {
                let (o, c) = (o as f64, c as f64);
                c >= o * (1.0 - e) && c <= o * (1.0 + e)
            }
            _ => true,
        };
        let candidates = rows[range.clone()].iter().filter(|r| output_ok(r)).count();
        if candidates > 0 {
            let k = rng.random_range(0..candidates);
            if let Some(row) = rows[range].iter().filter(|r| output_ok(r)).nth(k) {
                return row;
            }
        }
    }
    let distance = |row: &DatasetRow| {
        let dp = prompt.map_or(0.0, |p| row.prompt_len as f64 - p as f64);
        let dc = match (output, row.completion_len) {
            (Some(o), Some(c)) => c as f64 - o as f64,
            _ => 0.0,
        };
        dp * dp + dc * dc
    };
    let mut best = &rows[0];
    for row in rows {
        if distance(row) < distance(best) {
            best = row;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::patterns::{Preset, SineConfig};

    fn tokenizer() -> Tokenizer {
        Tokenizer::new()
    }

    #[test]
    fn poisson_rate_matches_with_a_fixed_seed() {
        // 600 s at 10 RPS: the count is Poisson(6000); ±4σ ≈ ±310.
        let rps = vec![10.0; 601];
        let arrivals =
            poisson_arrivals(&rps, 1000, 600_000, 1.0, &mut stream(42, 0)).expect("arrivals");
        let n = arrivals.len() as f64;
        assert!((n - 6010.0).abs() < 320.0, "{n} arrivals");
        // Inter-arrival gaps are exponential: mean ≈ 100 ms, coefficient of variation ≈ 1.
        let gaps: Vec<f64> = arrivals
            .windows(2)
            .map(|w| w[1].timestamp_ms as f64 - w[0].timestamp_ms as f64)
            .collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        assert!((mean - 100.0).abs() < 6.0, "mean gap {mean}");
        assert!(
            (var.sqrt() / mean - 1.0).abs() < 0.08,
            "cv {}",
            var.sqrt() / mean
        );
        assert!(arrivals
            .windows(2)
            .all(|w| w[0].timestamp_ms <= w[1].timestamp_ms));
        // Same seed, same arrivals.
        let again =
            poisson_arrivals(&rps, 1000, 600_000, 1.0, &mut stream(42, 0)).expect("arrivals");
        assert_eq!(arrivals, again);
    }

    #[test]
    fn poisson_follows_a_step_rate_and_zero_rates_emit_empty_lines() {
        let mut rps = vec![2.0; 200];
        rps.extend(vec![20.0; 200]);
        rps.extend(vec![0.0; 3]);
        let arrivals =
            poisson_arrivals(&rps, 1000, 402_000, 1.0, &mut stream(1, 0)).expect("arrivals");
        let low = arrivals
            .iter()
            .filter(|a| a.timestamp_ms < 200_000 && a.interval.is_some())
            .count() as f64;
        let high = arrivals
            .iter()
            .filter(|a| (200_000..400_000).contains(&a.timestamp_ms))
            .count() as f64;
        assert!((low - 400.0).abs() < 80.0, "{low}");
        assert!((high - 4000.0).abs() < 260.0, "{high}");
        let empty: Vec<_> = arrivals.iter().filter(|a| a.interval.is_none()).collect();
        assert!(!empty.is_empty() && empty.iter().all(|a| a.timestamp_ms >= 400_000));
        // qps_scale divides the rate.
        let scaled = poisson_arrivals(&[20.0; 301], 1000, 300_000, 10.0, &mut stream(3, 0))
            .expect("arrivals")
            .len() as f64;
        assert!((scaled - 602.0).abs() < 100.0, "{scaled}");
    }

    fn tiny_dataset() -> Dataset {
        let row = |p: &str, len: u64, c: Option<u64>| DatasetRow {
            prompt: p.into(),
            prompt_len: len,
            completion_len: c,
        };
        Dataset::from_rows(vec![
            row("short", 10, Some(5)),
            row("short-long-answer", 12, Some(400)),
            row("medium", 100, Some(50)),
            row("medium-no-answer", 110, None),
            row("long", 1000, Some(200)),
        ])
    }

    #[test]
    fn sharegpt_matching_follows_request_finder() {
        let ds = tiny_dataset();
        let mut rng = stream(9, 0);
        for _ in 0..50 {
            // ±50 % of 100 → 50..150: "medium" (output 50 within 25..75) or "medium-no-answer" (null passes).
            let row = find_request(&ds, Some(100), Some(50), &mut rng);
            assert!(row.prompt.starts_with("medium"), "{}", row.prompt);
            // Output target 400 rules out "short" at e = 0.5.
            let row = find_request(&ds, Some(11), Some(400), &mut rng);
            assert_eq!(row.prompt, "short-long-answer");
        }
        // Nothing within ±100 % of 2 tokens → the nearest row by distance: "short".
        assert_eq!(
            find_request(&ds, Some(2), Some(5), &mut rng).prompt,
            "short"
        );
        // Widening: 600 ± 50 % misses 1000, ± 70 % reaches it.
        assert_eq!(find_request(&ds, Some(600), None, &mut rng).prompt, "long");
        // Both "medium" rows are drawn.
        let drawn: std::collections::BTreeSet<String> = (0..100)
            .map(|_| find_request(&ds, Some(105), None, &mut rng).prompt.clone())
            .collect();
        assert_eq!(drawn.len(), 2, "{drawn:?}");
    }

    #[test]
    fn dataset_without_targets_is_round_robin() {
        let ds = tiny_dataset();
        let t = tokenizer();
        let mut selector = Selector::new(Some(&ds), &t, stream(1, 0));
        let first: std::collections::BTreeSet<String> = (0..5)
            .map(|_| selector.pick(None, None, 8).prompt)
            .collect();
        assert_eq!(first.len(), 5, "every row once per round");
    }

    #[test]
    fn synthetic_generation_round_trips_and_is_seeded() {
        let t = tokenizer();
        let mut config = GenerateConfig::new(
            20_000,
            Pattern::Sine(SineConfig {
                noise: 0.0,
                ..Preset::SevereFluctuation.config(6.0)
            }),
        );
        config.prompt_len = Some(Pattern::Sine(Preset::SlightFluctuation.config(64.0)));
        config.completion_len = Some(Pattern::Constant(7.0));
        config.seed = 11;
        let generated = generate(&config, None, &t).expect("generates");
        assert_eq!(generated.rps.len(), 21);
        let trace = &generated.trace;
        assert!(trace.num_requests() > 50, "{}", trace.num_requests());
        for entry in &trace.entries {
            assert!(entry.timestamp < 21_000);
            for r in &entry.requests {
                let len = r.prompt_length.expect("synthetic prompts have lengths");
                assert_eq!(t.count(&r.prompt) as u64, len);
                assert!((57..=71).contains(&len), "{len}");
                assert_eq!(r.output_length, Some(7));
            }
        }
        let mut file = Vec::new();
        trace.write(&mut file).expect("write");
        let back = Trace::read(file.as_slice()).expect("read");
        assert_eq!(&back, trace);
        let again = generate(&config, None, &t).expect("generates");
        assert_eq!(again.trace, generated.trace);
        config.seed = 12;
        assert_ne!(
            generate(&config, None, &t).expect("generates").trace,
            generated.trace
        );
    }

    #[test]
    fn dataset_generation_uses_row_lengths() {
        let t = tokenizer();
        let ds = tiny_dataset();
        let mut config = GenerateConfig::new(10_000, Pattern::Constant(5.0));
        config.prompt_len = Some(Pattern::Constant(100.0));
        let generated = generate(&config, Some(&ds), &t).expect("generates");
        for r in generated.trace.entries.iter().flat_map(|e| &e.requests) {
            assert!(r.prompt.starts_with("medium"));
            match r.prompt.as_str() {
                "medium" => assert_eq!(r.output_length, Some(50)),
                _ => assert_eq!(r.output_length, None),
            }
            assert!(matches!(r.prompt_length, Some(100) | Some(110)));
        }
    }

    #[test]
    fn bad_settings_are_errors() {
        let t = tokenizer();
        let mut config = GenerateConfig::new(0, Pattern::Constant(1.0));
        assert!(generate(&config, None, &t).is_err());
        config.duration_ms = 1000;
        config.interval_ms = 0;
        assert!(generate(&config, None, &t).is_err());
    }
}
