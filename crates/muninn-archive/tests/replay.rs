//! Replay against real brokers (tansu for Kafka, `nats-server` for JetStream) and a real
//! collector: every replayed message comes back byte for byte (key, headers in order with
//! duplicates and nulls, payload, partition and per-partition order) with its
//! `muninn-replayed-from` origin; nothing is sent when the target cannot take everything; an
//! interrupted replay resumes from its checkpoint without duplicates; a tracer makes replays
//! linked producer spans of the replaying service.

#[path = "../../muninn-sdk/tests/collector/mod.rs"]
mod collector;
#[path = "../../muninn-sdk/tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use futures::StreamExt as _;
use muninn_archive::{
    ArchiveErrorKind, Header, Message, PartitionMap, REPLAYED_FROM_HEADER, ReplayOptions,
    ReplayProgress, ReplayReport, SourceBroker, Target, TimestampType, from_json, replay,
};
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::message::{Headers as _, Message as _};
use rdkafka::{Offset, TopicPartitionList};
use support::{Kafka, Nats};

const PARTITIONS: i32 = 6;
const PER_PARTITION: i64 = 500;
const TOTAL: usize = (PARTITIONS as usize) * (PER_PARTITION as usize);

/// A small deterministic generator (xorshift), so a failure can be reproduced.
struct Bytes(u64);

impl Bytes {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn take(&mut self, count: usize) -> Vec<u8> {
        (0..count).map(|_| self.next() as u8).collect()
    }
}

fn header(name: &str, value: Option<&[u8]>) -> Header {
    Header {
        name: name.to_owned(),
        value: value.map(<[u8]>::to_vec),
    }
}

fn traceparent(seed: u64) -> String {
    format!(
        "00-{:032x}-{:016x}-01",
        u128::from(seed) << 64 | 0x4bf9_2f35_77b3_4da6,
        seed | 1 << 60
    )
}

/// What Kafka allows: binary and null header values, repeated names, null payloads, keys
/// that are absent, empty or binary. With `utf8_headers`, header values are text without
/// nulls (what NATS can carry).
fn kafka_messages(stream: &str, utf8_headers: bool) -> Vec<Message> {
    let mut random = Bytes(0x9e37_79b9_7f4a_7c15);
    let mut messages = Vec::new();
    // Interleaved across partitions, as a reader of several partitions would hand them over.
    for offset in 0..PER_PARTITION {
        for partition in 0..PARTITIONS {
            let n = offset as u64 * PARTITIONS as u64 + partition as u64;
            let key = match n % 10 {
                0 => None,
                1 => Some(Vec::new()),
                2 => Some(random.take(8)),
                _ => Some(format!("customer-{}", n % 37).into_bytes()),
            };
            let mut headers = vec![
                header("muninn-event-id", Some(format!("evt-{n}").as_bytes())),
                header("muninn-event-type", Some(b"order.created")),
                header("traceparent", Some(traceparent(n + 1).as_bytes())),
                header("tag", Some(b"first")),
                header("Secret", Some(b"hunter2")),
                header("empty", Some(b"")),
            ];
            if utf8_headers {
                headers.push(header("tag", Some(format!("second-{n}").as_bytes())));
            } else {
                let binary = [&[0xfe][..], &random.take(4)].concat();
                headers.push(header("bin", Some(&binary)));
                headers.push(header("tag", None));
                headers.push(header("bin", Some(&[0, 0xff, n as u8])));
            }
            headers.push(header("tag", Some(b"last")));
            let payload = match n % 50 {
                7 if !utf8_headers => None,
                _ => {
                    let length = (random.next() % 600) as usize;
                    Some(random.take(length))
                }
            };
            messages.push(Message::from_broker(
                SourceBroker::Kafka,
                stream.to_owned(),
                None,
                partition,
                1_000 + offset,
                1_796_000_000_000 + n as i64,
                TimestampType::CreateTime,
                key,
                headers,
                payload,
            ));
        }
    }
    messages
}

/// Messages as the NATS recorder archives them: one stream, partition 0, the stream sequence
/// as offset, the subject they were published on, no key.
fn nats_messages(count: u64) -> Vec<Message> {
    let mut random = Bytes(0x2545_f491_4f6c_dd1d);
    (1..=count)
        .map(|sequence| {
            let length = (random.next() % 300) as usize;
            Message::from_broker(
                SourceBroker::Nats,
                "ORDERS".to_owned(),
                Some(format!(
                    "orders.{}",
                    ["created", "paid"][sequence as usize % 2]
                )),
                0,
                sequence as i64,
                1_796_000_000_000 + sequence as i64,
                TimestampType::LogAppendTime,
                None,
                vec![
                    header(
                        "muninn-event-id",
                        Some(format!("evt-{sequence}").as_bytes()),
                    ),
                    header("tag", Some(b"a")),
                    header("tag", Some(b"b")),
                    header("traceparent", Some(traceparent(sequence).as_bytes())),
                ],
                Some(random.take(length)),
            )
        })
        .collect()
}

