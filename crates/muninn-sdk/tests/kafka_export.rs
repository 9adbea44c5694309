//! The SDK's span export to the Kafka ingest bus, against a real Kafka-API broker (tansu) and a
//! real collector consuming the topic (`[kafka_ingest]`): every span arrives in gzip'd batches,
//! each message in the partition of its traces, while counts and the sampling config still go
//! over HTTP.

mod collector;
mod support;

use std::io::Read as _;
use std::time::Duration;

use collector::{Collector, eventually};
use muninn_sdk::{Broker, Tracer};
use muninn_server::KafkaIngestConfig;
use rdkafka::Message as _;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use support::Kafka;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn span_batches_go_through_kafka_to_the_ingest_node() {
    const TOPIC: &str = "muninn-spans";
    let kafka = Kafka::start();
    kafka.create_topic(TOPIC, 2).await;
    let mut collector = Collector::start_with(|config| {
        config.kafka_ingest = Some(KafkaIngestConfig {
            bootstrap: kafka.bootstrap.clone(),
            topics: vec![TOPIC.to_string()],
            group: "muninn-ingest".to_string(),
            settings: Vec::new(),
        });
    })
    .await;
    let tracer = Tracer::builder("checkout")
        .collector(&collector.url)
        .export_spans_to_kafka(kafka.config(), TOPIC)
        .configure(|options| {
            options.batch_timeout = Duration::from_millis(100);
            options.batch_size = 16;
        })
        .build()
        .expect("tracer");
    let orders = tracer.route("order.created", "orders", Broker::Kafka);
    for n in 0..50 {
        let mut headers: Vec<(String, String)> = Vec::new();
        orders
            .produce_with_headers(&format!("order-{n}"), None, None, &mut headers)
            .end();
    }
    eventually(
        Duration::from_secs(30),
        "50 spans produced to kafka",
        || {
            let exported = tracer.stats().spans_exported;
            async move { exported == 50 }
        },
    )
    .await;
    for n in [0, 17, 49] {
        let event_id = format!("order-{n}");
        eventually(
            Duration::from_secs(30),
            &format!("{event_id} stored"),
            || {
                let collector = &collector;
                let event_id = event_id.clone();
                async move {
                    let (status, journey) = collector
                        .send(
                            reqwest::Method::GET,
                            &format!("/api/v1/events/{event_id}"),
                            None,
                        )
                        .await;
                    status == 200
                        && journey["hops"]
                            .as_array()
                            .is_some_and(|hops| hops.len() == 1)
                }
            },
        )
        .await;
    }
    let stats = tracer.stats();
    assert_eq!(stats.spans_dropped_export_failed, 0, "{stats:?}");
    collector.stop().await;

    // Each message went to the partition of its traces (by trace id, as with several
    // collectors), so a trace's spans reach one ingest node.
    let consumer: StreamConsumer = kafka
        .config()
        .set("group.id", "check-partitions")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[TOPIC]).unwrap();
    let mut spans_seen = 0;
    let mut partitions_used = std::collections::BTreeSet::new();
    while spans_seen < 50 {
        let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .expect("every message read back")
            .unwrap();
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(message.payload().unwrap())
            .read_to_end(&mut json)
            .expect("gzip'd");
        let spans: Vec<serde_json::Value> = serde_json::from_slice(&json).unwrap();
        for span in &spans {
            let trace_id = span["trace_id"].as_str().unwrap();
            let high = u64::from_str_radix(&trace_id[..16], 16).unwrap();
            assert_eq!(
                (high % 2) as i32,
                message.partition(),
                "trace {trace_id} in partition {}",
                message.partition()
            );
        }
        spans_seen += spans.len();
        partitions_used.insert(message.partition());
    }
    assert_eq!(partitions_used.len(), 2, "both partitions used");
}
