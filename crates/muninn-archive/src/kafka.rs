//! The Kafka recorder: one consumer in a consumer group, subscribed to topics by name or by
//! pattern (`^orders\..*`), every partition it is assigned. Offsets are committed to the group
//! only after the file holding the messages is durable; after a crash or a rebalance the
//! archive's own position decides what is new, so nothing is archived twice.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::admin::AdminClient;
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers, Message as _, Timestamp};
use rdkafka::{Offset, TopicPartitionList};

use crate::archive::Archive;
use crate::error::{ArchiveError, ArchiveErrorKind, Result};
use crate::kafka_groups::{self, GroupSampler};
use crate::message::{Header, Message, SourceBroker, TimestampType};
use crate::recorder::{AbortOnDrop, Committed, Recorder, RecorderOptions, RecorderStats};

/// Where and what to record.
#[derive(Debug, Clone)]
pub struct KafkaSource {
    /// `host:port[,host:port…]`.
    pub bootstrap: String,
    pub group: String,
    /// Topic names, or patterns starting with `^` (librdkafka's regular expressions).
    pub topics: Vec<String>,
    /// More librdkafka settings (`security.protocol`, …).
    pub settings: Vec<(String, String)>,
}

/// Partitions a rebalance took away, for the recording loop to forget.
#[derive(Default)]
struct RebalanceContext {
    revoked: Mutex<Vec<(String, i32)>>,
}

impl ClientContext for RebalanceContext {}

impl ConsumerContext for RebalanceContext {
    fn pre_rebalance(
        &self,
        _consumer: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &Rebalance<'_>,
    ) {
        if let Rebalance::Revoke(partitions) = rebalance
            && let Ok(mut revoked) = self.revoked.lock()
        {
            for element in partitions.elements() {
                revoked.push((element.topic().to_owned(), element.partition()));
            }
        }
    }
}

/// Records until `shutdown` resolves, then writes what is buffered and commits it.
pub async fn record_kafka(
    archive: Archive,
    source: KafkaSource,
    options: RecorderOptions,
    stats: Arc<RecorderStats>,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    if source.topics.is_empty() {
        return Err(ArchiveError::invalid(
            "kafka: no topics to record; give topic names or patterns starting with ^",
        ));
    }
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &source.bootstrap)
        .set("group.id", &source.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("topic.metadata.refresh.interval.ms", "5000")
        // An archiver wants big fetches: up to 8 MiB per partition, 64 MiB per request. Brokers
        // that hold a fetch for its whole wait even with data ready (tansu) cap a consumer at
        // one request per wait, so the wait is short; `--kafka-option` overrides all three.
        .set("fetch.wait.max.ms", "10")
        .set("max.partition.fetch.bytes", "8388608")
        .set("fetch.max.bytes", "67108864");
    for (name, value) in &source.settings {
        config.set(name, value);
    }
    let consumer: StreamConsumer<RebalanceContext> = config
        .create_with_context(RebalanceContext::default())
        .map_err(|error| {
            ArchiveError::with_source(
                ArchiveErrorKind::Broker,
                "kafka: creating the consumer",
                error,
            )
        })?;
    let topics: Vec<&str> = source.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics).map_err(|error| {
        ArchiveError::with_source(
            ArchiveErrorKind::Broker,
            format!("kafka: subscribing to {topics:?}"),
            error,
        )
    })?;
    tracing::info!(bootstrap = %source.bootstrap, group = %source.group, ?topics, archive = archive.description(), "recording from kafka");
    let _sampler = match options.group_positions_every {
        Some(every) => Some(AbortOnDrop(tokio::spawn(kafka_groups::sample_groups(
            archive.clone(),
            GroupSampler::new(&source)?,
            every,
            stats.clone(),
        )))),
        None => None,
    };

    let mut recorder = Recorder::new(archive, options.clone(), stats.clone());
    // Topic ids, looked up once per topic (again after a rebalance takes it away).
    let mut admin_config = ClientConfig::new();
    admin_config.set("bootstrap.servers", &source.bootstrap);
    for (name, value) in &source.settings {
        admin_config.set(name, value);
    }
    let admin: Arc<AdminClient<DefaultClientContext>> =
        Arc::new(admin_config.create().map_err(|error| {
            ArchiveError::with_source(
                ArchiveErrorKind::Broker,
                "kafka: creating the topic-id reader",
                error,
            )
        })?);
    let mut looked_up: HashSet<String> = HashSet::new();
    let mut tick = tokio::time::interval(Duration::from_millis(250).min(options.max_file_age));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut backoff = Duration::from_millis(100);
    tokio::pin!(shutdown);
    loop {
        let mut pause = None;
        let committed = tokio::select! {
            () = &mut shutdown => break,
            _ = tick.tick() => recorder.commit_due().await,
            received = consumer.recv() => {
                let mut committed = forget_revoked(&consumer, &mut recorder, &mut looked_up).await;
                committed.extend(match received {
                    Ok(message) => {
                        backoff = Duration::from_millis(100);
                        let message = convert(&message);
                        if !looked_up.contains(&message.stream) {
                            let id = topic_id(&admin, &message.stream).await;
                            recorder.set_topic_id(&message.stream, id.as_deref());
                            looked_up.insert(message.stream.clone());
                        }
                        recorder.offer(message).await
                    }
                    Err(error) => {
                        stats.broker_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        stats.failed(format!("kafka: {error}"));
                        tracing::warn!(%error, retry_in = ?backoff, "kafka consumer error");
                        pause = Some(backoff);
                        backoff = (backoff * 2).min(options.max_backoff);
                        Vec::new()
                    }
                });
                committed
            }
        };
        commit_offsets(&consumer, &committed);
        if let Some(pause) = pause {
            // Still written on time, and still stopped on request, while the broker is away.
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(pause) => {}
            }
            let committed = recorder.commit_due().await;
            commit_offsets(&consumer, &committed);
        }
    }
    let mut committed = forget_revoked(&consumer, &mut recorder, &mut looked_up).await;
    committed.extend(recorder.commit_all().await);
    // Asynchronous, never waiting on a broker that may be gone: a lost commit only means the
    // next run reads these messages again and skips them as archived.
    commit_offsets(&consumer, &committed);
    Ok(())
}

