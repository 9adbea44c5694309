//! What the replay tests share: the archived messages they replay (Kafka's with binary, null and
//! repeated headers; NATS's by stream sequence), the headers a replay should send, and readers
//! of what arrived on a Kafka topic or a JetStream stream.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt as _;
use muninn_archive::{
    Header, Message, REPLAYED_FROM_HEADER, ReplayProgress, SourceBroker, Target, TimestampType,
};
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::message::{Headers as _, Message as _};
use rdkafka::{Offset, TopicPartitionList};

use crate::support::{Kafka, Nats};

pub(crate) const PARTITIONS: i32 = 6;
pub(crate) const PER_PARTITION: i64 = 500;
pub(crate) const TOTAL: usize = (PARTITIONS as usize) * (PER_PARTITION as usize);

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
pub(crate) fn kafka_messages(stream: &str, utf8_headers: bool) -> Vec<Message> {
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
pub(crate) fn nats_messages(count: u64) -> Vec<Message> {
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

pub(crate) fn origin(message: &Message) -> String {
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
pub(crate) fn expected_headers(message: &Message, dropped: &[&str]) -> Vec<Header> {
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

pub(crate) fn no_progress(_: ReplayProgress) {}

pub(crate) fn kafka_target(kafka: &Kafka, topic: &str) -> Target {
    Target::parse(&format!("kafka://{}/{topic}", kafka.bootstrap)).unwrap()
}

/// A message as read back from Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Consumed {
    pub(crate) partition: i32,
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) headers: Vec<Header>,
    pub(crate) payload: Option<Vec<u8>>,
}

/// Reads `count` messages from every partition of `topic`, and checks that the topic holds
/// exactly that many (no duplicates).
pub(crate) async fn consume_kafka(
    kafka: &Kafka,
    topic: &str,
    partitions: i32,
    count: usize,
) -> Vec<Consumed> {
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
pub(crate) fn by_partition<T: Clone>(
    items: &[T],
    partition: impl Fn(&T) -> i32,
) -> BTreeMap<i32, Vec<T>> {
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
pub(crate) fn as_kafka(message: &Message, partition: i32, dropped: &[&str]) -> Consumed {
    Consumed {
        partition,
        key: message.key.clone(),
        headers: expected_headers(message, dropped),
        payload: message.payload.clone(),
    }
}

/// Reads `count` messages of JetStream stream `stream` in sequence order: (subject, headers
/// by name, payload).
pub(crate) async fn consume_nats(
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
pub(crate) fn by_name(headers: &[Header]) -> BTreeMap<String, Vec<String>> {
    let mut names: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for header in headers {
        names.entry(header.name.clone()).or_default().push(
            String::from_utf8(header.value.clone().expect("NATS headers have values")).unwrap(),
        );
    }
    names
}
