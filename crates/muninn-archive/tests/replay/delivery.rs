//! What a replay delivers, against real brokers (tansu for Kafka, `nats-server` for JetStream)
//! and a real collector: every replayed message comes back byte for byte (key, headers in order
//! with duplicates and nulls, payload, partition and per-partition order) with its
//! `muninn-replayed-from` origin, into Kafka, JetStream or a JSON-lines file; a tracer makes
//! replays linked producer spans of the replaying service.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use muninn_archive::{
    Header, Message, ReplayOptions, ReplayProgress, ReplayReport, Target, from_json, replay,
};

use crate::collector;
use crate::common::{
    Consumed, PARTITIONS, TOTAL, as_kafka, by_name, by_partition, consume_kafka, consume_nats,
    expected_headers, kafka_messages, kafka_target, nats_messages, no_progress, origin,
};
use crate::support::{Kafka, Nats};

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
