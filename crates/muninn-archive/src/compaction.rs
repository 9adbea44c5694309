//! Compaction: a partition's small files of one hour merged into files of up to a target size,
//! so that idle-ish streams (whose recorder closes a file every `max_file_age`) do not leave
//! thousands of tiny files behind.
//!
//! **Only sealed hours are compacted.** A recorder never goes back in hours for a partition
//! (`recorder.rs` files a message in the hour of its timestamp or the partition's newest
//! hour, whichever is later), so partition P's hour H is sealed once P has a manifest in a
//! later hour: no recorder writes H's files or manifest again. P's newest hour is never
//! touched. That is what makes compaction safe while recorders run, without locks.
//!
//! For each sealed partition-hour, runs of consecutive files a recorder wrote, with contiguous
//! offsets and up to the target size together, are read (checksums checked), written again as
//! one file through the same writer (`format.rs`: same schema, row groups and bloom filters;
//! its manifest entry has its own count, checksum and time → offset index), named by the range
//! it covers (`p<P>-o<first>-c<last>.parquet`), then:
//!
//! 1. each merged file is written durably;
//! 2. the manifest is written naming the merged files instead of the files they replace;
//! 3. the replaced files are deleted.
//!
//! A crash after 1 leaves a merged file no manifest names: readers never see it, and the next
//! run writes it again under the same name. A crash after 2 leaves replaced files no manifest
//! names. In a sealed hour, every archive file of P that P's manifest does not name is such
//! garbage, and each run deletes it (never in P's newest hour, where a recorder may be between
//! writing a file and its manifest). A reader that read the old manifest and finds a replaced
//! file gone reads its messages from the merged file (`Archive::read_file`).
//!
//! A merged file is never merged again: file sizes do not add up under merging (a merged file
//! compresses better than its parts), so merging merged files could go on shrinking and
//! merging; with this rule a second run finds nothing to do. Files are merged only across
//! contiguous offsets, so `archive ls` keeps reporting every gap between files.
//!
//! One compaction at a time per archive (and not beside a retention run): two runs with
//! different targets could each delete the other's merged files as unreferenced.

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;

use futures::TryStreamExt as _;
use object_store::{ObjectStoreExt as _, PutPayload};
use serde::Serialize;

use crate::archive::{Archive, FileRef};
use crate::error::{ArchiveError, Result};
use crate::format::FileWriter;
use crate::layout::{self, FileName, Hour, HourObject};
use crate::manifest::{EntryBuilder, FileEntry, Manifest};
use crate::message::Message;
use crate::mirror::Difference;
use crate::retention::pattern_matches;

/// What [`Archive::compact`] compacts, and into what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactOptions {
    /// The streams: a name, or a pattern where `*` matches any run of characters.
    pub streams: String,
    /// A merged file holds files of up to this many bytes together.
    pub target_file_bytes: u64,
    /// A merge replaces at least this many files (at least 2).
    pub min_files: usize,
    /// Only hours ending after this time (unix ms), so periodic runs look at recent hours
    /// only; `None` looks at every hour.
    pub since_ms: Option<i64>,
    /// Report what would be done; write and delete nothing.
    pub dry_run: bool,
}

impl Default for CompactOptions {
    fn default() -> Self {
        CompactOptions {
            streams: "*".to_owned(),
            target_file_bytes: 64 << 20,
            min_files: 2,
            since_ms: None,
            dry_run: false,
        }
    }
}

impl CompactOptions {
    /// Checks the options ([`Archive::compact`] does too), the error naming what is wrong.
    pub fn check(&self) -> Result<()> {
        let pattern = &self.streams;
        let valid = !pattern.is_empty()
            && pattern.bytes().all(|byte| {
                byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-' | b'*')
            });
        if !valid {
            return Err(ArchiveError::invalid(format!(
                "stream pattern {pattern:?}: use a stream name's characters (A-Z, a-z, 0-9, '.', \
                 '_', '-') and * for any run of them"
            )));
        }
        if self.target_file_bytes == 0 {
            return Err(ArchiveError::invalid(
                "target file size 0: give a number of bytes, like 64MiB",
            ));
        }
        if self.min_files < 2 {
            return Err(ArchiveError::invalid(format!(
                "minimum files per merge {}: use 2 or more (a merge replaces several files)",
                self.min_files
            )));
        }
        Ok(())
    }
}

