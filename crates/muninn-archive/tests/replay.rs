//! Replay against real brokers (tansu for Kafka, `nats-server` for JetStream) and a real
//! collector: every replayed message comes back byte for byte (key, headers in order with
//! duplicates and nulls, payload, partition and per-partition order) with its
//! `muninn-replayed-from` origin; nothing is sent when the target cannot take everything; an
//! interrupted replay resumes from its checkpoint without duplicates; a tracer makes replays
//! linked producer spans of the replaying service.

// One test binary: the fixtures and readers shared by its tests are in `replay/common.rs`, what
// arrives at each target in `replay/delivery.rs`, what keeps a replay from sending wrongly or
// twice in `replay/safeguards.rs`.

#[path = "../../muninn-sdk/tests/collector/mod.rs"]
mod collector;
#[path = "../../muninn-sdk/tests/support/mod.rs"]
mod support;

#[path = "replay/common.rs"]
mod common;

#[path = "replay/delivery.rs"]
mod delivery;

#[path = "replay/safeguards.rs"]
mod safeguards;
