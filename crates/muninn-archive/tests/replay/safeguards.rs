//! What keeps a replay from sending wrongly or twice, against real brokers: a missing topic or
//! stream, a message too large, a partition map or header the target cannot take are refused
//! before anything is sent (`--create` makes what is missing); a dry run connects to nothing;
//! an interrupted replay resumes from its checkpoint without duplicates.

use std::collections::BTreeSet;
use std::sync::Mutex;

use muninn_archive::{
    ArchiveErrorKind, PartitionMap, ReplayOptions, ReplayProgress, ReplayReport, Target, replay,
};

use crate::common::{
    PARTITIONS, PER_PARTITION, TOTAL, by_partition, consume_kafka, consume_nats, expected_headers,
    kafka_messages, kafka_target, nats_messages, no_progress,
};
use crate::support::{Kafka, Nats};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_topic_fails_before_sending_and_create_makes_it_with_the_archived_partitions() {
    let kafka = Kafka::start();
    let messages = kafka_messages("orders", false);
    let target = kafka_target(&kafka, "not-there-yet");
    let error = replay(
        messages.clone(),
        &target,
        &ReplayOptions::default(),
        &no_progress,
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind, ArchiveErrorKind::NotFound);
    assert_eq!(
        error.message,
        format!(
            "topic not-there-yet does not exist on {}; create it or pass --create",
            kafka.bootstrap
        )
    );

    // Too few partitions for the archived ones: refused, nothing sent.
    kafka.create_topic("too-small", 4).await;
    let error = replay(
        messages.clone(),
        &kafka_target(&kafka, "too-small"),
        &ReplayOptions::default(),
        &no_progress,
    )
    .await
    .unwrap_err();
    assert!(
        error.message.contains("has 4 partitions") && error.message.contains("partition 5"),
        "{error}"
    );
    // ... unless mapped onto the ones it has.
    let options = ReplayOptions {
        partitions: PartitionMap::parse("0:0,1:1,2:2,3:3,4:0,5:1").unwrap(),
        ..ReplayOptions::default()
    };
    let report = replay(
        messages.clone(),
        &kafka_target(&kafka, "too-small"),
        &options,
        &no_progress,
    )
    .await
    .unwrap();
    assert_eq!(report.sent, TOTAL as u64);
    let consumed = consume_kafka(&kafka, "too-small", 4, TOTAL).await;
    assert_eq!(
        consumed
            .iter()
            .filter(|message| message.partition == 0)
            .count(),
        1_000
    );

    let options = ReplayOptions {
        create: true,
        ..ReplayOptions::default()
    };
    // A message over the producer's limit: refused before the topic is even created.
    let mut too_big = messages.clone();
    too_big[7].payload = Some(vec![b'x'; 1_000_000]);
    let error = replay(too_big, &target, &options, &no_progress)
        .await
        .unwrap_err();
    assert!(
        error
            .message
            .contains("message kafka://orders/1/1001 takes")
            && error.message.contains("message.max.bytes"),
        "{error}"
    );
    let error = replay(
        messages.clone(),
        &target,
        &ReplayOptions::default(),
        &no_progress,
    )
    .await
    .unwrap_err();
    assert!(error.message.contains("does not exist"), "{error}");

    let report = replay(messages.clone(), &target, &options, &no_progress)
        .await
        .unwrap();
    assert_eq!(report.sent, TOTAL as u64);
    // Created with the highest archived partition + 1 partitions, the untouched ones kept.
    let consumed = consume_kafka(&kafka, "not-there-yet", PARTITIONS, TOTAL).await;
    let consumed = by_partition(&consumed, |message| message.partition);
    for (partition, expected) in by_partition(&messages, |message| message.partition) {
        let keys: Vec<_> = consumed[&partition].iter().map(|m| m.key.clone()).collect();
        let want: Vec<_> = expected.iter().map(|m| m.key.clone()).collect();
        assert_eq!(keys, want, "partition {partition}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subject_no_stream_captures_fails_before_sending_and_create_makes_a_stream() {
    let nats = Nats::start();
    let messages = nats_messages(50);
    let target = Target::parse(&format!("{}/audit.orders", nats.url)).unwrap();
    let error = replay(
        messages.clone(),
        &target,
        &ReplayOptions::default(),
        &no_progress,
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind, ArchiveErrorKind::NotFound);
    assert!(
        error
            .message
            .contains("subject audit.orders is captured by no JetStream stream")
            && error.message.contains("--create"),
        "{error}"
    );
    let options = ReplayOptions {
        create: true,
        ..ReplayOptions::default()
    };
    // A message over the server's max_payload: refused before the stream is even created.
    let mut too_big = messages.clone();
    too_big[20].payload = Some(vec![b'x'; 2 << 20]);
    let error = replay(too_big, &target, &options, &no_progress)
        .await
        .unwrap_err();
    assert!(
        error.message.contains("message nats://ORDERS/0/21 takes")
            && error.message.contains("max_payload"),
        "{error}"
    );
    let jetstream = nats.jetstream().await;
    assert!(jetstream.get_stream("audit_orders").await.is_err());

    let report = replay(messages.clone(), &target, &options, &no_progress)
        .await
        .unwrap();
    assert_eq!(report.sent, 50);
    let consumed = consume_nats(&nats, "audit_orders", 50).await;
    assert_eq!(consumed[9].2, *messages[9].payload.as_ref().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_replay_resumes_from_its_checkpoint_without_duplicates() {
    let kafka = Kafka::start();
    kafka.create_topic("resumed", PARTITIONS).await;
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("replay.checkpoint.json");
    let messages = kafka_messages("orders", false);
    let target = kafka_target(&kafka, "resumed");
    let options = ReplayOptions {
        checkpoint: Some(checkpoint.clone()),
        rate_per_second: Some(4_000),
        ..ReplayOptions::default()
    };

    // Stopped (its future dropped) once 800 messages are acknowledged.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let stop = Mutex::new(Some(stop));
    let interrupt = |progress: ReplayProgress| {
        if progress.sent >= 800
            && let Some(stop) = stop.lock().unwrap().take()
        {
            let _ = stop.send(());
        }
    };
    tokio::select! {
        finished = replay(messages.clone(), &target, &options, &interrupt) => {
            panic!("the replay should have been interrupted, it finished: {finished:?}")
        }
        _ = stopped => {}
    }
    assert!(
        checkpoint.exists(),
        "the dropped replay wrote its checkpoint"
    );

    let resumed = ReplayOptions {
        rate_per_second: None,
        ..options.clone()
    };
    let report = replay(messages.clone(), &target, &resumed, &no_progress)
        .await
        .unwrap();
    assert!(
        report.skipped >= 800 && report.skipped < TOTAL as u64,
        "{report:?}"
    );
    assert_eq!(report.sent + report.skipped, TOTAL as u64, "{report:?}");

    // Every message exactly once, each partition in order.
    let consumed = consume_kafka(&kafka, "resumed", PARTITIONS, TOTAL).await;
    let origins: BTreeSet<Vec<u8>> = consumed
        .iter()
        .map(|message| message.headers.last().unwrap().value.clone().unwrap())
        .collect();
    assert_eq!(origins.len(), TOTAL);
    for (partition, consumed) in by_partition(&consumed, |message| message.partition) {
        let offsets: Vec<i64> = consumed
            .iter()
            .map(|message| {
                let origin =
                    String::from_utf8(message.headers.last().unwrap().value.clone().unwrap())
                        .unwrap();
                origin.rsplit('/').next().unwrap().parse().unwrap()
            })
            .collect();
        assert_eq!(
            offsets,
            (1_000..1_000 + PER_PARTITION).collect::<Vec<_>>(),
            "partition {partition}"
        );
    }

    // Everything delivered: a third run sends nothing.
    let report = replay(messages.clone(), &target, &resumed, &no_progress)
        .await
        .unwrap();
    assert_eq!((report.sent, report.skipped), (0, TOTAL as u64));
    // The checkpoint belongs to this target.
    let error = replay(
        messages,
        &kafka_target(&kafka, "elsewhere"),
        &resumed,
        &no_progress,
    )
    .await
    .unwrap_err();
    assert!(
        error.message.contains("belongs to a replay to kafka://"),
        "{error}"
    );
}

#[tokio::test]
async fn a_dry_run_connects_to_nothing_and_counts_what_would_be_sent() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("dry.checkpoint.json");
    let messages = kafka_messages("orders", false);
    // Nothing listens on port 1: a dry run does not notice.
    let target = Target::parse("kafka://127.0.0.1:1/nowhere").unwrap();
    let options = ReplayOptions {
        dry_run: true,
        checkpoint: Some(checkpoint.clone()),
        drop_headers: vec!["secret".to_owned()],
        ..ReplayOptions::default()
    };
    let report = replay(messages.clone(), &target, &options, &no_progress)
        .await
        .unwrap();
    let bytes: usize = messages
        .iter()
        .map(|message| {
            let headers = expected_headers(message, &["secret"]);
            message.key.as_ref().map_or(0, Vec::len)
                + message.payload.as_ref().map_or(0, Vec::len)
                + headers
                    .iter()
                    .map(|header| header.name.len() + header.value.as_ref().map_or(0, Vec::len))
                    .sum::<usize>()
        })
        .sum();
    assert_eq!(
        report,
        ReplayReport {
            dry_run: true,
            would_send: TOTAL as u64,
            would_send_bytes: bytes as u64,
            ..ReplayReport::default()
        }
    );
    assert!(!checkpoint.exists(), "a dry run writes no checkpoint");
}

#[tokio::test]
async fn what_the_target_cannot_take_is_refused_before_connecting() {
    let messages = kafka_messages("orders", false);
    let unreachable = Target::parse("kafka://127.0.0.1:1/nowhere").unwrap();

    let options = ReplayOptions {
        partitions: PartitionMap::parse("0:0,1:1").unwrap(),
        ..ReplayOptions::default()
    };
    let error = replay(messages.clone(), &unreachable, &options, &no_progress)
        .await
        .unwrap_err();
    assert_eq!(error.kind, ArchiveErrorKind::Invalid);
    assert!(
        error
            .message
            .contains("archived partition 2 of orders is not in it; add 2:TARGET"),
        "{error}"
    );

    // A binary header cannot go to NATS byte for byte: named, with the way out.
    let nats = Target::parse("nats://127.0.0.1:1/orders.replayed").unwrap();
    let error = replay(
        messages.clone(),
        &nats,
        &ReplayOptions::default(),
        &no_progress,
    )
    .await
    .unwrap_err();
    assert_eq!(
        error.message,
        "message kafka://orders/0/1000 cannot be sent to NATS byte for byte: header \"bin\": \
         its value is not UTF-8; drop it (--drop-header bin) or replay to Kafka"
    );
    let options = ReplayOptions {
        drop_headers: vec!["BIN".to_owned()],
        ..ReplayOptions::default()
    };
    let error = replay(messages.clone(), &nats, &options, &no_progress)
        .await
        .unwrap_err();
    assert!(
        error.message.contains("header \"tag\": its value is null"),
        "{error}"
    );

    let error = replay(
        messages.clone(),
        &nats,
        &ReplayOptions {
            partitions: PartitionMap::ByKey,
            ..ReplayOptions::default()
        },
        &no_progress,
    )
    .await
    .unwrap_err();
    assert!(
        error.message.contains("only Kafka targets have partitions"),
        "{error}"
    );

    let mut shuffled = messages.clone();
    shuffled.swap(0, PARTITIONS as usize);
    let error = replay(
        shuffled,
        &unreachable,
        &ReplayOptions::default(),
        &no_progress,
    )
    .await
    .unwrap_err();
    assert!(
        error
            .message
            .contains("orders/0 are not in offset order (1000 after 1001)"),
        "{error}"
    );

    let error = replay(
        messages,
        &unreachable,
        &ReplayOptions {
            rate_per_second: Some(0),
            ..ReplayOptions::default()
        },
        &no_progress,
    )
    .await
    .unwrap_err();
    assert!(error.message.contains("rate 0"), "{error}");

    for bad in [
        "kafka:/x:1/t",
        "kafka://x:1",
        "nats://x:4222/a..b",
        "s3://bucket/key",
    ] {
        let error = Target::parse(bad).unwrap_err();
        assert!(
            error.message.contains(bad)
                && error
                    .message
                    .contains("kafka://HOST:PORT[,HOST:PORT…]/TOPIC"),
            "{error}"
        );
    }
    for bad in ["0=1", "one:two", "0:1,0:2", ""] {
        let error = PartitionMap::parse(bad).unwrap_err();
        assert!(
            error.message.contains(&format!("{bad:?}")) && error.message.contains("same"),
            "{error}"
        );
    }
}