/// What a compaction did (or, dry, would do), in all or for one stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CompactFigures {
    /// Sealed partition-hours looked at (a partition's newest hour is never looked at).
    pub partition_hours_examined: u64,
    /// Partition-hours whose manifest now names merged files.
    pub partition_hours_compacted: u64,
    /// Files the examined manifests named before, and after.
    pub files_before: u64,
    pub files_after: u64,
    /// Their bytes. In a dry run a merged file is counted as large as the files it replaces.
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Messages now in merged files.
    pub messages_merged: u64,
    /// Files in sealed hours that no manifest named (left by a crash), deleted.
    pub unreferenced_files_removed: u64,
    pub unreferenced_bytes_removed: u64,
}

impl CompactFigures {
    fn add(&mut self, other: &CompactFigures) {
        self.partition_hours_examined += other.partition_hours_examined;
        self.partition_hours_compacted += other.partition_hours_compacted;
        self.files_before += other.files_before;
        self.files_after += other.files_after;
        self.bytes_before += other.bytes_before;
        self.bytes_after += other.bytes_after;
        self.messages_merged += other.messages_merged;
        self.unreferenced_files_removed += other.unreferenced_files_removed;
        self.unreferenced_bytes_removed += other.unreferenced_bytes_removed;
    }
}

/// What [`Archive::compact`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CompactReport {
    pub dry_run: bool,
    pub total: CompactFigures,
    /// Every stream the pattern matched.
    pub streams: BTreeMap<String, CompactFigures>,
    /// Files that could not be merged (unreadable, or not holding what their manifest says);
    /// their runs were left as they were.
    pub problems: Vec<Difference>,
}

impl Archive {
    /// Merges the small files of every sealed partition-hour of the streams `options` selects
    /// (see the module documentation for when an hour is sealed and why this is safe while
    /// recorders run). Dropping the future part-way is like a crash: the next run finishes.
    pub async fn compact(&self, options: &CompactOptions) -> Result<CompactReport> {
        options.check()?;
        let mut report = CompactReport {
            dry_run: options.dry_run,
            ..CompactReport::default()
        };
        for stream in self.stream_names().await? {
            if !pattern_matches(&options.streams, &stream) {
                continue;
            }
            let mut run = StreamRun {
                archive: self,
                options,
                stream: &stream,
                figures: CompactFigures::default(),
                problems: Vec::new(),
            };
            run.run().await?;
            report.total.add(&run.figures);
            report.problems.append(&mut run.problems);
            let figures = run.figures;
            report.streams.insert(stream, figures);
        }
        Ok(report)
    }

    /// The streams with a directory under `v1/`, sorted.
    async fn stream_names(&self) -> Result<Vec<String>> {
        let root = layout::root();
        let listing = self
            .store
            .list_with_delimiter(Some(&root))
            .await
            .map_err(|error| ArchiveError::object_store(format!("listing {root}"), error))?;
        let mut streams: Vec<String> = listing
            .common_prefixes
            .iter()
            .filter_map(layout::parse_stream_dir)
            .collect();
        streams.sort();
        Ok(streams)
    }
}

/// What an hour's directory holds for one partition.
#[derive(Debug, Default)]
struct Listed {
    has_manifest: bool,
    /// Archive files, name → bytes.
    files: BTreeMap<String, u64>,
}

/// The compaction of one stream.
struct StreamRun<'a> {
    archive: &'a Archive,
    options: &'a CompactOptions,
    stream: &'a str,
    figures: CompactFigures,
    problems: Vec<Difference>,
}

