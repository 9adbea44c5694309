//! Unsampled "event seen" counts and the key that roll-ups are kept under.

use serde::{Deserialize, Serialize};

use crate::span::{Action, Broker, Text};

/// How many events one service produced or consumed in one minute, whatever the sampling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventCount {
    pub service: String,
    pub event_type: String,
    pub stream: String,
    pub broker: Broker,
    pub action: Action,
    /// Start of the minute, unix seconds (a multiple of 60).
    pub minute_unix_seconds: i64,
    pub count: u64,
}

/// The dimensions of a roll-up cell. Counts carry no schema and are never `modified`;
/// spans fill every field they have, with `""` for what they lack. Texts up to 24 bytes are
/// held inline, so a key is cloned without allocating: a batch's roll-up delta has about one
/// cell per span when its spans spread over many minutes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RollupKey {
    pub service: Text,
    pub stream: Text,
    pub broker: Broker,
    pub event_type: Text,
    pub schema: Text,
    pub action: Action,
    pub modified: bool,
}
