//! [`Archive`]: the archive's files and manifests on an object store (a local directory made
//! durable by the store's `LocalDir`, or any `object_store` backend). Writes commit one file of
//! one partition at a time (file first, then the manifest that names it); reads go through the
//! manifests only, so a half-written file is never seen, and a file that compaction replaced
//! after its manifest was read is read from its replacement.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use muninn_store::{LocalDir, OsFileSystem};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::Serialize;
use xxhash_rust::xxh3::xxh3_64;

use crate::error::{ArchiveError, ArchiveErrorKind, Result};
use crate::filter::Selection;
use crate::format;
use crate::layout::{self, Hour};
use crate::manifest::{FileEntry, Manifest};
use crate::message::Message;

/// The archive on one object store.
#[derive(Clone)]
pub struct Archive {
    pub(crate) store: Arc<dyn ObjectStore>,
    description: String,
}

/// One committed file, as a reader finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    pub stream: String,
    pub partition: i32,
    pub hour: Hour,
    pub entry: FileEntry,
}

/// What `GET /api/v1/archive/streams` and `muninn archive ls` show of one stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamSummary {
    pub stream: String,
    pub partitions: Vec<PartitionSummary>,
    pub messages: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionSummary {
    pub partition: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub messages: u64,
    /// Bytes of the archive files.
    pub bytes: u64,
    pub first_hour: String,
    pub last_hour: String,
    pub files: u64,
    /// Offset ranges between files that no file holds (a Kafka topic may have them on its own,
    /// after compaction or transactions).
    pub gaps: Vec<(i64, i64)>,
}

impl Archive {
    /// The archive in local directory `dir` (created when missing): every file and manifest is
    /// synced with its directory before a write returns. Temporary files a crash left are
    /// removed.
    pub async fn open_local(dir: impl Into<PathBuf>) -> Result<Archive> {
        let dir = dir.into();
        let fs = Arc::new(OsFileSystem);
        muninn_store::create_dir_all_durably(fs.as_ref(), &dir).map_err(|error| {
            ArchiveError::with_source(
                ArchiveErrorKind::ObjectStore,
                format!("archive directory {}", dir.display()),
                error,
            )
        })?;
        let local = LocalDir::new(dir.clone(), fs);
        local.remove_temporary_files().await.map_err(|error| {
            ArchiveError::object_store(format!("archive directory {}", dir.display()), error)
        })?;
        Ok(Archive {
            store: Arc::new(local),
            description: dir.display().to_string(),
        })
    }

    /// The archive on any object store (S3 and others); a put is durable when it returns.
    pub fn with_object_store(
        store: Arc<dyn ObjectStore>,
        description: impl Into<String>,
    ) -> Archive {
        Archive {
            store,
            description: description.into(),
        }
    }

    pub fn description(&self) -> &str {
        &self.description
    }

    /// Writes `messages` (one stream and partition, ascending offsets) as one file in the hour
    /// of the first, then commits it in that hour's manifest. Returns once both are durable.
    pub async fn commit(&self, messages: &[Message]) -> Result<FileRef> {
        let Some(first) = messages.first() else {
            return Err(ArchiveError::invalid("commit: no messages"));
        };
        self.commit_in(Hour::of(first.timestamp_ms), messages).await
    }

    /// [`Archive::commit`] into a given hour: a recorder never files a partition's messages in
    /// an hour before one it already wrote, even when a producer's clock goes back, so the
    /// newest hour always holds the partition's last offset.
    pub async fn commit_in(&self, hour: Hour, messages: &[Message]) -> Result<FileRef> {
        self.commit_topic(hour, messages, None).await
    }

