//! `Idempotency-Key` on the native ingest routes (`POST /api/v1/spans`, `/api/v1/counts`): a
//! client that retries a batch after losing the answer sends the same key, and the server
//! answers the retry with the first answer instead of storing the batch twice (which would
//! count its events twice). Keys are remembered in memory for [`KEY_TTL`], in at most
//! [`MAX_BYTES`] (keys and stored answers; the oldest are forgotten first) and at most
//! [`MAX_KEYS`] of them; a restart forgets them.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;

use crate::error::ApiError;

/// The request header, as in the IETF HTTP API draft and payment APIs.
pub(crate) const HEADER: &str = "idempotency-key";
/// Set on an answer replayed for a retried key.
pub(crate) const REPLAYED_HEADER: &str = "idempotent-replayed";
/// How long a key's answer is kept: longer than any SDK's retry schedule.
pub(crate) const KEY_TTL: Duration = Duration::from_secs(600);
/// Most keys kept at once (about 100 bytes each plus the answer, usually `{"accepted":N,…}`).
pub(crate) const MAX_KEYS: usize = 100_000;
/// Most memory the keys and their answers hold, counted with [`slot_bytes`] and
/// [`order_bytes`]: a large answer (a batch's rejections) cannot grow the table past it.
pub(crate) const MAX_BYTES: usize = 32 << 20;

/// The memory of a slot: its key, its answer, and the map's entry.
fn slot_bytes(key: &str, entry: &Entry) -> usize {
    let answer = match entry {
        Entry::InProgress => 0,
        Entry::Answered(_, body) => body.len(),
    };
    key.len() + answer + std::mem::size_of::<((&str, String), Slot)>() + 16
}

/// The memory of an entry of the claim order.
fn order_bytes(key: &str) -> usize {
    key.len() + std::mem::size_of::<(Instant, &str, String)>()
}
/// Longest key accepted.
const MAX_KEY_LEN: usize = 255;

/// The key of a request, if it sent a valid one.
pub(crate) fn key_of(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(HEADER) else {
        return Ok(None);
    };
    let valid = value.as_bytes();
    if valid.is_empty()
        || valid.len() > MAX_KEY_LEN
        || !valid.iter().all(|byte| (0x21..=0x7e).contains(byte))
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "header Idempotency-Key: must be 1 to {MAX_KEY_LEN} visible ASCII characters \
                 (a UUID is typical)"
            ),
        ));
    }
    Ok(Some(String::from_utf8_lossy(valid).into_owned()))
}

/// What a key's earlier requests left.
pub(crate) enum Claim {
    /// No request with this key is known: this one goes ahead (and must be answered or
    /// released).
    New,
    /// A request with this key is still being processed.
    InProgress,
    /// A request with this key was answered with this status and body.
    Answered(StatusCode, Bytes),
}

enum Entry {
    InProgress,
    Answered(StatusCode, Bytes),
}

struct Slot {
    since: Instant,
    entry: Entry,
}

