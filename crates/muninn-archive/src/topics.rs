//! What the recorder saw of each Kafka topic: its partition count and its own configuration
//! (the settings made on the topic, not the broker's defaults), kept at
//! `v1/topics/stream=S/kafka.json` and replaced when they change, so `replay --create` makes
//! the new topic like the archived one.

use std::collections::BTreeMap;

use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::archive::Archive;
use crate::error::{ArchiveError, Result};
use crate::format::ARCHIVE_FORMAT_VERSION;
use crate::layout;

/// A topic as the recorder last saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicConfig {
    pub stream: String,
    pub partitions: i32,
    /// The settings made on the topic itself (Kafka's `DYNAMIC_TOPIC_CONFIG` source), like
    /// `retention.ms` or `cleanup.policy`; sensitive ones are left out.
    pub config: BTreeMap<String, String>,
    /// When the recorder saw this (unix ms).
    pub seen_ms: i64,
}

impl TopicConfig {
    /// Whether `other` says the same of the topic (the time aside).
    pub fn same_as(&self, other: &TopicConfig) -> bool {
        (&self.stream, self.partitions, &self.config)
            == (&other.stream, other.partitions, &other.config)
    }
}

fn path(stream: &str) -> Path {
    Path::from_iter([
        format!("v{ARCHIVE_FORMAT_VERSION}"),
        "topics".to_owned(),
        format!("stream={stream}"),
        "kafka.json".to_owned(),
    ])
}

impl Archive {
    /// Replaces what the archive knows of a topic.
    pub async fn record_topic(&self, topic: &TopicConfig) -> Result<()> {
        layout::check_stream_name(&topic.stream)?;
        let path = path(&topic.stream);
        let mut bytes = serde_json::to_vec_pretty(topic)
            .map_err(|error| ArchiveError::corrupt(format!("encoding {path}: {error}")))?;
        bytes.push(b'\n');
        self.store
            .put(&path, PutPayload::from(bytes))
            .await
            .map_err(|error| ArchiveError::object_store(format!("writing {path}"), error))?;
        Ok(())
    }

    /// The topic behind `stream` as the recorder last saw it; `None` when it never recorded
    /// one (a JetStream stream, or an archive written before topics were kept).
    pub async fn topic(&self, stream: &str) -> Result<Option<TopicConfig>> {
        layout::check_stream_name(stream)?;
        let path = path(stream);
        let bytes = match self.store.get(&path).await {
            Ok(result) => result
                .bytes()
                .await
                .map_err(|error| ArchiveError::object_store(format!("reading {path}"), error))?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(error) => return Err(ArchiveError::object_store(format!("reading {path}"), error)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|error| ArchiveError::corrupt(format!("{path}: {error}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_topic_reads_back_and_a_stream_without_one_has_none() {
        let dir = tempfile::tempdir().unwrap();
        let archive = Archive::open_local(dir.path()).await.unwrap();
        assert_eq!(archive.topic("orders").await.unwrap(), None);
        let topic = TopicConfig {
            stream: "orders".into(),
            partitions: 6,
            config: BTreeMap::from([("retention.ms".to_owned(), "86400000".to_owned())]),
            seen_ms: 1,
        };
        archive.record_topic(&topic).await.unwrap();
        assert!(
            dir.path()
                .join("v1/topics/stream=orders/kafka.json")
                .is_file()
        );
        let read = archive.topic("orders").await.unwrap().unwrap();
        assert_eq!(read, topic);
        assert!(read.same_as(&TopicConfig {
            seen_ms: 2,
            ..topic
        }));
    }
}
