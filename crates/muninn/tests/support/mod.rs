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

/// A `muninn serve` process on a free loopback port; SIGKILLed when dropped.
pub struct Server {
    pub child: std::process::Child,
    pub base_url: String,
}

impl Server {
    /// Starts `muninn serve` with `data_dir`, the configuration file `config` if given, and
    /// `args`, and waits for its "listening" line.
    pub fn start(
        data_dir: &std::path::Path,
        config: Option<&std::path::Path>,
        args: &[&str],
    ) -> Server {
        use std::io::BufRead;
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_muninn"));
        command.arg("serve");
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        let mut child = command
            .args([
                "--listen",
                "127.0.0.1:0",
                "--otlp-grpc-listen",
                "127.0.0.1:0",
            ])
            .args(args)
            .arg("--data-dir")
            .arg(data_dir)
            // MUNINN_TEST_RUST_LOG shows more of what the nodes do when a test fails.
            .env(
                "RUST_LOG",
                std::env::var("MUNINN_TEST_RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("the muninn binary starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("muninn listening on ") {
                    let _ = sender.send(url.trim().to_string());
                }
            }
        });
        let base_url = receiver
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("server printed its address within 60 s");
        Server { child, base_url }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
