//! A real NATS server with JetStream (`nats-server -js`), started per test process on a free
//! loopback port with its store in a temp dir.

use std::io::{BufRead as _, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use async_nats::jetstream::{self, stream};

use super::process::{Binary, NotReady, Process};

const NATS_SERVER: Binary = Binary {
    name: "nats-server (NATS with JetStream)",
    env: "MUNINN_NATS_SERVER",
    command: "nats-server",
    fallbacks: &["/usr/sbin/nats-server", "nats/bin/nats-server"],
};

/// A running `nats-server` with JetStream enabled; killed when dropped.
pub struct Nats {
    /// Where clients connect: `nats://127.0.0.1:PORT`.
    pub url: String,
    process: Process,
}

impl Nats {
    /// Starts a server and waits until it serves clients with JetStream enabled.
    pub fn start() -> Nats {
        let process = Process::start(
            &NATS_SERVER,
            |command, port, dir| {
                command
                    .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
                    .arg(dir.join("jetstream"));
            },
            jetstream_ready,
        );
        Nats {
            url: format!("nats://127.0.0.1:{}", process.port()),
            process,
        }
    }

    /// The server's process: port, start-up time, log.
    pub fn process(&self) -> &Process {
        &self.process
    }

    /// A new client connection.
    pub async fn client(&self) -> async_nats::Client {
        async_nats::connect(&self.url)
            .await
            .unwrap_or_else(|err| panic!("connect to NATS at {}: {err}", self.url))
    }

    /// A JetStream context on a new client connection.
    pub async fn jetstream(&self) -> jetstream::Context {
        jetstream::new(self.client().await)
    }

    /// Creates a file-backed stream `name` capturing `subjects`.
    pub async fn create_stream(&self, name: &str, subjects: &[&str]) -> stream::Stream {
        self.jetstream()
            .await
            .create_stream(stream::Config {
                name: name.to_owned(),
                subjects: subjects
                    .iter()
                    .map(|subject| (*subject).to_owned())
                    .collect(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|err| panic!("create JetStream stream {name} {subjects:?}: {err}"))
    }
}

/// Ready once it logs that it listens on `port` and a client connection gets the server's `INFO`
/// saying JetStream is on: the server enables JetStream before it accepts clients.
fn jetstream_ready(port: u16, log: &str) -> Result<(), NotReady> {
    let listening = format!("Listening for client connections on 127.0.0.1:{port}");
    if !log.contains(&listening) {
        return Err(format!("its log does not say {listening:?} yet"));
    }
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))
        .map_err(|err| format!("connect: {err}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|err| format!("set a read timeout: {err}"))?;
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .map_err(|err| format!("read INFO: {err}"))?;
    let info: serde_json::Value = line
        .strip_prefix("INFO ")
        .and_then(|json| serde_json::from_str(json).ok())
        .ok_or_else(|| format!("expected INFO {{..}}, got {line:?}"))?;
    if info["jetstream"] == true {
        Ok(())
    } else {
        Err(format!("JetStream is not enabled: {line}"))
    }
}
