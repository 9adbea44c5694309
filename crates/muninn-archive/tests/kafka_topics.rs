//! A Kafka topic deleted and created again, against a real broker (tansu): the archive knows
//! the old topic by its id, so the recorder neither skips the new topic's offsets as already
//! archived nor mixes them with the old topic's files; it refuses the partition, says why in
//! its health, and commits nothing, so the new messages stay on the broker.

#[path = "../../muninn-sdk/tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use muninn_archive::{Archive, KafkaSource, RecorderOptions, RecorderStats, Selection};
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use support::Kafka;

async fn produce(kafka: &Kafka, prefix: &str, count: usize) {
    let producer: FutureProducer = kafka.config().create().unwrap();
    for n in 0..count {
        let payload = format!("{prefix}-{n}");
        producer
            .send(
                FutureRecord::to("orders")
                    .partition(0)
                    .key("k")
                    .payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .expect("produce");
    }
}

/// Runs the recorder with consumer group `group` until `done` holds of its counters.
async fn record_until(
    kafka: &Kafka,
    archive: &Archive,
    group: &str,
    done: impl Fn(&RecorderStats) -> bool,
) -> Arc<RecorderStats> {
    let stats = Arc::new(RecorderStats::new());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(muninn_archive::record_kafka(
        archive.clone(),
        KafkaSource {
            bootstrap: kafka.bootstrap.clone(),
            group: group.to_owned(),
            topics: vec!["orders".into()],
            settings: Vec::new(),
        },
        RecorderOptions {
            max_file_age: Duration::from_millis(200),
            group_positions_every: None,
            ..RecorderOptions::default()
        },
        stats.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done(&stats) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the recorder did not get there in 30 s: {:?}",
            stats.snapshot()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
    stats
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_topic_is_refused_not_skipped_as_archived() {
    let kafka = Kafka::start();
    kafka.create_topic("orders", 1).await;
    produce(&kafka, "old", 10).await;
    let dir = tempfile::tempdir().unwrap();
    let archive = Archive::open_local(dir.path()).await.unwrap();
    record_until(&kafka, &archive, "archiver-1", |stats| {
        stats.snapshot().messages_archived == 10
    })
    .await;
    let (_, last, topic_id) = archive
        .last_position_and_topic("orders", 0)
        .await
        .unwrap()
        .expect("archived");
    assert_eq!(last, 9);
    let old_id = topic_id.expect("tansu gives topic ids, and the manifest keeps it");

    // The topic is deleted and created again: its offsets start over, below the archived 9.
    kafka.delete_topic("orders").await;
    kafka.create_topic("orders", 1).await;
    produce(&kafka, "new", 5).await;
    let stats = record_until(&kafka, &archive, "archiver-2", |stats| {
        stats.snapshot().messages_refused >= 5
    })
    .await;
    let snapshot = stats.snapshot();
    assert_eq!(
        snapshot.duplicates_skipped, 0,
        "nothing skipped as archived"
    );
    assert_eq!(snapshot.messages_archived, 0);
    assert!(!snapshot.healthy);
    let error = snapshot.last_error.unwrap_or_default();
    assert!(
        error.contains("deleted and created again") && error.contains(&old_id),
        "{error}"
    );

    // The old topic's archive is untouched ...
    let all = Selection::new("orders", None, 0, i64::MAX, Vec::new()).unwrap();
    let payloads: Vec<String> = archive
        .read(&all)
        .await
        .unwrap()
        .into_iter()
        .map(|message| String::from_utf8(message.payload.unwrap()).unwrap())
        .collect();
    let expected: Vec<String> = (0..10).map(|n| format!("old-{n}")).collect();
    assert_eq!(payloads, expected);
    // ... and the new messages stay on the broker: the group committed nothing.
    let consumer: BaseConsumer = kafka
        .config()
        .set("group.id", "archiver-2")
        .create()
        .unwrap();
    let mut partitions = TopicPartitionList::new();
    partitions.add_partition("orders", 0);
    let committed = consumer
        .committed_offsets(partitions, Duration::from_secs(10))
        .unwrap();
    assert_eq!(
        committed.elements()[0].offset(),
        Offset::Invalid,
        "no offset committed for the refused partition"
    );
}

#[tokio::test]
async fn a_commit_of_another_topic_id_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let archive = Archive::open_local(dir.path()).await.unwrap();
    let message = |payload: &str| {
        muninn_archive::Message::from_broker(
            muninn_archive::SourceBroker::Kafka,
            "orders".into(),
            None,
            0,
            0,
            1_796_000_000_000,
            muninn_archive::TimestampType::CreateTime,
            None,
            Vec::new(),
            Some(payload.as_bytes().to_vec()),
        )
    };
    let hour = muninn_archive::Hour::of(1_796_000_000_000);
    archive
        .commit_topic(hour, &[message("old")], Some("AaI_6LEIcjOQKSTxlKBttg"))
        .await
        .unwrap();
    let error = archive
        .commit_topic(hour, &[message("new")], Some("AaI_6LEJdMCw0HRGpeZ3rw"))
        .await
        .unwrap_err();
    assert!(
        error.message.contains("deleted and created again"),
        "{error}"
    );
    let all = Selection::new("orders", None, 0, i64::MAX, Vec::new()).unwrap();
    let kept = archive.read(&all).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(
        kept[0].payload.as_deref(),
        Some(&b"old"[..]),
        "the old file is intact"
    );
}
