//! The tail-sampling policies and bounds, as the server receives them (already parsed by the
//! caller), with the checks that name the offending key.

use std::time::Duration;

use muninn_model::sampling::RATE_PPM_MAX;
use serde::Serialize;

/// Tail sampling in the collector (Netflix's second stage): spans are stored as they arrive,
/// each trace is summarised for `decision_wait` after its first span, then kept or dropped by
/// the policies; the spans of dropped traces are left out when the head is written to blocks.
#[derive(Debug, Clone, PartialEq)]
pub struct TailSamplingConfig {
    /// How long after a trace's first span its decision is taken.
    pub decision_wait: Duration,
    /// At most this many traces wait for a decision; past it the oldest are decided early.
    pub max_buffered_traces: usize,
    /// How long a decision is remembered, so that late spans follow it and the flush leaves a
    /// dropped trace out. Keep it above `flush_max_age`.
    pub decision_memory: Duration,
    /// At most this many decisions are remembered; past it the oldest are forgotten.
    pub max_decisions: usize,
    /// Keep every trace with a span whose status is error.
    pub keep_errors: bool,
    /// Keep every trace where a consumer retried (attempt 2 or more).
    pub keep_retries: bool,
    /// Keep every trace whose spans cover more than this, from the first start to the last end.
    pub slow_trace: Option<Duration>,
    /// Keep every trace with a span longer than this.
    pub slow_span: Option<Duration>,
    /// Keep every trace with a span of one of these services.
    pub services: Vec<String>,
    /// Keep every trace with a span of one of these event types.
    pub event_types: Vec<String>,
    /// The share of the other traces kept, in parts per million, consistently by trace id.
    pub sample_rate_ppm: u32,
}

impl Default for TailSamplingConfig {
    fn default() -> Self {
        TailSamplingConfig {
            decision_wait: Duration::from_secs(10),
            max_buffered_traces: 100_000,
            decision_memory: Duration::from_secs(15 * 60),
            max_decisions: 1_000_000,
            keep_errors: true,
            keep_retries: true,
            slow_trace: None,
            slow_span: None,
            services: Vec::new(),
            event_types: Vec::new(),
            sample_rate_ppm: 100_000,
        }
    }
}

/// A tail-sampling setting that cannot work, with the key (as in `[tail_sampling]`) and what
/// would be valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tail_sampling.{key}: {message}")]
pub struct TailSamplingConfigError {
    pub key: &'static str,
    pub message: String,
}

/// At most this many services or event types are kept at 100%.
pub const MAX_KEPT_NAMES: usize = 1000;

impl TailSamplingConfig {
    /// Checks every bound; the error names the key.
    pub fn validate(&self) -> Result<(), TailSamplingConfigError> {
        let error = |key, message: String| Err(TailSamplingConfigError { key, message });
        if self.decision_wait.is_zero() || self.decision_wait > Duration::from_secs(3600) {
            return error(
                "decision_wait",
                "must be above zero and at most 1h, like 10s".into(),
            );
        }
        if !(1..=10_000_000).contains(&self.max_buffered_traces) {
            return error(
                "max_buffered_traces",
                "must be a whole number from 1 to 10000000, like 100000".into(),
            );
        }
        if self.decision_memory < self.decision_wait {
            return error(
                "decision_memory",
                "must be at least decision_wait (and above flush_max_age), like 15m".into(),
            );
        }
        if !(1..=100_000_000).contains(&self.max_decisions) {
            return error(
                "max_decisions",
                "must be a whole number from 1 to 100000000, like 1000000".into(),
            );
        }
        for (key, threshold) in [
            ("slow_trace", self.slow_trace),
            ("slow_span", self.slow_span),
        ] {
            if threshold.is_some_and(|duration| duration.is_zero()) {
                return error(key, "must be above zero, like 2s or 500ms".into());
            }
        }
        for (key, names) in [
            ("services", &self.services),
            ("event_types", &self.event_types),
        ] {
            if names.len() > MAX_KEPT_NAMES {
                return error(key, format!("at most {MAX_KEPT_NAMES} names"));
            }
            if names.iter().any(|name| name.is_empty() || name.len() > 512) {
                return error(key, "names must be 1 to 512 bytes".into());
            }
        }
        if self.sample_rate_ppm > RATE_PPM_MAX {
            return error(
                "sample_rate",
                "must be a number from 0 to 1, like 0.1".into(),
            );
        }
        Ok(())
    }
}

/// `10s`, `500ms`, `15m`, `1h`: the shortest exact form, as the configuration file takes it.
pub(crate) fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    match millis {
        0 => "0s".into(),
        _ if millis.is_multiple_of(3_600_000) => format!("{}h", millis / 3_600_000),
        _ if millis.is_multiple_of(60_000) => format!("{}m", millis / 60_000),
        _ if millis.is_multiple_of(1000) => format!("{}s", millis / 1000),
        _ => format!("{millis}ms"),
    }
}

/// The configuration as `GET /api/v1/sampling/tail` shows it, with the file's key names.
#[derive(Debug, Serialize)]
pub(crate) struct ConfigView {
    decision_wait: String,
    max_buffered_traces: usize,
    decision_memory: String,
    max_decisions: usize,
    keep_errors: bool,
    keep_retries: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    slow_trace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    slow_span: Option<String>,
    services: Vec<String>,
    event_types: Vec<String>,
    sample_rate: f64,
}

impl From<&TailSamplingConfig> for ConfigView {
    fn from(config: &TailSamplingConfig) -> Self {
        let mut services = config.services.clone();
        services.sort();
        let mut event_types = config.event_types.clone();
        event_types.sort();
        ConfigView {
            decision_wait: format_duration(config.decision_wait),
            max_buffered_traces: config.max_buffered_traces,
            decision_memory: format_duration(config.decision_memory),
            max_decisions: config.max_decisions,
            keep_errors: config.keep_errors,
            keep_retries: config.keep_retries,
            slow_trace: config.slow_trace.map(format_duration),
            slow_span: config.slow_span.map(format_duration),
            services,
            event_types,
            sample_rate: f64::from(config.sample_rate_ppm) / f64::from(RATE_PPM_MAX),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_bad_values_name_their_key() {
        assert_eq!(TailSamplingConfig::default().validate(), Ok(()));
        let bad = |change: fn(&mut TailSamplingConfig)| {
            let mut config = TailSamplingConfig::default();
            change(&mut config);
            config.validate().expect_err("invalid").to_string()
        };
        assert!(
            bad(|config| config.decision_wait = Duration::ZERO)
                .starts_with("tail_sampling.decision_wait:")
        );
        assert!(
            bad(|config| config.max_buffered_traces = 0)
                .starts_with("tail_sampling.max_buffered_traces:")
        );
        assert!(
            bad(|config| config.decision_memory = Duration::from_secs(1))
                .starts_with("tail_sampling.decision_memory:")
        );
        assert!(
            bad(|config| config.slow_span = Some(Duration::ZERO))
                .starts_with("tail_sampling.slow_span:")
        );
        assert!(
            bad(|config| config.services = vec![String::new()])
                .starts_with("tail_sampling.services:")
        );
        assert!(
            bad(|config| config.sample_rate_ppm = 1_000_001)
                .starts_with("tail_sampling.sample_rate:")
        );
    }

    #[test]
    fn durations_print_in_their_shortest_exact_form() {
        assert_eq!(format_duration(Duration::from_secs(10)), "10s");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_secs(900)), "15m");
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
    }
}
