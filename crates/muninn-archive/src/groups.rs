//! Consumer groups' committed positions over time: what each consumer group (a Kafka group, a
//! JetStream durable consumer) had committed on each archived partition, sampled by the
//! recorder, so a replay can translate a group's position into the replayed topic's offsets
//! (the cold-start case) and an incident can show where every consumer stood.
//!
//! One Parquet file per stream, hour and broker, `v1/groups/stream=S/dt=…/hour=HH/kafka.parquet`,
//! holds a row for every change seen in that hour (time, broker, group, stream, partition, the
//! next offset the group consumes). Each sample rewrites the hour's file whole (an atomic put:
//! after a crash the file holds the samples before it or after it, never a mix).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use arrow::array::{
    Array, ArrayRef, AsArray, Int32Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampMillisecondBuilder,
};
use arrow::datatypes::{
    DataType, Field, Int32Type, Int64Type, Schema, SchemaRef, TimeUnit, TimestampMillisecondType,
};
use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Serialize;

use crate::archive::Archive;
use crate::error::{ArchiveError, Result};
use crate::format::ARCHIVE_FORMAT_VERSION;
use crate::layout::{self, Hour};
use crate::message::SourceBroker;
use crate::recorder::RecorderStats;

/// One group's committed position on one partition, when it was seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupPosition {
    /// When the recorder read it (unix ms).
    pub time_ms: i64,
    pub broker: SourceBroker,
    pub group: String,
    pub stream: String,
    pub partition: i32,
    /// The next offset (JetStream: stream sequence) the group consumes: everything before it
    /// was committed (acknowledged).
    pub offset: i64,
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new("broker", DataType::Utf8, false),
        Field::new("group", DataType::Utf8, false),
        Field::new("stream", DataType::Utf8, false),
        Field::new("partition", DataType::Int32, false),
        Field::new("offset", DataType::Int64, false),
    ]))
}

/// `v1/groups/stream=S/`.
fn stream_dir(stream: &str) -> Path {
    Path::from_iter([
        format!("v{ARCHIVE_FORMAT_VERSION}"),
        "groups".to_owned(),
        format!("stream={stream}"),
    ])
}

fn hour_file(stream: &str, hour: Hour, broker: SourceBroker) -> Path {
    let hour_dir = layout::hour_dir(stream, hour);
    let mut parts: Vec<String> = hour_dir
        .parts()
        .map(|part| part.as_ref().to_owned())
        .collect();
    parts.insert(1, "groups".to_owned());
    parts.push(format!("{}.parquet", broker.as_str()));
    Path::from_iter(parts)
}

fn encode(rows: &[GroupPosition]) -> Result<Vec<u8>> {
    let mut time = TimestampMillisecondBuilder::new().with_timezone("UTC");
    let mut broker = StringBuilder::new();
    let mut group = StringBuilder::new();
    let mut stream = StringBuilder::new();
    let mut partition = Int32Builder::new();
    let mut offset = Int64Builder::new();
    for row in rows {
        time.append_value(row.time_ms);
        broker.append_value(row.broker.as_str());
        group.append_value(&row.group);
        stream.append_value(&row.stream);
        partition.append_value(row.partition);
        offset.append_value(row.offset);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(time.finish()),
        Arc::new(broker.finish()),
        Arc::new(group.finish()),
        Arc::new(stream.finish()),
        Arc::new(partition.finish()),
        Arc::new(offset.finish()),
    ];
    let failed = |error: &dyn std::fmt::Display| {
        ArchiveError::corrupt(format!("writing group positions: {error}"))
    };
    let batch = RecordBatch::try_new(schema(), columns).map_err(|e| failed(&e))?;
    let mut output = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut output, schema(), None).map_err(|e| failed(&e))?;
    writer.write(&batch).map_err(|e| failed(&e))?;
    writer.close().map_err(|e| failed(&e))?;
    Ok(output)
}

fn decode(name: &str, bytes: Bytes) -> Result<Vec<GroupPosition>> {
    let corrupt = |error: &dyn std::fmt::Display| {
        ArchiveError::corrupt(format!("group positions {name}: {error}"))
    };
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|builder| builder.build())
        .map_err(|e| corrupt(&e))?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| corrupt(&e))?;
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| corrupt(&format!("no column {name}")))
        };
        let time = column("time")?
            .as_primitive_opt::<TimestampMillisecondType>()
            .ok_or_else(|| corrupt(&"time is not a timestamp"))?;
        let broker = column("broker")?
            .as_string_opt::<i32>()
            .ok_or_else(|| corrupt(&"broker is not a string"))?;
        let group = column("group")?
            .as_string_opt::<i32>()
            .ok_or_else(|| corrupt(&"group is not a string"))?;
        let stream = column("stream")?
            .as_string_opt::<i32>()
            .ok_or_else(|| corrupt(&"stream is not a string"))?;
        let partition = column("partition")?
            .as_primitive_opt::<Int32Type>()
            .ok_or_else(|| corrupt(&"partition is not an int32"))?;
        let offset = column("offset")?
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| corrupt(&"offset is not an int64"))?;
        for row in 0..batch.num_rows() {
            let broker = SourceBroker::parse(broker.value(row))
                .ok_or_else(|| corrupt(&format!("broker {:?}", broker.value(row))))?;
            if time.is_null(row) || partition.is_null(row) || offset.is_null(row) {
                return Err(corrupt(&format!("row {row} has a null")));
            }
            rows.push(GroupPosition {
                time_ms: time.value(row),
                broker,
                group: group.value(row).to_owned(),
                stream: stream.value(row).to_owned(),
                partition: partition.value(row),
                offset: offset.value(row),
            });
        }
    }
    Ok(rows)
}

