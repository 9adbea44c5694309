//! Consumer groups' positions against a real broker (tansu): the Kafka recorder samples every
//! group's committed offsets on the recorded topics into the archive (its own group left out),
//! and a replay of part of a topic sets a group's offsets on the replayed topic to where the
//! group stood, translated into the new offsets, so a consumer of that group goes on with the
//! first message it had not consumed.

#[path = "../../muninn-sdk/tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use muninn_archive::{
    Archive, GroupOffsets, PartitionMap, RecorderOptions, RecorderStats, ReplayOptions, Selection,
    Target,
};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, StreamConsumer};
use rdkafka::message::Message as _;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use support::{Kafka, Nats};

fn options_describe() -> AdminOptions {
    AdminOptions::new().request_timeout(Some(Duration::from_secs(10)))
}

const PARTITIONS: i32 = 3;
const PER_PARTITION: i64 = 20;
const BASE_MS: i64 = 1_796_000_000_000;

/// Message `offset` of `partition`, stamped a second after the one before it.
fn payload(partition: i32, offset: i64) -> String {
    format!("p{partition}-o{offset}")
}

async fn produce(kafka: &Kafka, topic: &str) {
    let producer: FutureProducer = kafka.config().create().unwrap();
    for offset in 0..PER_PARTITION {
        for partition in 0..PARTITIONS {
            let body = payload(partition, offset);
            let key = format!("key-{offset}");
            producer
                .send(
                    FutureRecord::to(topic)
                        .partition(partition)
                        .key(&key)
                        .payload(&body)
                        .timestamp(BASE_MS + offset * 1_000),
                    Duration::from_secs(10),
                )
                .await
                .expect("produce");
        }
    }
}

/// Commits `offsets` (partition → next offset) for `group` on `topic`, as a consumer would.
fn commit(kafka: &Kafka, group: &str, topic: &str, offsets: &[(i32, i64)]) {
    let consumer: BaseConsumer = kafka
        .config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for &(partition, offset) in offsets {
        list.add_partition_offset(topic, partition, Offset::Offset(offset))
            .unwrap();
    }
    consumer.commit(&list, CommitMode::Sync).expect("commit");
}