impl StreamRun<'_> {
    async fn run(&mut self) -> Result<()> {
        // Newest hour first: a partition already seen with a manifest has one in a later hour,
        // so its hour at hand is sealed.
        let mut has_later_manifest: HashSet<i32> = HashSet::new();
        for hour in self.archive.hours(self.stream).await?.into_iter().rev() {
            if self
                .options
                .since_ms
                .is_some_and(|since| hour.end_ms() <= since)
            {
                break;
            }
            for (partition, listed) in self.list(hour).await? {
                let sealed = has_later_manifest.contains(&partition);
                if listed.has_manifest {
                    has_later_manifest.insert(partition);
                }
                if sealed {
                    self.partition_hour(hour, partition, listed).await?;
                }
            }
        }
        Ok(())
    }

    async fn list(&self, hour: Hour) -> Result<BTreeMap<i32, Listed>> {
        let dir = layout::hour_dir(self.stream, hour);
        let objects: Vec<object_store::ObjectMeta> = self
            .archive
            .store
            .list(Some(&dir))
            .try_collect()
            .await
            .map_err(|error| ArchiveError::object_store(format!("listing {dir}"), error))?;
        let mut partitions: BTreeMap<i32, Listed> = BTreeMap::new();
        for object in objects {
            let (Some((_, _, found)), Some(name)) = (
                layout::parse_object_path(&object.location),
                object.location.filename(),
            ) else {
                continue;
            };
            let listed = partitions.entry(found.partition()).or_default();
            match found {
                HourObject::Manifest { .. } => listed.has_manifest = true,
                HourObject::File(_) => {
                    listed.files.insert(name.to_owned(), object.size);
                }
            }
        }
        Ok(partitions)
    }

    /// Compacts one sealed partition-hour and deletes what its manifest does not name.
    async fn partition_hour(&mut self, hour: Hour, partition: i32, listed: Listed) -> Result<()> {
        self.figures.partition_hours_examined += 1;
        let manifest_path = layout::manifest_path(self.stream, hour, partition);
        let manifest = match listed.has_manifest {
            // One file and the manifest naming it: nothing to merge or delete.
            true if listed.files.len() < 2 => {
                let bytes: u64 = listed.files.values().sum();
                self.figures.files_before += listed.files.len() as u64;
                self.figures.files_after += listed.files.len() as u64;
                self.figures.bytes_before += bytes;
                self.figures.bytes_after += bytes;
                return Ok(());
            }
            true => match self.archive.manifest(&manifest_path).await? {
                Some(manifest) => manifest,
                None => return Ok(()), // removed meanwhile (retention)
            },
            // Files of a sealed hour with no manifest of their partition: none is archived.
            false => Manifest::new(self.stream, partition, hour.label()),
        };
        let mut files: Vec<FileEntry> = Vec::with_capacity(manifest.files.len());
        let mut replaced: Vec<&FileEntry> = Vec::new();
        let mut next = 0;
        for run in plan(
            &manifest.files,
            self.options.target_file_bytes,
            self.options.min_files,
        ) {
            files.extend_from_slice(&manifest.files[next..run.start]);
            next = run.end;
            let inputs = &manifest.files[run];
            let merged = if self.options.dry_run {
                Some(estimate(partition, inputs))
            } else {
                self.merge(hour, partition, inputs).await?
            };
            match merged {
                Some(merged) => {
                    self.figures.messages_merged += merged.count;
                    files.push(merged);
                    replaced.extend(inputs);
                }
                None => files.extend_from_slice(inputs),
            }
        }
        files.extend_from_slice(&manifest.files[next..]);

        if !replaced.is_empty() && !self.options.dry_run {
            // Nobody else writes a sealed hour's manifest; but retention may have removed the
            // hour meanwhile, which must not come back.
            if self.archive.manifest(&manifest_path).await?.as_ref() != Some(&manifest) {
                self.problems.push(Difference {
                    place: manifest_path.to_string(),
                    problem: "changed while it was compacted (a retention run?); left as it \
                              was, the merged files are deleted by the next run"
                        .to_owned(),
                });
                return Ok(());
            }
            self.archive
                .put_manifest(
                    hour,
                    &Manifest {
                        files: files.clone(),
                        ..manifest.clone()
                    },
                )
                .await?;
        }
        if !replaced.is_empty() {
            self.figures.partition_hours_compacted += 1;
        }
        self.figures.files_before += manifest.files.len() as u64;
        self.figures.files_after += files.len() as u64;
        self.figures.bytes_before += manifest.files.iter().map(|file| file.bytes).sum::<u64>();
        self.figures.bytes_after += files.iter().map(|file| file.bytes).sum::<u64>();

        // Deleted: the replaced files, and every file neither manifest names.
        let named_before: HashSet<&str> = manifest.files.iter().map(|f| f.name.as_str()).collect();
        let named_after: HashSet<&str> = files.iter().map(|f| f.name.as_str()).collect();
        let mut doomed: Vec<&str> = replaced.iter().map(|file| file.name.as_str()).collect();
        for (name, bytes) in &listed.files {
            if !named_before.contains(name.as_str()) && !named_after.contains(name.as_str()) {
                self.figures.unreferenced_files_removed += 1;
                self.figures.unreferenced_bytes_removed += bytes;
                doomed.push(name);
            }
        }
        if !self.options.dry_run {
            for name in doomed {
                self.delete(hour, name).await?;
            }
        }
        Ok(())
    }

    /// Writes `inputs` (a run of [`plan`]) as one file and returns its entry; `None`, with a
    /// problem recorded, when an input cannot be read or does not hold what its entry says.
    async fn merge(
        &mut self,
        hour: Hour,
        partition: i32,
        inputs: &[FileEntry],
    ) -> Result<Option<FileEntry>> {
        let (Some(first), Some(last)) = (inputs.first(), inputs.last()) else {
            return Ok(None);
        };
        let name = layout::compacted_file_name(partition, first.first_offset, last.last_offset);
        let n_messages: u64 = inputs.iter().map(|input| input.count).sum();
        let capacity: u64 = inputs.iter().map(|input| input.bytes).sum();
        let mut writer = FileWriter::new(n_messages as usize, capacity as usize)?;
        let mut entry = EntryBuilder::default();
        for input in inputs {
            let file = FileRef {
                stream: self.stream.to_owned(),
                partition,
                hour,
                entry: input.clone(),
            };
            let checked = match self.archive.read_file(&file).await {
                Ok(messages) => check_input(&file, &messages).map(|()| messages),
                Err(error) => Err(error.to_string()),
            };
            let messages = match checked {
                Ok(messages) => messages,
                Err(problem) => {
                    self.problems.push(Difference {
                        place: layout::file_path(self.stream, hour, &input.name).to_string(),
                        problem: format!(
                            "{problem}; its run of {} files was not merged",
                            inputs.len()
                        ),
                    });
                    return Ok(None);
                }
            };
            for message in &messages {
                entry.add(message);
            }
            writer = blocking(move || writer.write(&messages).map(|()| writer)).await?;
        }
        let bytes = blocking(move || writer.finish()).await?;
        let merged = entry.finish(name, &bytes);
        let sum = |field: fn(&FileEntry) -> u64| inputs.iter().map(field).sum::<u64>();
        let holds_the_inputs = merged.first_offset == first.first_offset
            && merged.last_offset == last.last_offset
            && merged.count == sum(|input| input.count)
            && merged.message_bytes == sum(|input| input.message_bytes)
            && Some(merged.min_timestamp_ms) == inputs.iter().map(|i| i.min_timestamp_ms).min()
            && Some(merged.max_timestamp_ms) == inputs.iter().map(|i| i.max_timestamp_ms).max();
        if !holds_the_inputs {
            self.problems.push(Difference {
                place: layout::file_path(self.stream, hour, &merged.name).to_string(),
                problem: format!(
                    "the merge of {} files does not add up to their manifest entries; not written",
                    inputs.len()
                ),
            });
            return Ok(None);
        }
        let path = layout::file_path(self.stream, hour, &merged.name);
        self.archive
            .store
            .put(&path, PutPayload::from(bytes))
            .await
            .map_err(|error| ArchiveError::object_store(format!("writing {path}"), error))?;
        Ok(Some(merged))
    }

    async fn delete(&self, hour: Hour, name: &str) -> Result<()> {
        let path = layout::file_path(self.stream, hour, name);
        match self.archive.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(ArchiveError::object_store(
                format!("deleting {path}"),
                error,
            )),
        }
    }
}