    /// [`Archive::commit_in`] of messages of the Kafka topic with id `topic_id`: the hour's
    /// manifest records the id, and a manifest of another id (the topic was deleted and
    /// created again) is an error before anything is written.
    pub async fn commit_topic(
        &self,
        hour: Hour,
        messages: &[Message],
        topic_id: Option<&str>,
    ) -> Result<FileRef> {
        let Some(first) = messages.first() else {
            return Err(ArchiveError::invalid("commit: no messages"));
        };
        layout::check_stream_name(&first.stream)?;
        let (stream, partition) = (first.stream.clone(), first.partition);
        let manifest_path = layout::manifest_path(&stream, hour, partition);
        let mut manifest = self
            .manifest(&manifest_path)
            .await?
            .unwrap_or_else(|| Manifest::new(&stream, partition, hour.label()));
        if let (Some(archived), Some(current)) = (&manifest.topic_id, topic_id)
            && archived != current
        {
            return Err(ArchiveError::invalid(recreated_topic(
                &stream, partition, archived, current,
            )));
        }
        let owned = messages.to_vec();
        let file = tokio::task::spawn_blocking(move || format::encode(&owned))
            .await
            .map_err(|error| {
                ArchiveError::corrupt(format!("encoding an archive file: {error}"))
            })??;
        let entry =
            FileEntry::describe(layout::file_name(partition, first.offset), messages, &file);
        let path = layout::file_path(&stream, hour, &entry.name);
        self.store
            .put(&path, PutPayload::from(file))
            .await
            .map_err(|error| ArchiveError::object_store(format!("writing {path}"), error))?;
        if let Some(current) = topic_id {
            manifest.topic_id = Some(current.to_owned());
        }
        manifest.commit(entry.clone());
        self.put_manifest(hour, &manifest).await?;
        Ok(FileRef {
            stream,
            partition,
            hour,
            entry,
        })
    }

    /// Writes `manifest` of `hour`, whole (durable when this returns).
    pub(crate) async fn put_manifest(&self, hour: Hour, manifest: &Manifest) -> Result<()> {
        let path = layout::manifest_path(&manifest.stream, hour, manifest.partition);
        let bytes = serde_json::to_vec_pretty(manifest)
            .map_err(|error| ArchiveError::corrupt(format!("encoding {path}: {error}")))?;
        self.store
            .put(&path, PutPayload::from(bytes))
            .await
            .map_err(|error| ArchiveError::object_store(format!("writing {path}"), error))?;
        Ok(())
    }

