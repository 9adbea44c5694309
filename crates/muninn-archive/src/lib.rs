//! Muninn's event archive (the TattleTail idea): every message that flowed through the
//! brokers, payload, key and headers byte for byte, one row per message in Parquet files on an
//! object store, partitioned by stream and hour and committed by per-partition manifests, so it
//! can be found by stream, time, offset, event id or trace id, read by DuckDB, and replayed.
//! `docs/archive.md` describes the layout and the guarantees.

mod archive;
mod compaction;
mod error;
mod filter;
mod format;
mod groups;
mod json;
#[cfg(feature = "kafka")]
mod kafka;
#[cfg(feature = "kafka")]
mod kafka_groups;
#[cfg(feature = "kafka")]
mod kafka_topic_id;
mod layout;
mod location;
mod manifest;
mod message;
mod mirror;
#[cfg(feature = "nats")]
mod nats;
#[cfg(feature = "nats")]
mod nats_groups;
#[cfg(feature = "nats")]
mod nats_stored;
mod recorder;
mod replay;
mod retention;
mod topics;

pub use archive::{Archive, FileRef, PartitionSummary, StreamSummary};
pub use compaction::{CompactFigures, CompactOptions, CompactReport};
pub use error::{ArchiveError, ArchiveErrorKind};
pub use filter::{Filter, Selection};
pub use format::ARCHIVE_FORMAT_VERSION;
pub use groups::{ChangedPositions, GroupPosition};
pub use json::{RenderedPayload, from_json, render_payload, to_json};
#[cfg(feature = "kafka")]
pub use kafka::{KafkaSource, convert as from_kafka_record, record_kafka};
pub use layout::{Hour, check_stream_name};
pub use manifest::{FileEntry, Manifest};
pub use message::{Header, Message, SourceBroker, TimestampType};
pub use mirror::{Difference, MirrorReport};
#[cfg(feature = "nats")]
pub use nats::{NatsSource, record_nats};
pub use recorder::{Committed, Recorder, RecorderOptions, RecorderSnapshot, RecorderStats};
pub use replay::{
    GroupOffsets, PartitionMap, REPLAYED_FROM_HEADER, ReplayOptions, ReplayProgress, ReplayReport,
    Target, replay,
};
pub use retention::{RetentionReport, RetentionRule};
pub use topics::TopicConfig;
