//! The SDK against a real Muninn collector on loopback: spans and counts arrive, sampling is
//! consistent, rules changed through the API reach a running tracer, and a collector that is
//! down, slow or refusing never costs the caller anything but counted drops.

mod collector;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use collector::{Collector, eventually, quick, shutdown};
use muninn_sdk::{Broker, Tracer};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produced_and_consumed_events_make_lineage_and_a_journey() {
    let mut collector = Collector::start().await;
    let checkout = quick(Tracer::builder("checkout").collector(&collector.url))
        .version("1.4.2")
        .tag("region", "eu-west-1")
        .build()
        .expect("tracer");
    let billing = quick(Tracer::builder("billing").collector(&collector.url))
        .build()
        .expect("tracer");
    let orders = checkout.route("order.created", "orders", Broker::Kafka);
    let mut messages = Vec::new();
    for n in 0..20 {
        let mut headers: Vec<(String, String)> = Vec::new();
        let mut span = orders.produce_with_headers(
            &format!("order-{n}"),
            Some("order.created/v2"),
            None,
            &mut headers,
        );
        span.partition(n % 3).offset(i64::from(n));
        span.end();
        messages.push(headers);
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    for headers in &messages {
        let mut span = billing.consume("orders", Broker::Kafka, headers);
        assert!(span.is_sampled());
        if headers.iter().any(|(_, value)| value == "order-7") {
            span.modified();
        }
        span.end();
    }
    shutdown(&checkout).await;
    shutdown(&billing).await;
    assert_eq!(checkout.stats().spans_exported, 20);
    assert_eq!(billing.stats().spans_exported, 20);

    let edges = collector.edges().await;
    assert_eq!(
        edges,
        vec![
            (
                "billing".into(),
                "consumed".into(),
                "orders".into(),
                "order.created".into(),
                20
            ),
            (
                "checkout".into(),
                "produced".into(),
                "orders".into(),
                "order.created".into(),
                20
            ),
        ]
    );
    let journey = collector.journey("order-7").await;
    let hops = journey["hops"].as_array().expect("hops");
    assert_eq!(hops.len(), 2, "{journey}");
    assert_eq!(hops[0]["service"], json!("checkout"));
    assert_eq!(hops[0]["partition"], json!(1));
    assert_eq!(hops[0]["offset"], json!(7));
    assert_eq!(hops[0]["schema"], json!("order.created/v2"));
    assert_eq!(hops[1]["service"], json!("billing"));
    assert_eq!(hops[1]["modified"], json!(true));
    assert!(hops[1]["lag_ns"].as_i64().expect("a consume hop has a lag") > 0);
    // One trace: the consumer continued the producer's context from the headers.
    assert_eq!(hops[0]["trace_id"], hops[1]["trace_id"]);
    assert_eq!(hops[1]["parent_span_id"], hops[0]["span_id"]);
    let resource = &hops[0]["resource"];
    assert_eq!(resource["service.version"], json!("1.4.2"));
    assert_eq!(resource["region"], json!("eu-west-1"));
    assert!(resource["service.instance.id"].is_string());
    collector.stop().await;
}

/// A span names its route by index among the tracer's routes: spans of many routes, made in
/// an interleaved order and exported together, each reach the server with their own stream,
/// broker and event type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_of_many_routes_exported_together_keep_their_own_route() {
    let mut collector = Collector::start().await;
    let tracer = quick(Tracer::builder("router").collector(&collector.url))
        .build()
        .expect("tracer");
    let routes = [
        ("order.created", "orders", Broker::Kafka, "kafka"),
        ("payment.settled", "payments", Broker::Nats, "nats"),
        ("job.done", "jobs", Broker::Sqs, "sqs"),
        ("order.created", "orders-eu", Broker::Kafka, "kafka"),
    ];
    for round in 0..3 {
        // The routes are looked up again each round (by name, as adapters do) and used in a
        // different order, so that a span's route is not simply the last one created.
        for offset in 0..routes.len() {
            let index = (round + offset) % routes.len();
            let (event_type, stream, broker, _) = routes[index];
            tracer
                .route(event_type, stream, broker)
                .produce(&format!("ev-{index}-{round}"))
                .end();
        }
    }
    shutdown(&tracer).await;
    assert_eq!(tracer.stats().spans_exported, 12);
    for (index, (event_type, stream, _, broker)) in routes.iter().enumerate() {
        for round in 0..3 {
            let journey = collector.journey(&format!("ev-{index}-{round}")).await;
            let hops = journey["hops"].as_array().expect("hops");
            assert_eq!(hops.len(), 1, "{journey}");
            assert_eq!(hops[0]["stream"], json!(stream), "{journey}");
            assert_eq!(hops[0]["broker"], json!(broker), "{journey}");
            assert_eq!(hops[0]["event_type"], json!(event_type), "{journey}");
        }
    }
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_event_gets_the_same_decision_in_every_tracer() {
    let make = |service: &str| {
        Tracer::builder(service)
            .collector("http://127.0.0.1:9")
            .configure(|options| options.default_rate = 0.3)
            .build()
            .expect("tracer")
    };
    let (first, second) = (make("a"), make("b"));
    let route_a = first.route("order.created", "orders", Broker::Nats);
    let route_b = second.route("order.created", "other-stream", Broker::Kafka);
    let mut sampled = 0;
    for n in 0..5_000 {
        let id = format!("evt-{n}");
        let a = route_a.produce(&id).is_sampled();
        let b = route_b.produce(&id).is_sampled();
        assert_eq!(a, b, "event {id}");
        assert_eq!(a, muninn_sdk::is_sampled(id.as_bytes(), 300_000));
        sampled += usize::from(a);
    }
    assert!(
        (1_300..1_700).contains(&sampled),
        "30% of 5,000 gave {sampled}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_changed_through_the_api_reaches_a_running_tracer_within_one_refresh() {
    let mut collector = Collector::start().await;
    let tracer = quick(Tracer::builder("payments").collector(&collector.url))
        .build()
        .expect("tracer");
    let route = tracer.route("payment.settled", "payments", Broker::Nats);
    let ids: Vec<String> = (0..1_000).map(|n| format!("pay-{n}")).collect();
    let sampled = |route: &muninn_sdk::Route| {
        ids.iter()
            .filter(|id| route.produce(id).is_sampled())
            .count()
    };
    eventually(
        Duration::from_secs(5),
        "the first config arrives",
        || async { tracer.stats().config_updates >= 1 },
    )
    .await;
    assert_eq!(sampled(&route), 1_000, "no rules: everything is traced");

    let (status, rule) = collector
        .send(
            reqwest::Method::POST,
            "/api/v1/sampling/rules",
            Some(json!({"service": "payments", "event_type": "payment.settled", "rate": 0.1})),
        )
        .await;
    assert_eq!(status, 201, "{rule}");
    let changed = Instant::now();
    eventually(Duration::from_secs(5), "the 10% rule arrives", || async {
        tracer.stats().sampling.rate_ppm("payment.settled") == 100_000
    })
    .await;
    // The refresh interval is 200 ms; one interval plus a request's time is the bound.
    assert!(
        changed.elapsed() < Duration::from_millis(200 * 3),
        "took {:?}",
        changed.elapsed()
    );
    let now_sampled = sampled(&route);
    assert!(
        (60..140).contains(&now_sampled),
        "10% of 1,000 gave {now_sampled}"
    );
    // A route created after the change starts with the new rate too.
    let later = tracer.route("payment.settled", "payments-eu", Broker::Nats);
    assert_eq!(sampled(&later), now_sampled);

    let id = rule["id"].as_str().expect("rule id").to_string();
    let (status, _) = collector
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v1/sampling/rules/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    eventually(
        Duration::from_secs(5),
        "the rule's removal arrives",
        || async { tracer.stats().sampling.rate_ppm("payment.settled") == 1_000_000 },
    )
    .await;
    shutdown(&tracer).await;
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_counts_every_event_at_one_percent_sampling() {
    let mut collector = Collector::start().await;
    // The server's default is to trace everything: a global rule brings every service to 1%.
    let (status, _) = collector
        .send(
            reqwest::Method::PUT,
            "/api/v1/sampling/rules/global",
            Some(json!({"id": "global", "rate": 0.01})),
        )
        .await;
    assert_eq!(status, 201);
    let producer = quick(Tracer::builder("sensor-gateway").collector(&collector.url))
        .build()
        .expect("tracer");
    let consumer = quick(Tracer::builder("sensor-archive").collector(&collector.url))
        .build()
        .expect("tracer");
    for tracer in [&producer, &consumer] {
        eventually(Duration::from_secs(5), "the 1% rule arrives", || async {
            tracer.stats().sampling.default_rate_ppm == 10_000
        })
        .await;
    }
    let readings = producer.route("reading.taken", "readings", Broker::Nats);
    let archive = consumer.route("reading.taken", "readings", Broker::Nats);
    let sent = 23_456;
    let mut sampled_spans = 0;
    for n in 0..sent {
        let mut headers = HashMap::new();
        let span = readings.produce_with_headers(&format!("r-{n}"), None, None, &mut headers);
        sampled_spans += usize::from(span.is_sampled());
        drop(span);
        archive.consume(&headers).end();
    }
    shutdown(&producer).await;
    shutdown(&consumer).await;
    assert!(
        (150..330).contains(&sampled_spans),
        "1% of {sent} gave {sampled_spans}"
    );
    assert_eq!(producer.stats().counts_sent, sent as u64);
    assert_eq!(
        collector
            .throughput_total("sensor-gateway", "produced")
            .await,
        sent as u64
    );
    assert_eq!(
        collector
            .throughput_total("sensor-archive", "consumed")
            .await,
        sent as u64
    );
    let edges = collector.edges().await;
    assert!(edges.iter().all(|edge| edge.4 == sent as u64), "{edges:?}");
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_debug_sends_spans_at_once_instead_of_waiting_for_the_batch() {
    let mut collector = Collector::start().await;
    let (status, _) = collector
        .send(
            reqwest::Method::POST,
            "/api/v1/sampling/rules",
            Some(json!({"service": "fraud", "rate": 1.0, "live_debug": true})),
        )
        .await;
    assert_eq!(status, 201);
    let tracer = Tracer::builder("fraud")
        .collector(&collector.url)
        .configure(|options| {
            options.batch_timeout = Duration::from_secs(60);
            options.batch_size = 10_000;
        })
        .build()
        .expect("tracer");
    eventually(Duration::from_secs(5), "live debug is on", || async {
        tracer.stats().sampling.live_debug
    })
    .await;
    let route = tracer.route("check.done", "checks", Broker::Kafka);
    route.produce("check-1").end();
    eventually(
        Duration::from_secs(3),
        "the span is exported without waiting 60 s",
        || async { tracer.stats().spans_exported == 1 },
    )
    .await;
    let journey = collector.journey("check-1").await;
    assert_eq!(journey["hops"].as_array().map(Vec::len), Some(1));
    shutdown(&tracer).await;
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_sampled_flag_is_honoured_only_when_configured() {
    let make = |honour: bool| {
        Tracer::builder("downstream")
            .collector("http://127.0.0.1:9")
            .configure(|options| {
                options.default_rate = 0.0;
                options.honour_upstream_sampled = honour;
            })
            .build()
            .expect("tracer")
    };
    let headers = vec![
        (
            "traceparent".to_string(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_string(),
        ),
        ("muninn-event-id".to_string(), "e-1".to_string()),
        ("muninn-event-type".to_string(), "order.created".to_string()),
    ];
    let honouring = make(true);
    let span = honouring.consume("orders", Broker::Kafka, &headers);
    assert!(span.is_sampled(), "upstream said sampled");
    assert_eq!(
        span.context().trace_id.to_hex(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    let ignoring = make(false);
    assert!(
        !ignoring
            .consume("orders", Broker::Kafka, &headers)
            .is_sampled()
    );
    // B3: a deferred decision (no sampling state) leaves it to this tracer's rate (0 here),
    // and a decision without ids (`b3: 1`) is honoured like one with ids.
    let b3 = |value: &str| {
        vec![
            ("b3".to_string(), value.to_string()),
            ("muninn-event-id".to_string(), "e-2".to_string()),
        ]
    };
    let deferred = b3("4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7");
    let span = honouring.consume("orders", Broker::Kafka, &deferred);
    assert!(!span.is_sampled(), "deferred: decided by rate, which is 0");
    assert_eq!(
        span.context().trace_id.to_hex(),
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "a deferred context still continues the trace"
    );
    let accept = b3("4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1");
    assert!(
        honouring
            .consume("orders", Broker::Kafka, &accept)
            .is_sampled()
    );
    assert!(
        honouring
            .consume("orders", Broker::Kafka, &b3("1"))
            .is_sampled(),
        "a B3 decision without ids is honoured"
    );
    let everything = Tracer::builder("downstream")
        .collector("http://127.0.0.1:9")
        .configure(|options| {
            options.default_rate = 1.0;
            options.honour_upstream_sampled = true;
        })
        .build()
        .expect("tracer");
    assert!(
        everything
            .consume("orders", Broker::Kafka, &deferred)
            .is_sampled(),
        "deferred: decided by rate, which is 1"
    );
    assert!(
        !everything
            .consume("orders", Broker::Kafka, &b3("0"))
            .is_sampled(),
        "b3: 0 asks not to trace"
    );
    // Invalid context starts a fresh trace instead of failing.
    let broken = vec![(
        "traceparent".to_string(),
        "00-XYZ-00f067aa0ba902b7-01".to_string(),
    )];
    let span = honouring.consume("orders", Broker::Kafka, &broken);
    assert_ne!(
        span.context().trace_id.to_hex(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
}

/// A collector URL on which nothing listens: every export fails at connect.
fn closed_port_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port();
    format!("http://127.0.0.1:{port}")
}

#[test]
fn the_queue_holds_at_most_its_span_bound_and_counts_the_rest() {
    let tracer = Tracer::builder("bounded")
        .collector(closed_port_url())
        .configure(|options| {
            options.max_queue_spans = 10;
            // Nothing wakes the exporter while the test runs: the queue only fills.
            options.batch_timeout = Duration::from_secs(600);
            options.shutdown_timeout = Duration::from_millis(100);
        })
        .build()
        .expect("tracer");
    let route = tracer.route("ping", "pings", Broker::Nats);
    for n in 0..100 {
        route.produce(&format!("ping-{n}")).end();
    }
    let stats = tracer.stats();
    assert_eq!(stats.queue_spans, 10, "{stats:?}");
    assert_eq!(stats.spans_queued, 10, "{stats:?}");
    assert_eq!(stats.spans_dropped_queue_full, 90, "{stats:?}");
    // Ten equal spans (short ids, no extras): the bytes are ten times one span's.
    assert!(
        stats.queue_bytes > 0 && stats.queue_bytes.is_multiple_of(10),
        "{stats:?}"
    );
    assert_eq!(stats.queue_bytes_peak, stats.queue_bytes, "{stats:?}");
    tracer.shutdown(Duration::from_millis(200));
    let stats = tracer.stats();
    assert_eq!((stats.queue_spans, stats.queue_bytes), (0, 0), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_collector_down_calls_return_at_once_memory_stays_bounded_and_drops_are_counted() {
    let max_queue_bytes = 256 << 10;
    let tracer = Tracer::builder("lonely")
        .collector(closed_port_url())
        .configure(|options| {
            options.max_queue_bytes = max_queue_bytes;
            options.batch_timeout = Duration::from_millis(50);
            options.initial_backoff = Duration::from_millis(10);
            options.max_backoff = Duration::from_millis(50);
            options.counts_interval = Duration::from_millis(100);
            options.max_pending_counts = 10;
            options.shutdown_timeout = Duration::from_millis(500);
        })
        .build()
        .expect("tracer");
    let route = tracer.route("ping", "pings", Broker::Nats);
    let mut slowest = Duration::ZERO;
    for n in 0..100_000 {
        let started = Instant::now();
        let mut span = route.produce(&format!("ping-{n}"));
        span.attribute("n", n as i64);
        span.end();
        slowest = slowest.max(started.elapsed());
    }
    let stats = tracer.stats();
    assert!(stats.queue_bytes_peak <= max_queue_bytes, "{stats:?}");
    assert!(stats.queue_bytes <= max_queue_bytes);
    assert!(stats.spans_dropped_queue_full > 90_000, "{stats:?}");
    assert_eq!(stats.spans_exported, 0);
    // Every span is accounted for: queued or dropped for being full.
    assert_eq!(stats.spans_queued + stats.spans_dropped_queue_full, 100_000);
    // No call waited on the network (a connect timeout would be seconds).
    assert!(
        slowest < Duration::from_millis(200),
        "slowest call {slowest:?}"
    );
    let text = tracer.metrics_text();
    assert!(
        text.contains("muninn_sdk_spans_dropped_total{service=\"lonely\",reason=\"queue_full\"}"),
        "{text}"
    );
    let started = Instant::now();
    let tracer_for_shutdown = tracer.clone();
    let finished =
        tokio::task::spawn_blocking(move || tracer_for_shutdown.shutdown(Duration::from_secs(2)))
            .await
            .expect("shutdown runs");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "shutdown took {:?}",
        started.elapsed()
    );
    let _ = finished;
    let stats = tracer.stats();
    assert_eq!(
        stats.spans_queued,
        stats.spans_dropped_export_failed + stats.spans_dropped_shutdown + stats.spans_exported,
        "every queued span is exported or counted as dropped: {stats:?}"
    );
    assert_eq!(
        stats.counts_dropped, 100_000,
        "the counts of the unreachable collector are lost and counted"
    );
    // After shutdown, spans are refused and counted, and calls still return.
    route.produce("late").end();
    assert_eq!(
        tracer.stats().spans_dropped_shutdown,
        stats.spans_dropped_shutdown + 1
    );
}

/// What the fault injector does to the first requests.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// The first span requests are answered 503 or 429 with `Retry-After: 1`, unforwarded.
    Overload,
    /// The first span requests and the first counts requests reach the collector, but their
    /// answers are lost on the way back (a 504 from a gateway instead).
    LostAnswer,
}

/// A fault injector in front of the collector: the first `failures` requests meet `fault`,
/// the rest are passed through. Returns its URL, the span requests seen and their times.
async fn faulty_proxy(
    target: String,
    fault: Fault,
    failures: usize,
) -> (
    String,
    Arc<AtomicUsize>,
    Arc<std::sync::Mutex<Vec<Instant>>>,
) {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, Method, StatusCode, Uri};
    let seen = Arc::new(AtomicUsize::new(0));
    let seen_counts = Arc::new(AtomicUsize::new(0));
    let times = Arc::new(std::sync::Mutex::new(Vec::new()));
    let client = reqwest::Client::new();
    let (seen_in, times_in) = (seen.clone(), times.clone());
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let (seen, seen_counts, times, client, target) = (
                seen_in.clone(),
                seen_counts.clone(),
                times_in.clone(),
                client.clone(),
                target.clone(),
            );
            async move {
                let faulty = match uri.path() {
                    "/api/v1/spans" => {
                        times.lock().expect("lock").push(Instant::now());
                        seen.fetch_add(1, Ordering::SeqCst) < failures
                    }
                    "/api/v1/counts" if fault == Fault::LostAnswer => {
                        seen_counts.fetch_add(1, Ordering::SeqCst) < failures
                    }
                    _ => false,
                };
                if faulty && fault == Fault::Overload {
                    let status = if seen.load(Ordering::SeqCst) % 2 == 1 {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::TOO_MANY_REQUESTS
                    };
                    return (status, [("retry-after", "1")], Vec::new());
                }
                let mut request = client.request(method, format!("{target}{uri}")).body(body);
                for (name, value) in &headers {
                    if name != "host" && name != "content-length" {
                        request = request.header(name, value);
                    }
                }
                let response = request.send().await.expect("collector answers");
                let status = StatusCode::from_u16(response.status().as_u16()).expect("status");
                let body = response.bytes().await.expect("body").to_vec();
                if faulty {
                    return (
                        StatusCode::GATEWAY_TIMEOUT,
                        [("x-proxied", "1")],
                        Vec::new(),
                    );
                }
                (status, [("x-proxied", "1")], body)
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen, times)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_answer_was_lost_is_retried_without_being_counted_twice() {
    let mut collector = Collector::start().await;
    let (proxy, span_requests, _) = faulty_proxy(collector.url.clone(), Fault::LostAnswer, 2).await;
    let tracer = quick(Tracer::builder("lossy-link").collector(&proxy))
        .build()
        .expect("tracer");
    let route = tracer.route("invoice.sent", "invoices", Broker::Kafka);
    for n in 0..50 {
        route.produce(&format!("inv-{n}")).end();
    }
    eventually(
        Duration::from_secs(15),
        "spans and counts get through",
        || async {
            let stats = tracer.stats();
            stats.spans_exported == 50 && stats.counts_sent == 50
        },
    )
    .await;
    assert!(
        span_requests.load(Ordering::SeqCst) >= 3,
        "the spans were retried"
    );
    assert_eq!(tracer.stats().spans_dropped(), 0);
    // Both the spans and the counts reached the collector three times: stored once.
    assert_eq!(
        collector.throughput_total("lossy-link", "produced").await,
        50
    );
    let journey = collector.journey("inv-7").await;
    assert_eq!(
        journey["hops"].as_array().map(Vec::len),
        Some(1),
        "{journey}"
    );
    let metrics = reqwest::get(format!("{}/metrics", collector.url))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    assert!(
        metrics.contains("muninn_ingest_idempotent_replays_total 4"),
        "two lost span answers and two lost counts answers replayed: {metrics}"
    );
    shutdown(&tracer).await;
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_answers_are_retried_after_their_retry_after_and_nothing_is_lost() {
    let mut collector = Collector::start().await;
    let (proxy, attempts, times) = faulty_proxy(collector.url.clone(), Fault::Overload, 2).await;
    let tracer = quick(Tracer::builder("retrier").collector(&proxy))
        .build()
        .expect("tracer");
    let route = tracer.route("job.done", "jobs", Broker::Sqs);
    for n in 0..10 {
        route.produce(&format!("job-{n}")).end();
    }
    eventually(
        Duration::from_secs(10),
        "the batch gets through",
        || async { tracer.stats().spans_exported == 10 },
    )
    .await;
    let stats = tracer.stats();
    assert_eq!(stats.export_attempts_failed, 2);
    assert_eq!(stats.spans_dropped(), 0);
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    let times = times.lock().expect("lock").clone();
    for pair in times.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(950),
            "Retry-After: 1 was not honoured: {:?}",
            pair[1] - pair[0]
        );
    }
    let journey = collector.journey("job-3").await;
    assert_eq!(journey["hops"].as_array().map(Vec::len), Some(1));
    shutdown(&tracer).await;
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_are_exposed_in_prometheus_text() {
    let tracer = Tracer::builder("metered")
        .collector("http://127.0.0.1:9")
        .configure(|options| options.default_rate = 0.0)
        .build()
        .expect("tracer");
    let route = tracer.route("order.created", "orders", Broker::Kafka);
    for n in 0..7 {
        route.produce(&format!("o-{n}")).end();
    }
    let headers = vec![("muninn-event-type".to_string(), "order.paid".to_string())];
    for _ in 0..3 {
        tracer.consume("payments", Broker::Nats, &headers).end();
    }
    let text = tracer.metrics_text();
    assert!(text.contains(
        "muninn_sdk_events_total{service=\"metered\",event_type=\"order.created\",action=\"produced\",broker=\"kafka\",stream=\"orders\"} 7"
    ), "{text}");
    assert!(text.contains(
        "muninn_sdk_events_total{service=\"metered\",event_type=\"order.paid\",action=\"consumed\",broker=\"nats\",stream=\"payments\"} 3"
    ), "{text}");
    assert!(text.contains("# TYPE muninn_sdk_events counter"), "{text}");
    assert!(text.ends_with("# EOF\n"));
    let mut registry = prometheus_client::registry::Registry::default();
    tracer.register_metrics(&mut registry);
    let mut encoded = String::new();
    prometheus_client::encoding::text::encode(&mut encoded, &registry).expect("encode");
    assert!(encoded.contains("event_type=\"order.created\""));
}

#[test]
fn bad_settings_are_refused_with_the_setting_named() {
    let error = Tracer::builder("").build().expect_err("blank service");
    assert_eq!(error.field, "service");
    let error = Tracer::builder("a")
        .collector("not a url")
        .build()
        .expect_err("bad URL");
    assert_eq!(error.field, "collector");
    let error = Tracer::builder("a")
        .collector("ftp://collector:4320")
        .build()
        .expect_err("not HTTP");
    assert_eq!(error.field, "collector");
    assert!(error.to_string().contains("http:// or https://"), "{error}");
    let error = Tracer::builder("a")
        .collector("https://collector:4320")
        .ca_certificate("not a certificate")
        .build()
        .expect_err("no certificate");
    assert_eq!(error.field, "ca_certificate");
    let error = Tracer::builder("a")
        .collector("http://ingest-a:4320, ingest-b:4320")
        .build()
        .expect_err("one of several URLs is bad");
    assert_eq!(error.field, "collector");
    assert!(error.to_string().contains("\"ingest-b:4320\""), "{error}");
    let error = Tracer::builder("a")
        .configure(|options| options.default_rate = 1.5)
        .build()
        .expect_err("rate");
    assert_eq!(error.field, "default_rate");
    assert!(error.to_string().contains("0.0 to 1.0"), "{error}");
    let error = Tracer::builder("a")
        .configure(|options| options.batch_size = 0)
        .build()
        .expect_err("batch");
    assert_eq!(error.field, "batch_size");
    for bytes in [1 << 10, 1 << 40] {
        let error = Tracer::builder("a")
            .configure(|options| options.max_queue_bytes = bytes)
            .build()
            .expect_err("queue bytes");
        assert_eq!(error.field, "max_queue_bytes");
        assert!(error.to_string().contains("65536 to"), "{error}");
    }
}
