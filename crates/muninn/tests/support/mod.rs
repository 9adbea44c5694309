//! The SDK's real-broker test support (tansu for the Kafka API, started on a free loopback port
//! and killed when dropped), shared with the binary's tests by path.

#![allow(dead_code, unused_imports)]

#[path = "../../../muninn-sdk/tests/support/kafka.rs"]
mod kafka;
#[path = "../../../muninn-sdk/tests/support/process.rs"]
mod process;

pub use kafka::Kafka;
