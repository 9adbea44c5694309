//! The real servers of the binary's tests, shared by path: the SDK's Kafka-API broker (tansu)
//! and the archive's S3 API (moto), each on a free loopback port and killed when dropped; and a
//! fault injector to put in front of one (`fault_proxy.rs`).

#![allow(dead_code, unused_imports)]

pub mod fault_proxy;
#[path = "../../../muninn-sdk/tests/support/kafka.rs"]
mod kafka;
#[path = "../../../muninn-archive/tests/support/moto.rs"]
pub mod moto;
#[path = "../../../muninn-sdk/tests/support/nats.rs"]
mod nats;
#[path = "../../../muninn-sdk/tests/support/process.rs"]
mod process;

pub use kafka::Kafka;
pub use nats::Nats;

/// A `muninn archive run` process, SIGKILLed if the test ends (or fails) while it runs.
pub struct Recorder(pub std::process::Child);

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
