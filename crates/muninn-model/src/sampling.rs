//! Consistent sampling by event id and the central sampling rules: the algorithm every SDK
//! implements bit for bit (`docs/sampling.md`), and how rules resolve into one service's config.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Rates are integers in parts per million: 0 never samples, 1,000,000 always does.
pub const RATE_PPM_MAX: u32 = 1_000_000;

/// The 64-bit hash of an event id: XXH3-64 (seed 0) of the id's UTF-8 bytes.
#[inline]
pub fn event_id_hash(event_id: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(event_id)
}

/// Whether the event with this id is sampled at `rate_ppm`: `hash mod 1,000,000 < rate_ppm`.
/// The same id gets the same answer in every process and every language, and an event sampled
/// at one rate is sampled at every higher rate.
#[inline]
pub fn is_sampled(event_id: &[u8], rate_ppm: u32) -> bool {
    rate_ppm >= RATE_PPM_MAX
        || event_id_hash(event_id) % u64::from(RATE_PPM_MAX) < u64::from(rate_ppm)
}

/// A rate in [0, 1] as parts per million, rounded to the nearest.
pub fn rate_to_ppm(rate: f64) -> Option<u32> {
    if rate.is_finite() && (0.0..=1.0).contains(&rate) {
        Some((rate * f64::from(RATE_PPM_MAX)).round() as u32)
    } else {
        None
    }
}

/// One central sampling rule. A rule without `service` applies to every service, one without
/// `event_type` to every event type. Rate 0 switches tracing off (counts still flow); rate 1
/// forces every event to be traced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingRule {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// Share of events traced, 0.0 to 1.0.
    pub rate: f64,
    /// Send this service's spans at once, one by one, instead of in batches.
    #[serde(default)]
    pub live_debug: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

impl SamplingRule {
    /// How specific the rule is: service and event type (3) > event type (2) > service (1) >
    /// neither (0). Event-type rules beat service rules so that one event keeps one decision
    /// across the services it passes through.
    pub fn specificity(&self) -> u8 {
        match (&self.service, &self.event_type) {
            (Some(_), Some(_)) => 3,
            (None, Some(_)) => 2,
            (Some(_), None) => 1,
            (None, None) => 0,
        }
    }

    /// The scope two rules must not share.
    pub fn scope(&self) -> (Option<&str>, Option<&str>) {
        (self.service.as_deref(), self.event_type.as_deref())
    }

    pub fn rate_ppm(&self) -> u32 {
        rate_to_ppm(self.rate).unwrap_or(RATE_PPM_MAX)
    }
}

/// What one service's SDK needs: its default rate, the rates of event types that have rules,
/// and the live-debug switch. Served at `GET /api/v1/sampling/config?service=…`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSamplingConfig {
    pub service: String,
    pub default_rate_ppm: u32,
    #[serde(default)]
    pub event_types: BTreeMap<String, u32>,
    #[serde(default)]
    pub live_debug: bool,
}

impl ServiceSamplingConfig {
    /// The rate for one event type of this service.
    pub fn rate_ppm(&self, event_type: &str) -> u32 {
        self.event_types
            .get(event_type)
            .copied()
            .unwrap_or(self.default_rate_ppm)
    }
}

