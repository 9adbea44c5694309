//! The Kafka recorder's sampler of consumer groups: every `group_positions_every`, the
//! committed offsets of every consumer group (the recorder's own left out) on every partition
//! of the recorded topics, of which the ones that moved are written to the archive
//! (`groups.rs`). A sample that fails is logged and counted, and never stops the recording.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use regex::Regex;

use crate::archive::Archive;
use crate::error::{ArchiveError, ArchiveErrorKind, Result};
use crate::groups::GroupPosition;
use crate::kafka::KafkaSource;
use crate::message::SourceBroker;
use crate::recorder::RecorderStats;

const TIMEOUT: Duration = Duration::from_secs(10);

/// What to sample: the recorded topics (names and `^` patterns), on which brokers.
pub(crate) struct GroupSampler {
    config: ClientConfig,
    own_group: String,
    names: Vec<String>,
    patterns: Vec<Regex>,
}

fn broker_error(
    context: impl std::fmt::Display,
    error: rdkafka::error::KafkaError,
) -> ArchiveError {
    ArchiveError::with_source(ArchiveErrorKind::Broker, context, error)
}

impl GroupSampler {
    pub fn new(source: &KafkaSource) -> Result<GroupSampler> {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &source.bootstrap);
        for (name, value) in &source.settings {
            config.set(name, value);
        }
        let mut names = Vec::new();
        let mut patterns = Vec::new();
        for topic in &source.topics {
            if topic.starts_with('^') {
                let pattern = Regex::new(topic).map_err(|error| {
                    ArchiveError::invalid(format!("kafka: topic pattern {topic:?}: {error}"))
                })?;
                patterns.push(pattern);
            } else {
                names.push(topic.clone());
            }
        }
        Ok(GroupSampler {
            config,
            own_group: source.group.clone(),
            names,
            patterns,
        })
    }

    fn recorded(&self, topic: &str) -> bool {
        self.names.iter().any(|name| name == topic)
            || self.patterns.iter().any(|pattern| pattern.is_match(topic))
    }

    /// One sample, blocking: every group's committed offset on every recorded partition.
    pub fn sample_blocking(&self) -> Result<Vec<GroupPosition>> {
        let client: BaseConsumer = self
            .config
            .create()
            .map_err(|error| broker_error("kafka: creating the group sampler", error))?;
        let metadata = client
            .fetch_metadata(None, TIMEOUT)
            .map_err(|error| broker_error("kafka: reading the topics", error))?;
        let mut partitions = TopicPartitionList::new();
        for topic in metadata.topics() {
            if topic.error().is_some() || !self.recorded(topic.name()) {
                continue;
            }
            for partition in topic.partitions() {
                partitions.add_partition(topic.name(), partition.id());
            }
        }
        if partitions.count() == 0 {
            return Ok(Vec::new());
        }
        let groups = client
            .fetch_group_list(None, TIMEOUT)
            .map_err(|error| broker_error("kafka: listing the consumer groups", error))?;
        let time_ms = muninn_model::now_unix_nanos() / 1_000_000;
        let mut positions = Vec::new();
        for group in groups.groups() {
            let name = group.name();
            let protocol = group.protocol_type();
            if name == self.own_group || !(protocol.is_empty() || protocol == "consumer") {
                continue;
            }
            let consumer: BaseConsumer = self
                .config
                .clone()
                .set("group.id", name)
                .set("enable.auto.commit", "false")
                .create()
                .map_err(|error| broker_error(format!("kafka: group {name}"), error))?;
            let committed = consumer
                .committed_offsets(partitions.clone(), TIMEOUT)
                .map_err(|error| {
                    broker_error(format!("kafka: committed offsets of group {name}"), error)
                })?;
            for element in committed.elements() {
                if let Offset::Offset(offset) = element.offset() {
                    positions.push(GroupPosition {
                        time_ms,
                        broker: SourceBroker::Kafka,
                        group: name.to_owned(),
                        stream: element.topic().to_owned(),
                        partition: element.partition(),
                        offset,
                    });
                }
            }
        }
        Ok(positions)
    }
}

/// Samples every `every` until the recorder aborts the task.
pub(crate) async fn sample_groups(
    archive: Archive,
    sampler: GroupSampler,
    every: Duration,
    stats: Arc<RecorderStats>,
) {
    let sampler = Arc::new(sampler);
    crate::groups::record_samples(archive, every, stats, "kafka", move || {
        let sampler = sampler.clone();
        async move {
            tokio::task::spawn_blocking(move || sampler.sample_blocking())
                .await
                .map_err(|error| format!("the sampler stopped: {error}"))?
                .map_err(|error| error.to_string())
        }
    })
    .await
}
