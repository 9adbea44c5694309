//! The recorder against a real archive directory: redelivery after a restart lands exactly
//! once, a producer clock going back never hides the last offset, reads select by time,
//! partition and filter, and a damaged file is refused by its checksum.

use std::sync::Arc;
use std::time::Duration;

use muninn_archive::{
    Archive, Filter, Header, Message, Recorder, RecorderOptions, RecorderStats, Selection,
    SourceBroker, TimestampType,
};

const HOUR_MS: i64 = 3_600_000;
const BASE_MS: i64 = 1_796_000_000_000 - 1_796_000_000_000 % HOUR_MS;

fn message(partition: i32, offset: i64, timestamp_ms: i64) -> Message {
    let mut headers = vec![
        Header {
            name: "muninn-event-id".into(),
            value: Some(format!("evt-{partition}-{offset}").into_bytes()),
        },
        Header {
            name: "muninn-event-type".into(),
            value: Some(if offset % 2 == 0 {
                b"even".to_vec()
            } else {
                b"odd".to_vec()
            }),
        },
        Header {
            name: "bin".into(),
            value: Some(vec![0, 255, offset as u8]),
        },
        Header {
            name: "bin".into(),
            value: None,
        },
    ];
    if offset % 3 == 0 {
        headers.push(Header {
            name: "tenant".into(),
            value: Some(b"acme".to_vec()),
        });
    }
    Message::from_broker(
        SourceBroker::Kafka,
        "orders".into(),
        None,
        partition,
        offset,
        timestamp_ms,
        TimestampType::CreateTime,
        Some(format!("key-{}", offset % 7).into_bytes()),
        headers,
        Some(format!("{{\"n\":{offset}}}").into_bytes()),
    )
}

fn small_files() -> RecorderOptions {
    RecorderOptions {
        max_file_messages: 40,
        max_file_age: Duration::from_secs(3600),
        ..RecorderOptions::default()
    }
}

#[tokio::test]
async fn redelivered_messages_after_a_restart_land_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let archive = Archive::open_local(dir.path()).await.unwrap();
    let stats = Arc::new(RecorderStats::new());
    let mut recorder = Recorder::new(archive.clone(), small_files(), stats.clone());
    let mut committed = Vec::new();
    for offset in 0..100 {
        committed.extend(recorder.offer(message(0, offset, BASE_MS + offset)).await);
    }
    // 80 durable in two files (the second written while the third fills), 20 buffered and lost
    // with the "crash".
    while stats
        .files_written
        .load(std::sync::atomic::Ordering::Relaxed)
        < 2
    {
        committed.extend(recorder.commit_due().await);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(committed.last().unwrap().next_offset, 80);
    assert_eq!(recorder.buffered(), 20);
    drop(recorder);

    // The broker redelivers from its last committed offset (here: from 50, older than the
    // archive's position), the new recorder skips what the archive holds.
    let mut recorder = Recorder::new(archive.clone(), small_files(), stats.clone());
    for offset in 50..150 {
        recorder.offer(message(0, offset, BASE_MS + offset)).await;
    }
    let last = recorder.commit_all().await;
    assert_eq!(last.last().unwrap().next_offset, 150);
    assert_eq!(stats.snapshot().duplicates_skipped, 30);

    let all = Selection::new("orders", None, BASE_MS, BASE_MS + HOUR_MS, Vec::new()).unwrap();
    let read = archive.read(&all).await.unwrap();
    let offsets: Vec<i64> = read.iter().map(|m| m.offset).collect();
    assert_eq!(offsets, (0..150).collect::<Vec<_>>());
    assert_eq!(read[7], message(0, 7, BASE_MS + 7));
    assert_eq!(read[7].event_id.as_deref(), Some("evt-0-7"));

    let streams = archive.streams().await.unwrap();
    assert_eq!(streams.len(), 1);
    assert_eq!(streams[0].messages, 150);
    assert_eq!(streams[0].partitions[0].first_offset, 0);
    assert_eq!(streams[0].partitions[0].last_offset, 149);
    assert!(streams[0].partitions[0].gaps.is_empty());
}