/// Keeps only the positions that moved since the last sample (every position on the first).
#[derive(Debug, Default)]
pub struct ChangedPositions {
    last: HashMap<(String, String, i32), i64>,
}

impl ChangedPositions {
    pub fn changed(&mut self, positions: Vec<GroupPosition>) -> Vec<GroupPosition> {
        positions
            .into_iter()
            .filter(|position| {
                let key = (
                    position.group.clone(),
                    position.stream.clone(),
                    position.partition,
                );
                self.last.insert(key, position.offset) != Some(position.offset)
            })
            .collect()
    }
}

/// Every `every`, takes a sample of the groups' positions and writes those that moved, until
/// the task is aborted. A failed sample or write is logged and counted; a failed write is
/// written again with the next sample.
#[cfg_attr(not(any(feature = "kafka", feature = "nats")), allow(dead_code))]
pub(crate) async fn record_samples<F, Fut>(
    archive: Archive,
    every: Duration,
    stats: Arc<RecorderStats>,
    broker: &'static str,
    mut sample: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<Vec<GroupPosition>, String>>,
{
    let mut changed = ChangedPositions::default();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let positions = match sample().await {
            Ok(positions) => positions,
            Err(error) => {
                stats.group_sample_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(broker, %error, "sampling the consumer groups failed");
                continue;
            }
        };
        let moved = changed.changed(positions);
        if moved.is_empty() {
            continue;
        }
        match archive.record_group_positions(&moved).await {
            Ok(()) => {
                stats
                    .group_positions_recorded
                    .fetch_add(moved.len() as u64, Ordering::Relaxed);
            }
            Err(error) => {
                stats.group_sample_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(broker, %error, "writing the consumer groups' positions failed");
                changed = ChangedPositions::default();
            }
        }
    }
}

impl Archive {
    /// Appends `positions` (of one broker) to their streams' hour files.
    pub async fn record_group_positions(&self, positions: &[GroupPosition]) -> Result<()> {
        let mut by_file: BTreeMap<Path, Vec<GroupPosition>> = BTreeMap::new();
        for position in positions {
            layout::check_stream_name(&position.stream)?;
            let path = hour_file(
                &position.stream,
                Hour::of(position.time_ms),
                position.broker,
            );
            by_file.entry(path).or_default().push(position.clone());
        }
        for (path, new) in by_file {
            let mut rows = self.read_group_file(&path).await?.unwrap_or_default();
            rows.extend(new);
            let bytes = encode(&rows)?;
            self.store
                .put(&path, PutPayload::from(bytes))
                .await
                .map_err(|error| ArchiveError::object_store(format!("writing {path}"), error))?;
        }
        Ok(())
    }

