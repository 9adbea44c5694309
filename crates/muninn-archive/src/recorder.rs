//! The broker-independent half of a recorder: buffers each partition's messages, closes a file
//! by size, by message count, when a later hour begins and after a time bound (so idle streams
//! still land), commits it to the archive (retrying with backoff while the object store is
//! unreachable, never dropping a message), and says which positions the broker may now commit.
//! Messages at or before a partition's archived position (redelivered after a crash or a
//! rebalance) are skipped: the archive, not the consumer group, is the source of truth, so
//! every message lands exactly once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::archive::{Archive, FileRef};
use crate::error::Result;
use crate::layout::Hour;
use crate::message::Message;

/// When a file is closed.
#[derive(Debug, Clone)]
pub struct RecorderOptions {
    /// Key, payload and header bytes buffered per partition before a file is written.
    pub max_file_bytes: usize,
    pub max_file_messages: usize,
    /// A partition's buffer is written at the latest this long after its first message.
    pub max_file_age: Duration,
    /// Longest wait between two attempts at a failing write.
    pub max_backoff: Duration,
    /// How often the consumer groups' committed positions are sampled into the archive;
    /// `None` for never.
    pub group_positions_every: Option<Duration>,
}

impl Default for RecorderOptions {
    fn default() -> Self {
        RecorderOptions {
            max_file_bytes: 64 << 20,
            max_file_messages: 500_000,
            max_file_age: Duration::from_secs(60),
            max_backoff: Duration::from_secs(30),
            group_positions_every: Some(Duration::from_secs(60)),
        }
    }
}

/// Counters of a recorder, shared with `/metrics` and `/healthz`.
#[derive(Debug, Default)]
pub struct RecorderStats {
    /// Messages handed to the recorder by the broker, redeliveries included.
    pub messages_received: AtomicU64,
    pub messages_archived: AtomicU64,
    pub message_bytes_archived: AtomicU64,
    pub files_written: AtomicU64,
    /// Redelivered messages that were already in the archive.
    pub duplicates_skipped: AtomicU64,
    /// Messages not recorded because their topic was deleted and created again (see
    /// [`Recorder::set_topic_id`]); they stay on the broker, uncommitted.
    pub messages_refused: AtomicU64,
    pub object_store_errors: AtomicU64,
    pub broker_errors: AtomicU64,
    /// Consumer groups' positions written to the archive (only those that moved).
    pub group_positions_recorded: AtomicU64,
    /// Samples of the consumer groups that failed (the recording goes on).
    pub group_sample_errors: AtomicU64,
    /// False while the last write or broker call failed.
    pub healthy: AtomicBool,
    pub last_error: Mutex<Option<String>>,
    /// Why a partition is refused, while one is: the recorder is unhealthy until it is not.
    pub refusal: Mutex<Option<String>>,
}

/// A point-in-time copy of [`RecorderStats`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecorderSnapshot {
    pub messages_received: u64,
    pub messages_archived: u64,
    pub message_bytes_archived: u64,
    pub files_written: u64,
    pub duplicates_skipped: u64,
    pub messages_refused: u64,
    pub object_store_errors: u64,
    pub broker_errors: u64,
    pub group_positions_recorded: u64,
    pub group_sample_errors: u64,
    pub healthy: bool,
    pub last_error: Option<String>,
}

impl RecorderStats {
    pub fn new() -> RecorderStats {
        RecorderStats {
            healthy: AtomicBool::new(true),
            ..RecorderStats::default()
        }
    }

    pub fn snapshot(&self) -> RecorderSnapshot {
        let refusal = self.refusal.lock().ok().and_then(|refusal| refusal.clone());
        RecorderSnapshot {
            messages_received: self.messages_received.load(Ordering::Relaxed),
            messages_archived: self.messages_archived.load(Ordering::Relaxed),
            message_bytes_archived: self.message_bytes_archived.load(Ordering::Relaxed),
            files_written: self.files_written.load(Ordering::Relaxed),
            duplicates_skipped: self.duplicates_skipped.load(Ordering::Relaxed),
            messages_refused: self.messages_refused.load(Ordering::Relaxed),
            object_store_errors: self.object_store_errors.load(Ordering::Relaxed),
            broker_errors: self.broker_errors.load(Ordering::Relaxed),
            group_positions_recorded: self.group_positions_recorded.load(Ordering::Relaxed),
            group_sample_errors: self.group_sample_errors.load(Ordering::Relaxed),
            healthy: self.healthy.load(Ordering::Relaxed) && refusal.is_none(),
            last_error: refusal
                .or_else(|| self.last_error.lock().ok().and_then(|error| error.clone())),
        }
    }

