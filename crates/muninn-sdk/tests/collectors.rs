//! The SDK with several collectors (ingest nodes behind no load balancer), real ones on
//! loopback: each trace's spans go to one of them, and to the next while one is down.

mod collector;

use std::time::Duration;

use collector::{Collector, eventually, quick, shutdown};
use muninn_sdk::{Broker, Tracer};

/// Hops of `event_id` that `collector` holds (a journey nobody saw answers 404).
async fn hops_at(collector: &Collector, event_id: &str) -> usize {
    let (status, journey) = collector
        .send(
            reqwest::Method::GET,
            &format!("/api/v1/events/{event_id}"),
            None,
        )
        .await;
    if status != 200 {
        return 0;
    }
    journey["hops"].as_array().map_or(0, Vec::len)
}

/// Several collectors: each trace's spans go to one of them, by trace id, so both get some and
/// no trace is split; when one stops, the next takes its traces, and nothing is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_spread_over_several_collectors_by_trace_and_fail_over() {
    let mut first = Collector::start().await;
    let second = Collector::start().await;
    let urls = format!("{},{}", first.url, second.url);
    let producer = quick(Tracer::builder("orders").collector(&urls))
        .build()
        .expect("tracer");
    let consumer = quick(Tracer::builder("billing").collector(&urls))
        .build()
        .expect("tracer");
    let route = producer.route("order.created", "orders", Broker::Kafka);
    let send = |events: std::ops::Range<u32>| {
        for n in events {
            let mut headers: Vec<(String, String)> = Vec::new();
            route
                .produce_with_headers(&format!("order-{n}"), None, None, &mut headers)
                .end();
            consumer.consume("orders", Broker::Kafka, &headers).end();
        }
    };
    send(0..40);
    eventually(
        Duration::from_secs(10),
        "every span of the first 40 events exported",
        || {
            let exported = producer.stats().spans_exported + consumer.stats().spans_exported;
            async move { exported == 80 }
        },
    )
    .await;
    let (mut at_first, mut at_second) = (0, 0);
    for n in 0..40 {
        let event_id = format!("order-{n}");
        match (
            hops_at(&first, &event_id).await,
            hops_at(&second, &event_id).await,
        ) {
            (2, 0) => at_first += 1,
            (0, 2) => at_second += 1,
            split => panic!("{event_id}: hops at each collector {split:?}; a trace is never split"),
        }
    }
    assert!(
        at_first > 5 && at_second > 5,
        "{at_first} and {at_second} traces"
    );

    first.stop().await;
    send(40..80);
    shutdown(&producer).await;
    shutdown(&consumer).await;
    for tracer in [&producer, &consumer] {
        let stats = tracer.stats();
        assert_eq!(stats.spans_exported, 80, "{stats:?}");
        assert_eq!(
            stats.spans_dropped_export_failed + stats.spans_dropped_queue_full,
            0,
            "{stats:?}"
        );
    }
    for n in 40..80 {
        assert_eq!(
            hops_at(&second, &format!("order-{n}")).await,
            2,
            "order-{n}"
        );
    }
}

/// A collector with `[auth]`: the SDK given an ingest token (`.token`) delivers every span; one
/// without a token is refused (401), counts the spans as rejected and does not retry them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_sends_its_token_and_a_refused_batch_is_counted() {
    use muninn_server::auth::{ApiToken, AuthConfig, Scope, new_token};

    let (ingest, read) = (new_token(), new_token());
    let auth = AuthConfig::new(vec![
        ApiToken::for_token("orders", &ingest, &[Scope::Ingest]),
        ApiToken::for_token("test", &read, &[Scope::Read]),
    ]);
    let mut collector = Collector::start_with(|config| config.auth = Some(auth)).await;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {read}").parse().unwrap(),
    );
    collector.http = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap();

    let with_token = quick(
        Tracer::builder("orders")
            .collector(&collector.url)
            .token(&ingest),
    )
    .build()
    .expect("tracer");
    let without = quick(Tracer::builder("strangers").collector(&collector.url))
        .build()
        .expect("tracer");
    for n in 0..10 {
        with_token
            .produce(
                "order.created",
                "orders",
                Broker::Kafka,
                &format!("tok-{n}"),
            )
            .end();
        without
            .produce(
                "order.created",
                "orders",
                Broker::Kafka,
                &format!("anon-{n}"),
            )
            .end();
    }
    shutdown(&with_token).await;
    shutdown(&without).await;
    assert_eq!(with_token.stats().spans_exported, 10);
    assert_eq!(without.stats().spans_exported, 0);
    assert_eq!(without.stats().spans_dropped_rejected, 10);
    for n in 0..10 {
        assert_eq!(hops_at(&collector, &format!("tok-{n}")).await, 1);
        assert_eq!(hops_at(&collector, &format!("anon-{n}")).await, 0);
    }
    collector.stop().await;
}