fn origin(message: &Message) -> String {
    format!(
        "{}://{}/{}/{}",
        message.broker.as_str(),
        message.stream,
        message.partition,
        message.offset
    )
}

/// The headers a replay without tracer sends: the archived ones minus `dropped` (any case),
/// then the origin.
fn expected_headers(message: &Message, dropped: &[&str]) -> Vec<Header> {
    let mut headers: Vec<Header> = message
        .headers
        .iter()
        .filter(|header| {
            !dropped
                .iter()
                .any(|name| name.eq_ignore_ascii_case(&header.name))
        })
        .cloned()
        .collect();
    headers.push(header(
        REPLAYED_FROM_HEADER,
        Some(origin(message).as_bytes()),
    ));
    headers
}

fn no_progress(_: ReplayProgress) {}

fn kafka_target(kafka: &Kafka, topic: &str) -> Target {
    Target::parse(&format!("kafka://{}/{topic}", kafka.bootstrap)).unwrap()
}

/// A message as read back from Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Consumed {
    partition: i32,
    key: Option<Vec<u8>>,
    headers: Vec<Header>,
    payload: Option<Vec<u8>>,
}

/// Reads `count` messages from every partition of `topic`, and checks that the topic holds
/// exactly that many (no duplicates).
async fn consume_kafka(kafka: &Kafka, topic: &str, partitions: i32, count: usize) -> Vec<Consumed> {
    let consumer: StreamConsumer = kafka
        .config()
        .set("group.id", "replay-test")
        .set("enable.auto.commit", "false")
        .create()
        .expect("create a consumer");
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut consumed = Vec::with_capacity(count);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while consumed.len() < count {
        let record = tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{topic}: {} of {count} messages read in 60 s",
                    consumed.len()
                )
            })
            .expect("consume");
        consumed.push(Consumed {
            partition: record.partition(),
            key: record.key().map(<[u8]>::to_vec),
            headers: record
                .headers()
                .map(|headers| {
                    headers
                        .iter()
                        .map(|found| header(found.key, found.value))
                        .collect()
                })
                .unwrap_or_default(),
            payload: record.payload().map(<[u8]>::to_vec),
        });
    }
    // Nothing after them (tansu's watermarks are not offsets' counts, so they cannot tell).
    if let Ok(extra) = tokio::time::timeout(Duration::from_millis(500), consumer.recv()).await {
        let extra = extra.expect("consume");
        panic!(
            "{topic}: more than the {count} replayed messages: partition {} offset {}",
            extra.partition(),
            extra.offset()
        );
    }
    consumed
}

/// Each partition's messages in order.
fn by_partition<T: Clone>(items: &[T], partition: impl Fn(&T) -> i32) -> BTreeMap<i32, Vec<T>> {
    let mut partitions: BTreeMap<i32, Vec<T>> = BTreeMap::new();
    for item in items {
        partitions
            .entry(partition(item))
            .or_default()
            .push(item.clone());
    }
    partitions
}