/// Waits until the archive's newest positions of `group` on `stream` are `expected`.
async fn wait_for_positions(archive: &Archive, stream: &str, group: &str, expected: &[(i32, i64)]) {
    let expected: BTreeMap<i32, i64> = expected.iter().copied().collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let found: BTreeMap<i32, i64> = archive
            .group_offsets_at(stream, group, None)
            .await
            .unwrap()
            .into_iter()
            .map(|(partition, position)| (partition, position.offset))
            .collect();
        if found == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "group {group} on {stream}: the archive has {found:?}, not {expected:?}, after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_sets_a_groups_offsets_where_it_stood_on_the_archived_topic() {
    let kafka = Kafka::start();
    let admin: AdminClient<DefaultClientContext> = kafka.config().create().unwrap();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let created = admin
        .create_topics(
            &[
                NewTopic::new("orders", PARTITIONS, TopicReplication::Fixed(1))
                    .set("retention.ms", "123456789"),
            ],
            &options,
        )
        .await
        .unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    produce(&kafka, "orders").await;
    // billing consumed 8 messages of partition 0, all of partition 1, none of partition 2.
    commit(&kafka, "billing", "orders", &[(0, 8), (1, PER_PARTITION)]);
    commit(&kafka, "audit", "orders", &[(0, 1)]);

    let dir = tempfile::tempdir().unwrap();
    let archive = Archive::open_local(dir.path()).await.unwrap();
    let stats = Arc::new(RecorderStats::new());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let recorder = tokio::spawn(muninn_archive::record_kafka(
        archive.clone(),
        muninn_archive::KafkaSource {
            bootstrap: kafka.bootstrap.clone(),
            group: "muninn-archive-groups-test".into(),
            topics: vec!["^ord.*".into()],
            settings: Vec::new(),
        },
        RecorderOptions {
            max_file_age: Duration::from_millis(200),
            group_positions_every: Some(Duration::from_millis(300)),
            ..RecorderOptions::default()
        },
        stats.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    wait_for_positions(&archive, "orders", "billing", &[(0, 8), (1, PER_PARTITION)]).await;
    wait_for_positions(&archive, "orders", "audit", &[(0, 1)]).await;
    // billing moves on; the archive keeps both positions, in time order.
    commit(&kafka, "billing", "orders", &[(0, 12)]);
    wait_for_positions(
        &archive,
        "orders",
        "billing",
        &[(0, 12), (1, PER_PARTITION)],
    )
    .await;
    let history: Vec<(i32, i64)> = archive
        .group_positions("orders", Some("billing"), None)
        .await
        .unwrap()
        .into_iter()
        .filter(|position| position.partition == 0)
        .map(|position| (position.partition, position.offset))
        .collect();
    assert_eq!(history, vec![(0, 8), (0, 12)], "only changes are recorded");
    let own = archive
        .group_offsets_at("orders", "muninn-archive-groups-test", None)
        .await
        .unwrap();
    assert!(
        own.is_empty(),
        "the recorder's own group is left out: {own:?}"
    );
    let all = Selection::new("orders", None, 0, i64::MAX, Vec::new()).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while archive.read(&all).await.unwrap().len() < (PARTITIONS as i64 * PER_PARTITION) as usize {
        assert!(tokio::time::Instant::now() < deadline, "archived in 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The recorder also kept the topic's partitions and its own settings.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let topic = loop {
        if let Some(topic) = archive.topic("orders").await.unwrap() {
            break topic;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the topic recorded in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(topic.partitions, PARTITIONS);
    // tansu reports a topic's own settings as defaults, so the recorder keeps none of them
    // (`own_settings` is tested on Kafka's answer); the replay below creates the new topic
    // with the settings a Kafka recorder would have kept.
    let topic = muninn_archive::TopicConfig {
        config: BTreeMap::from([("retention.ms".to_owned(), "123456789".to_owned())]),
        ..topic
    };
    stop.send(()).unwrap();
    recorder.await.unwrap().unwrap();
    assert!(stats.snapshot().group_positions_recorded >= 4);

    // Replay offsets 3.. of every partition (by time) into a new topic: they land at 0..
    let range = Selection::new("orders", None, BASE_MS + 3_000, i64::MAX, Vec::new()).unwrap();
    let messages = archive.read(&range).await.unwrap();
    let committed: BTreeMap<(String, i32), i64> = archive
        .group_offsets_at("orders", "billing", None)
        .await
        .unwrap()
        .into_iter()
        .map(|(partition, position)| (("orders".to_owned(), partition), position.offset))
        .collect();
    let target = Target::parse(&format!("kafka://{}/orders-restored", kafka.bootstrap)).unwrap();
    let options = ReplayOptions {
        create: true,
        create_like: Some(topic),
        set_group_offsets: Some(GroupOffsets {
            group: "billing".into(),
            committed,
        }),
        ..ReplayOptions::default()
    };
    let report = muninn_archive::replay(messages, &target, &options, &|_| {})
        .await
        .unwrap();
    // The new topic was made like the archived one.
    let described = admin
        .describe_configs(
            &[ResourceSpecifier::Topic("orders-restored")],
            &options_describe(),
        )
        .await
        .unwrap();
    let resource = described.into_iter().next().unwrap().unwrap();
    let retention = resource
        .entries
        .iter()
        .find(|entry| entry.name == "retention.ms")
        .and_then(|entry| entry.value.clone());
    assert_eq!(retention.as_deref(), Some("123456789"));
    // Partition 0: 12 → 9 (offsets 3.. land at 0..); 1: consumed everything → after the
    // last replayed message (17 messages: 17); 2: never committed → the first one (0).
    assert_eq!(report.group_offsets, vec![(0, 9), (1, 17), (2, 0)]);

    // A consumer of billing on the replayed topic goes on with what it had not consumed.
    let consumer: StreamConsumer = kafka
        .config()
        .set("group.id", "billing")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "latest")
        .create()
        .unwrap();
    let mut partitions = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        partitions.add_partition("orders-restored", partition);
    }
    let committed = consumer
        .committed_offsets(partitions.clone(), Duration::from_secs(10))
        .unwrap();
    let committed: Vec<(i32, Offset)> = committed
        .elements()
        .iter()
        .map(|element| (element.partition(), element.offset()))
        .collect();
    assert_eq!(
        committed,
        vec![
            (0, Offset::Offset(9)),
            (1, Offset::Offset(17)),
            (2, Offset::Offset(0))
        ],
        "the group's committed offsets on the replayed topic"
    );
    // The message at each committed offset is the first one the group had not consumed.
    // (Read from the start: tansu answers a fetch from inside a record batch with nothing,
    // and the replay sends each partition's messages as one batch.)
    for partition in 0..PARTITIONS {
        partitions
            .set_partition_offset("orders-restored", partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&partitions).unwrap();
    let mut replayed: BTreeMap<(i32, i64), String> = BTreeMap::new();
    let expected = (PARTITIONS as i64 * (PER_PARTITION - 3)) as usize;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while replayed.len() < expected {
        let record = tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .unwrap_or_else(|_| {
                panic!("{} of {expected} replayed messages in 30 s", replayed.len())
            })
            .unwrap();
        let text = String::from_utf8(record.payload().unwrap().to_vec()).unwrap();
        replayed.insert((record.partition(), record.offset()), text);
    }
    let first: BTreeMap<i32, String> = report
        .group_offsets
        .iter()
        .filter_map(|&(partition, offset)| {
            replayed
                .get(&(partition, offset))
                .map(|text| (partition, text.clone()))
        })
        .collect();
    assert_eq!(first.get(&0).map(String::as_str), Some("p0-o12"));
    assert_eq!(first.get(&2).map(String::as_str), Some("p2-o3"));
    assert!(!first.contains_key(&1), "partition 1 was consumed entirely");
}

#[tokio::test]
async fn group_offsets_are_refused_before_sending_where_they_cannot_be_translated() {
    let group = GroupOffsets {
        group: "billing".into(),
        committed: BTreeMap::from([(("orders".to_owned(), 0), 5)]),
    };
    let message = muninn_archive::Message::from_broker(
        muninn_archive::SourceBroker::Kafka,
        "orders".into(),
        None,
        0,
        1,
        BASE_MS,
        muninn_archive::TimestampType::CreateTime,
        None,
        Vec::new(),
        Some(b"x".to_vec()),
    );
    let dir = tempfile::tempdir().unwrap();
    let file = Target::parse(&format!(
        "file://{}",
        dir.path().join("out.ndjson").display()
    ))
    .unwrap();
    let options = ReplayOptions {
        set_group_offsets: Some(group.clone()),
        ..ReplayOptions::default()
    };
    let error = muninn_archive::replay(vec![message.clone()], &file, &options, &|_| {})
        .await
        .unwrap_err();
    assert!(
        error.message.contains("a file has no consumer groups"),
        "{error}"
    );
    assert!(
        !dir.path().join("out.ndjson").exists(),
        "nothing was written"
    );

    // Unreachable on purpose: the check comes before any connection.
    let kafka = Target::parse("kafka://127.0.0.1:1/orders-restored").unwrap();
    let by_key = ReplayOptions {
        set_group_offsets: Some(group),
        partitions: PartitionMap::ByKey,
        ..ReplayOptions::default()
    };
    let error = muninn_archive::replay(vec![message], &kafka, &by_key, &|_| {})
        .await
        .unwrap_err();
    assert!(error.message.contains("cannot be translated"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_into_jetstream_creates_the_durable_consumer_where_the_group_stood() {
    let nats = Nats::start();
    // Archived from a JetStream stream: sequences 1..=20; durable `dispatch` had acked 1..=6.
    let messages: Vec<muninn_archive::Message> = (1..=20)
        .map(|sequence| {
            muninn_archive::Message::from_broker(
                muninn_archive::SourceBroker::Nats,
                "SHIPMENTS".into(),
                Some("shipments.created".into()),
                0,
                sequence,
                BASE_MS + sequence * 1_000,
                muninn_archive::TimestampType::LogAppendTime,
                None,
                Vec::new(),
                Some(format!("shipment-{sequence}").into_bytes()),
            )
        })
        .collect();
    // Replay sequences 5.. into a new stream: they land at 1..
    let range: Vec<_> = messages.into_iter().filter(|m| m.offset >= 5).collect();
    let target = Target::parse(&format!("{}/restored.shipments", nats.url)).unwrap();
    let options = ReplayOptions {
        create: true,
        set_group_offsets: Some(GroupOffsets {
            group: "dispatch".into(),
            committed: BTreeMap::from([(("SHIPMENTS".to_owned(), 0), 7)]),
        }),
        ..ReplayOptions::default()
    };
    let report = muninn_archive::replay(range.clone(), &target, &options, &|_| {})
        .await
        .unwrap();
    assert_eq!(report.group_offsets, vec![(0, 3)], "sequence 7 landed at 3");

    let jetstream = nats.jetstream().await;
    let stream = jetstream
        .get_stream(
            jetstream
                .stream_by_subject("restored.shipments")
                .await
                .unwrap(),
        )
        .await
        .unwrap();
    let consumer: async_nats::jetstream::consumer::PullConsumer =
        stream.get_consumer("dispatch").await.unwrap();
    let mut batch = consumer.fetch().max_messages(1).messages().await.unwrap();
    let first = futures::StreamExt::next(&mut batch)
        .await
        .expect("a message")
        .unwrap();
    assert_eq!(
        &first.payload[..],
        b"shipment-7",
        "dispatch goes on with what it had not acked"
    );

    // A second replay with the same group refuses to move the existing consumer, before it
    // sends anything.
    let before = stream.clone().info().await.unwrap().state.messages;
    let again = muninn_archive::replay(range, &target, &options, &|_| {})
        .await
        .unwrap_err();
    assert!(
        again.message.contains("has a consumer dispatch already"),
        "{again}"
    );
    let after = stream.clone().info().await.unwrap().state.messages;
    assert_eq!((before, after), (16, 16), "nothing was sent again");
}