    pub(crate) fn failed(&self, error: String) {
        self.healthy.store(false, Ordering::Relaxed);
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(error);
        }
    }

    pub(crate) fn recovered(&self) {
        self.healthy.store(true, Ordering::Relaxed);
    }
}

/// Stops a background task (the group sampler) when the recorder stops or its future is
/// dropped.
#[cfg_attr(not(any(feature = "kafka", feature = "nats")), allow(dead_code))]
pub(crate) struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A position the broker may commit: every message of the partition before `next_offset` is
/// durable in the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub stream: String,
    pub partition: i32,
    pub next_offset: i64,
}

struct Buffer {
    messages: Vec<Message>,
    bytes: usize,
    hour: Hour,
    opened: Instant,
    /// The Kafka topic id the messages came from, when known.
    topic_id: Option<Arc<str>>,
}

/// Buffers and commits; one per recorder task.
pub struct Recorder {
    archive: Archive,
    options: RecorderOptions,
    stats: std::sync::Arc<RecorderStats>,
    buffers: HashMap<(String, i32), Buffer>,
    /// The last archived hour and offset per partition, looked up in the archive on first sight
    /// (and set when a file is handed to the writer: it retries until the file is durable).
    positions: HashMap<(String, i32), Option<(Hour, i64)>>,
    /// Files being encoded and written while the next ones fill, oldest first: at most
    /// [`MAX_IN_FLIGHT`], and one per partition, so a partition's files (and its manifest's
    /// updates) stay in order while different partitions' files are encoded in parallel.
    in_flight: Vec<InFlight>,
    /// Kafka topic ids by topic, as the broker source looked them up.
    topic_ids: HashMap<String, Arc<str>>,
    /// Partitions not recorded, with the reason (their topic was deleted and created again).
    refused: HashMap<(String, i32), String>,
}

/// Files encoded and written at once (each on a blocking thread; their memory is on top of the
/// buffers').
const MAX_IN_FLIGHT: usize = 4;

struct InFlight {
    key: (String, i32),
    hour: Hour,
    topic_id: Option<Arc<str>>,
    messages: Arc<Vec<Message>>,
    task: tokio::task::JoinHandle<FileRef>,
}

impl Recorder {
    pub fn new(
        archive: Archive,
        options: RecorderOptions,
        stats: std::sync::Arc<RecorderStats>,
    ) -> Recorder {
        Recorder {
            archive,
            options,
            stats,
            buffers: HashMap::new(),
            positions: HashMap::new(),
            in_flight: Vec::new(),
            topic_ids: HashMap::new(),
            refused: HashMap::new(),
        }
    }

    /// Tells the recorder the id of a Kafka topic (`None`: unknown). A partition whose newest
    /// manifest names another id (the topic was deleted and created again) is refused: its
    /// messages are neither skipped as archived nor mixed with the old topic's, and the
    /// recorder reports the error until the partition's archive is moved aside.
    pub fn set_topic_id(&mut self, topic: &str, id: Option<&str>) {
        match id {
            Some(id) => self.topic_ids.insert(topic.to_owned(), Arc::from(id)),
            None => self.topic_ids.remove(topic),
        };
    }

    /// Whether a topic's id was looked up (see [`Recorder::set_topic_id`]).
    pub fn knows_topic(&self, topic: &str) -> bool {
        self.topic_ids.contains_key(topic)
    }

    pub fn stats(&self) -> &RecorderStats {
        &self.stats
    }

