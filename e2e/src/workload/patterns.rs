//! Traffic and length patterns: the per-interval series a workload is generated from.
//!
//! This module owns the shapes and their formulas, kept apart from arrivals and prompt selection so each shape
//! can be checked against its formula. AIBrix's synthetic patterns (`workloads.md` §3) are a noisy sine:
//!
//! ```text
//! L        = duration_ms / interval_ms + 1          (intervals t = 0 … L−1)
//! ω        = 2π · period / L                         (period = full cycles over the trace)
//! value(t) = round(A · sin(ω·t) + B + N(0, σ²))      (round half to even, as Python's round)
//! only_rise: value(t) = max(value(t−1), value(t))
//! ```
//!
//! with the presets `quick_rising`, `slow_rising`, `slight_fluctuation`, `severe_fluctuation` and `constant`
//! ([`Preset`]) and the JSON config form ([`SinePatternJson`]: `fluctuate`, `mean`, `noise`, `period_len_ms`,
//! `only_rise`). Two shapes are the harness's own: a plain constant (AIBrix's `constant` trace type, no noise)
//! and a step/trend list such as the docs experiment's 1 → 4 → 8 → 10 → 2 → 6 RPS ([`Pattern::Steps`]), either
//! held (a staircase) or linearly interpolated (a trend).
//!
//! Clamping is the caller's business: lengths below 1 are raised to 1 and rates below 0 to 0 by
//! [`super::generate`].

use rand::Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use super::WorkloadError;

/// AIBrix's preset mean for traffic patterns (requests per second).
pub const TRAFFIC_PRESET_MEAN: f64 = 6.0;
/// AIBrix's preset mean for prompt and completion length patterns (tokens).
pub const LENGTH_PRESET_MEAN: f64 = 1024.0;

/// Number of intervals of a trace: `duration_ms / interval_ms + 1` (AIBrix's `L`).
pub(crate) fn num_intervals(duration_ms: u64, interval_ms: u64) -> usize {
    (duration_ms / interval_ms.max(1)) as usize + 1
}

/// AIBrix's named sine presets (`to_fluctuate_pattern_config`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Preset {
    /// Rises to 1.5 × mean within the first quarter of the first of 5 cycles, then stays (only_rise).
    QuickRising,
    /// A quarter sine over the whole trace: mean → 1.5 × mean (only_rise).
    SlowRising,
    /// ±10 % around the mean, one cycle.
    SlightFluctuation,
    /// ±50 % around the mean, twelve cycles.
    SevereFluctuation,
    /// The mean with σ = 0.1 noise.
    Constant,
}

impl Preset {
    /// The sine parameters of this preset around `mean` (`workloads.md` §3 table).
    pub fn config(self, mean: f64) -> SineConfig {
        let (amplitude, period, only_rise) = match self {
            Self::QuickRising => (0.5 * mean, 5.0, true),
            Self::SlowRising => (0.5 * mean, 0.25, true),
            Self::SlightFluctuation => (0.1 * mean, 1.0, false),
            Self::SevereFluctuation => (0.5 * mean, 12.0, false),
            Self::Constant => (0.0, 12.0, false),
        };
        SineConfig {
            amplitude,
            mean,
            noise: 0.1,
            period,
            only_rise,
        }
    }
}

/// The parameters of the sine formula.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SineConfig {
    /// A: amplitude.
    pub amplitude: f64,
    /// B: the level the sine oscillates around.
    pub mean: f64,
    /// σ: standard deviation of the Gaussian noise added before rounding.
    pub noise: f64,
    /// Number of full sine cycles over the whole trace.
    pub period: f64,
    /// Never decrease: each value is at least the previous one.
    pub only_rise: bool,
}

impl SineConfig {
    /// ω = 2π · period / L.
    pub(crate) fn omega(&self, len: usize) -> f64 {
        2.0 * std::f64::consts::PI * self.period / len.max(1) as f64
    }

    /// The noise-free value A · sin(ω·t) + B (before rounding).
    pub fn expected(&self, t: usize, len: usize) -> f64 {
        self.amplitude * (self.omega(len) * t as f64).sin() + self.mean
    }
}

