//! The Kafka and NATS adapters through real brokers on loopback (tansu's Kafka API and NATS
//! JetStream) and a real collector: a producer service and a consumer service instrumented
//! with the SDK appear as producer → stream → consumer in the lineage, the journey of an event
//! shows both hops with the lag, and trace context and event metadata survive the broker.

mod collector;
mod support;

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{AckPolicy, pull};
use collector::{Collector, example};
use futures::StreamExt as _;
use muninn_sdk::kafka::{self, KafkaEvent, TracedProducer};
use muninn_sdk::nats::{self, NatsEvent, TracedJetStream};
use muninn_sdk::propagation::{self, Extractor as _};
use muninn_sdk::{Tracer, TracerBuilder};
use rdkafka::Message as _;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::FutureRecord;
use serde_json::{Value, json};
use support::{Kafka, Nats};
use tokio::time::timeout;

const EVENTS: usize = 30;

fn quick(builder: TracerBuilder) -> TracerBuilder {
    builder.configure(|options| {
        options.batch_timeout = Duration::from_millis(100);
        options.counts_interval = Duration::from_millis(200);
    })
}

async fn shutdown(tracers: &[&Tracer]) {
    for tracer in tracers {
        let tracer = (*tracer).clone();
        let finished =
            tokio::task::spawn_blocking(move || tracer.shutdown(Duration::from_secs(10)))
                .await
                .expect("shutdown runs");
        assert!(finished, "the export thread stops within its deadline");
    }
}

