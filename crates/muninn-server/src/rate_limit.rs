//! Per-token ingest rate limits, in bytes of request body per second as received (compressed
//! or not), as Tempo limits ingestion: a token bucket per token that refills at `bytes_per_second`
//! up to `burst_bytes`. A request is admitted while the bucket holds its announced length (or,
//! for a length beyond the burst, while the bucket is full), and refused with `429` and a
//! `Retry-After` of when it would be; a body of unknown length is admitted while the bucket is
//! not empty and charged as it arrives, so the bucket may go below zero and the next requests
//! wait for it. A token bucket of our own rather than a GCRA crate for that debt: the length of
//! a chunked body is known only after it was taken.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::auth::AuthConfig;

/// A token's ingest rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Bytes of request body per second, on average.
    pub bytes_per_second: u64,
    /// Bytes that may arrive at once after a quiet spell (the bucket's size).
    pub burst_bytes: u64,
}

struct Bucket {
    limit: RateLimit,
    /// Bytes that may be sent now; below zero after a body of unknown length overdrew it.
    level: f64,
    refilled: Instant,
}

impl Bucket {
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.refilled = now.max(self.refilled);
        self.level = (self.level + elapsed * self.limit.bytes_per_second as f64)
            .min(self.limit.burst_bytes as f64);
    }
}

/// The buckets of every token with a limit.
#[derive(Default)]
pub(crate) struct RateLimits {
    by_token: HashMap<String, Mutex<Bucket>>,
}

impl RateLimits {
    /// Full buckets for the tokens of `auth` that have a limit.
    pub(crate) fn new(auth: Option<&AuthConfig>, now: Instant) -> RateLimits {
        let by_token = auth
            .map(|auth| auth.tokens.as_slice())
            .unwrap_or_default()
            .iter()
            .filter_map(|token| {
                let limit = token.ingest_rate?;
                Some((
                    token.name.clone(),
                    Mutex::new(Bucket {
                        limit,
                        level: limit.burst_bytes as f64,
                        refilled: now,
                    }),
                ))
            })
            .collect();
        RateLimits { by_token }
    }

    /// The limit of `token`, if it has one.
    pub(crate) fn limit(&self, token: &str) -> Option<RateLimit> {
        let bucket = self.by_token.get(token)?;
        Some(bucket.lock().unwrap_or_else(|e| e.into_inner()).limit)
    }

    /// Admits a request of `length` bytes (`None`: unknown, charged later with [`charge`])
    /// from `token` and charges it, or says how long to wait.
    ///
    /// [`charge`]: RateLimits::charge
    pub(crate) fn admit(
        &self,
        token: &str,
        length: Option<u64>,
        now: Instant,
    ) -> Result<(), Duration> {
        let Some(bucket) = self.by_token.get(token) else {
            return Ok(());
        };
        let mut bucket = bucket.lock().unwrap_or_else(|e| e.into_inner());
        bucket.refill(now);
        // What must be in the bucket: the length, at most a full bucket; for an unknown
        // length, anything above zero.
        let needed = match length {
            Some(length) => (length as f64).min(bucket.limit.burst_bytes as f64),
            None => f64::MIN_POSITIVE,
        };
        if bucket.level >= needed {
            bucket.level -= length.unwrap_or(0) as f64;
            return Ok(());
        }
        let missing = needed - bucket.level;
        let rate = bucket.limit.bytes_per_second.max(1) as f64;
        Err(Duration::from_secs_f64(missing / rate))
    }

    /// Charges `bytes` that arrived in a body of unknown length.
    pub(crate) fn charge(&self, token: &str, bytes: u64, now: Instant) {
        if let Some(bucket) = self.by_token.get(token) {
            let mut bucket = bucket.lock().unwrap_or_else(|e| e.into_inner());
            bucket.refill(now);
            bucket.level -= bytes as f64;
        }
    }
}

/// An ingest request refused by its token's rate: what to tell the client.
pub(crate) struct Refused {
    /// Names the token and its limit.
    pub message: String,
    /// When to try again, in whole seconds (at least one).
    pub retry_after_seconds: u64,
}

/// Admits a request of `length` bytes (`None`: unknown) from `token` under its rate limit, or
/// counts the refusal in `/metrics` and says what to answer.
pub(crate) fn admit(
    state: &crate::server::AppState,
    token: &str,
    length: Option<u64>,
) -> Result<(), Refused> {
    let Some(limit) = state.rate_limits.limit(token) else {
        return Ok(());
    };
    let Err(wait) = state.rate_limits.admit(token, length, Instant::now()) else {
        return Ok(());
    };
    state
        .metrics
        .limits
        .rate_limited
        .get_or_create(&vec![("token".into(), token.into())])
        .inc();
    let seconds = retry_after_seconds(wait);
    Err(Refused {
        message: format!(
            "token {token:?} is over its ingest rate of {} bytes/s (burst {} bytes); retry \
             after {seconds} s, or ask for a higher rate",
            limit.bytes_per_second, limit.burst_bytes
        ),
        retry_after_seconds: seconds,
    })
}

/// The `Retry-After` seconds for a wait: whole seconds, rounded up, at least one.
pub(crate) fn retry_after_seconds(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{ApiToken, Scope};

    fn limits(now: Instant) -> RateLimits {
        let mut limited = ApiToken::for_token("fleet", "secret-a", &[Scope::Ingest]);
        limited.ingest_rate = Some(RateLimit {
            bytes_per_second: 1000,
            burst_bytes: 4000,
        });
        let free = ApiToken::for_token("free", "secret-b", &[Scope::Ingest]);
        RateLimits::new(Some(&AuthConfig::new(vec![limited, free])), now)
    }

    #[test]
    fn a_token_gets_its_burst_then_its_rate_and_is_told_when_to_come_back() {
        let start = Instant::now();
        let limits = limits(start);
        assert_eq!(limits.admit("fleet", Some(3000), start), Ok(()));
        assert_eq!(limits.admit("fleet", Some(1000), start), Ok(()));
        // Empty: 500 bytes take half a second to come.
        let wait = limits.admit("fleet", Some(500), start).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert_eq!(retry_after_seconds(wait), 1);
        let later = start + Duration::from_millis(500);
        assert_eq!(limits.admit("fleet", Some(500), later), Ok(()));
        // A body larger than the burst passes when the bucket is full, and only then.
        let full = later + Duration::from_secs(4);
        assert!(
            limits
                .admit("fleet", Some(9000), full - Duration::from_secs(1))
                .is_err()
        );
        assert_eq!(limits.admit("fleet", Some(9000), full), Ok(()));
        // It overdrew the bucket by 5000 bytes: nine seconds until 4000 fit again.
        let wait = limits.admit("fleet", Some(4000), full).unwrap_err();
        assert_eq!(retry_after_seconds(wait), 9);
        // Tokens without a limit, and unknown ones, are not limited here.
        for _ in 0..100 {
            assert_eq!(limits.admit("free", Some(1 << 30), start), Ok(()));
        }
        assert_eq!(limits.limit("free"), None);
    }

    #[test]
    fn a_body_of_unknown_length_is_charged_as_it_arrives() {
        let start = Instant::now();
        let limits = limits(start);
        assert_eq!(limits.admit("fleet", None, start), Ok(()));
        limits.charge("fleet", 6000, start);
        // 2000 bytes in debt: two seconds until the bucket is above zero again.
        let wait = limits.admit("fleet", None, start).unwrap_err();
        assert_eq!(retry_after_seconds(wait), 2);
        let later = start + Duration::from_millis(2001);
        assert_eq!(limits.admit("fleet", None, later), Ok(()));
    }
}
