//! Histogram bucket bounds, exactly vLLM V1's: a dashboard or an autoscaler that reads a quantile from
//! `_bucket` series sees the same `le` edges as on a real vLLM. Token-count histograms scale with the context
//! length ([`one_two_five`]); the latency ones are fixed lists.

/// Time to first token.
pub const TTFT: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];
/// Inter-token latency and time per output token.
pub const ITL: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
    40.0, 80.0,
];
/// Request-level latencies (e2e, queue, inference, prefill, decode).
pub const REQUEST_LATENCY: &[f64] = &[
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
    480.0, 960.0, 1920.0, 7680.0,
];
/// Tokens per engine step.
pub const ITERATION_TOKENS: &[f64] = &[
    1.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0,
];
/// The `n` parameter.
pub const N: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0];

/// 1, 2, 5 × 10^k for every value ≤ `max` (vLLM's `build_1_2_5_buckets`).
pub fn one_two_five(max: u64) -> Vec<f64> {
    let mut out = Vec::new();
    let mut exponent = 1u64;
    loop {
        for mantissa in [1u64, 2, 5] {
            let value = mantissa * exponent;
            if value > max {
                return out;
            }
            out.push(value as f64);
        }
        exponent *= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_two_five_buckets_for_4096() {
        assert_eq!(
            one_two_five(4096),
            vec![1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0]
        );
    }
}