/// The runs of `files` (a manifest's, by offset) to merge: consecutive files that a recorder
/// wrote, with contiguous offsets, up to `target_bytes` together, at least `min_files` of them.
/// Greedy from the first file; a run never includes a merged file.
fn plan(files: &[FileEntry], target_bytes: u64, min_files: usize) -> Vec<Range<usize>> {
    let recorded = |file: &FileEntry| {
        matches!(
            HourObject::parse(&file.name),
            Some(HourObject::File(FileName {
                compacted_to: None,
                ..
            }))
        )
    };
    let mut runs = Vec::new();
    let mut start = 0;
    while start < files.len() {
        if !recorded(&files[start]) {
            start += 1;
            continue;
        }
        let mut end = start + 1;
        let mut bytes = files[start].bytes;
        while end < files.len()
            && recorded(&files[end])
            && files[end - 1].last_offset.checked_add(1) == Some(files[end].first_offset)
            && bytes + files[end].bytes <= target_bytes
        {
            bytes += files[end].bytes;
            end += 1;
        }
        if end - start >= min_files {
            runs.push(start..end);
        }
        start = end;
    }
    runs
}

/// A dry run's idea of the file merging `inputs`: as large as they are together.
fn estimate(partition: i32, inputs: &[FileEntry]) -> FileEntry {
    let (first, last) = (
        inputs.first().map_or(0, |input| input.first_offset),
        inputs.last().map_or(0, |input| input.last_offset),
    );
    FileEntry {
        name: layout::compacted_file_name(partition, first, last),
        first_offset: first,
        last_offset: last,
        count: inputs.iter().map(|input| input.count).sum(),
        bytes: inputs.iter().map(|input| input.bytes).sum(),
        message_bytes: inputs.iter().map(|input| input.message_bytes).sum(),
        xxh3: String::new(),
        min_timestamp_ms: inputs.iter().map(|i| i.min_timestamp_ms).min().unwrap_or(0),
        max_timestamp_ms: inputs.iter().map(|i| i.max_timestamp_ms).max().unwrap_or(0),
        index: Vec::new(),
    }
}

