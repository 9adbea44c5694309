//! Compaction on real archive directories: many small files in several hours and partitions
//! are merged in sealed hours only, every message stays readable exactly once and byte for byte,
//! a second run does nothing, a crash between the steps is finished by the next run, and a
//! mirror follows (copying the merged files, deleting the replaced ones).

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;
use muninn_archive::{
    Archive, CompactOptions, CompactReport, Header, Hour, Message, RetentionRule, Selection,
    SourceBroker, TimestampType,
};
use parquet::file::reader::{FileReader, SerializedFileReader};

const HOUR_MS: i64 = 3_600_000;
const BASE_MS: i64 = 1_796_000_000_000 - 1_796_000_000_000 % HOUR_MS;
const FILES_PER_HOUR: i64 = 7;

/// Deterministic bytes that do not compress, so file sizes follow message counts.
fn noise(seed: u64, length: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..length)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn message(stream: &str, partition: i32, offset: i64, timestamp_ms: i64) -> Message {
    let seed = (partition as u64) << 40 | offset as u64;
    let mut headers = vec![
        Header {
            name: "muninn-event-id".into(),
            value: Some(format!("evt-{partition}-{offset}").into_bytes()),
        },
        Header {
            name: "traceparent".into(),
            value: Some(format!("00-{:032x}-{:016x}-01", seed + 1, seed + 1).into_bytes()),
        },
        Header {
            name: "bin".into(),
            value: Some(vec![0, 255, offset as u8]),
        },
        Header {
            name: "null".into(),
            value: None,
        },
    ];
    if offset % 4 == 0 {
        headers.push(Header {
            name: "bin".into(),
            value: Some(Vec::new()),
        });
    }
    Message::from_broker(
        SourceBroker::Kafka,
        stream.into(),
        None,
        partition,
        offset,
        timestamp_ms,
        TimestampType::CreateTime,
        (offset % 3 != 0).then(|| noise(seed ^ 1, 8)),
        headers,
        (offset % 11 != 0).then(|| noise(seed, 120)),
    )
}

/// Writes `FILES_PER_HOUR` files of `per_file` messages into each of `hours` for one partition,
/// starting at offset `first`, skipping `gap_after` offsets after the file of that index in
/// hour 1; returns the next offset.
async fn record(
    archive: &Archive,
    stream: &str,
    partition: i32,
    hours: std::ops::Range<i64>,
    per_file: i64,
    gap_at: Option<i64>,
) -> i64 {
    let mut offset = 0;
    for hour in hours {
        for file in 0..FILES_PER_HOUR {
            if hour == 1 && gap_at == Some(file) {
                offset += 5;
            }
            let messages: Vec<Message> = (0..per_file)
                .map(|i| {
                    let time = BASE_MS + hour * HOUR_MS + (file * per_file + i) * 100;
                    message(stream, partition, offset + i, time)
                })
                .collect();
            archive
                .commit_in(Hour(BASE_MS + hour * HOUR_MS), &messages)
                .await
                .unwrap();
            offset += per_file;
        }
    }
    offset
}

/// `orders`: partitions 0 and 1 in hours 0 to 3 (partition 0 with more messages per file,
/// partition 1 with a gap in hour 1), partition 2 in hours 0 and 1 only; `audit`: one partition
/// in hours 0 and 1.
async fn small_files(dir: &Path) -> Archive {
    let archive = Archive::open_local(dir).await.unwrap();
    record(&archive, "orders", 0, 0..4, 400, None).await;
    record(&archive, "orders", 1, 0..4, 40, Some(3)).await;
    record(&archive, "orders", 2, 0..2, 40, None).await;
    record(&archive, "audit", 0, 0..2, 40, None).await;
    archive
}

async fn everything(archive: &Archive, stream: &str) -> Vec<Message> {
    let all = Selection::new(stream, None, 0, i64::MAX, Vec::new()).unwrap();
    archive.read(&all).await.unwrap()
}

