//! Real brokers for the SDK's adapter tests: NATS JetStream (`nats-server`) and a Kafka-API broker
//! (tansu), each started by the test process on a free loopback port and stopped when dropped.
//!
//! Include with `mod support;`. Binaries come from `MUNINN_NATS_SERVER` / `MUNINN_TANSU`, which
//! `bash scripts/test.sh` sets after installing them, else from `PATH` or the tools dir.

// Every test binary that includes this module uses a different part of it.
#![allow(dead_code, unused_imports)]

#[cfg(feature = "kafka")]
mod kafka;
#[cfg(feature = "nats")]
mod nats;
mod process;

#[cfg(feature = "kafka")]
pub use kafka::Kafka;
#[cfg(feature = "nats")]
pub use nats::Nats;
