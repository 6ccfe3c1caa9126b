//! The run summary: counts, latency/TTFT/TPOT statistics, throughput and goodput over the replay records.
//!
//! Kept apart from the client so reports can summarise any record file. Conventions:
//! - Percentiles interpolate linearly between order statistics (numpy's default, pandas' `quantile`), which is
//!   how AIBrix's `plot-everything.py` computes P99.
//! - Latency, TTFT and TPOT statistics are over successful requests; failures are counted by `error_type`.
//! - `tpot` is AIBrix's `(end − first) / output_tokens`; `tpot_vllm` is vLLM's benchmark definition
//!   `(end − first) / (output_tokens − 1)` over requests with at least two tokens.
//! - The duration runs from the first `start_time` to the last `end_time`; throughputs divide by it.
//! - Goodput (DistServe's definition) counts successful requests meeting every given SLO, per second.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::replay::RequestRecord;

/// Service-level objectives for goodput; a `None` bound is not checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Slo {
    /// Time to first token, seconds.
    pub ttft_s: Option<f64>,
    /// Time per output token (AIBrix's definition), seconds.
    pub tpot_s: Option<f64>,
    /// End-to-end latency, seconds.
    pub e2e_s: Option<f64>,
}

impl Slo {
    /// True when no bound is set.
    pub fn is_empty(&self) -> bool {
        self.ttft_s.is_none() && self.tpot_s.is_none() && self.e2e_s.is_none()
    }

    /// True when `record` succeeded and meets every bound (a bound on a missing value fails).
    pub(crate) fn met_by(&self, record: &RequestRecord) -> bool {
        let within = |bound: Option<f64>, value: Option<f64>| match bound {
            None => true,
            Some(b) => value.is_some_and(|v| v <= b),
        };
        record.is_success()
            && within(self.ttft_s, record.ttft)
            && within(self.tpot_s, record.tpot)
            && within(self.e2e_s, Some(record.latency))
    }
}

/// Distribution statistics of one quantity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Number of values.
    pub count: usize,
    /// Mean (`None` without values, as are the rest).
    pub mean: Option<f64>,
    /// Minimum.
    pub min: Option<f64>,
    /// Median.
    pub p50: Option<f64>,
    /// 90th percentile.
    pub p90: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// Maximum.
    pub max: Option<f64>,
}

impl Stats {
    /// Statistics of `values` (NaNs are dropped).
    pub fn of(values: impl IntoIterator<Item = f64>) -> Self {
        let mut v: Vec<f64> = values.into_iter().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return Self::default();
        }
        v.sort_by(f64::total_cmp);
        Self {
            count: v.len(),
            mean: Some(v.iter().sum::<f64>() / v.len() as f64),
            min: v.first().copied(),
            p50: percentile(&v, 0.5),
            p90: percentile(&v, 0.9),
            p99: percentile(&v, 0.99),
            max: v.last().copied(),
        }
    }
}

/// The `q` quantile (0..=1) of sorted values, linearly interpolated; `None` when empty.
pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let position = q.clamp(0.0, 1.0) * (n - 1) as f64;
    let lower = position.floor() as usize;
    let upper = (lower + 1).min(n - 1);
    let frac = position - lower as f64;
    Some(sorted[lower] + (sorted[upper] - sorted[lower]) * frac)
}

/// Goodput against an SLO.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Goodput {
    /// The objectives.
    pub slo: Slo,
    /// Successful requests meeting every objective.
    pub requests: usize,
    /// Of all records.
    pub fraction: f64,
    /// Per second of the run.
    pub per_second: f64,
}

