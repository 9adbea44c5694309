//! A real Kafka-API broker: tansu with in-memory storage, started per test process on a free
//! loopback port. Clients use rdkafka (its bundled librdkafka).

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication, TopicResult};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::KafkaResult;

use super::process::{Binary, NotReady, Process};

const TANSU: Binary = Binary {
    name: "tansu (Kafka-API broker)",
    env: "MUNINN_TANSU",
    command: "tansu",
    fallbacks: &["bin/tansu"],
};

/// Variables tansu reads (also from a `.env` file, looked for from its working directory upwards:
/// the temp dir holds an empty one) that would change the broker these tests expect.
const TANSU_ENV: &[&str] = &[
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

/// A running tansu broker with in-memory storage; killed when dropped.
pub struct Kafka {
    /// Where clients bootstrap: `127.0.0.1:PORT`.
    pub bootstrap: String,
    process: Process,
}

impl Kafka {
    /// Starts a broker and waits until it answers a metadata request.
    pub fn start() -> Kafka {
        let process = Process::start(
            &TANSU,
            |command, port, dir| {
                std::fs::write(dir.join(".env"), "").expect("write an empty .env for tansu");
                let url = format!("tcp://127.0.0.1:{port}");
                command
                    .args([
                        "broker",
                        "--listener-url",
                        &url,
                        "--advertised-listener-url",
                        &url,
                    ])
                    .args(["--storage-engine", "memory://tansu/"])
                    .env("NO_COLOR", "1");
                for name in TANSU_ENV {
                    command.env_remove(name);
                }
            },
            metadata_ready,
        );
        Kafka {
            bootstrap: format!("127.0.0.1:{}", process.port()),
            process,
        }
    }

    /// The broker's process: port, start-up time, log.
    pub fn process(&self) -> &Process {
        &self.process
    }

    /// A client config with `bootstrap.servers` set.
    pub fn config(&self) -> ClientConfig {
        config(&self.bootstrap)
    }

    /// Creates topic `name` with `partitions` partitions, and waits until its metadata shows them.
    pub async fn create_topic(&self, name: &str, partitions: i32) {
        let results = self
            .admin()
            .create_topics(
                &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
                &admin_options(),
            )
            .await;
        expect_done("create", name, results);
        let consumer: BaseConsumer = self.config().create().expect("create a Kafka client");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let seen = consumer
                .fetch_metadata(Some(name), Duration::from_secs(2))
                .ok()
                .and_then(|metadata| {
                    metadata
                        .topics()
                        .iter()
                        .find(|topic| topic.name() == name && topic.error().is_none())
                        .map(|topic| topic.partitions().len())
                });
            if seen == Some(partitions as usize) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "Kafka topic {name}: metadata shows {seen:?} partitions, not {partitions}, 10 s after creating it"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Deletes topic `name` and its records (the benchmarks free the broker's memory between
    /// runs this way).
    pub async fn delete_topic(&self, name: &str) {
        let results = self.admin().delete_topics(&[name], &admin_options()).await;
        expect_done("delete", name, results);
    }

    fn admin(&self) -> AdminClient<DefaultClientContext> {
        self.config().create().expect("create a Kafka admin client")
    }
}

fn admin_options() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)))
}

/// Panics, naming the topic and what failed, unless every topic operation succeeded.
fn expect_done(action: &str, name: &str, results: KafkaResult<Vec<TopicResult>>) {
    let results = results.unwrap_or_else(|err| panic!("{action} Kafka topic {name}: {err}"));
    for result in results {
        if let Err((topic, code)) = result {
            panic!("{action} Kafka topic {topic}: {code}");
        }
    }
}

fn config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    config
}

/// Ready once it logs that it listens (`ready in ..ms`, printed once it has bound the port) and
/// answers a metadata request listing one broker.
fn metadata_ready(port: u16, log: &str) -> Result<(), NotReady> {
    if !log.lines().any(|line| line.starts_with("ready in ")) {
        return Err("its log does not say \"ready in ..ms\" yet".to_owned());
    }
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_secs(1))
        .map_err(|err| format!("connect: {err}"))?;
    let consumer: BaseConsumer = config(&addr.to_string())
        .create()
        .map_err(|err| format!("create a Kafka client: {err}"))?;
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(2))
        .map_err(|err| format!("metadata request: {err}"))?;
    match metadata.brokers() {
        [broker] if broker.port() == i32::from(port) => Ok(()),
        brokers => Err(format!(
            "metadata lists brokers {:?}",
            brokers
                .iter()
                .map(|broker| format!("{}:{}", broker.host(), broker.port()))
                .collect::<Vec<_>>()
        )),
    }
}