    async fn read_group_file(&self, path: &Path) -> Result<Option<Vec<GroupPosition>>> {
        match self.store.get(path).await {
            Ok(result) => {
                let bytes = result.bytes().await.map_err(|error| {
                    ArchiveError::object_store(format!("reading {path}"), error)
                })?;
                decode(path.as_ref(), bytes).map(Some)
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(ArchiveError::object_store(format!("reading {path}"), error)),
        }
    }

    /// The positions recorded for `stream` (of `group` when given) up to `until_ms`
    /// (inclusive; all when `None`), oldest first.
    pub async fn group_positions(
        &self,
        stream: &str,
        group: Option<&str>,
        until_ms: Option<i64>,
    ) -> Result<Vec<GroupPosition>> {
        layout::check_stream_name(stream)?;
        let mut rows = Vec::new();
        for hour in self.hours_under(&stream_dir(stream)).await? {
            if until_ms.is_some_and(|until| hour.0 > until) {
                continue;
            }
            for broker in [SourceBroker::Kafka, SourceBroker::Nats] {
                let path = hour_file(stream, hour, broker);
                if let Some(found) = self.read_group_file(&path).await? {
                    rows.extend(found.into_iter().filter(|row| {
                        group.is_none_or(|group| row.group == group)
                            && until_ms.is_none_or(|until| row.time_ms <= until)
                    }));
                }
            }
        }
        rows.sort_by_key(|row| row.time_ms);
        Ok(rows)
    }

    /// Each partition's last recorded position of `group` on `stream` at `at_ms` (the newest
    /// when `None`).
    pub async fn group_offsets_at(
        &self,
        stream: &str,
        group: &str,
        at_ms: Option<i64>,
    ) -> Result<BTreeMap<i32, GroupPosition>> {
        let mut latest = BTreeMap::new();
        for row in self.group_positions(stream, Some(group), at_ms).await? {
            latest.insert(row.partition, row);
        }
        Ok(latest)
    }

    /// The streams with recorded group positions.
    pub async fn group_streams(&self) -> Result<Vec<String>> {
        let root = Path::from_iter([format!("v{ARCHIVE_FORMAT_VERSION}"), "groups".to_owned()]);
        let listing = self
            .store
            .list_with_delimiter(Some(&root))
            .await
            .map_err(|error| ArchiveError::object_store(format!("listing {root}"), error))?;
        let mut streams: Vec<String> = listing
            .common_prefixes
            .iter()
            .filter_map(|prefix| {
                prefix
                    .filename()
                    .and_then(|name| name.strip_prefix("stream="))
                    .map(str::to_owned)
            })
            .collect();
        streams.sort();
        Ok(streams)
    }

    /// Removes the group positions of `stream` in hours before `before` (retention; dry:
    /// only counts); returns the files removed.
    pub(crate) async fn remove_group_hours(
        &self,
        stream: &str,
        before: Hour,
        dry_run: bool,
    ) -> Result<u64> {
        let mut removed = 0;
        for hour in self.hours_under(&stream_dir(stream)).await? {
            if hour >= before {
                continue;
            }
            for broker in [SourceBroker::Kafka, SourceBroker::Nats] {
                let path = hour_file(stream, hour, broker);
                if dry_run {
                    removed += u64::from(self.read_group_file(&path).await?.is_some());
                    continue;
                }
                match self.store.delete(&path).await {
                    Ok(()) => removed += 1,
                    Err(object_store::Error::NotFound { .. }) => {}
                    Err(error) => {
                        return Err(ArchiveError::object_store(
                            format!("removing {path}"),
                            error,
                        ));
                    }
                }
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position(time_ms: i64, group: &str, partition: i32, offset: i64) -> GroupPosition {
        GroupPosition {
            time_ms,
            broker: SourceBroker::Kafka,
            group: group.to_owned(),
            stream: "orders".to_owned(),
            partition,
            offset,
        }
    }

    #[test]
    fn the_hour_file_sits_beside_the_streams_tree() {
        let hour = Hour::of(1_764_781_234_567);
        assert_eq!(
            hour_file("orders", hour, SourceBroker::Kafka).as_ref(),
            "v1/groups/stream=orders/dt=2025-12-03/hour=17/kafka.parquet"
        );
    }

    #[test]
    fn only_moved_positions_are_kept() {
        let mut changed = ChangedPositions::default();
        let first = changed.changed(vec![
            position(1, "billing", 0, 5),
            position(1, "billing", 1, 7),
        ]);
        assert_eq!(first.len(), 2);
        let second = changed.changed(vec![
            position(2, "billing", 0, 5),
            position(2, "billing", 1, 9),
        ]);
        assert_eq!(second, vec![position(2, "billing", 1, 9)]);
    }

    #[tokio::test]
    async fn positions_are_found_as_of_a_time_across_hours() {
        let dir = tempfile::tempdir().unwrap();
        let archive = Archive::open_local(dir.path()).await.unwrap();
        let hour = 3_600_000;
        let base = 1_764_781_200_000;
        archive
            .record_group_positions(&[
                position(base, "billing", 0, 10),
                position(base, "billing", 1, 20),
            ])
            .await
            .unwrap();
        archive
            .record_group_positions(&[
                position(base + 10, "billing", 0, 15),
                position(base + 10, "audit", 0, 3),
            ])
            .await
            .unwrap();
        archive
            .record_group_positions(&[position(base + 2 * hour, "billing", 1, 40)])
            .await
            .unwrap();
        let at = |at| archive.group_offsets_at("orders", "billing", at);
        let early = at(Some(base + 5)).await.unwrap();
        assert_eq!(early[&0].offset, 10);
        assert_eq!(early[&1].offset, 20);
        let later = at(Some(base + hour)).await.unwrap();
        assert_eq!((later[&0].offset, later[&1].offset), (15, 20));
        let newest = at(None).await.unwrap();
        assert_eq!((newest[&0].offset, newest[&1].offset), (15, 40));
        assert!(at(Some(base - 1)).await.unwrap().is_empty());
        assert_eq!(archive.group_streams().await.unwrap(), vec!["orders"]);
        // Retention removes whole hours of positions.
        let removed = archive
            .remove_group_hours("orders", Hour::of(base + hour), false)
            .await
            .unwrap();
        assert_eq!(removed, 1);
        let left = archive.group_positions("orders", None, None).await.unwrap();
        assert_eq!(left, vec![position(base + 2 * hour, "billing", 1, 40)]);
    }
}