#[derive(Default)]
struct Keys {
    slots: HashMap<(&'static str, String), Slot>,
    /// Keys in the order they were claimed, to forget the oldest first.
    order: VecDeque<(Instant, &'static str, String)>,
    /// What `slots` and `order` hold (`slot_bytes`, `order_bytes`).
    bytes: usize,
}

impl Keys {
    fn forget_old(&mut self, now: Instant) {
        while let Some((since, _, _)) = self.order.front() {
            let expired = now.saturating_duration_since(*since) >= KEY_TTL;
            if !expired
                && self.slots.len() < MAX_KEYS
                && self.order.len() < 2 * MAX_KEYS
                && self.bytes < MAX_BYTES
            {
                break;
            }
            let Some((since, endpoint, key)) = self.order.pop_front() else {
                break;
            };
            self.bytes = self.bytes.saturating_sub(order_bytes(&key));
            let slot_key = (endpoint, key);
            // A key released and claimed again has a newer entry: leave that one.
            if self
                .slots
                .get(&slot_key)
                .is_some_and(|slot| slot.since == since)
            {
                self.remove(&slot_key);
            }
        }
    }
}

impl Keys {
    fn remove(&mut self, slot_key: &(&'static str, String)) {
        if let Some(slot) = self.slots.remove(slot_key) {
            self.bytes = self
                .bytes
                .saturating_sub(slot_bytes(&slot_key.1, &slot.entry));
        }
    }
}

/// The keys of recent ingest requests, per endpoint.
#[derive(Default)]
pub(crate) struct IdempotencyKeys {
    keys: Mutex<Keys>,
}

impl IdempotencyKeys {
    fn with<T>(&self, work: impl FnOnce(&mut Keys) -> T) -> T {
        let mut keys = match self.keys.lock() {
            Ok(keys) => keys,
            Err(poisoned) => poisoned.into_inner(),
        };
        work(&mut keys)
    }

    /// Claims `key` for a request to `endpoint`, or says what an earlier one left.
    pub(crate) fn claim(&self, endpoint: &'static str, key: &str) -> Claim {
        let now = Instant::now();
        self.with(|keys| {
            keys.forget_old(now);
            let slot_key = (endpoint, key.to_string());
            if let Some(slot) = keys.slots.get(&slot_key) {
                return match &slot.entry {
                    Entry::InProgress => Claim::InProgress,
                    Entry::Answered(status, body) => Claim::Answered(*status, body.clone()),
                };
            }
            keys.order.push_back((now, endpoint, key.to_string()));
            keys.bytes += order_bytes(key) + slot_bytes(key, &Entry::InProgress);
            keys.slots.insert(
                slot_key,
                Slot {
                    since: now,
                    entry: Entry::InProgress,
                },
            );
            Claim::New
        })
    }

    /// Records the answer of the request that claimed `key`.
    pub(crate) fn answered(
        &self,
        endpoint: &'static str,
        key: &str,
        status: StatusCode,
        body: Bytes,
    ) {
        self.with(|keys| {
            if let Some(slot) = keys.slots.get_mut(&(endpoint, key.to_string())) {
                keys.bytes += body.len();
                slot.entry = Entry::Answered(status, body);
            }
        });
    }

    /// Forgets `key` after its request failed without storing anything, so a retry goes ahead.
    pub(crate) fn release(&self, endpoint: &'static str, key: &str) {
        self.with(|keys| {
            keys.remove(&(endpoint, key.to_string()));
        });
    }

    /// Keys remembered now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.with(|keys| keys.slots.len())
    }

    /// The memory the keys and answers hold, as counted against [`MAX_BYTES`].
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.with(|keys| keys.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_new_then_in_progress_then_answered_and_a_released_key_is_new_again() {
        let keys = IdempotencyKeys::default();
        assert!(matches!(keys.claim("/s", "k"), Claim::New));
        assert!(matches!(keys.claim("/s", "k"), Claim::InProgress));
        assert!(matches!(keys.claim("/c", "k"), Claim::New), "per endpoint");
        keys.answered("/s", "k", StatusCode::OK, Bytes::from_static(b"{}"));
        match keys.claim("/s", "k") {
            Claim::Answered(status, body) => {
                assert_eq!(status, StatusCode::OK);
                assert_eq!(&body[..], b"{}");
            }
            _ => panic!("answered"),
        }
        keys.release("/c", "k");
        assert!(matches!(keys.claim("/c", "k"), Claim::New));
        assert_eq!(keys.len(), 2);
    }

    #[test]
    fn the_oldest_keys_are_forgotten_past_the_bound() {
        let keys = IdempotencyKeys::default();
        for index in 0..MAX_KEYS + 10 {
            assert!(matches!(keys.claim("/s", &index.to_string()), Claim::New));
        }
        assert!(keys.len() <= MAX_KEYS + 1, "{}", keys.len());
        assert!(
            matches!(keys.claim("/s", "0"), Claim::New),
            "the oldest is forgotten"
        );
        assert!(matches!(
            keys.claim("/s", &(MAX_KEYS + 9).to_string()),
            Claim::InProgress
        ));
    }

    /// Large answers (a batch's per-record rejections) cannot grow the table past
    /// `MAX_BYTES`: the oldest keys are forgotten first, long before `MAX_KEYS`.
    #[test]
    fn the_oldest_keys_are_forgotten_past_the_memory_bound() {
        let keys = IdempotencyKeys::default();
        let answer = Bytes::from(vec![b'x'; 64 * 1024]);
        let n_keys = 2 * MAX_BYTES / answer.len();
        for index in 0..n_keys {
            let key = index.to_string();
            assert!(matches!(keys.claim("/s", &key), Claim::New));
            keys.answered("/s", &key, StatusCode::OK, answer.clone());
            assert!(
                keys.bytes() <= MAX_BYTES + answer.len() + 1024,
                "{} bytes after {index} keys",
                keys.bytes()
            );
        }
        assert!(keys.len() < n_keys / 2 + 1, "{} keys kept", keys.len());
        assert!(
            matches!(keys.claim("/s", "0"), Claim::New),
            "the oldest is forgotten"
        );
        assert!(
            matches!(
                keys.claim("/s", &(n_keys - 1).to_string()),
                Claim::Answered(..)
            ),
            "the newest is kept"
        );
        for index in 0..n_keys {
            keys.release("/s", &index.to_string());
        }
        assert!(keys.bytes() < 64 * 1024, "{} bytes left", keys.bytes());
    }

    #[test]
    fn keys_must_be_short_visible_ascii() {
        let header = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(HEADER, value.parse().unwrap());
            key_of(&headers)
        };
        assert_eq!(
            header("6f1c0e5e-3b8a-4c1e-9d52-2a1f0b7c9e11")
                .unwrap()
                .as_deref(),
            Some("6f1c0e5e-3b8a-4c1e-9d52-2a1f0b7c9e11")
        );
        assert!(key_of(&HeaderMap::new()).unwrap().is_none());
        let error = header("has space").unwrap_err();
        assert!(
            error.message.contains("Idempotency-Key"),
            "{}",
            error.message
        );
        assert!(header(&"k".repeat(256)).is_err());
    }
}
