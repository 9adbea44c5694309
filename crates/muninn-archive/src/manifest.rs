//! The manifest of one partition and hour: the files it commits, each with its offset range,
//! count, bytes, checksum, time range and a sparse time → offset index. A file is part of the
//! archive once its manifest names it; a file no manifest names (a crash between the two
//! writes) is ignored and rewritten by the retry. Compaction replaces entries of a sealed hour
//! by the entry of the file it merged them into (`compaction.rs`).

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::format::ARCHIVE_FORMAT_VERSION;
use crate::message::Message;

/// One index entry every this many messages (and one for the first).
pub const INDEX_EVERY: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub stream: String,
    pub partition: i32,
    /// The hour, as `2026-12-03T17`.
    pub hour: String,
    /// Sorted by first offset, ranges disjoint.
    pub files: Vec<FileEntry>,
    /// The Kafka topic id of the topic these files came from, when the broker gives one: a
    /// topic deleted and created again has a new one, and its offsets start over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<String>,
}

impl Manifest {
    pub fn new(stream: &str, partition: i32, hour: String) -> Manifest {
        Manifest {
            format: ARCHIVE_FORMAT_VERSION,
            stream: stream.to_owned(),
            partition,
            hour,
            files: Vec::new(),
            topic_id: None,
        }
    }

    /// Adds `entry`, replacing any file whose offsets overlap it.
    pub fn commit(&mut self, entry: FileEntry) {
        self.files.retain(|file| {
            file.last_offset < entry.first_offset || file.first_offset > entry.last_offset
        });
        self.files.push(entry);
        self.files.sort_by_key(|file| file.first_offset);
    }

    /// Messages in all the files.
    pub fn message_count(&self) -> u64 {
        self.files.iter().map(|file| file.count).sum()
    }

    pub fn last_offset(&self) -> Option<i64> {
        self.files.iter().map(|file| file.last_offset).max()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub name: String,
    pub first_offset: i64,
    pub last_offset: i64,
    pub count: u64,
    /// The file's size.
    pub bytes: u64,
    /// Key, payload and header bytes of its messages.
    pub message_bytes: u64,
    /// xxh3-64 of the file's bytes, 16 hex digits.
    pub xxh3: String,
    pub min_timestamp_ms: i64,
    pub max_timestamp_ms: i64,
    /// (timestamp ms, offset) of the first message and of every `INDEX_EVERY`th after it.
    pub index: Vec<(i64, i64)>,
}

impl FileEntry {
    pub fn overlaps_time(&self, from_ms: i64, to_ms: i64) -> bool {
        self.min_timestamp_ms < to_ms && self.max_timestamp_ms >= from_ms
    }

    /// The entry of file `name`, holding `messages` (ascending offsets) encoded as `file`.
    pub(crate) fn describe(name: String, messages: &[Message], file: &[u8]) -> FileEntry {
        let mut entry = EntryBuilder::default();
        for message in messages {
            entry.add(message);
        }
        entry.finish(name, file)
    }
}

/// A [`FileEntry`] built message by message, as a file is written in pieces (compaction).
#[derive(Debug, Default)]
pub(crate) struct EntryBuilder {
    first_offset: Option<i64>,
    last_offset: i64,
    count: u64,
    message_bytes: u64,
    min_timestamp_ms: Option<i64>,
    max_timestamp_ms: Option<i64>,
    index: Vec<(i64, i64)>,
}

impl EntryBuilder {
    /// Adds the next message (offsets ascending).
    pub(crate) fn add(&mut self, message: &Message) {
        if self.count.is_multiple_of(INDEX_EVERY as u64) {
            self.index.push((message.timestamp_ms, message.offset));
        }
        self.first_offset.get_or_insert(message.offset);
        self.last_offset = message.offset;
        self.count += 1;
        self.message_bytes += message.size_bytes() as u64;
        self.min_timestamp_ms = Some(
            self.min_timestamp_ms
                .map_or(message.timestamp_ms, |min| min.min(message.timestamp_ms)),
        );
        self.max_timestamp_ms = Some(
            self.max_timestamp_ms
                .map_or(message.timestamp_ms, |max| max.max(message.timestamp_ms)),
        );
    }

    /// The entry of file `name`, whose bytes are `file`.
    pub(crate) fn finish(self, name: String, file: &[u8]) -> FileEntry {
        FileEntry {
            name,
            first_offset: self.first_offset.unwrap_or_default(),
            last_offset: self.last_offset,
            count: self.count,
            bytes: file.len() as u64,
            message_bytes: self.message_bytes,
            xxh3: format!("{:016x}", xxh3_64(file)),
            min_timestamp_ms: self.min_timestamp_ms.unwrap_or_default(),
            max_timestamp_ms: self.max_timestamp_ms.unwrap_or_default(),
            index: self.index,
        }
    }
}
