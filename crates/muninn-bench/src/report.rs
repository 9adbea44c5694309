//! Turning measurements into printed figures: latency percentiles, human units, and the
//! targets each figure is held against (PASS/MISS).

use std::time::Duration;

/// Percentiles of a set of latencies (nearest rank).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LatencySummary {
    pub n: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub mean: Duration,
    pub max: Duration,
}

impl LatencySummary {
    pub(crate) fn of(mut samples: Vec<Duration>) -> LatencySummary {
        if samples.is_empty() {
            return LatencySummary::default();
        }
        samples.sort_unstable();
        let rank = |quantile: f64| {
            let index =
                ((quantile * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1;
            samples[index]
        };
        let total: Duration = samples.iter().sum();
        LatencySummary {
            n: samples.len(),
            p50: rank(0.50),
            p99: rank(0.99),
            mean: total / samples.len() as u32,
            max: samples[samples.len() - 1],
        }
    }

    /// `p50 1.20 ms, p99 3.40 ms, mean 1.31 ms, max 4.00 ms (n=200)`.
    pub(crate) fn describe(&self) -> String {
        format!(
            "p50 {}, p99 {}, mean {}, max {} (n={})",
            millis(self.p50),
            millis(self.p99),
            millis(self.mean),
            millis(self.max),
            self.n
        )
    }
}

/// `12.34 ms`.
pub(crate) fn millis(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1e3)
}

/// `1.23 s`.
pub(crate) fn seconds(duration: Duration) -> String {
    format!("{:.2} s", duration.as_secs_f64())
}

/// `1.50 GiB`, `12.0 MiB`, `900 B`.
pub(crate) fn bytes(n_bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let value = n_bytes as f64;
    if value >= KIB * KIB * KIB {
        format!("{:.2} GiB", value / (KIB * KIB * KIB))
    } else if value >= KIB * KIB {
        format!("{:.1} MiB", value / (KIB * KIB))
    } else if value >= KIB {
        format!("{:.1} KiB", value / KIB)
    } else {
        format!("{n_bytes} B")
    }
}

/// `1234567` → `1,234,567`.
pub(crate) fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A figure held against a target.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub name: String,
    pub measured: String,
    pub goal: String,
    pub met: bool,
    /// Why the verdict needs a caveat (e.g. a run smaller than the target assumes).
    pub note: Option<String>,
}

impl Target {
    pub(crate) fn line(&self) -> String {
        let verdict = if self.met { "PASS" } else { "MISS" };
        let note = self
            .note
            .as_ref()
            .map(|note| format!(" ({note})"))
            .unwrap_or_default();
        format!(
            "{verdict}  {}: {} (target {}){note}",
            self.name, self.measured, self.goal
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let samples: Vec<Duration> = (1..=200).map(Duration::from_millis).collect();
        let summary = LatencySummary::of(samples);
        assert_eq!(summary.p50, Duration::from_millis(100));
        assert_eq!(summary.p99, Duration::from_millis(198));
        assert_eq!(summary.max, Duration::from_millis(200));
        assert_eq!(
            LatencySummary::of(vec![Duration::from_millis(5)]).p99,
            Duration::from_millis(5)
        );
    }

    #[test]
    fn units_read_well() {
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(millis(Duration::from_micros(1250)), "1.25 ms");
    }
}
