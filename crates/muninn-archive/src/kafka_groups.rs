//! The Kafka recorder's sampler of consumer groups: every `group_positions_every`, the
//! committed offsets of every consumer group (the recorder's own left out) on every partition
//! of the recorded topics, of which the ones that moved are written to the archive
//! (`groups.rs`); and each recorded topic's partition count and own settings (`topics.rs`). A sample that fails is logged and counted, and never stops the recording.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, ConfigEntry, ConfigSource, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
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
use crate::topics::TopicConfig;

const TIMEOUT: Duration = Duration::from_secs(10);

/// A recorded topic and its partition count.
type TopicPartitions = (String, i32);

/// What to sample: the recorded topics (names and `^` patterns), on which brokers.
pub(crate) struct GroupSampler {
    config: ClientConfig,
    admin: AdminClient<DefaultClientContext>,
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
        let admin = config
            .create()
            .map_err(|error| broker_error("kafka: creating the topic describer", error))?;
        Ok(GroupSampler {
            admin,
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

    /// One sample, blocking: every group's committed offset on every recorded partition, and
    /// the recorded topics with their partition counts.
    pub fn sample_blocking(&self) -> Result<(Vec<GroupPosition>, Vec<TopicPartitions>)> {
        let client: BaseConsumer = self
            .config
            .create()
            .map_err(|error| broker_error("kafka: creating the group sampler", error))?;
        let metadata = client
            .fetch_metadata(None, TIMEOUT)
            .map_err(|error| broker_error("kafka: reading the topics", error))?;
        let mut partitions = TopicPartitionList::new();
        let mut topics = Vec::new();
        for topic in metadata.topics() {
            if topic.error().is_some() || !self.recorded(topic.name()) {
                continue;
            }
            topics.push((topic.name().to_owned(), topic.partitions().len() as i32));
            for partition in topic.partitions() {
                partitions.add_partition(topic.name(), partition.id());
            }
        }
        if partitions.count() == 0 {
            return Ok((Vec::new(), topics));
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
        Ok((positions, topics))
    }

    /// Each topic's own settings (not the broker's defaults, nothing sensitive).
    async fn topic_configs(&self, topics: &[(String, i32)]) -> Result<Vec<TopicConfig>> {
        let specifiers: Vec<ResourceSpecifier<'_>> = topics
            .iter()
            .map(|(name, _)| ResourceSpecifier::Topic(name))
            .collect();
        let options = AdminOptions::new().request_timeout(Some(TIMEOUT));
        let results = self
            .admin
            .describe_configs(&specifiers, &options)
            .await
            .map_err(|error| broker_error("kafka: describing the topics", error))?;
        let seen_ms = muninn_model::now_unix_nanos() / 1_000_000;
        let mut configs = Vec::new();
        for ((name, partitions), result) in topics.iter().zip(results) {
            let resource = result.map_err(|code| {
                ArchiveError::new(
                    ArchiveErrorKind::Broker,
                    format!("kafka: describing topic {name}: {code}"),
                )
            })?;
            configs.push(TopicConfig {
                stream: name.clone(),
                partitions: *partitions,
                config: own_settings(resource.entries),
                seen_ms,
            });
        }
        Ok(configs)
    }
}

/// The settings made on the topic itself: Kafka's `DYNAMIC_TOPIC_CONFIG` entries, the
/// sensitive ones left out. (tansu reports a topic's own settings as defaults, so none are
/// kept from it.)
fn own_settings(entries: Vec<ConfigEntry>) -> BTreeMap<String, String> {
    entries
        .into_iter()
        .filter(|entry| entry.source == ConfigSource::DynamicTopic && !entry.is_sensitive)
        .filter_map(|entry| Some((entry.name, entry.value?)))
        .collect()
}

/// Writes the topics whose partitions or settings changed since `seen` last recorded them.
async fn record_topics(
    archive: &Archive,
    sampler: &GroupSampler,
    topics: &[(String, i32)],
    seen: &Mutex<HashMap<String, TopicConfig>>,
) -> Result<()> {
    for topic in sampler.topic_configs(topics).await? {
        let known = seen
            .lock()
            .ok()
            .and_then(|seen| seen.get(&topic.stream).cloned());
        if known.is_some_and(|known| known.same_as(&topic)) {
            continue;
        }
        archive.record_topic(&topic).await?;
        if let Ok(mut seen) = seen.lock() {
            seen.insert(topic.stream.clone(), topic);
        }
    }
    Ok(())
}

/// Samples every `every` until the recorder aborts the task.
pub(crate) async fn sample_groups(
    archive: Archive,
    sampler: GroupSampler,
    every: Duration,
    stats: Arc<RecorderStats>,
) {
    let sampler = Arc::new(sampler);
    let seen = Arc::new(Mutex::new(HashMap::new()));
    let writer = archive.clone();
    crate::groups::record_samples(archive, every, stats, "kafka", move || {
        let (sampler, seen, archive) = (sampler.clone(), seen.clone(), writer.clone());
        async move {
            let blocking = sampler.clone();
            let (positions, topics) =
                tokio::task::spawn_blocking(move || blocking.sample_blocking())
                    .await
                    .map_err(|error| format!("the sampler stopped: {error}"))?
                    .map_err(|error| error.to_string())?;
            // A topic's settings are a nicety for `replay --create`: a broker that cannot
            // describe them leaves the positions recorded all the same.
            if let Err(error) = record_topics(&archive, &sampler, &topics, &seen).await {
                tracing::warn!(%error, "kafka: recording the topics' settings failed");
            }
            Ok(positions)
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, value: &str, source: ConfigSource, sensitive: bool) -> ConfigEntry {
        ConfigEntry {
            name: name.to_owned(),
            value: Some(value.to_owned()),
            is_default: source == ConfigSource::Default,
            source,
            is_read_only: false,
            is_sensitive: sensitive,
        }
    }

    #[test]
    fn only_the_topics_own_settings_are_kept() {
        let kept = own_settings(vec![
            entry(
                "retention.ms",
                "86400000",
                ConfigSource::DynamicTopic,
                false,
            ),
            entry(
                "cleanup.policy",
                "compact",
                ConfigSource::DynamicTopic,
                false,
            ),
            entry("segment.bytes", "1073741824", ConfigSource::Default, false),
            entry(
                "min.insync.replicas",
                "2",
                ConfigSource::StaticBroker,
                false,
            ),
            entry("secret.thing", "hunter2", ConfigSource::DynamicTopic, true),
        ]);
        assert_eq!(
            kept,
            BTreeMap::from([
                ("cleanup.policy".to_owned(), "compact".to_owned()),
                ("retention.ms".to_owned(), "86400000".to_owned()),
            ])
        );
    }
}