    /// Takes one message; returns the positions that became durable (none, usually).
    pub async fn offer(&mut self, message: Message) -> Vec<Committed> {
        self.stats.messages_received.fetch_add(1, Ordering::Relaxed);
        let mut committed = self.finished().await;
        let key = (message.stream.clone(), message.partition);
        if self.refused.contains_key(&key) {
            self.stats.messages_refused.fetch_add(1, Ordering::Relaxed);
            return committed;
        }
        let position = match self.positions.get(&key) {
            Some(position) => *position,
            None => {
                let archive = self.archive.clone();
                let (stream, partition) = (key.0.clone(), key.1);
                let found = self
                    .retrying(|| {
                        let archive = archive.clone();
                        let stream = stream.clone();
                        async move { archive.last_position_and_topic(&stream, partition).await }
                    })
                    .await;
                if let (Some((_, _, Some(archived))), Some(current)) =
                    (&found, self.topic_ids.get(&stream))
                    && archived.as_str() != &**current
                {
                    let why =
                        crate::archive::recreated_topic(&stream, partition, archived, current);
                    tracing::error!("{why}");
                    if let Ok(mut refusal) = self.stats.refusal.lock() {
                        *refusal = Some(why.clone());
                    }
                    self.stats.messages_refused.fetch_add(1, Ordering::Relaxed);
                    self.refused.insert(key, why);
                    return committed;
                }
                let position = found.map(|(hour, offset, _)| (hour, offset));
                self.positions.insert(key.clone(), position);
                position
            }
        };
        let buffered_last = self
            .buffers
            .get(&key)
            .and_then(|buffer| buffer.messages.last())
            .map(|last| last.offset);
        if position.is_some_and(|(_, last)| message.offset <= last)
            || buffered_last.is_some_and(|last| message.offset <= last)
        {
            self.stats
                .duplicates_skipped
                .fetch_add(1, Ordering::Relaxed);
            return committed;
        }
        let hour = match position {
            Some((last_hour, _)) => Hour::of(message.timestamp_ms).max(last_hour),
            None => Hour::of(message.timestamp_ms),
        };
        if self
            .buffers
            .get(&key)
            .is_some_and(|buffer| hour > buffer.hour)
        {
            committed.extend(self.commit(&key).await);
        }
        let topic_id = self.topic_ids.get(&key.0).cloned();
        let buffer = self.buffers.entry(key.clone()).or_insert_with(|| Buffer {
            messages: Vec::new(),
            bytes: 0,
            hour,
            opened: Instant::now(),
            topic_id,
        });
        buffer.bytes += message.size_bytes();
        buffer.messages.push(message);
        if buffer.bytes >= self.options.max_file_bytes
            || buffer.messages.len() >= self.options.max_file_messages
        {
            committed.extend(self.commit(&key).await);
        }
        committed
    }

    /// Writes every buffer older than the time bound; says which files became durable.
    pub async fn commit_due(&mut self) -> Vec<Committed> {
        let due: Vec<(String, i32)> = self
            .buffers
            .iter()
            .filter(|(_, buffer)| buffer.opened.elapsed() >= self.options.max_file_age)
            .map(|(key, _)| key.clone())
            .collect();
        let mut committed = self.finished().await;
        for key in due {
            committed.extend(self.commit(&key).await);
        }
        committed
    }

    /// Writes every buffer and waits until all are durable (at shutdown).
    pub async fn commit_all(&mut self) -> Vec<Committed> {
        let keys: Vec<(String, i32)> = self.buffers.keys().cloned().collect();
        let mut committed = Vec::new();
        for key in keys {
            committed.extend(self.commit(&key).await);
        }
        while let Some(done) = self.wait_oldest().await {
            committed.push(done);
        }
        committed
    }

    /// Forgets a partition this recorder no longer owns (a rebalance revoked it): its buffered
    /// messages are dropped (the new owner reads them again from the broker) and its position
    /// is looked up again if it comes back. A file being written is finished first; what it
    /// makes durable is returned.
    pub async fn forget(&mut self, stream: &str, partition: i32) -> Vec<Committed> {
        let key = (stream.to_owned(), partition);
        let committed = self.wait_for(&key).await.into_iter().collect();
        self.buffers.remove(&key);
        self.positions.remove(&key);
        self.refused.remove(&key);
        if self.refused.is_empty()
            && let Ok(mut refusal) = self.stats.refusal.lock()
        {
            *refusal = None;
        }
        committed
    }

    /// Messages buffered and not yet durable.
    pub fn buffered(&self) -> usize {
        self.buffers
            .values()
            .map(|buffer| buffer.messages.len())
            .sum()
    }