/// The journey's two hops: the produce and the consume of the same event, one trace, with lag.
fn assert_two_hops(journey: &Value, producer: &str, consumer: &str) -> (Value, Value) {
    let hops = journey["hops"].as_array().expect("hops");
    assert_eq!(hops.len(), 2, "{journey:#}");
    let (produced, consumed) = (hops[0].clone(), hops[1].clone());
    assert_eq!(produced["service"], json!(producer));
    assert_eq!(produced["action"], json!("produced"));
    assert_eq!(consumed["service"], json!(consumer));
    assert_eq!(consumed["action"], json!("consumed"));
    assert!(
        consumed["lag_ns"].as_i64().expect("lag") > 0,
        "{consumed:#}"
    );
    assert_eq!(
        produced["trace_id"], consumed["trace_id"],
        "context survived the broker"
    );
    assert_eq!(consumed["parent_span_id"], produced["span_id"]);
    (produced, consumed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_jetstream_producer_and_consumer_show_up_in_lineage_and_journeys() {
    let mut collector = Collector::start().await;
    let nats = Nats::start();
    let stream = nats.create_stream("ORDERS", &["orders.>"]).await;
    let producer_tracer = quick(Tracer::builder("order-service").collector(&collector.url))
        .build()
        .expect("tracer");
    let consumer_tracer = quick(Tracer::builder("billing-service").collector(&collector.url))
        .build()
        .expect("tracer");

    let publisher = TracedJetStream::new(nats.jetstream().await, producer_tracer.clone());
    for n in 0..EVENTS {
        let mut headers = HeaderMap::new();
        headers.insert("x-tenant", "acme");
        let ack = publisher
            .publish(
                "orders.created",
                headers,
                format!("{{\"order\":{n}}}").into(),
                NatsEvent {
                    event_id: &format!("order-{n}"),
                    event_type: "order.created",
                    schema: Some("order.created/v1"),
                },
                None,
            )
            .await
            .expect("JetStream acknowledges");
        assert_eq!(ack.sequence, n as u64 + 1);
    }

    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some("billing".to_owned()),
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut messages = consumer.messages().await.expect("messages");
    for n in 0..EVENTS {
        let message = timeout(Duration::from_secs(15), messages.next())
            .await
            .unwrap_or_else(|_| panic!("message {n} did not come within 15 s"))
            .expect("stream open")
            .expect("message");
        let headers = nats::NatsHeaders(message.headers.as_ref());
        // The service's own header and Muninn's travel side by side.
        assert_eq!(headers.get("x-tenant"), Some("acme"));
        let extracted = propagation::extract(&headers);
        assert_eq!(
            extracted.event.event_id.as_deref(),
            Some(format!("order-{n}").as_str())
        );
        assert_eq!(extracted.event.event_type.as_deref(), Some("order.created"));
        assert_eq!(extracted.event.schema.as_deref(), Some("order.created/v1"));
        assert!(extracted.context.is_some(), "traceparent survived");
        let mut span = nats::consume(&consumer_tracer, &message);
        if n == 4 {
            span.modified();
        }
        span.end();
        message.ack().await.expect("ack");
    }
    shutdown(&[&producer_tracer, &consumer_tracer]).await;

    assert_eq!(
        collector.edges().await,
        vec![
            (
                "billing-service".into(),
                "consumed".into(),
                "orders.created".into(),
                "order.created".into(),
                EVENTS as u64
            ),
            (
                "order-service".into(),
                "produced".into(),
                "orders.created".into(),
                "order.created".into(),
                EVENTS as u64
            ),
        ]
    );
    let journey = collector.journey("order-4").await;
    let (produced, consumed) = assert_two_hops(&journey, "order-service", "billing-service");
    assert_eq!(produced["broker"], json!("nats"));
    assert_eq!(
        produced["offset"],
        json!(5),
        "the stream sequence JetStream acknowledged"
    );
    assert_eq!(consumed["offset"], json!(5));
    assert_eq!(produced["message_id"], json!("ORDERS:5"));
    assert_eq!(consumed["message_id"], json!("ORDERS:5"));
    assert_eq!(consumed["schema"], json!("order.created/v1"));
    assert_eq!(consumed["modified"], json!(true));
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_producer_and_consumer_show_up_in_lineage_and_journeys() {
    let mut collector = Collector::start().await;
    let broker = Kafka::start();
    broker.create_topic("payments", 3).await;
    let producer_tracer = quick(Tracer::builder("payment-gateway").collector(&collector.url))
        .build()
        .expect("tracer");
    let consumer_tracer = quick(Tracer::builder("ledger").collector(&collector.url))
        .build()
        .expect("tracer");

    let producer = TracedProducer::new(
        broker.config().set("message.timeout.ms", "10000"),
        producer_tracer.clone(),
    )
    .expect("producer");
    let mut delivered = Vec::new();
    for n in 0..EVENTS {
        // Each send in a task of its own, as a service on a multi-threaded runtime would.
        let send = tokio::spawn({
            let producer = producer.clone();
            async move {
                let key = format!("customer-{}", n % 5);
                let payload = format!("{{\"payment\":{n}}}");
                let record = FutureRecord::to("payments").key(&key).payload(&payload);
                producer
                    .send(
                        record,
                        KafkaEvent {
                            event_id: &format!("payment-{n}"),
                            event_type: "payment.captured",
                            schema: Some("payment.captured/v3"),
                        },
                        None,
                        Duration::from_secs(10),
                    )
                    .await
                    .map_err(|(error, _)| error)
            }
        });
        let delivery = send
            .await
            .expect("the send's task")
            .unwrap_or_else(|error| panic!("deliver payment-{n}: {error}"));
        delivered.push((delivery.partition, delivery.offset));
    }
    // Each delivered record's headers came back to be freed by the next send: only the last
    // one's still wait.
    assert_eq!(producer.headers_waiting(), 1);

    let consumer: StreamConsumer = broker
        .config()
        .set("group.id", "ledger")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&["payments"]).expect("subscribe");
    let mut seen = 0;
    while seen < EVENTS {
        let message = timeout(Duration::from_secs(30), consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("only {seen} of {EVENTS} records came within 30 s"))
            .expect("record");
        let headers = kafka::KafkaHeaders(message.headers());
        let extracted = propagation::extract(&headers);
        let event_id = extracted.event.event_id.clone().expect("event id header");
        let n: usize = event_id
            .strip_prefix("payment-")
            .and_then(|n| n.parse().ok())
            .expect("payment-N");
        assert_eq!((message.partition(), message.offset()), delivered[n]);
        assert_eq!(
            extracted.event.event_type.as_deref(),
            Some("payment.captured")
        );
        assert!(extracted.context.is_some(), "traceparent survived");
        kafka::consume(&consumer_tracer, &message).end();
        seen += 1;
    }
    shutdown(&[&producer_tracer, &consumer_tracer]).await;

    assert_eq!(
        collector.edges().await,
        vec![
            (
                "ledger".into(),
                "consumed".into(),
                "payments".into(),
                "payment.captured".into(),
                EVENTS as u64
            ),
            (
                "payment-gateway".into(),
                "produced".into(),
                "payments".into(),
                "payment.captured".into(),
                EVENTS as u64
            ),
        ]
    );
    let journey = collector.journey("payment-7").await;
    let (produced, consumed) = assert_two_hops(&journey, "payment-gateway", "ledger");
    let (partition, offset) = delivered[7];
    for hop in [&produced, &consumed] {
        assert_eq!(hop["broker"], json!("kafka"));
        assert_eq!(hop["stream"], json!("payments"));
        assert_eq!(hop["partition"], json!(partition));
        assert_eq!(hop["offset"], json!(offset));
        assert_eq!(hop["schema"], json!("payment.captured/v3"));
    }
    collector.stop().await;

    // A record librdkafka refuses comes back whole, with the headers it would have carried
    // (after the tracer's shutdown, which must not stop the sends).
    let oversized = vec![b'x'; 2 << 20];
    let (error, refused) = producer
        .send(
            FutureRecord::to("payments")
                .key("customer-0")
                .payload(&oversized),
            KafkaEvent {
                event_id: "payment-oversized",
                event_type: "payment.captured",
                schema: None,
            },
            None,
            Duration::from_secs(10),
        )
        .await
        .expect_err("a record over message.max.bytes is refused");
    assert_eq!(
        error,
        KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge)
    );
    assert_eq!(refused.payload().map(<[u8]>::len), Some(2 << 20));
    assert_eq!(refused.key(), Some(&b"customer-0"[..]));
    let refused_headers = kafka::KafkaHeaders(refused.headers());
    let refused_extracted = propagation::extract(&refused_headers);
    assert_eq!(
        refused_extracted.event.event_id.as_deref(),
        Some("payment-oversized")
    );
    assert!(refused_extracted.context.is_some(), "traceparent written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_waits_while_librdkafkas_queue_is_full_and_past_its_timeout_gets_the_record_back() {
    let broker = Kafka::start();
    broker.create_topic("refunds", 1).await;
    // No collector: tracing must not matter to the sends.
    let tracer = Tracer::builder("refunds-api")
        .collector("http://127.0.0.1:9")
        .build()
        .expect("tracer");
    // Room for one record, which waits a second before it is sent.
    let producer = TracedProducer::new(
        broker
            .config()
            .set("queue.buffering.max.messages", "1")
            .set("linger.ms", "1000"),
        tracer.clone(),
    )
    .expect("producer");
    let refund = |n: usize| KafkaEvent {
        event_id: ["refund-0", "refund-1", "refund-2"][n],
        event_type: "refund.issued",
        schema: None,
    };
    let first = tokio::spawn({
        let producer = producer.clone();
        async move {
            producer
                .send(
                    FutureRecord::to("refunds").key("a").payload("first"),
                    refund(0),
                    None,
                    Duration::from_secs(10),
                )
                .await
                .map_err(|(error, _)| error)
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;

    // No time to wait: the record comes back at once, with its payload and headers.
    let (error, refused) = producer
        .send(
            FutureRecord::to("refunds").key("b").payload("second"),
            refund(1),
            None,
            Duration::ZERO,
        )
        .await
        .expect_err("the queue is full");
    assert_eq!(
        error,
        KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)
    );
    assert_eq!(refused.payload(), Some(&b"second"[..]));
    let refused_headers = kafka::KafkaHeaders(refused.headers());
    assert_eq!(
        propagation::extract(&refused_headers)
            .event
            .event_id
            .as_deref(),
        Some("refund-1")
    );

    // Time to wait: the send retries until the first record is delivered, then goes out.
    let third = producer
        .send(
            FutureRecord::to("refunds").key("c").payload("third"),
            refund(2),
            None,
            Duration::from_secs(10),
        )
        .await
        .unwrap_or_else(|(error, _)| panic!("the third record, once there is room: {error}"));
    let first = first
        .await
        .expect("the first send's task")
        .expect("the first record");
    assert_eq!((first.offset, third.offset), (0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nats_example_services_show_up_in_the_lineage() {
    let mut collector = Collector::start().await;
    let nats = Nats::start();
    let run = |name: &'static str, nats_url: String, collector_url: String| {
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(example(name))
                .args([nats_url, collector_url, "25".to_string()])
                .output()
                .expect("the example runs")
        })
    };
    for (name, expected) in [
        (
            "nats_producer",
            "storefront published 25 order.placed events",
        ),
        ("nats_consumer", "invoicing consumed 25 order.placed events"),
    ] {
        let output = run(name, nats.url.clone(), collector.url.clone())
            .await
            .expect("join");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains(expected),
            "{name}: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert_eq!(
        collector.edges().await,
        vec![
            (
                "invoicing".into(),
                "consumed".into(),
                "shop.orders.placed".into(),
                "order.placed".into(),
                25
            ),
            (
                "invoicing".into(),
                "produced".into(),
                "shop.invoices.issued".into(),
                "invoice.issued".into(),
                25
            ),
            (
                "storefront".into(),
                "produced".into(),
                "shop.orders.placed".into(),
                "order.placed".into(),
                25
            ),
        ]
    );
    collector.stop().await;
}