#[tokio::test]
async fn a_producer_clock_going_back_never_hides_the_last_offset() {
    let dir = tempfile::tempdir().unwrap();
    let archive = Archive::open_local(dir.path()).await.unwrap();
    let stats = Arc::new(RecorderStats::new());
    let mut recorder = Recorder::new(archive.clone(), small_files(), stats.clone());
    // Offsets 0..10 in the next hour, then 10..20 stamped an hour earlier.
    for offset in 0..10 {
        recorder
            .offer(message(1, offset, BASE_MS + HOUR_MS + offset))
            .await;
    }
    recorder.commit_all().await;
    for offset in 10..20 {
        recorder.offer(message(1, offset, BASE_MS + offset)).await;
    }
    recorder.commit_all().await;
    assert_eq!(archive.last_offset("orders", 1).await.unwrap(), Some(19));

    // A fresh recorder resumes after 19, not after 9.
    let mut recorder = Recorder::new(archive.clone(), small_files(), stats.clone());
    for offset in 0..25 {
        recorder.offer(message(1, offset, BASE_MS + offset)).await;
    }
    recorder.commit_all().await;
    let early = Selection::new("orders", Some(1), BASE_MS, BASE_MS + HOUR_MS, Vec::new()).unwrap();
    let offsets: Vec<i64> = archive
        .read(&early)
        .await
        .unwrap()
        .iter()
        .map(|m| m.offset)
        .collect();
    // The late messages are found by their own time though filed in the later hour.
    assert_eq!(offsets, (10..25).collect::<Vec<_>>());
    assert_eq!(stats.snapshot().duplicates_skipped, 20);
}

#[tokio::test]
async fn reads_select_by_time_partition_and_filter() {
    let dir = tempfile::tempdir().unwrap();
    let archive = Archive::open_local(dir.path()).await.unwrap();
    let mut recorder = Recorder::new(
        archive.clone(),
        small_files(),
        Arc::new(RecorderStats::new()),
    );
    for partition in 0..3 {
        for offset in 0..60 {
            recorder
                .offer(message(partition, offset, BASE_MS + offset * 1000))
                .await;
        }
    }
    recorder.commit_all().await;

    let window = |partition, filters| {
        Selection::new(
            "orders",
            partition,
            BASE_MS + 10_000,
            BASE_MS + 20_000,
            filters,
        )
        .unwrap()
    };
    assert_eq!(
        archive.read(&window(None, Vec::new())).await.unwrap().len(),
        30
    );
    let odd_in_2 = archive
        .read(&window(
            Some(2),
            vec![Filter::parse("event_type=odd").unwrap()],
        ))
        .await
        .unwrap();
    assert_eq!(
        odd_in_2.iter().map(|m| m.offset).collect::<Vec<_>>(),
        vec![11, 13, 15, 17, 19]
    );
    let tenant = archive
        .read(&window(
            Some(0),
            vec![
                Filter::parse("header.Tenant=acme").unwrap(),
                Filter::parse("key=key-5").unwrap(),
            ],
        ))
        .await
        .unwrap();
    assert_eq!(
        tenant.iter().map(|m| m.offset).collect::<Vec<_>>(),
        vec![12]
    );
    let one = archive.message("orders", 2, 33).await.unwrap().unwrap();
    assert_eq!(one, message(2, 33, BASE_MS + 33_000));
    assert!(archive.message("orders", 2, 60).await.unwrap().is_none());
}

#[tokio::test]
async fn a_damaged_file_is_refused_by_its_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let archive = Archive::open_local(dir.path()).await.unwrap();
    let file = archive
        .commit(
            &(0..10)
                .map(|o| message(0, o, BASE_MS + o))
                .collect::<Vec<_>>(),
        )
        .await
        .unwrap();
    let path = walk(dir.path())
        .into_iter()
        .find(|path| path.extension().is_some_and(|e| e == "parquet"))
        .unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&path, bytes).unwrap();
    let error = archive.read_file(&file).await.unwrap_err().to_string();
    assert!(error.contains("checksum"), "{error}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}