/// What each archived message should look like on Kafka partition `partition`.
fn as_kafka(message: &Message, partition: i32, dropped: &[&str]) -> Consumed {
    Consumed {
        partition,
        key: message.key.clone(),
        headers: expected_headers(message, dropped),
        payload: message.payload.clone(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_to_kafka_keeps_every_byte_header_order_and_partition_order() {
    let kafka = Kafka::start();
    kafka.create_topic("orders-replayed", PARTITIONS).await;
    let messages = kafka_messages("orders", false);
    let options = ReplayOptions {
        drop_headers: vec!["SECRET".to_owned()],
        ..ReplayOptions::default()
    };
    let last_progress = Mutex::new(ReplayProgress::default());
    let report = replay(
        messages.clone(),
        &kafka_target(&kafka, "orders-replayed"),
        &options,
        &|progress| *last_progress.lock().unwrap() = progress,
    )
    .await
    .unwrap();
    let expected: Vec<Consumed> = messages
        .iter()
        .map(|message| as_kafka(message, message.partition, &["secret"]))
        .collect();
    let expected_bytes: usize = expected
        .iter()
        .map(|message| {
            message.key.as_ref().map_or(0, Vec::len)
                + message.payload.as_ref().map_or(0, Vec::len)
                + message
                    .headers
                    .iter()
                    .map(|header| header.name.len() + header.value.as_ref().map_or(0, Vec::len))
                    .sum::<usize>()
        })
        .sum();
    assert_eq!(
        report,
        ReplayReport {
            sent: TOTAL as u64,
            bytes: expected_bytes as u64,
            ..ReplayReport::default()
        }
    );
    assert_eq!(
        *last_progress.lock().unwrap(),
        ReplayProgress {
            sent: TOTAL as u64,
            total: TOTAL as u64,
            bytes: expected_bytes as u64
        }
    );

    let consumed = consume_kafka(&kafka, "orders-replayed", PARTITIONS, TOTAL).await;
    let consumed = by_partition(&consumed, |message| message.partition);
    let expected = by_partition(&expected, |message| message.partition);
    assert_eq!(consumed.len(), PARTITIONS as usize);
    for (partition, expected) in &expected {
        let consumed = &consumed[partition];
        assert_eq!(consumed.len(), expected.len(), "partition {partition}");
        for (got, want) in consumed.iter().zip(expected) {
            assert_eq!(got, want, "partition {partition}");
        }
    }
}

/// Reads `count` messages of JetStream stream `stream` in sequence order: (subject, headers
/// by name, payload).
async fn consume_nats(
    nats: &Nats,
    stream: &str,
    count: usize,
) -> Vec<(String, BTreeMap<String, Vec<String>>, Vec<u8>)> {
    let jetstream = nats.jetstream().await;
    let stream = jetstream.get_stream(stream).await.unwrap();
    assert_eq!(
        stream.get_info().await.unwrap().state.messages as usize,
        count,
        "the stream holds exactly the replayed messages"
    );
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            ack_policy: async_nats::jetstream::consumer::AckPolicy::None,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let mut consumed = Vec::with_capacity(count);
    while consumed.len() < count {
        let message = tokio::time::timeout(Duration::from_secs(20), messages.next())
            .await
            .expect("a message within 20 s")
            .expect("the stream goes on")
            .expect("a message");
        let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, values) in message.headers.iter().flat_map(|headers| headers.iter()) {
            let name: &str = name.as_ref();
            headers
                .entry(name.to_owned())
                .or_default()
                .extend(values.iter().map(|value| value.as_str().to_owned()));
        }
        consumed.push((
            message.subject.to_string(),
            headers,
            message.payload.to_vec(),
        ));
    }
    consumed
}

/// Headers grouped by name, each name's values in order: all NATS keeps of their order.
fn by_name(headers: &[Header]) -> BTreeMap<String, Vec<String>> {
    let mut names: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for header in headers {
        names.entry(header.name.clone()).or_default().push(
            String::from_utf8(header.value.clone().expect("NATS headers have values")).unwrap(),
        );
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_to_jetstream_keeps_payloads_and_each_headers_values_in_order() {
    let nats = Nats::start();
    nats.create_stream("REPLAYED", &["replayed.orders"]).await;
    let messages = kafka_messages("orders", true);
    let target = Target::parse(&format!("{}/replayed.orders", nats.url)).unwrap();
    let report = replay(
        messages.clone(),
        &target,
        &ReplayOptions::default(),
        &no_progress,
    )
    .await
    .unwrap();
    assert_eq!(report.sent, TOTAL as u64);

    // JetStream has one sequence: the replay publishes in the order it was given.
    let consumed = consume_nats(&nats, "REPLAYED", TOTAL).await;
    for (message, (subject, headers, payload)) in messages.iter().zip(&consumed) {
        assert_eq!(subject, "replayed.orders");
        assert_eq!(
            *headers,
            by_name(&expected_headers(message, &[])),
            "{}",
            origin(message)
        );
        assert_eq!(
            payload,
            message.payload.as_ref().unwrap(),
            "{}",
            origin(message)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_archived_from_nats_replay_into_kafka_in_sequence_order() {
    let kafka = Kafka::start();
    kafka.create_topic("from-nats", 1).await;
    let messages = nats_messages(1_000);
    let report = replay(
        messages.clone(),
        &kafka_target(&kafka, "from-nats"),
        &ReplayOptions::default(),
        &no_progress,
    )
    .await
    .unwrap();
    assert_eq!(report.sent, 1_000);
    let consumed = consume_kafka(&kafka, "from-nats", 1, 1_000).await;
    let expected: Vec<Consumed> = messages
        .iter()
        .map(|message| as_kafka(message, 0, &[]))
        .collect();
    assert_eq!(consumed, expected);
    assert_eq!(
        consumed[41].headers.last().unwrap().value.as_deref(),
        Some(&b"nats://ORDERS/0/42"[..])
    );
}

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

#[tokio::test]
async fn a_file_target_holds_the_archived_messages_as_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replayed.ndjson");
    let messages = kafka_messages("orders", false);
    let target = Target::parse(&format!("file://{}", path.display())).unwrap();
    let options = ReplayOptions {
        drop_headers: vec!["secret".to_owned()],
        checkpoint: Some(dir.path().join("file.checkpoint.json")),
        ..ReplayOptions::default()
    };
    let report = replay(messages.clone(), &target, &options, &no_progress)
        .await
        .unwrap();
    assert_eq!(report.sent, TOTAL as u64);
    let text = std::fs::read_to_string(&path).unwrap();
    let read: Vec<Message> = text
        .lines()
        .enumerate()
        .map(|(line, text)| from_json(text, line + 1).unwrap())
        .collect();
    assert_eq!(read.len(), TOTAL);
    for (read, archived) in read.iter().zip(&messages) {
        let mut expected = archived.clone();
        expected.headers.retain(|header| header.name != "Secret");
        assert_eq!(*read, expected);
    }
    // Resumed with everything delivered: the file is left as it is.
    let report = replay(messages, &target, &options, &no_progress)
        .await
        .unwrap();
    assert_eq!((report.sent, report.skipped), (0, TOTAL as u64));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
}

fn quick_tracer(collector: &str) -> muninn_sdk::Tracer {
    muninn_sdk::Tracer::builder("muninn-replay")
        .collector(collector)
        .configure(|options| {
            options.batch_timeout = Duration::from_millis(100);
            options.counts_interval = Duration::from_millis(200);
            options.sampling_refresh = Duration::from_millis(200);
        })
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_tracer_replays_are_new_traces_linked_to_the_original_spans() {
    let mut collector = collector::Collector::start().await;
    let kafka = Kafka::start();
    kafka.create_topic("traced", PARTITIONS).await;
    let tracer = quick_tracer(&collector.url);
    let messages: Vec<Message> = kafka_messages("orders", false)
        .into_iter()
        .take(60)
        .collect();
    let options = ReplayOptions {
        tracer: Some(tracer.clone()),
        ..ReplayOptions::default()
    };
    let report = replay(
        messages.clone(),
        &kafka_target(&kafka, "traced"),
        &options,
        &no_progress,
    )
    .await
    .unwrap();
    assert_eq!(report.sent, 60);
    let finished = tokio::task::spawn_blocking(move || tracer.shutdown(Duration::from_secs(10)))
        .await
        .unwrap();
    assert!(finished, "the tracer sent its spans");

    // Every message keeps its other headers in order; its trace context is new.
    let consumed = consume_kafka(&kafka, "traced", PARTITIONS, 60).await;
    let consumed: BTreeMap<Vec<u8>, Consumed> = consumed
        .into_iter()
        .map(|message| {
            (
                message.headers.last().unwrap().value.clone().unwrap(),
                message,
            )
        })
        .collect();
    let mut replayed_trace = String::new();
    for message in &messages {
        let got = &consumed[origin(message).as_bytes()];
        let original = message
            .header("traceparent")
            .unwrap()
            .value
            .clone()
            .unwrap();
        let traceparent = got
            .headers
            .iter()
            .filter(|header| header.name == "traceparent")
            .map(|header| String::from_utf8(header.value.clone().unwrap()).unwrap())
            .collect::<Vec<_>>();
        assert_eq!(traceparent.len(), 1, "one trace context: {:?}", got.headers);
        assert_ne!(traceparent[0].as_bytes(), original, "a new trace");
        assert_ne!(&traceparent[0][3..35], message.trace_id.as_deref().unwrap());
        let others: Vec<&Header> = got
            .headers
            .iter()
            .filter(|header| header.name != "traceparent")
            .collect();
        let expected = expected_headers(message, &[]);
        let expected: Vec<&Header> = expected
            .iter()
            .filter(|header| header.name != "traceparent")
            .collect();
        assert_eq!(others, expected);
        if message.event_id.as_deref() == Some("evt-13") {
            replayed_trace = traceparent[0][3..35].to_owned();
        }
    }

    // The collector holds the replay as a producer span of muninn-replay, in a new trace,
    // linked to the span the message was archived with.
    let journey = collector.journey("evt-13").await;
    let hops = journey["hops"].as_array().expect("hops");
    assert_eq!(hops.len(), 1, "{journey}");
    let hop = &hops[0];
    let original = &messages[13];
    assert_eq!(hop["service"], "muninn-replay");
    assert_eq!(hop["kind"], "producer");
    assert_eq!(hop["stream"], "traced");
    assert_eq!(hop["partition"], original.partition);
    assert_eq!(hop["trace_id"], replayed_trace.as_str());
    assert_eq!(
        hop["attributes"]["muninn.replayed_from"],
        origin(original).as_str()
    );
    assert_eq!(
        hop["links"],
        serde_json::json!([{
            "trace_id": original.trace_id.as_deref().unwrap(),
            "span_id": original.span_id.as_deref().unwrap(),
            "attributes": {},
        }]),
        "{hop}"
    );
    let edges = collector.edges().await;
    assert_eq!(
        edges,
        vec![(
            "muninn-replay".to_owned(),
            "produced".to_owned(),
            "traced".to_owned(),
            "order.created".to_owned(),
            60
        )]
    );
    collector.stop().await;
}