/// AIBrix's `--*-pattern-config` JSON (`{"fluctuate", "mean", "noise", "period_len_ms", "only_rise"}`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinePatternJson {
    /// A.
    pub fluctuate: f64,
    /// B.
    pub mean: f64,
    /// σ (default 0).
    #[serde(default)]
    pub noise: f64,
    /// Length of one cycle in milliseconds; period = duration_ms / period_len_ms.
    pub period_len_ms: f64,
    /// Never decrease (default false).
    #[serde(default)]
    pub only_rise: bool,
}

impl SinePatternJson {
    /// Parses the JSON text of a config (the file's contents or an inline object).
    pub fn parse(text: &str) -> Result<Self, WorkloadError> {
        serde_json::from_str(text).map_err(|e| {
            WorkloadError::Pattern(format!(
                "pattern config {text:?} is not {{\"fluctuate\", \"mean\", \"noise\", \"period_len_ms\", \"only_rise\"}}: {e}"
            ))
        })
    }

    /// The sine parameters for a trace of `duration_ms`.
    pub fn to_config(&self, duration_ms: u64) -> Result<SineConfig, WorkloadError> {
        if !(self.period_len_ms > 0.0 && self.period_len_ms.is_finite()) {
            return Err(WorkloadError::Pattern(format!(
                "period_len_ms must be > 0, got {}",
                self.period_len_ms
            )));
        }
        if !(self.noise >= 0.0 && self.noise.is_finite()) {
            return Err(WorkloadError::Pattern(format!(
                "noise must be >= 0, got {}",
                self.noise
            )));
        }
        if !self.fluctuate.is_finite() || !self.mean.is_finite() {
            return Err(WorkloadError::Pattern(
                "fluctuate and mean must be finite numbers".into(),
            ));
        }
        Ok(SineConfig {
            amplitude: self.fluctuate,
            mean: self.mean,
            noise: self.noise,
            period: duration_ms as f64 / self.period_len_ms,
            only_rise: self.only_rise,
        })
    }
}

/// How a step list fills the intervals between its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepShape {
    /// A staircase: the trace is cut into equal parts, each holding one value.
    #[default]
    Hold,
    /// A trend: values are knots spread evenly from the first to the last interval, joined by straight lines.
    Linear,
}

/// A per-interval series description.
#[derive(Debug, Clone, PartialEq)]
pub enum Pattern {
    /// The same value in every interval, no noise (AIBrix's `constant` trace type).
    Constant(f64),
    /// AIBrix's noisy sine.
    Sine(SineConfig),
    /// A step or trend list, optionally with Gaussian noise of standard deviation `noise` (not rounded).
    Steps {
        /// The levels, in order.
        values: Vec<f64>,
        /// Staircase or trend.
        shape: StepShape,
        /// σ of added noise (0 for none).
        noise: f64,
    },
}

