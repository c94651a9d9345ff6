//! The one percentile definition every benchmark uses: **nearest rank**.
//!
//! The p-th percentile of n sorted samples is the sample at rank ⌈p/100 · n⌉ (counting from
//! 1), clamped to 1..=n: the smallest sample such that at least p % of the samples are at or
//! below it. It is always a measured value (never an interpolation), p100 is the maximum,
//! and a p99 of 100 samples is the 99th sample, not the 100th. Latency figures of different
//! benchmarks are comparable only because they all use this definition.

use std::time::Duration;

/// The `p`-th percentile (0 ≤ p ≤ 100, by nearest rank) of `sorted`, which must be in
/// ascending order; `None` when there are no samples. `p` is taken to a millionth of a
/// percent, so that 99.9 means 99.9 exactly rather than its nearest binary fraction.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    // p in millionths of a percent; NaN counts as 0 (the minimum).
    let scaled = (p.clamp(0.0, 100.0) * 1e6).round() as u128;
    let rank = (n as u128 * scaled).div_ceil(100_000_000);
    let rank = usize::try_from(rank).unwrap_or(n).clamp(1, n);
    sorted.get(rank - 1).copied()
}

/// Latencies (or any durations) sorted once, for their percentiles.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Distribution {
    sorted: Vec<Duration>,
}

impl Distribution {
    /// Sorts `samples`.
    pub fn new(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        Distribution { sorted: samples }
    }

    /// How many samples there are.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// The `p`-th percentile by nearest rank (see [`percentile`]).
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        percentile(&self.sorted, p)
    }

    /// The `p`-th percentile in milliseconds; NaN when there are no samples.
    pub fn millis(&self, p: f64) -> f64 {
        self.percentile(p)
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    }

    /// The largest sample.
    pub fn max(&self) -> Option<Duration> {
        self.sorted.last().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_of_one_to_a_hundred_is_the_percent_itself() {
        let samples: Vec<u32> = (1..=100).collect();
        for p in [1u32, 50, 90, 99, 100] {
            assert_eq!(percentile(&samples, f64::from(p)), Some(p));
        }
        assert_eq!(percentile(&samples, 0.0), Some(1));
        assert_eq!(percentile(&samples, 99.5), Some(100));
        assert_eq!(percentile(&samples, 0.5), Some(1));
    }

    #[test]
    fn nearest_rank_rounds_the_rank_up_never_interpolates() {
        // n = 10: p50 is rank 5, p90 rank 9, p91 rank ⌈9.1⌉ = 10; a rounded index would
        // give 6 (round(0.5 · 9) = 5 → the 6th) for p50.
        let samples = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100];
        assert_eq!(percentile(&samples, 50.0), Some(50));
        assert_eq!(percentile(&samples, 90.0), Some(90));
        assert_eq!(percentile(&samples, 91.0), Some(100));
        assert_eq!(percentile(&samples, 100.0), Some(100));
        assert_eq!(percentile(&samples, 10.0), Some(10));
        assert_eq!(percentile(&samples, 10.5), Some(20));
    }

    #[test]
    fn p99_9_of_a_thousand_is_the_999th() {
        let samples: Vec<u32> = (1..=1000).collect();
        assert_eq!(percentile(&samples, 99.9), Some(999));
        assert_eq!(percentile(&samples, 99.95), Some(1000));
        assert_eq!(percentile(&samples, 99.0), Some(990));
    }

    #[test]
    fn edge_cases() {
        assert_eq!(percentile::<u8>(&[], 50.0), None);
        assert_eq!(percentile(&[7], 0.0), Some(7));
        assert_eq!(percentile(&[7], 100.0), Some(7));
        assert_eq!(percentile(&[1, 2], f64::NAN), Some(1));
        assert_eq!(percentile(&[1, 2], 250.0), Some(2));
        assert_eq!(percentile(&[1, 2], -3.0), Some(1));
    }

    #[test]
    fn distribution_sorts_and_reports_milliseconds() {
        let d = Distribution::new(vec![
            Duration::from_millis(30),
            Duration::from_millis(10),
            Duration::from_millis(20),
        ]);
        assert_eq!(d.len(), 3);
        assert_eq!(d.percentile(50.0), Some(Duration::from_millis(20)));
        assert_eq!(d.max(), Some(Duration::from_millis(30)));
        assert!((d.millis(100.0) - 30.0).abs() < 1e-9);
        assert!(Distribution::default().millis(50.0).is_nan());
    }
}