/// Every file under `dir`, relative path → bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, found: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, found);
            } else {
                let relative = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                found.insert(relative, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut found = BTreeMap::new();
    walk(dir, dir, &mut found);
    found
}

fn parquet_names(dir: &Path) -> Vec<String> {
    files(dir)
        .into_keys()
        .filter(|path| path.ends_with(".parquet"))
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    for (relative, bytes) in files(from) {
        let path = to.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

/// The files of one partition in one hour (`…/dt=…/hour=HH/p<P>…`), the `hour`th after
/// `BASE_MS`.
fn partition_hour(
    all: &BTreeMap<String, Vec<u8>>,
    stream: &str,
    hour: i64,
    partition: i32,
) -> BTreeMap<String, Vec<u8>> {
    let dir = format!(
        "v1/stream={stream}/{}/",
        hour_path(Hour(BASE_MS + hour * HOUR_MS))
    );
    all.iter()
        .filter(|(path, _)| {
            path.starts_with(&dir)
                && (path.ends_with(&format!("/p{partition}.manifest.json"))
                    || path.contains(&format!("/p{partition}-o")))
        })
        .map(|(path, bytes)| (path.clone(), bytes.clone()))
        .collect()
}

fn options(target_file_bytes: u64) -> CompactOptions {
    CompactOptions {
        target_file_bytes,
        ..CompactOptions::default()
    }
}

/// A target that merges a few of partition 0's files at a time and all of the others'.
async fn target(archive: &Archive) -> u64 {
    let file = archive
        .files(&Selection::new("orders", Some(0), 0, i64::MAX, Vec::new()).unwrap())
        .await
        .unwrap()
        .remove(0);
    file.entry.bytes * 7 / 2
}

#[tokio::test]
async fn sealed_hours_are_merged_and_every_message_stays_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let archive = small_files(dir.path()).await;
    let target = target(&archive).await;
    let orders = everything(&archive, "orders").await;
    let audit = everything(&archive, "audit").await;
    let streams_before = archive.streams().await.unwrap();
    let files_before = files(dir.path());
    let entries_before: BTreeMap<String, u64> = archive
        .files(&Selection::new("orders", None, 0, i64::MAX, Vec::new()).unwrap())
        .await
        .unwrap()
        .into_iter()
        .map(|file| {
            (
                format!("{}/{}", file.hour.label(), file.entry.name),
                file.entry.bytes,
            )
        })
        .collect();
    let old_refs = archive
        .files(&Selection::new("orders", None, 0, i64::MAX, Vec::new()).unwrap())
        .await
        .unwrap();

    // A dry run reports and touches nothing.
    let dry = archive
        .compact(&CompactOptions {
            dry_run: true,
            ..options(target)
        })
        .await
        .unwrap();
    assert!(dry.dry_run);
    assert_eq!(files(dir.path()), files_before);
    // Sealed: orders p0 and p1 hours 0-2, p2 hour 0; audit hour 0.
    assert_eq!(dry.streams["orders"].partition_hours_examined, 7);
    assert_eq!(dry.streams["audit"].partition_hours_examined, 1);
    assert_eq!(dry.total.files_before, 8 * FILES_PER_HOUR as u64);

    // Only the streams the pattern names.
    let audit_only = archive
        .compact(&CompactOptions {
            streams: "aud*".into(),
            ..options(target)
        })
        .await
        .unwrap();
    assert_eq!(audit_only.streams.keys().collect::<Vec<_>>(), ["audit"]);
    assert_eq!(audit_only.streams["audit"].files_after, 1);
    assert_eq!(everything(&archive, "audit").await, audit);
    assert_eq!(
        partition_hour(&files(dir.path()), "orders", 0, 0),
        partition_hour(&files_before, "orders", 0, 0)
    );

    let report = archive.compact(&options(target)).await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let figures = &report.streams["orders"];
    let dry_figures = &dry.streams["orders"];
    assert_eq!(
        (
            figures.files_before,
            figures.files_after,
            figures.messages_merged
        ),
        (
            dry_figures.files_before,
            dry_figures.files_after,
            dry_figures.messages_merged
        )
    );
    assert_eq!(figures.partition_hours_compacted, 7);
    assert!(
        figures.files_after * 2 < figures.files_before,
        "{figures:?}"
    );
    assert_eq!(figures.unreferenced_files_removed, 0);

    // Every message, once, byte for byte, in order; by position too.
    assert_eq!(everything(&archive, "orders").await, orders);
    assert_eq!(everything(&archive, "audit").await, audit);
    for probe in [&orders[0], &orders[500], &orders[orders.len() - 1]] {
        let found = archive
            .message("orders", probe.partition, probe.offset)
            .await
            .unwrap();
        assert_eq!(found.as_ref(), Some(probe));
    }
    // A reader holding the manifests of before finds the replaced files' messages.
    let mut through_old_refs = Vec::new();
    for file in &old_refs {
        through_old_refs.extend(archive.read_file(file).await.unwrap());
    }
    assert_eq!(through_old_refs, orders);

    // Manifests and files agree; nothing on disk that no manifest names.
    assert!(archive.check_files().await.unwrap().is_empty());
    let after = archive
        .files(&Selection::new("orders", None, 0, i64::MAX, Vec::new()).unwrap())
        .await
        .unwrap();
    let named: Vec<String> = after
        .iter()
        .map(|file| file.entry.name.clone())
        .chain(
            archive
                .files(&Selection::new("audit", None, 0, i64::MAX, Vec::new()).unwrap())
                .await
                .unwrap()
                .iter()
                .map(|file| file.entry.name.clone()),
        )
        .collect();
    let on_disk = parquet_names(dir.path());
    assert_eq!(on_disk.len(), named.len(), "{on_disk:?}");
    assert!(
        on_disk
            .iter()
            .all(|path| named.iter().any(|n| path.ends_with(n)))
    );

    // Each merged file: inputs up to the target, the index of its messages, bloom filters.
    let mut merged_per_hour: BTreeMap<(i32, String), u32> = BTreeMap::new();
    for file in after.iter().filter(|file| file.entry.name.contains("-c")) {
        *merged_per_hour
            .entry((file.partition, file.hour.label()))
            .or_default() += 1;
        let (first, last) = (file.entry.first_offset, file.entry.last_offset);
        assert_eq!(
            file.entry.name,
            format!("p{}-o{first:020}-c{last:020}.parquet", file.partition)
        );
        let inputs: u64 = entries_before
            .iter()
            .filter(|(name, _)| {
                name.starts_with(&file.hour.label())
                    && name.contains(&format!("/p{}-o", file.partition))
                    && {
                        let offset: i64 = name.rsplit("-o").next().unwrap()[..20].parse().unwrap();
                        (first..=last).contains(&offset)
                    }
            })
            .map(|(_, bytes)| bytes)
            .sum();
        assert!(inputs <= target, "{}: {inputs} > {target}", file.entry.name);
        let messages = archive.read_file(file).await.unwrap();
        let index: Vec<(i64, i64)> = messages
            .iter()
            .step_by(1024)
            .map(|m| (m.timestamp_ms, m.offset))
            .collect();
        assert_eq!(file.entry.index, index);
        let bytes = std::fs::read(
            dir.path()
                .join(format!("v1/stream=orders/{}", hour_path(file.hour)))
                .join(&file.entry.name),
        )
        .unwrap();
        let reader = SerializedFileReader::new(Bytes::from(bytes)).unwrap();
        let metadata = reader.metadata();
        for group in metadata.row_groups() {
            for column in group.columns() {
                let name = column.column_path().string();
                let bloom = column.bloom_filter_offset().is_some();
                assert_eq!(bloom, name == "event_id" || name == "trace_id", "{name}");
            }
        }
    }
    assert!(
        merged_per_hour.values().any(|&n| n >= 2),
        "{merged_per_hour:?}"
    );
    assert!(after.iter().any(|file| file.entry.index.len() >= 2));

    // The newest hour of each partition is untouched (partition 2's is its second).
    let files_after = files(dir.path());
    for (partition, newest) in [(0, 3), (1, 3), (2, 1)] {
        assert_eq!(
            partition_hour(&files_after, "orders", newest, partition),
            partition_hour(&files_before, "orders", newest, partition),
            "p{partition} hour {newest}"
        );
    }
    // `ls` sees the same messages, offsets, hours and gaps, in fewer files.
    let streams_after = archive.streams().await.unwrap();
    for (before, after) in streams_before.iter().zip(&streams_after) {
        for (before, after) in before.partitions.iter().zip(&after.partitions) {
            assert_eq!(
                (before.messages, before.first_offset, before.last_offset),
                (after.messages, after.first_offset, after.last_offset)
            );
            assert_eq!(
                (&before.first_hour, &before.last_hour, &before.gaps),
                (&after.first_hour, &after.last_hour, &after.gaps)
            );
            assert!(after.files <= before.files);
        }
    }
    assert_eq!(streams_before[1].partitions[1].gaps.len(), 1);
    assert_eq!(
        archive.last_offset("orders", 0).await.unwrap(),
        Some(4 * 7 * 400 - 1)
    );

    // Twice is a no-op.
    let again = archive.compact(&options(target)).await.unwrap();
    assert_eq!(again.total.partition_hours_compacted, 0, "{again:?}");
    assert_eq!(again.total.files_before, again.total.files_after);
    assert_eq!(files(dir.path()), files_after);
}

fn hour_path(hour: Hour) -> String {
    let label = hour.label(); // 2026-11-29T08
    format!("dt={}/hour={}", &label[..10], &label[11..])
}

#[tokio::test]
async fn a_crash_between_the_steps_is_finished_by_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("original");
    let archive = small_files(&original).await;
    let target = target(&archive).await;
    let orders = everything(&archive, "orders").await;
    let originals = files(&original);

    // What a finished compaction leaves, for comparison.
    let finished = dir.path().join("finished");
    copy_dir(&original, &finished);
    let report = Archive::open_local(&finished)
        .await
        .unwrap()
        .compact(&options(target))
        .await
        .unwrap();
    let finished_files = files(&finished);

    // A crash after the merged files were written, before the manifests: the merged files
    // are there, no manifest names them, and a stray one of another run too.
    let merged_only = dir.path().join("merged-only");
    copy_dir(&original, &merged_only);
    for (relative, bytes) in &finished_files {
        if relative.contains("-c") {
            std::fs::write(merged_only.join(relative), bytes).unwrap();
        }
    }
    let hour0 = format!("v1/stream=orders/{}", hour_path(Hour(BASE_MS)));
    let stray = format!("{hour0}/p1-o00000000000000000000-c00000000000000000001.parquet");
    std::fs::write(merged_only.join(&stray), b"half a file").unwrap();
    // A recorder between a file and its manifest in partition 0's newest hour: not touched.
    let newest = format!(
        "v1/stream=orders/{}",
        hour_path(Hour(BASE_MS + 3 * HOUR_MS))
    );
    let in_flight = format!("{newest}/p0-o{:020}.parquet", 4 * 7 * 400);
    std::fs::write(merged_only.join(&in_flight), b"being written").unwrap();
    let crashed = Archive::open_local(&merged_only).await.unwrap();
    assert_eq!(everything(&crashed, "orders").await, orders);
    assert!(crashed.check_files().await.unwrap().is_empty());
    let recovered = crashed.compact(&options(target)).await.unwrap();
    assert_eq!(
        recovered.total.unreferenced_files_removed, 1,
        "{recovered:?}"
    );
    assert_eq!(everything(&crashed, "orders").await, orders);
    let mut expected = finished_files.clone();
    expected.insert(in_flight.clone(), b"being written".to_vec());
    assert_eq!(files(&merged_only), expected);

    // A crash after the manifests, before the replaced files were deleted.
    let manifests_too = dir.path().join("manifests-too");
    copy_dir(&finished, &manifests_too);
    let mut left_behind = 0;
    for (relative, bytes) in &originals {
        if relative.ends_with(".parquet") && !finished_files.contains_key(relative) {
            std::fs::write(manifests_too.join(relative), bytes).unwrap();
            left_behind += 1;
        }
    }
    assert!(left_behind > 0);
    let crashed = Archive::open_local(&manifests_too).await.unwrap();
    assert_eq!(everything(&crashed, "orders").await, orders);
    let recovered: CompactReport = crashed.compact(&options(target)).await.unwrap();
    assert_eq!(recovered.total.unreferenced_files_removed, left_behind);
    assert_eq!(recovered.total.partition_hours_compacted, 0);
    assert_eq!(files(&manifests_too), finished_files);
    assert!(report.total.partition_hours_compacted > 0);
}

#[tokio::test]
async fn a_mirror_follows_a_compaction_and_retention_removes_merged_hours() {
    let source_dir = tempfile::tempdir().unwrap();
    let mirror_dir = tempfile::tempdir().unwrap();
    let source = small_files(source_dir.path()).await;
    let mirror = Archive::open_local(mirror_dir.path()).await.unwrap();
    let target = target(&source).await;
    source.mirror_to(&mirror, &|_| {}).await.unwrap();

    let report = source.compact(&options(target)).await.unwrap();
    assert!(
        !source
            .verify_against(&mirror, false)
            .await
            .unwrap()
            .is_empty()
    );
    let held = parquet_names(mirror_dir.path()).len() as u64;

    let copied = source.mirror_to(&mirror, &|_| {}).await.unwrap();
    assert_eq!(
        copied.manifests_written,
        report.total.partition_hours_compacted
    );
    assert!(copied.files_copied > 0);
    let holds = parquet_names(mirror_dir.path()).len() as u64;
    assert_eq!(copied.files_removed, held + copied.files_copied - holds);
    assert!(
        source
            .verify_against(&mirror, true)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        parquet_names(mirror_dir.path()),
        parquet_names(source_dir.path())
    );
    assert_eq!(
        everything(&mirror, "orders").await,
        everything(&source, "orders").await
    );
    let again = source.mirror_to(&mirror, &|_| {}).await.unwrap();
    assert_eq!((again.files_copied, again.files_removed), (0, 0));

    // Retention removes a compacted hour whole, merged files included.
    let now = BASE_MS + 2 * HOUR_MS + 60_000;
    let rules = [RetentionRule::parse("*=1h").unwrap()];
    let retained = source.retain(&rules, now, false).await.unwrap();
    assert_eq!(retained.hours_removed.len(), 2); // orders and audit, hour 00
    let hour0 = hour_path(Hour(BASE_MS));
    assert!(
        parquet_names(source_dir.path())
            .iter()
            .all(|path| !path.contains(&hour0))
    );
    assert!(source.check_files().await.unwrap().is_empty());
}