/// The id of `topic`, or `None` when the broker gives none (or cannot be asked: the check is
/// then skipped, as without ids).
async fn topic_id(admin: &Arc<AdminClient<DefaultClientContext>>, topic: &str) -> Option<String> {
    let (admin, name) = (admin.clone(), topic.to_owned());
    let found = tokio::task::spawn_blocking(move || {
        crate::kafka_topic_id::topic_ids(
            &admin,
            std::slice::from_ref(&name),
            Duration::from_secs(10),
        )
    })
    .await;
    match found {
        Ok(Ok(mut ids)) => ids.remove(topic),
        Ok(Err(error)) => {
            tracing::warn!(topic, %error, "kafka: cannot read the topic's id; a recreated topic goes unnoticed");
            None
        }
        Err(_) => None,
    }
}

async fn forget_revoked(
    consumer: &StreamConsumer<RebalanceContext>,
    recorder: &mut Recorder,
    looked_up: &mut HashSet<String>,
) -> Vec<Committed> {
    let revoked = match consumer.context().revoked.lock() {
        Ok(mut revoked) => std::mem::take(&mut *revoked),
        Err(_) => return Vec::new(),
    };
    let mut committed = Vec::new();
    for (topic, partition) in revoked {
        committed.extend(recorder.forget(&topic, partition).await);
        looked_up.remove(&topic);
    }
    committed
}

/// Tells the group that everything before each position is archived. Asynchronous: a lost
/// commit only means messages are read again and skipped as already archived.
fn commit_offsets(consumer: &StreamConsumer<RebalanceContext>, committed: &[Committed]) {
    if committed.is_empty() {
        return;
    }
    let mut list = TopicPartitionList::new();
    for position in committed {
        if let Err(error) = list.add_partition_offset(
            &position.stream,
            position.partition,
            Offset::Offset(position.next_offset),
        ) {
            tracing::warn!(%error, "kafka: cannot build the offset commit");
        }
    }
    if let Err(error) = consumer.commit(&list, CommitMode::Async) {
        tracing::warn!(%error, "kafka: offset commit failed; the archive keeps the position");
    }
}

/// One Kafka record as an archived message.
pub fn convert(record: &BorrowedMessage<'_>) -> Message {
    let (timestamp_ms, timestamp_type) = match record.timestamp() {
        Timestamp::CreateTime(ms) => (ms, TimestampType::CreateTime),
        Timestamp::LogAppendTime(ms) => (ms, TimestampType::LogAppendTime),
        Timestamp::NotAvailable => (
            muninn_model::now_unix_nanos() / 1_000_000,
            TimestampType::NotAvailable,
        ),
    };
    let headers = record
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|header| Header {
                    name: header.key.to_owned(),
                    value: header.value.map(<[u8]>::to_vec),
                })
                .collect()
        })
        .unwrap_or_default();
    Message::from_broker(
        SourceBroker::Kafka,
        record.topic().to_owned(),
        None,
        record.partition(),
        record.offset(),
        timestamp_ms,
        timestamp_type,
        record.key().map(<[u8]>::to_vec),
        headers,
        record.payload().map(<[u8]>::to_vec),
    )
}
