//! Latency histograms and the percentiles a run reports.
//!
//! An HDR histogram keeps every sample in fixed memory with a bounded relative
//! error (3 significant digits here), and histograms from several threads
//! merge exactly, so percentiles over all producers or consumers are true
//! percentiles, not averages of per-thread ones.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::time::Duration;

/// Samples are microseconds, up to an hour; longer ones count as an hour.
const HIGHEST_MICROS: u64 = 3_600_000_000;
const SIGNIFICANT_DIGITS: u8 = 3;

#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    micros: Histogram<u64>,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            micros: Histogram::new_with_bounds(1, HIGHEST_MICROS, SIGNIFICANT_DIGITS)
                .expect("constant histogram bounds are valid"),
        }
    }
}

impl LatencyHistogram {
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.micros.saturating_record(micros);
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        // Both have the same bounds, so nothing can fall outside them.
        self.micros
            .add(&other.micros)
            .expect("histograms with equal bounds merge");
    }

    pub fn summary(&self) -> LatencySummary {
        if self.micros.is_empty() {
            return LatencySummary::default();
        }
        let millis = |micros: u64| micros as f64 / 1000.0;
        LatencySummary {
            count: self.micros.len(),
            min: millis(self.micros.min()),
            mean: self.micros.mean() / 1000.0,
            p50: millis(self.micros.value_at_quantile(0.5)),
            p99: millis(self.micros.value_at_quantile(0.99)),
            p99_9: millis(self.micros.value_at_quantile(0.999)),
            max: millis(self.micros.max()),
        }
    }
}

/// Latency percentiles in milliseconds (microsecond resolution). Each
/// percentile is the highest value of its histogram bucket, as is `max`, so
/// `p50 <= p99 <= p99_9 <= max` always holds. All zero without samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub max: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64) -> bool {
        // Three significant digits: within 0.1 % (plus rounding to whole µs).
        (actual - expected).abs() <= expected * 0.001 + 0.001
    }

    #[test]
    fn percentiles_of_a_uniform_distribution() {
        let mut histogram = LatencyHistogram::default();
        for micros in 1..=10_000 {
            histogram.record(Duration::from_micros(micros));
        }
        let summary = histogram.summary();
        assert_eq!(summary.count, 10_000);
        assert!(close(summary.min, 0.001), "{summary:?}");
        assert!(close(summary.mean, 5.0005), "{summary:?}");
        assert!(close(summary.p50, 5.0), "{summary:?}");
        assert!(close(summary.p99, 9.9), "{summary:?}");
        assert!(close(summary.p99_9, 9.99), "{summary:?}");
        assert!(close(summary.max, 10.0), "{summary:?}");
    }

    #[test]
    fn percentiles_are_ordered_even_for_skewed_samples() {
        let mut histogram = LatencyHistogram::default();
        for _ in 0..999 {
            histogram.record(Duration::from_micros(250));
        }
        histogram.record(Duration::from_millis(1234));
        let s = histogram.summary();
        assert!(s.min <= s.p50 && s.p50 <= s.p99 && s.p99 <= s.p99_9 && s.p99_9 <= s.max);
        assert!(close(s.p99, 0.25), "{s:?}");
        assert!(close(s.max, 1234.0), "{s:?}");
    }

    #[test]
    fn merged_histograms_report_over_all_samples() {
        let mut fast = LatencyHistogram::default();
        let mut slow = LatencyHistogram::default();
        for _ in 0..90 {
            fast.record(Duration::from_millis(1));
        }
        for _ in 0..10 {
            slow.record(Duration::from_millis(100));
        }
        fast.merge(&slow);
        let s = fast.summary();
        assert_eq!(s.count, 100);
        assert!(close(s.p50, 1.0), "{s:?}");
        assert!(close(s.p99, 100.0), "{s:?}");
    }

    #[test]
    fn empty_and_extreme_samples() {
        assert_eq!(
            LatencyHistogram::default().summary(),
            LatencySummary::default()
        );
        let mut histogram = LatencyHistogram::default();
        histogram.record(Duration::ZERO);
        histogram.record(Duration::from_secs(100_000));
        let s = histogram.summary();
        assert_eq!(s.count, 2);
        assert_eq!(s.min, 0.0);
        // Beyond an hour saturates instead of being lost.
        assert!(close(s.max, 3_600_000.0), "{s:?}");
    }
}
