//! The Kafka target (feature `kafka`): one idempotent producer sending each message to an
//! explicit partition with its key, headers (order, duplicates and null values kept) and
//! payload, many sends in flight at once. Before the first send, the topic must exist with
//! enough partitions, or is created when asked.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::FutureExt as _;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header as KafkaHeader, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::{Offset, TopicPartitionList};

use super::sink::{Delivered, Delivery, Needs, Outgoing};
use crate::error::{ArchiveError, ArchiveErrorKind, Result};

/// Messages awaiting the broker's answer at once: enough to keep batches full at well over
/// 50,000 messages a second, far below librdkafka's own queue (100,000 messages).
pub(crate) const WINDOW: usize = 20_000;

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// The producer's largest message (librdkafka's `message.max.bytes`, its default). A topic's
/// own `max.message.bytes` on the broker is not read: a broker set lower refuses midway.
const MAX_MESSAGE_BYTES: usize = 1_000_000;

pub(crate) struct KafkaSink {
    producer: FutureProducer,
    bootstrap: String,
    topic: String,
}

fn broker_error(context: String, error: KafkaError) -> ArchiveError {
    ArchiveError::with_source(ArchiveErrorKind::Broker, context, error)
}

/// The partitions `topic` has, `None` when the broker does not know it.
async fn partition_count(
    producer: &FutureProducer,
    bootstrap: &str,
    topic: &str,
) -> Result<Option<i32>> {
    let (producer, name) = (producer.clone(), topic.to_owned());
    let metadata = tokio::task::spawn_blocking(move || {
        producer
            .client()
            .fetch_metadata(Some(&name), METADATA_TIMEOUT)
    })
    .await
    .map_err(|error| ArchiveError::invalid(format!("kafka metadata task: {error}")))?
    .map_err(|error| broker_error(format!("kafka: cannot reach {bootstrap}"), error))?;
    let Some(found) = metadata.topics().iter().find(|found| found.name() == topic) else {
        return Ok(None);
    };
    match found.error().map(RDKafkaErrorCode::from) {
        None => Ok(Some(found.partitions().len() as i32)),
        Some(RDKafkaErrorCode::UnknownTopicOrPartition) => Ok(None),
        Some(code) => Err(ArchiveError::new(
            ArchiveErrorKind::Broker,
            format!("kafka: topic {topic} on {bootstrap}: {code}"),
        )),
    }
}

impl KafkaSink {
    pub async fn open(bootstrap: &str, topic: &str, needs: &Needs) -> Result<KafkaSink> {
        if let Some((position, size)) = &needs.largest
            && *size > MAX_MESSAGE_BYTES
        {
            return Err(ArchiveError::invalid(format!(
                "kafka: message {position} takes about {size} bytes with its key and headers, \
                 more than the producer's {MAX_MESSAGE_BYTES} (message.max.bytes)"
            )));
        }
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", bootstrap)
            // A missing topic is reported (or created with the right partitions), never
            // created by the broker's defaults on first use.
            .set("allow.auto.create.topics", "false")
            // Ordered, exactly-once sends per partition while many are in flight.
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("batch.num.messages", "10000")
            .set("message.timeout.ms", "60000")
            .set("message.max.bytes", MAX_MESSAGE_BYTES.to_string());
        let producer: FutureProducer = config
            .create()
            .map_err(|error| broker_error("kafka: creating the producer".into(), error))?;
        let found = partition_count(&producer, bootstrap, topic).await?;
        match found {
            Some(count) if count >= needs.partitions => {}
            Some(count) => {
                return Err(ArchiveError::invalid(format!(
                    "topic {topic} on {bootstrap} has {count} partitions, and the replay sends to \
                     partition {}; add partitions, or map the archived partitions onto the \
                     topic's (for example 0:0,1:1) or by key",
                    needs.partitions - 1
                )));
            }
            None if !needs.create => {
                return Err(ArchiveError::new(
                    ArchiveErrorKind::NotFound,
                    format!(
                        "topic {topic} does not exist on {bootstrap}; create it or pass --create"
                    ),
                ));
            }
            None => create_topic(&config, &producer, bootstrap, topic, needs).await?,
        }
        Ok(KafkaSink {
            producer,
            bootstrap: bootstrap.to_owned(),
            topic: topic.to_owned(),
        })
    }

