//! The tracer's settings, their defaults, and their validation (errors name the setting).

use std::time::Duration;

use crate::propagation::Format;

/// Settings of a [`crate::Tracer`]. `Default` gives production defaults; the builder's
/// methods change one each.
#[derive(Debug, Clone)]
pub struct Options {
    /// Share of events traced until the collector's sampling config arrives (and when it has
    /// no rule for an event type). 0.0 to 1.0.
    pub default_rate: f64,
    /// Follow the sampled flag of an incoming `traceparent`/B3 context instead of deciding by
    /// event id.
    pub honour_upstream_sampled: bool,
    /// Trace-context formats written into outgoing headers (all known formats are read).
    pub inject: Vec<Format>,
    /// Most spans waiting for export; past it new spans are dropped and counted.
    pub max_queue_spans: usize,
    /// Most bytes (estimated) held by spans waiting for export; past it new spans are dropped.
    pub max_queue_bytes: usize,
    /// Spans per export request.
    pub batch_size: usize,
    /// Longest a span waits before its batch is sent.
    pub batch_timeout: Duration,
    /// How often event-seen counts are sent.
    pub counts_interval: Duration,
    /// Most (route, minute) count cells kept while the collector is unreachable.
    pub max_pending_counts: usize,
    /// How often the sampling config is fetched.
    pub sampling_refresh: Duration,
    /// Timeout of one HTTP request to the collector.
    pub request_timeout: Duration,
    /// Attempts per batch (the first one included) before it is dropped and counted.
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt, with full jitter, up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// How long `shutdown` may take to send what is left.
    pub shutdown_timeout: Duration,
    /// Compress request bodies with gzip.
    pub gzip: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            default_rate: 1.0,
            honour_upstream_sampled: false,
            inject: vec![Format::W3c],
            max_queue_spans: 8192,
            max_queue_bytes: 16 << 20,
            batch_size: 512,
            batch_timeout: Duration::from_secs(1),
            counts_interval: Duration::from_secs(10),
            max_pending_counts: 100_000,
            sampling_refresh: Duration::from_secs(60),
            request_timeout: Duration::from_secs(10),
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(5),
            gzip: true,
        }
    }
}

/// A setting that cannot work, with what would.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid tracer setting `{field}`: {reason}")]
pub struct ConfigError {
    pub field: &'static str,
    pub reason: String,
}

fn check(ok: bool, field: &'static str, reason: &str) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError {
            field,
            reason: reason.to_string(),
        })
    }
}

impl Options {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let positive = |duration: Duration| !duration.is_zero();
        check(
            self.default_rate.is_finite() && (0.0..=1.0).contains(&self.default_rate),
            "default_rate",
            "must be a number from 0.0 to 1.0",
        )?;
        check(
            !self.inject.is_empty(),
            "inject",
            "must name at least one format (w3c, b3, b3multi)",
        )?;
        check(
            (1..=10_000_000).contains(&self.max_queue_spans),
            "max_queue_spans",
            "must be from 1 to 10,000,000",
        )?;
        check(
            (64 << 10..=crate::queue::MAX_QUEUE_BYTES).contains(&self.max_queue_bytes),
            "max_queue_bytes",
            "must be from 65536 to 274877906944 (256 GiB)",
        )?;
        check(
            (1..=100_000).contains(&self.batch_size),
            "batch_size",
            "must be from 1 to 100,000",
        )?;
        check(
            positive(self.batch_timeout),
            "batch_timeout",
            "must be more than zero",
        )?;
        check(
            positive(self.counts_interval),
            "counts_interval",
            "must be more than zero",
        )?;
        check(
            self.max_pending_counts >= 1,
            "max_pending_counts",
            "must be at least 1",
        )?;
        check(
            positive(self.sampling_refresh),
            "sampling_refresh",
            "must be more than zero",
        )?;
        check(
            positive(self.request_timeout),
            "request_timeout",
            "must be more than zero",
        )?;
        check(
            (1..=100).contains(&self.max_attempts),
            "max_attempts",
            "must be from 1 to 100",
        )?;
        check(
            positive(self.initial_backoff) && self.initial_backoff <= self.max_backoff,
            "initial_backoff",
            "must be more than zero and at most max_backoff",
        )?;
        Ok(())
    }
}