    pub(crate) async fn manifest(&self, path: &Path) -> Result<Option<Manifest>> {
        let bytes = match self.store.get(path).await {
            Ok(result) => result
                .bytes()
                .await
                .map_err(|error| ArchiveError::object_store(format!("reading {path}"), error))?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(error) => return Err(ArchiveError::object_store(format!("reading {path}"), error)),
        };
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|error| ArchiveError::corrupt(format!("manifest {path}: {error}")))?;
        if manifest.format != format::ARCHIVE_FORMAT_VERSION {
            return Err(ArchiveError::corrupt(format!(
                "manifest {path}: format {} is not one this build reads (it reads {})",
                manifest.format,
                format::ARCHIVE_FORMAT_VERSION
            )));
        }
        Ok(Some(manifest))
    }

    /// The hours holding files of `stream`, oldest first.
    pub(crate) async fn hours(&self, stream: &str) -> Result<Vec<Hour>> {
        self.hours_under(&layout::stream_dir(stream)).await
    }

    /// The `dt=…/hour=…` directories under `prefix`, oldest first.
    pub(crate) async fn hours_under(&self, prefix: &Path) -> Result<Vec<Hour>> {
        let mut hours = Vec::new();
        let days = self.list_dirs(prefix).await?;
        for day in days {
            for hour in self.list_dirs(&day).await? {
                hours.extend(layout::parse_hour_dir(&hour));
            }
        }
        hours.sort();
        Ok(hours)
    }

    async fn list_dirs(&self, prefix: &Path) -> Result<Vec<Path>> {
        let listing = self
            .store
            .list_with_delimiter(Some(prefix))
            .await
            .map_err(|error| ArchiveError::object_store(format!("listing {prefix}"), error))?;
        Ok(listing.common_prefixes)
    }

    /// The last offset archived for a partition, from the newest manifest naming it: where a
    /// recorder resumes (messages at or before it are already archived).
    pub async fn last_offset(&self, stream: &str, partition: i32) -> Result<Option<i64>> {
        Ok(self
            .last_position(stream, partition)
            .await?
            .map(|(_, offset)| offset))
    }

    /// [`Archive::last_position`] with the Kafka topic id its manifest records, if any.
    pub async fn last_position_and_topic(
        &self,
        stream: &str,
        partition: i32,
    ) -> Result<Option<(Hour, i64, Option<String>)>> {
        for hour in self.hours(stream).await?.into_iter().rev() {
            if let Some(manifest) = self
                .manifest(&layout::manifest_path(stream, hour, partition))
                .await?
                && let Some(offset) = manifest.last_offset()
            {
                return Ok(Some((hour, offset, manifest.topic_id)));
            }
        }
        Ok(None)
    }

    /// The newest hour holding files of a partition, with its last offset.
    pub async fn last_position(&self, stream: &str, partition: i32) -> Result<Option<(Hour, i64)>> {
        Ok(self
            .last_position_and_topic(stream, partition)
            .await?
            .map(|(hour, offset, _)| (hour, offset)))
    }

    /// Every manifest under `v1/`, as (stream, hour, manifest), sorted.
    pub(crate) async fn manifests(&self, stream: Option<&str>) -> Result<Vec<(Hour, Manifest)>> {
        let prefix = match stream {
            Some(stream) => layout::stream_dir(stream),
            None => layout::root(),
        };
        let objects: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|error| ArchiveError::object_store(format!("listing {prefix}"), error))?;
        let mut found = Vec::new();
        for object in objects {
            let Some((_, hour, _)) = layout::parse_manifest_path(&object.location) else {
                continue;
            };
            if let Some(manifest) = self.manifest(&object.location).await? {
                found.push((hour, manifest));
            }
        }
        found.sort_by(|a, b| {
            (&a.1.stream, a.1.partition, a.0).cmp(&(&b.1.stream, b.1.partition, b.0))
        });
        Ok(found)
    }

    /// Every stream with its partitions, counts, bytes, offsets, hours and gaps.
    pub async fn streams(&self) -> Result<Vec<StreamSummary>> {
        let mut streams: BTreeMap<String, BTreeMap<i32, PartitionSummary>> = BTreeMap::new();
        let mut previous_last: BTreeMap<(String, i32), i64> = BTreeMap::new();
        for (hour, manifest) in self.manifests(None).await? {
            for file in &manifest.files {
                let summary = streams
                    .entry(manifest.stream.clone())
                    .or_default()
                    .entry(manifest.partition)
                    .or_insert_with(|| PartitionSummary {
                        partition: manifest.partition,
                        first_offset: file.first_offset,
                        last_offset: file.last_offset,
                        messages: 0,
                        bytes: 0,
                        first_hour: hour.label(),
                        last_hour: hour.label(),
                        files: 0,
                        gaps: Vec::new(),
                    });
                let key = (manifest.stream.clone(), manifest.partition);
                if let Some(last) = previous_last.get(&key)
                    && file.first_offset > last + 1
                {
                    summary.gaps.push((last + 1, file.first_offset - 1));
                }
                previous_last.insert(key, file.last_offset);
                summary.first_offset = summary.first_offset.min(file.first_offset);
                summary.last_offset = summary.last_offset.max(file.last_offset);
                summary.messages += file.count;
                summary.bytes += file.bytes;
                summary.files += 1;
                summary.last_hour = hour.label();
            }
        }
        Ok(streams
            .into_iter()
            .map(|(stream, partitions)| {
                let partitions: Vec<PartitionSummary> = partitions.into_values().collect();
                StreamSummary {
                    messages: partitions.iter().map(|p| p.messages).sum(),
                    bytes: partitions.iter().map(|p| p.bytes).sum(),
                    stream,
                    partitions,
                }
            })
            .collect())
    }

    /// The committed files that may hold messages of `selection`, by partition then offset.
    pub async fn files(&self, selection: &Selection) -> Result<Vec<FileRef>> {
        let first_hour = Hour::of(selection.from_ms);
        let mut files = Vec::new();
        for (hour, manifest) in self.manifests(Some(&selection.stream)).await? {
            // A file lives in the hour of its first message or later, and holds no message of a later
            // hour; earlier (late) messages can be in files of later hours.
            if hour < first_hour
                || selection
                    .partition
                    .is_some_and(|partition| partition != manifest.partition)
            {
                continue;
            }
            for entry in manifest.files {
                if entry.overlaps_time(selection.from_ms, selection.to_ms) {
                    files.push(FileRef {
                        stream: manifest.stream.clone(),
                        partition: manifest.partition,
                        hour,
                        entry,
                    });
                }
            }
        }
        files.sort_by_key(|file| (file.partition, file.entry.first_offset));
        Ok(files)
    }

    /// Reads one committed file whole, checking its checksum. When the file is gone because
    /// compaction replaced it since its manifest was read, its messages are read from the
    /// file that replaced it.
    pub async fn read_file(&self, file: &FileRef) -> Result<Vec<Message>> {
        match self.read_present_file(file).await {
            Err(error) if error.is_not_found() => self.read_replaced_file(file, error).await,
            result => result,
        }
    }

    /// `file`'s messages from the files its partition and hour's manifest names now instead
    /// of it; `missing`, the error saying it is gone, when the manifest still names it (or is
    /// gone too: retention removed the hour).
    async fn read_replaced_file(
        &self,
        file: &FileRef,
        missing: ArchiveError,
    ) -> Result<Vec<Message>> {
        let manifest_path = layout::manifest_path(&file.stream, file.hour, file.partition);
        let Some(manifest) = self.manifest(&manifest_path).await? else {
            return Err(missing);
        };
        if manifest
            .files
            .iter()
            .any(|entry| entry.name == file.entry.name)
        {
            return Err(missing);
        }
        let offsets = file.entry.first_offset..=file.entry.last_offset;
        let mut messages = Vec::new();
        for entry in manifest.files {
            if entry.last_offset < *offsets.start() || entry.first_offset > *offsets.end() {
                continue;
            }
            let replacement = FileRef {
                entry,
                ..file.clone()
            };
            messages.extend(
                self.read_present_file(&replacement)
                    .await?
                    .into_iter()
                    .filter(|message| offsets.contains(&message.offset)),
            );
        }
        if messages.is_empty() {
            return Err(missing);
        }
        Ok(messages)
    }

    async fn read_present_file(&self, file: &FileRef) -> Result<Vec<Message>> {
        let path = layout::file_path(&file.stream, file.hour, &file.entry.name);
        let bytes: Bytes = self
            .store
            .get(&path)
            .await
            .map_err(|error| ArchiveError::object_store(format!("reading {path}"), error))?
            .bytes()
            .await
            .map_err(|error| ArchiveError::object_store(format!("reading {path}"), error))?;
        let checksum = format!("{:016x}", xxh3_64(&bytes));
        if checksum != file.entry.xxh3 {
            return Err(ArchiveError::corrupt(format!(
                "archive file {path}: checksum {checksum} differs from the manifest's {}",
                file.entry.xxh3
            )));
        }
        let name = path.to_string();
        tokio::task::spawn_blocking(move || format::decode(&name, bytes))
            .await
            .map_err(|error| ArchiveError::corrupt(format!("decoding {path}: {error}")))?
    }

    /// Every message of `selection`, by partition then offset.
    pub async fn read(&self, selection: &Selection) -> Result<Vec<Message>> {
        let mut messages = Vec::new();
        for file in self.files(selection).await? {
            messages.extend(
                self.read_file(&file)
                    .await?
                    .into_iter()
                    .filter(|message| selection.matches(message)),
            );
        }
        Ok(messages)
    }

    /// The message at (stream, partition, offset), if archived.
    pub async fn message(
        &self,
        stream: &str,
        partition: i32,
        offset: i64,
    ) -> Result<Option<Message>> {
        layout::check_stream_name(stream)?;
        for (hour, manifest) in self.manifests(Some(stream)).await? {
            if manifest.partition != partition {
                continue;
            }
            for entry in manifest.files {
                if (entry.first_offset..=entry.last_offset).contains(&offset) {
                    let file = FileRef {
                        stream: stream.to_owned(),
                        partition,
                        hour,
                        entry,
                    };
                    return Ok(self
                        .read_file(&file)
                        .await?
                        .into_iter()
                        .find(|message| message.offset == offset));
                }
            }
        }
        Ok(None)
    }
}

/// Why a recreated topic is not recorded into the old topic's archive.
pub(crate) fn recreated_topic(
    stream: &str,
    partition: i32,
    archived: &str,
    current: &str,
) -> String {
    format!(
        "topic {stream} was deleted and created again (the archive holds topic id {archived}, \
         the broker has {current}); its partition {partition} is not recorded, so that the new \
         topic's offsets are neither skipped as archived nor mixed with the old topic's: move \
         the archive's v1/stream={stream}/ aside (or record the new topic into another archive), \
         then restart the recorder"
    )
}