/// Resolves `rules` for `service`. `fallback_ppm` is the rate when no rule matches.
pub fn resolve(rules: &[SamplingRule], service: &str, fallback_ppm: u32) -> ServiceSamplingConfig {
    let applies = |rule: &&SamplingRule| rule.service.as_deref().is_none_or(|s| s == service);
    let mut default = (None::<u8>, fallback_ppm);
    let mut event_types: BTreeMap<String, (u8, u32)> = BTreeMap::new();
    let mut live_debug = false;
    for rule in rules.iter().filter(applies) {
        let specificity = rule.specificity();
        live_debug |= rule.live_debug && rule.service.is_some();
        match &rule.event_type {
            None => {
                if default.0.is_none_or(|current| specificity > current) {
                    default = (Some(specificity), rule.rate_ppm());
                }
            }
            Some(event_type) => {
                let entry = event_types
                    .entry(event_type.clone())
                    .or_insert((specificity, rule.rate_ppm()));
                if specificity > entry.0 {
                    *entry = (specificity, rule.rate_ppm());
                }
            }
        }
    }
    ServiceSamplingConfig {
        service: service.to_string(),
        default_rate_ppm: default.1,
        event_types: event_types
            .into_iter()
            .map(|(event_type, (_, rate))| (event_type, rate))
            .collect(),
        live_debug,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(service: Option<&str>, event_type: Option<&str>, rate: f64) -> SamplingRule {
        SamplingRule {
            id: format!("{service:?}/{event_type:?}"),
            service: service.map(str::to_string),
            event_type: event_type.map(str::to_string),
            rate,
            live_debug: false,
            description: String::new(),
        }
    }

    #[test]
    fn hash_test_vectors_match_the_specification() {
        // The same vectors are in docs/sampling.md; another implementation must reproduce them.
        // The same vectors are in docs/sampling.md; they were computed with Python's `xxhash`
        // package (an independent implementation of XXH3-64).
        let long = "x".repeat(200);
        let vectors: &[(&str, u64, u64)] = &[
            ("", 0x2d06800538d394c2, 603138),
            ("a", 0xe6c632b61e964e1f, 738719),
            ("order-1", 0x5fc46503368e2876, 35894),
            (
                "0b7d4d3e-8f0e-4f7e-9a55-1b2a3c4d5e6f",
                0x019fa59181944b9b,
                742747,
            ),
            ("evt-42", 0xd061b8ed00a8ea6b, 774315),
            ("ünïcødé-事件", 0xd944a8e94a6d0bba, 193466),
            (&long, 0x50ef124fb1e4de53, 364371),
        ];
        for (id, hash, bucket) in vectors {
            assert_eq!(event_id_hash(id.as_bytes()), *hash, "hash of {id:?}");
            assert_eq!(hash % 1_000_000, *bucket, "bucket of {id:?}");
            assert!(
                is_sampled(id.as_bytes(), (*bucket + 1) as u32),
                "{id:?} at bucket + 1"
            );
            assert!(
                !is_sampled(id.as_bytes(), *bucket as u32),
                "{id:?} at its bucket"
            );
        }
    }

    #[test]
    fn decisions_are_monotonic_in_the_rate() {
        for n in 0..2000 {
            let id = format!("event-{n}");
            let mut was_sampled = false;
            for rate in [0, 1, 10_000, 250_000, 500_000, 999_999, 1_000_000] {
                let sampled = is_sampled(id.as_bytes(), rate);
                assert!(sampled || !was_sampled, "{id} sampled at a lower rate only");
                was_sampled = sampled;
            }
            assert!(!is_sampled(id.as_bytes(), 0));
            assert!(is_sampled(id.as_bytes(), RATE_PPM_MAX));
        }
    }

    #[test]
    fn the_share_sampled_is_close_to_the_rate() {
        let sampled = (0..100_000)
            .filter(|n| is_sampled(format!("evt-{n}").as_bytes(), 10_000))
            .count();
        assert!(
            (800..1200).contains(&sampled),
            "1% of 100,000 gave {sampled}"
        );
    }

    #[test]
    fn the_most_specific_rule_wins() {
        let rules = vec![
            rule(None, None, 0.5),
            rule(Some("payments"), None, 1.0),
            rule(None, Some("order.created"), 0.0),
            rule(Some("payments"), Some("order.paid"), 0.25),
            rule(Some("other"), Some("order.paid"), 0.75),
        ];
        let config = resolve(&rules, "payments", 1_000_000);
        assert_eq!(config.default_rate_ppm, 1_000_000);
        assert_eq!(config.rate_ppm("order.created"), 0);
        assert_eq!(config.rate_ppm("order.paid"), 250_000);
        assert_eq!(config.rate_ppm("anything.else"), 1_000_000);
        let config = resolve(&rules, "shipping", 1_000_000);
        assert_eq!(config.default_rate_ppm, 500_000);
        assert_eq!(config.rate_ppm("order.paid"), 500_000);
        let config = resolve(&[], "shipping", 42);
        assert_eq!(config.default_rate_ppm, 42);
    }

    #[test]
    fn live_debug_applies_only_to_the_named_service() {
        let mut debug = rule(Some("payments"), None, 1.0);
        debug.live_debug = true;
        let rules = vec![debug];
        assert!(resolve(&rules, "payments", 0).live_debug);
        assert!(!resolve(&rules, "shipping", 0).live_debug);
    }
}
