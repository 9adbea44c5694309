//! The archive's configuration as the server receives it (already parsed by the caller), with
//! the checks that name the offending key as `archive.<key>`, and the opening of its location.

use muninn_archive::{Archive, KafkaSource, NatsSource, RecorderOptions};

use super::maintenance::MaintenanceConfig;

/// The event archive in the server: where it is, and the recorders that write to it. The
/// routes under `/api/v1/archive/` read it whether or not a recorder runs here (another
/// process, `muninn archive run`, may write it).
#[derive(Debug, Clone)]
pub struct ArchiveConfig {
    /// A local directory, or `file://DIR` (created when missing).
    pub location: String,
    /// Records Kafka topics into the archive, as a consumer group.
    pub kafka: Option<KafkaSource>,
    /// Records JetStream streams into the archive, with a durable consumer each.
    pub nats: Option<NatsSource>,
    /// When the recorders close a partition's file: bytes, messages, age.
    pub recorder: RecorderOptions,
    /// Retention and compaction, run by the server beside the recorders.
    pub maintenance: MaintenanceConfig,
}

impl ArchiveConfig {
    /// The archive at `location`, with no recorder and the default file-closing options.
    pub fn new(location: impl Into<String>) -> Self {
        ArchiveConfig {
            location: location.into(),
            kafka: None,
            nats: None,
            recorder: RecorderOptions::default(),
            maintenance: MaintenanceConfig::default(),
        }
    }

    /// Checks what can be checked before connecting; the error names the key.
    pub fn validate(&self) -> Result<(), ArchiveConfigError> {
        let error = |key: &str, message: &str| {
            Err(ArchiveConfigError {
                key: key.to_owned(),
                message: message.to_owned(),
            })
        };
        if let Err(message) = check_location(&self.location) {
            return error("location", &message);
        }
        if self.recorder.max_file_bytes == 0 {
            return error("max_file_bytes", "must be at least 1, like 64MiB");
        }
        if self.recorder.max_file_messages == 0 {
            return error("max_file_messages", "must be at least 1, like 500000");
        }
        if self.recorder.max_file_age.is_zero() {
            return error("max_file_age", "must be above zero, like 60s");
        }
        if self.maintenance.every.is_zero() {
            return error("maintenance_every", "must be above zero, like 1h");
        }
        if self
            .recorder
            .group_positions_every
            .is_some_and(|every| every.is_zero())
        {
            return error(
                "group_positions_every",
                "must be above zero, like 60s, or \"off\"",
            );
        }
        if let Some(kafka) = &self.kafka {
            if kafka.bootstrap.trim().is_empty() {
                return error(
                    "kafka.bootstrap",
                    "must not be empty; give HOST:PORT[,HOST:PORT…]",
                );
            }
            if kafka.group.trim().is_empty() {
                return error(
                    "kafka.group",
                    "must not be empty; give the consumer group, like muninn-archive",
                );
            }
            if kafka.topics.is_empty() {
                return error(
                    "kafka.topics",
                    "give at least one topic name, or a pattern starting with ^",
                );
            }
            for topic in &kafka.topics {
                if !topic.starts_with('^')
                    && let Err(problem) = muninn_archive::check_stream_name(topic)
                {
                    return error(
                        "kafka.topics",
                        &format!("{problem}, or a pattern starting with ^"),
                    );
                }
            }
        }
        if let Some(nats) = &self.nats {
            if nats.url.trim().is_empty() {
                return error("nats.url", "must not be empty; give nats://HOST:PORT");
            }
            if nats.streams.is_empty() {
                return error(
                    "nats.streams",
                    "give at least one JetStream stream name, or a pattern with *",
                );
            }
            if nats.durable.trim().is_empty() {
                return error(
                    "nats.durable",
                    "must not be empty; give the durable consumer's name, like muninn-archive",
                );
            }
        }
        Ok(())
    }
}

/// An archive setting that cannot work: the key under `[archive]` (`location`,
/// `kafka.topics`) and what would be valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("archive.{key}: {message}")]
pub struct ArchiveConfigError {
    pub key: String,
    pub message: String,
}

/// A location the archive can open: a path, `file://PATH` or `s3://BUCKET[/PREFIX]`.
fn check_location(location: &str) -> Result<(), String> {
    if location.trim().is_empty() {
        return Err("must not be empty; give a directory, like ./muninn-archive".into());
    }
    muninn_archive::Archive::check_location(location).map_err(|error| error.to_string())
}

/// Opens the archive at `location` (checked by `validate`).
pub(super) async fn open(location: &str) -> Result<Archive, String> {
    check_location(location).map_err(|message| format!("archive.location: {message}"))?;
    Archive::open(location)
        .await
        .map_err(|error| format!("opening the archive {location}: {error}"))
}