/// Whether a file read holds what its entry says: its count, its stream and partition only,
/// ascending offsets from its first to its last.
fn check_input(file: &FileRef, messages: &[Message]) -> Result<(), String> {
    let entry = &file.entry;
    if messages.len() as u64 != entry.count {
        return Err(format!(
            "holds {} messages, its manifest says {}",
            messages.len(),
            entry.count
        ));
    }
    if messages.first().map(|m| m.offset) != Some(entry.first_offset)
        || messages.last().map(|m| m.offset) != Some(entry.last_offset)
    {
        return Err(format!(
            "does not hold offsets {} to {} as its manifest says",
            entry.first_offset, entry.last_offset
        ));
    }
    if messages
        .windows(2)
        .any(|pair| pair[0].offset >= pair[1].offset)
    {
        return Err("its offsets are not ascending".to_owned());
    }
    if let Some(other) = messages
        .iter()
        .find(|m| m.stream != file.stream || m.partition != file.partition)
    {
        return Err(format!(
            "holds a message of {} partition {}",
            other.stream, other.partition
        ));
    }
    Ok(())
}

/// Runs CPU-bound work (Parquet encoding) off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| ArchiveError::corrupt(format!("writing a merged archive file: {error}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(first: i64, last: i64, bytes: u64, compacted: bool) -> FileEntry {
        FileEntry {
            name: if compacted {
                layout::compacted_file_name(0, first, last)
            } else {
                layout::file_name(0, first)
            },
            first_offset: first,
            last_offset: last,
            count: (last - first + 1) as u64,
            bytes,
            message_bytes: bytes * 3,
            xxh3: String::new(),
            min_timestamp_ms: first,
            max_timestamp_ms: last,
            index: Vec::new(),
        }
    }

    #[test]
    fn runs_are_contiguous_recorded_files_up_to_the_target() {
        let files = [
            entry(0, 9, 40, false),
            entry(10, 19, 40, false),
            entry(20, 29, 40, false), // 120 > 100: a new run
            entry(30, 39, 40, false),
            entry(41, 49, 10, false), // a gap before it
            entry(50, 59, 10, false),
            entry(60, 69, 500, false), // larger than the target alone
            entry(70, 79, 10, false),
            entry(80, 89, 10, true), // merged already
            entry(90, 99, 10, false),
            entry(100, 109, 10, false),
        ];
        assert_eq!(plan(&files, 100, 2), vec![0..2, 2..4, 4..6, 9..11]);
        assert_eq!(plan(&files, 100, 3), Vec::<Range<usize>>::new());
        assert_eq!(plan(&files, 1000, 3), vec![0..4, 4..8]);
    }

    #[test]
    fn a_second_plan_over_the_result_merges_nothing() {
        // Merged files shrink (better compression), yet are never merged again.
        let files: Vec<FileEntry> = (0..7)
            .map(|i| entry(i * 10, i * 10 + 9, 30, false))
            .collect();
        let runs = plan(&files, 100, 2);
        assert_eq!(runs, vec![0..3, 3..6]);
        let mut after: Vec<FileEntry> = runs
            .iter()
            .map(|run| {
                entry(
                    files[run.start].first_offset,
                    files[run.end - 1].last_offset,
                    20,
                    true,
                )
            })
            .collect();
        after.push(files[6].clone());
        assert!(plan(&after, 100, 2).is_empty());
    }

    #[test]
    fn options_are_checked_naming_what_is_wrong() {
        let bad = |options: CompactOptions| options.check().unwrap_err().to_string();
        assert!(
            bad(CompactOptions {
                streams: "a/b".into(),
                ..CompactOptions::default()
            })
            .contains("stream pattern \"a/b\"")
        );
        assert!(
            bad(CompactOptions {
                target_file_bytes: 0,
                ..CompactOptions::default()
            })
            .contains("target file size")
        );
        assert!(
            bad(CompactOptions {
                min_files: 1,
                ..CompactOptions::default()
            })
            .contains("minimum files")
        );
        CompactOptions::default().check().unwrap();
    }
}
