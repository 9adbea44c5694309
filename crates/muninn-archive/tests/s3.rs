//! The archive on S3, against a real S3 API (`moto_server` on loopback, from the test venv):
//! locations open by URL, redelivery after a restart lands exactly once under the bucket's
//! prefix, a damaged object is refused by its checksum, an endpoint that does not answer
//! is retried with backoff (counted, reported unhealthy, naming the object) until it does, and
//! compaction (and a mirror following it) replaces and deletes objects as on a directory.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

mod support;

use futures::TryStreamExt;
use muninn_archive::{
    Archive, ArchiveErrorKind, CompactOptions, Header, Hour, Message, Recorder, RecorderOptions,
    RecorderStats, Selection, SourceBroker, TimestampType,
};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use support::moto::{Moto, free_port};

const HOUR_MS: i64 = 3_600_000;
const BASE_MS: i64 = 1_796_000_000_000 - 1_796_000_000_000 % HOUR_MS;
const BUCKET: &str = "muninn-events";
const PREFIX: &str = "muninn/archive";

fn message(partition: i32, offset: i64) -> Message {
    Message::from_broker(
        SourceBroker::Kafka,
        "orders".into(),
        None,
        partition,
        offset,
        BASE_MS + offset,
        TimestampType::CreateTime,
        Some(format!("key-{}", offset % 7).into_bytes()),
        vec![
            Header {
                name: "muninn-event-id".into(),
                value: Some(format!("evt-{partition}-{offset}").into_bytes()),
            },
            Header {
                name: "bin".into(),
                value: Some(vec![0, 255, offset as u8]),
            },
            Header {
                name: "bin".into(),
                value: None,
            },
        ],
        Some(
            [
                b"{\"n\":".as_slice(),
                offset.to_string().as_bytes(),
                b"}\xff",
            ]
            .concat(),
        ),
    )
}

fn small_files() -> RecorderOptions {
    RecorderOptions {
        max_file_messages: 40,
        max_file_age: Duration::from_secs(3600),
        max_backoff: Duration::from_millis(500),
        ..RecorderOptions::default()
    }
}

/// What a config file would give `Archive::open_s3` for this endpoint (the environment is not
/// read, so nothing on the machine changes what the test talks to).
fn settings(port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}")),
        ("AWS_ALLOW_HTTP", "true".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "muninn-test".into()),
        ("AWS_SECRET_ACCESS_KEY", "muninn-test-secret".into()),
    ]
}

fn open_archive(port: u16) -> Archive {
    let settings = settings(port);
    let options: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Archive::open_s3(BUCKET, Some(PREFIX), &options).unwrap()
}

/// The bucket itself, without the archive's prefix: what is really stored.
fn raw_bucket(port: u16) -> AmazonS3 {
    settings(port)
        .into_iter()
        .fold(AmazonS3Builder::new(), |builder, (key, value)| {
            builder.with_config(key.to_ascii_lowercase().parse().unwrap(), value)
        })
        .with_bucket_name(BUCKET)
        .build()
        .unwrap()
}

async fn raw_keys(port: u16) -> Vec<String> {
    let objects: Vec<object_store::ObjectMeta> =
        raw_bucket(port).list(None).try_collect().await.unwrap();
    objects
        .into_iter()
        .map(|o| o.location.to_string())
        .collect()
}

fn everything() -> Selection {
    Selection::new("orders", None, BASE_MS, BASE_MS + HOUR_MS, Vec::new()).unwrap()
}

async fn archived_offsets(archive: &Archive) -> Vec<i64> {
    let read = archive.read(&everything()).await.unwrap();
    read.iter().map(|m| m.offset).collect()
}

#[tokio::test]
async fn locations_open_local_directories_and_s3_buckets_and_refuse_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let plain = Archive::open(dir.path().join("plain").to_str().unwrap())
        .await
        .unwrap();
    assert!(plain.description().ends_with("/plain"));
    let url = format!("file://{}", dir.path().join("url").display());
    Archive::open(&url).await.unwrap();
    assert!(dir.path().join("url").is_dir());

    // From the AWS variables; nothing is sent before the first read or write.
    let s3 = Archive::open("s3://events/muninn/archive/").await.unwrap();
    assert_eq!(s3.description(), "s3://events/muninn/archive");

    for refused in ["gs://events", "s3://", ""] {
        let error = Archive::open(refused).await.err().unwrap();
        assert_eq!(error.kind, ArchiveErrorKind::Invalid);
        assert!(
            error.message.contains(&format!("{refused:?}"))
                && error.message.contains("s3://BUCKET[/PREFIX]"),
            "{error}"
        );
    }
    let error = Archive::open_s3("events", None, &[("AWS_ENDPOIN", "http://x")])
        .err()
        .unwrap();
    assert_eq!(error.kind, ArchiveErrorKind::Invalid);
    assert!(error.message.contains("\"AWS_ENDPOIN\""), "{error}");
}