/// The summary of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Records (requests that were sent).
    pub count: usize,
    /// Successful requests.
    pub successes: usize,
    /// Failed requests (errors, timeouts, cancellations).
    pub failures: usize,
    /// Failures by `error_type`.
    pub failures_by_type: BTreeMap<String, usize>,
    /// Records by HTTP status (`none` when no response arrived).
    pub status_codes: BTreeMap<String, usize>,
    /// First start to last end, seconds.
    pub duration_s: f64,
    /// Successful requests per second.
    pub request_throughput: f64,
    /// Output tokens of successful requests per second.
    pub output_token_throughput: f64,
    /// Prompt tokens of successful requests.
    pub total_prompt_tokens: u64,
    /// Output tokens of successful requests.
    pub total_output_tokens: u64,
    /// End-to-end latency, seconds (successes).
    pub latency: Stats,
    /// Time to first token, seconds (successful streams).
    pub ttft: Stats,
    /// AIBrix's time per output token, seconds: (end − first) / output_tokens.
    pub tpot: Stats,
    /// vLLM's time per output token, seconds: (end − first) / (output_tokens − 1).
    pub tpot_vllm: Stats,
    /// Dispatch instant minus scheduled instant, milliseconds (open loop).
    pub send_error_ms: Stats,
    /// Goodput, when an SLO was given.
    pub goodput: Option<Goodput>,
}

impl Summary {
    /// Summarises `records`, with goodput against `slo` when it sets any bound.
    pub fn from_records(records: &[RequestRecord], slo: Option<Slo>) -> Self {
        let ok: Vec<&RequestRecord> = records.iter().filter(|r| r.is_success()).collect();
        let mut failures_by_type = BTreeMap::new();
        let mut status_codes = BTreeMap::new();
        for r in records {
            let code = r.status_code.map_or("none".to_string(), |c| c.to_string());
            *status_codes.entry(code).or_insert(0) += 1;
            if !r.is_success() {
                let kind = r.error_type.clone().unwrap_or_else(|| "unknown".into());
                *failures_by_type.entry(kind).or_insert(0) += 1;
            }
        }
        let start = records.iter().map(|r| r.start_time).reduce(f64::min);
        let end = records.iter().map(|r| r.end_time).reduce(f64::max);
        let duration_s = match (start, end) {
            (Some(s), Some(e)) if e > s => e - s,
            _ => 0.0,
        };
        let per_second = |n: f64| {
            if duration_s > 0.0 {
                n / duration_s
            } else {
                0.0
            }
        };
        let total_output_tokens: u64 = ok.iter().map(|r| r.output_tokens).sum();
        let goodput = slo.filter(|s| !s.is_empty()).map(|slo| {
            let requests = records.iter().filter(|r| slo.met_by(r)).count();
            Goodput {
                slo,
                requests,
                fraction: if records.is_empty() {
                    0.0
                } else {
                    requests as f64 / records.len() as f64
                },
                per_second: per_second(requests as f64),
            }
        });
        Self {
            count: records.len(),
            successes: ok.len(),
            failures: records.len() - ok.len(),
            failures_by_type,
            status_codes,
            duration_s,
            request_throughput: per_second(ok.len() as f64),
            output_token_throughput: per_second(total_output_tokens as f64),
            total_prompt_tokens: ok.iter().map(|r| r.prompt_tokens).sum(),
            total_output_tokens,
            latency: Stats::of(ok.iter().map(|r| r.latency)),
            ttft: Stats::of(ok.iter().filter_map(|r| r.ttft)),
            tpot: Stats::of(ok.iter().filter_map(|r| r.tpot)),
            tpot_vllm: Stats::of(ok.iter().filter_map(|r| match r.ttft {
                Some(ttft) if r.output_tokens >= 2 => {
                    Some((r.latency - ttft) / (r.output_tokens - 1) as f64)
                }
                _ => None,
            })),
            send_error_ms: Stats::of(records.iter().filter_map(|r| r.send_error_ms)),
            goodput,
        }
    }

