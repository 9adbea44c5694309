//! Smoke tests of the broker harness in `support/`: real NATS JetStream and a real Kafka-API
//! broker (tansu) start, and carry records with their headers intact, using async-nats and
//! rdkafka directly.

mod support;

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{AckPolicy, pull};
use futures::StreamExt as _;
use rdkafka::Message as _;
use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::message::{Header, Headers as _, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use support::{Kafka, Nats};
use tokio::time::timeout;

const RECORDS: usize = 100;

fn traceparent(i: usize) -> String {
    format!("00-{:032x}-{:016x}-01", i + 1, i + 1)
}

/// A header value that is not UTF-8 and holds NUL and every high bit.
fn binary(i: usize) -> Vec<u8> {
    vec![i as u8, 0x00, 0xff, 0x80, 0xc3, 0x28, b'\n', 0x7f]
}

#[tokio::test]
async fn nats_jetstream_durable_pull_consumer_gets_every_message_with_its_headers() {
    let nats = Nats::start();
    let stream = nats.create_stream("SMOKE", &["smoke.>"]).await;
    let js = nats.jetstream().await;

    for i in 0..RECORDS {
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", traceparent(i).as_str());
        headers.insert("muninn-event-id", format!("event-{i}").as_str());
        headers.append("muninn-multi", "first");
        headers.append("muninn-multi", "second");
        let ack = js
            .publish_with_headers(
                format!("smoke.{}", i % 3),
                headers,
                format!("payload-{i}").into(),
            )
            .await
            .expect("publish")
            .await
            .expect("JetStream acknowledges the publish");
        assert_eq!(ack.stream, "SMOKE");
        assert_eq!(ack.sequence, i as u64 + 1);
    }

    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some("smoke".to_owned()),
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .expect("create a durable pull consumer");
    let mut messages = consumer.messages().await.expect("pull messages");
    for i in 0..RECORDS {
        let message = timeout(Duration::from_secs(10), messages.next())
            .await
            .unwrap_or_else(|_| panic!("message {i} did not come within 10 s"))
            .expect("the message stream does not end")
            .expect("a message");
        assert_eq!(message.subject.as_str(), format!("smoke.{}", i % 3));
        assert_eq!(message.payload, format!("payload-{i}").as_bytes());
        let headers = message.headers.as_ref().expect("headers");
        assert_eq!(
            headers.get("traceparent").map(|v| v.as_str()),
            Some(traceparent(i).as_str())
        );
        assert_eq!(
            headers.get("muninn-event-id").map(|v| v.as_str()),
            Some(format!("event-{i}").as_str())
        );
        let multi: Vec<&str> = headers
            .get_all("muninn-multi")
            .map(|v| v.as_str())
            .collect();
        assert_eq!(multi, ["first", "second"]);
        let info = message.info().expect("JetStream message info");
        assert_eq!(info.stream_sequence, i as u64 + 1);
        message.ack().await.expect("ack");
    }

    // Every ack reached the durable consumer: nothing pending, nothing waiting for an ack.
    let mut consumer = stream
        .get_consumer::<pull::Config>("smoke")
        .await
        .expect("the durable consumer is still there");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let info = consumer.info().await.expect("consumer info");
        if info.num_pending == 0 && info.num_ack_pending == 0 {
            assert_eq!(info.delivered.stream_sequence, RECORDS as u64);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "10 s after the last ack: {} pending, {} awaiting ack",
            info.num_pending,
            info.num_ack_pending
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn kafka_consumer_group_gets_every_record_in_order_with_its_headers() {
    let kafka = Kafka::start();
    kafka.create_topic("smoke", 1).await;

    let producer: FutureProducer = kafka
        .config()
        .set("message.timeout.ms", "10000")
        .set("max.in.flight.requests.per.connection", "1")
        .create()
        .expect("create a producer");
    let payloads: Vec<String> = (0..RECORDS).map(|i| format!("payload-{i}")).collect();
    let keys: Vec<String> = (0..RECORDS).map(|i| format!("key-{i}")).collect();
    let mut deliveries = Vec::with_capacity(RECORDS);
    for i in 0..RECORDS {
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "traceparent",
                value: Some(traceparent(i).as_bytes()),
            })
            .insert(Header {
                key: "muninn-binary",
                value: Some(binary(i).as_slice()),
            })
            .insert(Header {
                key: "muninn-empty",
                value: Some(&b""[..]),
            });
        let record = FutureRecord::to("smoke")
            .key(&keys[i])
            .payload(&payloads[i])
            .headers(headers);
        let delivery = producer
            .send_result(record)
            .unwrap_or_else(|(err, _)| panic!("queue record {i}: {err}"));
        deliveries.push(delivery);
    }
    for (i, delivery) in deliveries.into_iter().enumerate() {
        let delivered = timeout(Duration::from_secs(15), delivery)
            .await
            .unwrap_or_else(|_| panic!("record {i} not delivered within 15 s"))
            .expect("the producer is alive")
            .unwrap_or_else(|(err, _)| panic!("deliver record {i}: {err}"));
        assert_eq!((delivered.partition, delivered.offset), (0, i as i64));
    }

    let consumer: StreamConsumer = kafka
        .config()
        .set("group.id", "smoke-group")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("create a consumer");
    consumer.subscribe(&["smoke"]).expect("subscribe");
    for i in 0..RECORDS {
        let message = timeout(Duration::from_secs(30), consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("record {i} did not come within 30 s"))
            .unwrap_or_else(|err| panic!("consume record {i}: {err}"));
        assert_eq!((message.partition(), message.offset()), (0, i as i64));
        assert_eq!(message.key(), Some(keys[i].as_bytes()));
        assert_eq!(message.payload(), Some(payloads[i].as_bytes()));
        let headers = message.headers().expect("headers");
        let headers: Vec<(&str, Option<&[u8]>)> = headers
            .iter()
            .map(|header| (header.key, header.value))
            .collect();
        assert_eq!(
            headers,
            [
                ("traceparent", Some(traceparent(i).as_bytes())),
                ("muninn-binary", Some(binary(i).as_slice())),
                ("muninn-empty", Some(&b""[..])),
            ]
        );
    }

    // The group commits its position, and the broker keeps it.
    consumer
        .commit_consumer_state(CommitMode::Sync)
        .expect("commit the group's offsets");
    let mut partition = TopicPartitionList::new();
    partition.add_partition("smoke", 0);
    let committed = consumer
        .committed_offsets(partition, Duration::from_secs(10))
        .expect("read the group's committed offsets");
    let committed = committed.find_partition("smoke", 0).expect("partition 0");
    assert_eq!(committed.offset(), Offset::Offset(RECORDS as i64));
}