    /// Hands the partition's buffer to the writer, once the partition's previous file is durable
    /// and fewer than [`MAX_IN_FLIGHT`] files are in flight; returns the positions of the files
    /// it waited for.
    async fn commit(&mut self, key: &(String, i32)) -> Vec<Committed> {
        let Some(buffer) = self.buffers.remove(key) else {
            return Vec::new();
        };
        let mut previous = self.wait_for(key).await.into_iter().collect::<Vec<_>>();
        if self.in_flight.len() >= MAX_IN_FLIGHT {
            previous.extend(self.wait_oldest().await);
        }
        let messages = Arc::new(buffer.messages);
        let (hour, topic_id) = (buffer.hour, buffer.topic_id);
        if let Some(last) = messages.last() {
            self.positions
                .insert(key.clone(), Some((hour, last.offset)));
        }
        let task = tokio::spawn(write(
            self.archive.clone(),
            self.stats.clone(),
            self.options.max_backoff,
            hour,
            topic_id.clone(),
            messages.clone(),
        ));
        self.in_flight.push(InFlight {
            key: key.clone(),
            hour,
            topic_id,
            messages,
            task,
        });
        previous
    }

    /// The positions of the files that are durable already, without waiting.
    async fn finished(&mut self) -> Vec<Committed> {
        let mut committed = Vec::new();
        while let Some(index) = self
            .in_flight
            .iter()
            .position(|in_flight| in_flight.task.is_finished())
        {
            let in_flight = self.in_flight.remove(index);
            committed.push(self.settle(in_flight).await);
        }
        committed
    }

    /// Waits until the partition's file in flight, if any, is durable.
    async fn wait_for(&mut self, key: &(String, i32)) -> Option<Committed> {
        let index = self
            .in_flight
            .iter()
            .position(|in_flight| &in_flight.key == key)?;
        let in_flight = self.in_flight.remove(index);
        Some(self.settle(in_flight).await)
    }

    /// Waits until the oldest file in flight is durable.
    async fn wait_oldest(&mut self) -> Option<Committed> {
        if self.in_flight.is_empty() {
            return None;
        }
        let in_flight = self.in_flight.remove(0);
        Some(self.settle(in_flight).await)
    }

    async fn settle(&mut self, in_flight: InFlight) -> Committed {
        let file = match in_flight.task.await {
            Ok(file) => file,
            // The writer task panicked (a bug): write here, so that nothing is lost.
            Err(error) => {
                tracing::error!(%error, "archive writer task failed; writing again");
                write(
                    self.archive.clone(),
                    self.stats.clone(),
                    self.options.max_backoff,
                    in_flight.hour,
                    in_flight.topic_id,
                    in_flight.messages,
                )
                .await
            }
        };
        self.stats
            .messages_archived
            .fetch_add(file.entry.count, Ordering::Relaxed);
        self.stats
            .message_bytes_archived
            .fetch_add(file.entry.message_bytes, Ordering::Relaxed);
        self.stats.files_written.fetch_add(1, Ordering::Relaxed);
        Committed {
            stream: in_flight.key.0,
            partition: in_flight.key.1,
            next_offset: file.entry.last_offset + 1,
        }
    }

    async fn retrying<T, F, Fut>(&self, attempt: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        retrying(
            &self.stats,
            self.archive.description(),
            self.options.max_backoff,
            attempt,
        )
        .await
    }
}

impl Drop for Recorder {
    /// A dropped recorder writes nothing more: the file in flight is abandoned like in a crash
    /// (its messages are read again from the broker and rewritten under the same name).
    fn drop(&mut self) {
        for in_flight in &self.in_flight {
            in_flight.task.abort();
        }
    }
}

/// Commits one file, retrying until it is durable.
async fn write(
    archive: Archive,
    stats: Arc<RecorderStats>,
    max_backoff: Duration,
    hour: Hour,
    topic_id: Option<Arc<str>>,
    messages: Arc<Vec<Message>>,
) -> FileRef {
    retrying(&stats, archive.description(), max_backoff, || {
        let archive = archive.clone();
        let messages = messages.clone();
        let topic_id = topic_id.clone();
        async move {
            archive
                .commit_topic(hour, &messages, topic_id.as_deref())
                .await
        }
    })
    .await
}

/// Runs `attempt` until it succeeds, waiting 100 ms, then twice as long each time up to
/// `max_backoff`, between failures, which are logged and counted.
async fn retrying<T, F, Fut>(
    stats: &RecorderStats,
    description: &str,
    max_backoff: Duration,
    mut attempt: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut backoff = Duration::from_millis(100);
    loop {
        match attempt().await {
            Ok(value) => {
                stats.recovered();
                return value;
            }
            Err(error) => {
                stats.object_store_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(archive = description, %error, retry_in = ?backoff, "archive write failed; retrying");
                stats.failed(error.to_string());
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(max_backoff);
            }
        }
    }
}