    pub async fn send(&mut self, outgoing: Outgoing<'_>) -> std::result::Result<Delivery, String> {
        let message = outgoing.message;
        let mut headers = OwnedHeaders::new_with_capacity(outgoing.headers.len());
        for header in &outgoing.headers {
            headers = headers.insert(KafkaHeader {
                key: &header.name,
                value: header.value.as_deref(),
            });
        }
        let mut record = FutureRecord::<[u8], [u8]>::to(&self.topic).headers(headers);
        if let Some(partition) = outgoing.partition {
            record = record.partition(partition);
        }
        if let Some(key) = message.key.as_deref() {
            record = record.key(key);
        }
        if let Some(payload) = message.payload.as_deref() {
            record = record.payload(payload);
        }
        loop {
            match self.producer.send_result(record) {
                Ok(delivery) => {
                    return Ok(Box::pin(delivery.map(|answer| match answer {
                        Ok(Ok(delivery)) => Ok(Delivered {
                            partition: Some(delivery.partition),
                            offset: Some(delivery.offset),
                        }),
                        Ok(Err((error, _))) => Err(error.to_string()),
                        Err(_) => Err("the producer closed before the broker answered".into()),
                    })));
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err((error, _)) => return Err(error.to_string()),
            }
        }
    }

    /// Commits `positions` for `group` on the topic, as a consumer of the group that never
    /// joins it (the broker refuses while the group has active members).
    pub async fn set_group_offsets(
        &self,
        group: &str,
        positions: &BTreeMap<i32, i64>,
    ) -> Result<()> {
        let mut list = TopicPartitionList::new();
        for (&partition, &offset) in positions {
            list.add_partition_offset(&self.topic, partition, Offset::Offset(offset))
                .map_err(|error| broker_error(format!("kafka: group {group}"), error))?;
        }
        if list.count() == 0 {
            return Ok(());
        }
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .map_err(|error| broker_error(format!("kafka: group {group}"), error))?;
        let (topic, bootstrap, group) =
            (self.topic.clone(), self.bootstrap.clone(), group.to_owned());
        tokio::task::spawn_blocking(move || {
            consumer.commit(&list, CommitMode::Sync).map_err(|error| {
                broker_error(
                    format!(
                        "kafka: committing the offsets of group {group} on {topic} at \
                             {bootstrap} (a group with running consumers refuses; stop them first)"
                    ),
                    error,
                )
            })
        })
        .await
        .map_err(|error| ArchiveError::invalid(format!("kafka commit task: {error}")))?
    }

    /// Waits (blocking, 10 s at most) until every message handed over has its answer.
    pub fn flush_blocking(&self) {
        if let Err(error) = self.producer.flush(Duration::from_secs(10)) {
            tracing::warn!(%error, "kafka: messages still in flight when the replay stopped");
        }
    }
}

/// Creates `topic` with `needs.create_partitions` partitions, the archived topic's settings
/// (`needs.create_config`) and the broker's default replication, then waits until its metadata shows them.
async fn create_topic(
    config: &ClientConfig,
    producer: &FutureProducer,
    bootstrap: &str,
    topic: &str,
    needs: &Needs,
) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = config
        .create()
        .map_err(|error| broker_error("kafka: creating the admin client".into(), error))?;
    let options = AdminOptions::new().operation_timeout(Some(METADATA_TIMEOUT));
    let mut new_topic = NewTopic::new(topic, needs.create_partitions, TopicReplication::Fixed(-1));
    for (name, value) in &needs.create_config {
        new_topic = new_topic.set(name, value);
    }
    let results = admin
        .create_topics(&[new_topic], &options)
        .await
        .map_err(|error| broker_error(format!("kafka: creating topic {topic}"), error))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => {
                return Err(ArchiveError::new(
                    ArchiveErrorKind::Broker,
                    format!("kafka: creating topic {topic} on {bootstrap}: {code}"),
                ));
            }
        }
    }
    let deadline = tokio::time::Instant::now() + METADATA_TIMEOUT;
    loop {
        let count = partition_count(producer, bootstrap, topic).await?;
        if count.is_some_and(|count| count >= needs.partitions) {
            tracing::info!(topic, partitions = ?count, "kafka: created the replay topic");
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ArchiveError::new(
                ArchiveErrorKind::Broker,
                format!(
                    "kafka: topic {topic} created on {bootstrap}, but its metadata shows \
                     {count:?} partitions after {METADATA_TIMEOUT:?}"
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