#[tokio::test]
async fn redelivered_messages_after_a_restart_land_exactly_once_on_s3() {
    let moto = Moto::start().await;
    moto.create_bucket(BUCKET).await;
    let archive = open_archive(moto.port);
    let stats = Arc::new(RecorderStats::new());
    let mut recorder = Recorder::new(archive.clone(), small_files(), stats.clone());
    let mut committed = Vec::new();
    for offset in 0..100 {
        committed.extend(recorder.offer(message(0, offset)).await);
    }
    // Two files durable (the second written while the third fills), 20 messages buffered and
    // lost with the "crash".
    let deadline = Instant::now() + Duration::from_secs(20);
    while stats.files_written.load(Ordering::Relaxed) < 2 {
        assert!(Instant::now() < deadline, "waited 20 s for two files on S3");
        committed.extend(recorder.commit_due().await);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(committed.last().unwrap().next_offset, 80);
    assert_eq!(recorder.buffered(), 20);
    drop(recorder);

    // The broker redelivers from an older position; the new recorder skips what S3 holds.
    let mut recorder = Recorder::new(archive.clone(), small_files(), stats.clone());
    for offset in 50..150 {
        recorder.offer(message(0, offset)).await;
    }
    assert_eq!(recorder.commit_all().await.last().unwrap().next_offset, 150);
    let snapshot = stats.snapshot();
    assert_eq!(snapshot.duplicates_skipped, 30);
    assert_eq!(snapshot.object_store_errors, 0);
    assert!(snapshot.healthy);

    let read = archive.read(&everything()).await.unwrap();
    assert_eq!(
        read.iter().map(|m| m.offset).collect::<Vec<_>>(),
        (0..150).collect::<Vec<_>>()
    );
    assert_eq!(read[7], message(0, 7));
    let streams = archive.streams().await.unwrap();
    assert_eq!(streams.len(), 1);
    assert_eq!(streams[0].messages, 150);
    assert_eq!(streams[0].partitions[0].files, 4);
    assert!(streams[0].partitions[0].gaps.is_empty());
    assert_eq!(
        archive.message("orders", 0, 123).await.unwrap(),
        Some(message(0, 123))
    );
    assert_eq!(archive.message("orders", 0, 150).await.unwrap(), None);

    // Everything is under the prefix: four files and their one manifest.
    let keys = raw_keys(moto.port).await;
    assert_eq!(keys.len(), 5, "{keys:?}");
    assert!(
        keys.iter()
            .all(|key| key.starts_with("muninn/archive/v1/stream=orders/dt=")),
        "{keys:?}"
    );
}

#[tokio::test]
async fn compaction_and_a_mirror_following_it_replace_objects_on_s3() {
    let moto = Moto::start().await;
    moto.create_bucket(BUCKET).await;
    let settings = settings(moto.port);
    let options: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let dir = tempfile::tempdir().unwrap();
    let local = Archive::open_local(dir.path()).await.unwrap();
    let mirror = Archive::open_s3(BUCKET, Some("mirror"), &options).unwrap();
    let s3 = open_archive(moto.port);
    for archive in [&local, &s3] {
        for first in (0..100).step_by(20) {
            let messages: Vec<Message> = (first..first + 20).map(|o| message(0, o)).collect();
            archive.commit(&messages).await.unwrap();
        }
        // A file in the next hour seals the first.
        let later: Vec<Message> = (100..110).map(|o| message(0, o)).collect();
        archive
            .commit_in(Hour(BASE_MS + HOUR_MS), &later)
            .await
            .unwrap();
    }
    local.mirror_to(&mirror, &|_| {}).await.unwrap();

    let before = s3.read(&everything()).await.unwrap();
    let report = s3.compact(&CompactOptions::default()).await.unwrap();
    assert_eq!(
        (report.total.files_before, report.total.files_after),
        (5, 1)
    );
    assert_eq!(s3.read(&everything()).await.unwrap(), before);
    assert!(s3.check_files().await.unwrap().is_empty());
    let keys = raw_keys(moto.port).await;
    let merged = "muninn/archive/v1/stream=orders/dt=2026-11-30/hour=00/\
                  p0-o00000000000000000000-c00000000000000000099.parquet";
    let under_prefix: Vec<&String> = keys
        .iter()
        .filter(|key| key.starts_with(PREFIX) && key.ends_with(".parquet"))
        .collect();
    assert_eq!(under_prefix.len(), 2, "{keys:?}");
    assert!(under_prefix.iter().any(|key| *key == merged), "{keys:?}");

    // The local archive compacted, its mirror on S3 follows: the merged file copied, the
    // replaced ones deleted.
    local.compact(&CompactOptions::default()).await.unwrap();
    let mirrored = local.mirror_to(&mirror, &|_| {}).await.unwrap();
    assert_eq!((mirrored.files_copied, mirrored.files_removed), (1, 5));
    assert!(
        local
            .verify_against(&mirror, true)
            .await
            .unwrap()
            .is_empty()
    );
    let keys = raw_keys(moto.port).await;
    assert_eq!(
        keys.iter()
            .filter(|key| key.starts_with("mirror/") && key.ends_with(".parquet"))
            .count(),
        2,
        "{keys:?}"
    );
}

#[tokio::test]
async fn a_damaged_object_is_refused_by_its_checksum() {
    let moto = Moto::start().await;
    moto.create_bucket(BUCKET).await;
    let archive = open_archive(moto.port);
    let file = archive
        .commit(&(0..10).map(|o| message(0, o)).collect::<Vec<_>>())
        .await
        .unwrap();
    let bucket = raw_bucket(moto.port);
    let key = raw_keys(moto.port)
        .await
        .into_iter()
        .find(|key| key.ends_with(".parquet"))
        .unwrap();
    let key = ObjectPath::from(key);
    let mut bytes = bucket
        .get(&key)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    bucket.put(&key, PutPayload::from(bytes)).await.unwrap();

    let error = archive.read_file(&file).await.unwrap_err();
    assert_eq!(error.kind, ArchiveErrorKind::Corrupt);
    assert!(error.message.contains("checksum"), "{error}");
    assert!(archive.read(&everything()).await.is_err());
}

#[tokio::test]
async fn an_unreachable_endpoint_is_retried_with_backoff_until_it_answers() {
    // Nothing listens on the port yet: the recorder cannot even look up where to resume.
    let port = free_port();
    let archive = open_archive(port);
    let stats = Arc::new(RecorderStats::new());
    let mut recorder = Recorder::new(archive.clone(), small_files(), stats.clone());
    let offering = tokio::spawn(async move {
        for offset in 0..30 {
            recorder.offer(message(0, offset)).await;
        }
        recorder
    });
    wait_until("two failed lookups", Duration::from_secs(30), || {
        stats.object_store_errors.load(Ordering::Relaxed) >= 2
    })
    .await;
    let snapshot = stats.snapshot();
    assert!(!snapshot.healthy);
    let error = snapshot.last_error.unwrap();
    assert!(error.contains("listing v1/stream=orders"), "{error}");

    let moto = Moto::start_on(port).await;
    moto.create_bucket(BUCKET).await;
    let mut recorder = tokio::time::timeout(Duration::from_secs(30), offering)
        .await
        .expect("the recorder resumes once S3 answers")
        .unwrap();
    assert!(stats.snapshot().healthy);
    assert_eq!(recorder.buffered(), 30);

    // S3 goes away while the file is written: the write is retried, not dropped.
    drop(moto);
    let errors_before = stats.object_store_errors.load(Ordering::Relaxed);
    let committing = tokio::spawn(async move { recorder.commit_all().await });
    wait_until("two failed writes", Duration::from_secs(30), || {
        stats.object_store_errors.load(Ordering::Relaxed) >= errors_before + 2
    })
    .await;
    let snapshot = stats.snapshot();
    assert!(!snapshot.healthy);
    let error = snapshot.last_error.unwrap();
    // The commit reads the hour's manifest (for the topic id), then writes the file.
    assert!(
        error.contains("v1/stream=orders/dt=")
            && (error.contains("/p0-o00000000000000000000.parquet")
                || error.contains("/p0.manifest.json")),
        "{error}"
    );

    let moto = Moto::start_on(port).await;
    moto.create_bucket(BUCKET).await;
    let committed = tokio::time::timeout(Duration::from_secs(30), committing)
        .await
        .expect("the write succeeds once S3 is back")
        .unwrap();
    assert_eq!(committed.last().unwrap().next_offset, 30);
    let snapshot = stats.snapshot();
    assert!(snapshot.healthy);
    assert_eq!(snapshot.messages_archived, 30);
    assert_eq!(
        archived_offsets(&archive).await,
        (0..30).collect::<Vec<_>>()
    );
}

async fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "waited {timeout:?} for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