    /// A few human-readable lines.
    pub fn to_text(&self) -> String {
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.1}", v * 1e3));
        let line = |name: &str, s: &Stats| {
            format!(
                "{name:<12} mean {:>9}  p50 {:>9}  p99 {:>9}  (ms, n={})\n",
                ms(s.mean),
                ms(s.p50),
                ms(s.p99),
                s.count
            )
        };
        let mut out = format!(
            "requests {}  ok {}  failed {}  duration {:.1}s  {:.2} req/s  {:.1} output tok/s\n",
            self.count,
            self.successes,
            self.failures,
            self.duration_s,
            self.request_throughput,
            self.output_token_throughput
        );
        if !self.failures_by_type.is_empty() {
            out.push_str(&format!("failures {:?}\n", self.failures_by_type));
        }
        out.push_str(&line("latency", &self.latency));
        out.push_str(&line("ttft", &self.ttft));
        out.push_str(&line("tpot", &self.tpot));
        out.push_str(&line("tpot (vLLM)", &self.tpot_vllm));
        if self.send_error_ms.count > 0 {
            let s = &self.send_error_ms;
            let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
            out.push_str(&format!(
                "send error   p50 {} ms  p99 {} ms  max {} ms\n",
                f(s.p50),
                f(s.p99),
                f(s.max)
            ));
        }
        if let Some(g) = &self.goodput {
            out.push_str(&format!(
                "goodput      {:.2} req/s ({} requests, {:.1}% within the SLO)\n",
                g.per_second,
                g.requests,
                g.fraction * 100.0
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_like_numpy() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&v, 0.5), Some(2.5));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&v, 1.0), Some(4.0));
        // numpy.percentile(range(1, 101), 99) == 99.01
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        let p99 = percentile(&hundred, 0.99).expect("value");
        assert!((p99 - 99.01).abs() < 1e-9, "{p99}");
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[7.0], 0.99), Some(7.0));
        let s = Stats::of([3.0, f64::NAN, 1.0, 2.0]);
        assert_eq!(
            (s.count, s.mean, s.p50, s.min, s.max),
            (3, Some(2.0), Some(2.0), Some(1.0), Some(3.0))
        );
    }

    fn record(
        id: u64,
        ok: bool,
        start: f64,
        latency: f64,
        ttft: f64,
        tokens: u64,
    ) -> RequestRecord {
        let mut r = RequestRecord::new(id, start, 0.0);
        r.end_time = start + latency;
        r.latency = latency;
        if ok {
            r.status = "success".into();
            r.status_code = Some(200);
            r.ttft = Some(ttft);
            r.output_tokens = tokens;
            r.prompt_tokens = 10;
            r.tpot = Some((latency - ttft) / tokens as f64);
        } else {
            r.status = "error".into();
            r.status_code = Some(503);
            r.error_type = Some("HttpStatus".into());
        }
        r
    }

    #[test]
    fn summary_counts_throughput_and_goodput() {
        let records = vec![
            record(0, true, 0.0, 1.0, 0.1, 10),
            record(1, true, 1.0, 2.0, 0.5, 10),
            record(2, false, 2.0, 0.1, 0.0, 0),
            record(3, true, 3.0, 1.0, 0.1, 1),
        ];
        let slo = Slo {
            ttft_s: Some(0.2),
            tpot_s: None,
            e2e_s: None,
        };
        let s = Summary::from_records(&records, Some(slo));
        assert_eq!((s.count, s.successes, s.failures), (4, 3, 1));
        assert_eq!(s.failures_by_type.get("HttpStatus"), Some(&1));
        assert_eq!(s.status_codes.get("200"), Some(&3));
        assert!((s.duration_s - 4.0).abs() < 1e-12);
        assert!((s.request_throughput - 0.75).abs() < 1e-12);
        assert_eq!(s.total_output_tokens, 21);
        assert_eq!(s.latency.count, 3);
        assert_eq!(s.latency.p50, Some(1.0));
        assert_eq!(
            s.tpot_vllm.count, 2,
            "single-token requests have no vLLM TPOT"
        );
        let tpot_vllm = s.tpot_vllm.max.expect("value");
        assert!((tpot_vllm - 1.5 / 9.0).abs() < 1e-12);
        let g = s.goodput.expect("slo given");
        assert_eq!(g.requests, 2);
        assert!((g.fraction - 0.5).abs() < 1e-12);
        assert!(Summary::from_records(&records, Some(Slo::default()))
            .goodput
            .is_none());
        assert!(s.to_text().contains("goodput"));
        let empty = Summary::from_records(&[], None);
        assert_eq!((empty.count, empty.duration_s), (0, 0.0));
    }
}