impl Pattern {
    /// Parses a step list such as `1,4,8,10,2,6` (commas, spaces or `->`/`→` as separators).
    pub fn parse_steps(text: &str, shape: StepShape) -> Result<Self, WorkloadError> {
        let values = text
            .split(|c: char| c == ',' || c == '→' || c.is_whitespace() || c == '>')
            .map(|s| s.trim_end_matches('-').trim())
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite() && *v >= 0.0)
                    .ok_or_else(|| {
                        WorkloadError::Pattern(format!(
                            "step value {s:?} in {text:?} is not a number >= 0"
                        ))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if values.is_empty() {
            return Err(WorkloadError::Pattern(format!(
                "step list {text:?} has no values (write e.g. 1,4,8,10,2,6)"
            )));
        }
        Ok(Self::Steps {
            values,
            shape,
            noise: 0.0,
        })
    }

    /// The noise-free value at interval `t` of `len` (sine before rounding).
    pub fn expected(&self, t: usize, len: usize) -> f64 {
        match self {
            Self::Constant(v) => *v,
            Self::Sine(config) => config.expected(t, len),
            Self::Steps { values, shape, .. } => step_value(values, *shape, t, len),
        }
    }

    /// The series for `len` intervals. Noise is drawn from `rng`; nothing is clamped.
    pub fn series(&self, len: usize, rng: &mut impl Rng) -> Result<Vec<f64>, WorkloadError> {
        match self {
            Self::Constant(v) => Ok(vec![*v; len]),
            Self::Sine(config) => {
                let normal = normal(config.noise)?;
                let mut out: Vec<f64> = Vec::with_capacity(len);
                for t in 0..len {
                    let noise = if config.noise > 0.0 {
                        normal.sample(rng)
                    } else {
                        0.0
                    };
                    let mut value = (config.expected(t, len) + noise).round_ties_even();
                    if config.only_rise {
                        if let Some(&previous) = out.last() {
                            value = value.max(previous);
                        }
                    }
                    out.push(value);
                }
                Ok(out)
            }
            Self::Steps {
                values,
                shape,
                noise,
            } => {
                let normal = normal(*noise)?;
                Ok((0..len)
                    .map(|t| {
                        let v = step_value(values, *shape, t, len);
                        if *noise > 0.0 {
                            v + normal.sample(rng)
                        } else {
                            v
                        }
                    })
                    .collect())
            }
        }
    }
}

fn normal(sigma: f64) -> Result<Normal<f64>, WorkloadError> {
    Normal::new(0.0, sigma.max(0.0))
        .map_err(|e| WorkloadError::Pattern(format!("noise σ = {sigma}: {e}")))
}

fn step_value(values: &[f64], shape: StepShape, t: usize, len: usize) -> f64 {
    let n = values.len();
    if n == 0 {
        return 0.0;
    }
    match shape {
        StepShape::Hold => {
            let index = (t * n) / len.max(1);
            values[index.min(n - 1)]
        }
        StepShape::Linear => {
            if n == 1 || len <= 1 {
                return values[0];
            }
            let x = t as f64 / (len - 1) as f64 * (n - 1) as f64;
            let i = (x.floor() as usize).min(n - 2);
            let frac = x - i as f64;
            values[i] + (values[i + 1] - values[i]) * frac
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn rng() -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(7)
    }

    fn noiseless(preset: Preset, mean: f64) -> Pattern {
        Pattern::Sine(SineConfig {
            noise: 0.0,
            ..preset.config(mean)
        })
    }

    #[test]
    fn interval_count_is_aibrix_l() {
        assert_eq!(num_intervals(60_000, 1000), 61);
        assert_eq!(num_intervals(59_999, 1000), 60);
        assert_eq!(num_intervals(1_500_000, 1000), 1501);
    }

    #[test]
    fn noiseless_sine_is_the_rounded_formula() {
        let len = 101;
        for preset in [Preset::SlightFluctuation, Preset::SevereFluctuation] {
            let pattern = noiseless(preset, TRAFFIC_PRESET_MEAN);
            let series = pattern.series(len, &mut rng()).expect("series");
            let config = preset.config(TRAFFIC_PRESET_MEAN);
            for (t, v) in series.iter().enumerate() {
                let formula = (config.amplitude
                    * (2.0 * std::f64::consts::PI * config.period / len as f64 * t as f64).sin()
                    + config.mean)
                    .round_ties_even();
                assert_eq!(*v, formula, "{preset:?} t={t}");
            }
        }
    }

    #[test]
    fn presets_have_their_documented_shapes() {
        let len = 601;
        let mean = TRAFFIC_PRESET_MEAN;
        // quick_rising: 6 → 9 within a quarter of the first of 5 cycles (t ≈ L/20), then flat.
        let quick = Pattern::Sine(Preset::QuickRising.config(mean))
            .series(len, &mut rng())
            .expect("series");
        assert!(quick.windows(2).all(|w| w[1] >= w[0]), "only rises");
        assert!((5.0..=7.0).contains(&quick[0]));
        assert!(quick[len / 20 + 2] >= 9.0, "{}", quick[len / 20 + 2]);
        assert!(quick[len / 20 + 2..].iter().all(|&v| v == quick[len - 1]));
        // slow_rising: a quarter sine over the whole trace.
        let slow = Pattern::Sine(Preset::SlowRising.config(mean))
            .series(len, &mut rng())
            .expect("series");
        assert!(slow.windows(2).all(|w| w[1] >= w[0]));
        assert!(slow[len / 4] < 9.0 && slow[len - 1] >= 9.0);
        // slight: 5.4–6.6 → rounded 5..7; severe: 3–9 with twelve maxima.
        let slight = Pattern::Sine(Preset::SlightFluctuation.config(mean))
            .series(len, &mut rng())
            .expect("series");
        assert!(slight.iter().all(|v| (5.0..=7.0).contains(v)));
        let severe = Pattern::Sine(Preset::SevereFluctuation.config(mean))
            .series(len, &mut rng())
            .expect("series");
        assert!(severe.iter().all(|v| (2.0..=10.0).contains(v)));
        assert!(severe.contains(&9.0) && severe.contains(&3.0));
        let cycles = noiseless(Preset::SevereFluctuation, mean)
            .series(len, &mut rng())
            .expect("series")
            .windows(2)
            .filter(|w| w[0] < mean && w[1] >= mean)
            .count();
        assert!((11..=12).contains(&cycles), "{cycles} upward crossings");
        // constant preset: the mean (σ = 0.1 rarely moves a rounded value).
        let constant = Pattern::Sine(Preset::Constant.config(mean))
            .series(len, &mut rng())
            .expect("series");
        assert!(constant
            .iter()
            .all(|v| (mean - 1.0..=mean + 1.0).contains(v)));
    }

    #[test]
    fn noisy_sine_stays_within_one_of_the_formula() {
        let len = 1001;
        let config = Preset::SevereFluctuation.config(LENGTH_PRESET_MEAN);
        let series = Pattern::Sine(config)
            .series(len, &mut rng())
            .expect("series");
        for (t, v) in series.iter().enumerate() {
            assert!((v - config.expected(t, len)).abs() <= 1.0, "t={t}");
        }
    }

    #[test]
    fn json_config_maps_onto_the_formula() {
        let json = SinePatternJson::parse(
            r#"{"fluctuate": 2, "mean": 6, "noise": 0.1, "period_len_ms": 300000, "only_rise": false}"#,
        )
        .expect("shipped traffic-config.json");
        let config = json.to_config(600_000).expect("valid");
        assert_eq!(config.amplitude, 2.0);
        assert_eq!(config.mean, 6.0);
        assert_eq!(config.period, 2.0);
        assert!(!config.only_rise);
        assert!(SinePatternJson::parse(r#"{"mean": 6}"#).is_err());
        assert!(
            SinePatternJson::parse(r#"{"fluctuate": 1, "mean": 6, "period_len_ms": 0}"#)
                .expect("parses")
                .to_config(1000)
                .is_err()
        );
    }

    #[test]
    fn steps_hold_and_interpolate() {
        let hold = Pattern::parse_steps("1 → 4 → 8 → 10 → 2 → 6", StepShape::Hold).expect("steps");
        let series = hold.series(60, &mut rng()).expect("series");
        assert_eq!(series[0], 1.0);
        assert_eq!(series[9], 1.0);
        assert_eq!(series[10], 4.0);
        assert_eq!(series[59], 6.0);
        let mut counts = std::collections::BTreeMap::new();
        for v in &series {
            *counts.entry(*v as u64).or_insert(0) += 1;
        }
        assert!(counts.values().all(|&c| c == 10), "{counts:?}");

        let trend = Pattern::parse_steps("0,10", StepShape::Linear).expect("steps");
        let series = trend.series(11, &mut rng()).expect("series");
        for (t, v) in series.iter().enumerate() {
            assert!((v - t as f64).abs() < 1e-9);
        }
        assert_eq!(
            Pattern::parse_steps("1,4,8", StepShape::Hold).expect("ok"),
            Pattern::parse_steps("1->4->8", StepShape::Hold).expect("ok")
        );
        assert!(Pattern::parse_steps("", StepShape::Hold).is_err());
        assert!(Pattern::parse_steps("1,x", StepShape::Hold).is_err());
        assert!(Pattern::parse_steps("1,-2", StepShape::Hold).is_err());
    }
}
