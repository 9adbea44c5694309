//! `muninn archive run`: the recorder as its own process. Records Kafka topics (a consumer
//! group) until SIGINT or SIGTERM, then writes what it buffered; a crash loses nothing, the
//! next run resumes from the archive's own positions.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use muninn_archive::{KafkaSource, NatsSource, RecorderOptions, RecorderStats};

use super::ArchiveLocation;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    archive: ArchiveLocation,
    /// Kafka bootstrap servers (HOST:PORT[,HOST:PORT…]).
    #[arg(long, value_name = "HOST:PORT")]
    kafka: Option<String>,
    /// A Kafka topic to record, or a pattern starting with ^ (repeatable).
    #[arg(long = "topic", value_name = "NAME|^REGEX")]
    topics: Vec<String>,
    /// The consumer group the recorder commits its positions in (Kafka), and the durable
    /// consumer's name (JetStream).
    #[arg(long, value_name = "NAME", default_value = "muninn-archive")]
    group: String,
    /// NATS server URL (nats://HOST:PORT) whose JetStream streams to record.
    #[arg(long, value_name = "URL")]
    nats: Option<String>,
    /// A JetStream stream to record, or a pattern with * (repeatable).
    #[arg(long = "jetstream", value_name = "NAME|PATTERN")]
    jetstream: Vec<String>,
    /// Another librdkafka setting for the consumer (security.protocol=SSL, …; repeatable).
    #[arg(long = "kafka-option", value_name = "KEY=VALUE")]
    kafka_options: Vec<String>,
    /// Close a partition's file at this many bytes of keys, payloads and headers.
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 20)]
    max_file_bytes: usize,
    /// Close a partition's file at this many messages.
    #[arg(long, value_name = "N", default_value_t = 500_000)]
    max_file_messages: usize,
    /// Close a partition's file at the latest this long after its first message (so idle
    /// streams still land).
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    max_file_age: String,
}

impl RunArgs {
    fn options(&self) -> anyhow::Result<RecorderOptions> {
        let max_file_age = muninn_model::parse_duration(&self.max_file_age)
            .map_err(|error| anyhow::anyhow!("--max-file-age: {error}"))?;
        if max_file_age.is_zero() {
            anyhow::bail!("--max-file-age: must be more than 0 (e.g. 10s, 1m)");
        }
        if self.max_file_bytes == 0 || self.max_file_messages == 0 {
            anyhow::bail!("--max-file-bytes and --max-file-messages: must be more than 0");
        }
        Ok(RecorderOptions {
            max_file_bytes: self.max_file_bytes,
            max_file_messages: self.max_file_messages,
            max_file_age,
            ..RecorderOptions::default()
        })
    }

    fn kafka(&self) -> anyhow::Result<Option<KafkaSource>> {
        let Some(bootstrap) = &self.kafka else {
            if !self.topics.is_empty() {
                anyhow::bail!("--topic needs --kafka HOST:PORT, the brokers to read it from");
            }
            return Ok(None);
        };
        if self.topics.is_empty() {
            anyhow::bail!(
                "--kafka {bootstrap}: give at least one --topic NAME or --topic '^PATTERN'"
            );
        }
        for topic in &self.topics {
            if !topic.starts_with('^') {
                muninn_archive::check_stream_name(topic)
                    .map_err(|error| anyhow::anyhow!("--topic: {error}"))?;
            }
        }
        let settings = self
            .kafka_options
            .iter()
            .map(|option| {
                option
                    .split_once('=')
                    .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "--kafka-option {option:?}: use KEY=VALUE, e.g. security.protocol=SSL"
                        )
                    })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Some(KafkaSource {
            bootstrap: bootstrap.clone(),
            group: self.group.clone(),
            topics: self.topics.clone(),
            settings,
        }))
    }

    fn nats(&self) -> anyhow::Result<Option<NatsSource>> {
        let Some(url) = &self.nats else {
            if !self.jetstream.is_empty() {
                anyhow::bail!("--jetstream needs --nats URL, the server to read it from");
            }
            return Ok(None);
        };
        if self.jetstream.is_empty() {
            anyhow::bail!(
                "--nats {url}: give at least one --jetstream NAME or --jetstream 'PATTERN*'"
            );
        }
        Ok(Some(NatsSource {
            url: url.clone(),
            streams: self.jetstream.clone(),
            durable: self.group.clone(),
        }))
    }
}

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let options = args.options()?;
    let kafka = args.kafka()?;
    let nats = args.nats()?;
    if kafka.is_none() && nats.is_none() {
        anyhow::bail!(
            "nothing to record: give --kafka HOST:PORT with --topic NAME, and/or --nats URL with --jetstream NAME"
        );
    }
    let archive = args.archive.open().await?;
    let stats = Arc::new(RecorderStats::new());
    let reporter = tokio::spawn(report(stats.clone()));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        crate::signals::stop_requested().await;
        let _ = stop.send(true);
    });
    let shutdown = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    let kafka_task = kafka.map(|kafka| {
        eprintln!(
            "muninn archive recording {:?} from kafka {} into {}",
            kafka.topics,
            kafka.bootstrap,
            archive.description()
        );
        tokio::spawn(muninn_archive::record_kafka(
            archive.clone(),
            kafka,
            options.clone(),
            stats.clone(),
            shutdown(stopped.clone()),
        ))
    });
    let nats_task = nats.map(|nats| {
        eprintln!(
            "muninn archive recording {:?} from nats {} into {}",
            nats.streams,
            nats.url,
            archive.description()
        );
        tokio::spawn(muninn_archive::record_nats(
            archive.clone(),
            nats,
            options.clone(),
            stats.clone(),
            shutdown(stopped.clone()),
        ))
    });
    let mut result = Ok(());
    for (name, task) in [("kafka", kafka_task), ("nats", nats_task)] {
        if let Some(task) = task {
            let outcome = task
                .await
                .with_context(|| format!("the {name} recorder stopped abnormally"))?
                .with_context(|| format!("recording from {name}"));
            if result.is_ok() {
                result = outcome;
            }
        }
    }
    reporter.abort();
    result?;
    let stats = stats.snapshot();
    eprintln!(
        "muninn archive stopped: {} messages ({} bytes) in {} files",
        stats.messages_archived, stats.message_bytes_archived, stats.files_written
    );
    Ok(ExitCode::SUCCESS)
}

/// Logs progress every ten seconds.
async fn report(stats: Arc<RecorderStats>) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    tick.tick().await;
    let mut previous = stats.snapshot();
    loop {
        tick.tick().await;
        let now = stats.snapshot();
        tracing::info!(
            messages = now.messages_archived,
            per_second = (now.messages_archived - previous.messages_archived) / 10,
            mb_per_second =
                (now.message_bytes_archived - previous.message_bytes_archived) as f64 / 10e6,
            files = now.files_written,
            duplicates_skipped = now.duplicates_skipped,
            healthy = now.healthy,
            last_error = now.last_error.as_deref().unwrap_or(""),
            "archive progress"
        );
        previous = now;
    }
}
