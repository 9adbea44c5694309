//! What the SDK costs a service that produces to a real Kafka-API broker while its collector is
//! down: the service builds and serializes an order per event and sends it with rdkafka (up to
//! 1,000 sends in flight) to tansu on loopback, (a) through a plain `FutureProducer`, (b)
//! through the SDK's `TracedProducer` tracing every event with the collector stopped, (c)
//! without the SDK but with the same four headers written by hand, (d) with only a W3C
//! `traceparent` written by hand, and (e) with the OpenTelemetry SDK (a producer span, its
//! `traceparent` injected, a batch span processor whose exporter fails, as with its collector
//! down), and (f) through the SDK's producer with nothing traced and no headers; 100,000
//! events per run, the runs interleaved over several rounds. Prints total times, the SDK's
//! queue and drop counters, and the process's memory. Needs the `kafka` feature and tansu
//! (`bash scripts/brokers.sh` installs it): `cargo bench -p muninn-sdk --features kafka
//! --bench kafka_collector_down`; the service runs on a current-thread tokio runtime, or on a
//! multi-thread one with `MUNINN_BENCH_RUNTIME=multi-thread`; see `BENCHMARKS.md`.

#[path = "../tests/support/mod.rs"]
mod brokers;
mod support;

use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use muninn_sdk::kafka::{KafkaEvent, TracedProducer};
use muninn_sdk::{Stats, Tracer};
use opentelemetry::KeyValue;
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{Span as _, SpanKind, TraceContextExt as _, Tracer as _};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider, SpanData, SpanExporter};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, FutureProducer, FutureRecord};

const EVENT_TYPE: &str = "order.created";
const SCHEMA: &str = "order.created/v2";
/// Sends waiting for their delivery report at once (the service's own back-pressure).
const IN_FLIGHT: usize = 1_000;
const QUEUE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Plain,
    CollectorDown,
    /// No SDK, but the same four headers written by hand: what carrying them through the
    /// client and the broker costs by itself, whatever writes them.
    HeadersOnly,
    /// No SDK, only a W3C `traceparent` written by hand: the least any tracer propagating
    /// context through Kafka headers writes.
    TraceparentOnly,
    /// The OpenTelemetry SDK, its exporter failing as with the collector down.
    OpenTelemetry,
    /// The SDK's producer (`TracedProducer::inner`), nothing traced and no headers: what the
    /// producer itself changes, apart from tracing.
    SdkProducerUntraced,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Plain => "(a) rdkafka, without the SDK",
            Mode::CollectorDown => "(b) SDK, collector down",
            Mode::HeadersOnly => "(c) no SDK, same headers",
            Mode::TraceparentOnly => "(d) no SDK, traceparent only",
            Mode::OpenTelemetry => "(e) OpenTelemetry SDK, down",
            Mode::SdkProducerUntraced => "(f) SDK's producer, untraced",
        }
    }
}

struct Run {
    total: Duration,
    /// CPU time used meanwhile, ms: by this process (the service, its rdkafka threads and the
    /// SDK's export thread) and by everything else (the broker).
    service_cpu_ms: f64,
    other_cpu_ms: f64,
    delivered: u64,
    stats: Option<Stats>,
}

async fn run(kafka: &brokers::Kafka, mode: Mode, events: usize, round: usize) -> Run {
    let topic = format!("orders-{round}-{}-{events}", mode as u8);
    kafka.create_topic(&topic, 1).await;
    // (b) and (f) send through the SDK's own producer only: one client per run, as in the others.
    let sdk_producer = matches!(mode, Mode::CollectorDown | Mode::SdkProducerUntraced);
    let producer: Option<FutureProducer> =
        (!sdk_producer).then(|| kafka.config().create().expect("a producer"));
    let tracer = sdk_producer.then(|| {
        Tracer::builder("checkout")
            .collector(support::closed_port_url())
            .configure(|options| {
                options.default_rate = 1.0;
                options.shutdown_timeout = Duration::from_millis(500);
            })
            .build()
            .expect("tracer")
    });
    let traced = tracer.as_ref().map(|tracer| {
        TracedProducer::new(&kafka.config(), tracer.clone()).expect("a traced producer")
    });
    let otel_provider = (mode == Mode::OpenTelemetry).then(|| {
        SdkTracerProvider::builder()
            .with_span_processor(BatchSpanProcessor::builder(FailingExporter).build())
            .build()
    });
    let otel_tracer = otel_provider.as_ref().map(|provider| {
        use opentelemetry::trace::TracerProvider as _;
        provider.tracer("checkout")
    });
    let propagator = TraceContextPropagator::new();

    let cpu_start = support::cpu_millis();
    let start = Instant::now();
    let mut in_flight = FuturesUnordered::new();
    let mut delivered = 0u64;
    for n in 0..events {
        while in_flight.len() >= IN_FLIGHT {
            if let Some(ok) = in_flight.next().await {
                delivered += u64::from(ok);
            }
        }
        let id = format!("ord-{round:02}-{n:08}");
        let payload = support::order_payload(&id, n);
        let producer = producer.as_ref();
        let traced = traced.as_ref();
        let topic = topic.as_str();
        let otel_tracer = otel_tracer.as_ref();
        let propagator = &propagator;
        in_flight.push(async move {
            let mut record = FutureRecord::to(topic).key(&id).payload(&payload);
            let traceparent = || {
                format!(
                    "00-{:032x}-{:016x}-01",
                    fastrand::u128(1..),
                    fastrand::u64(1..)
                )
            };
            match mode {
                Mode::HeadersOnly => {
                    let traceparent = traceparent();
                    record = record.headers(headers(&[
                        ("muninn-event-id", id.as_str()),
                        ("muninn-event-type", EVENT_TYPE),
                        ("muninn-event-schema", SCHEMA),
                        ("traceparent", traceparent.as_str()),
                    ]));
                }
                Mode::TraceparentOnly => {
                    record = record.headers(headers(&[("traceparent", traceparent().as_str())]));
                }
                _ => {}
            }
            if let Some(otel) = otel_tracer {
                let mut span = otel
                    .span_builder(format!("publish {topic}"))
                    .with_kind(SpanKind::Producer)
                    .with_attributes([
                        KeyValue::new("messaging.system", "kafka"),
                        KeyValue::new("messaging.destination.name", topic.to_string()),
                        KeyValue::new("messaging.message.id", id.clone()),
                        KeyValue::new("cloudevents.event_type", EVENT_TYPE),
                    ])
                    .start(otel);
                let context = opentelemetry::Context::new()
                    .with_remote_span_context(span.span_context().clone());
                let mut carrier = OtelHeaders(Some(OwnedHeaders::new()));
                propagator.inject_context(&context, &mut carrier);
                record = record.headers(carrier.0.unwrap_or_default());
                let result = producer
                    .expect("a plain producer")
                    .send(record, QUEUE_TIMEOUT)
                    .await;
                match &result {
                    Ok(delivery) => span.set_attributes([
                        KeyValue::new(
                            "messaging.destination.partition.id",
                            delivery.partition.to_string(),
                        ),
                        KeyValue::new("messaging.kafka.offset", delivery.offset),
                    ]),
                    Err((error, _)) => {
                        span.set_status(opentelemetry::trace::Status::error(error.to_string()))
                    }
                }
                span.end();
                return result.is_ok();
            }
            match traced {
                Some(traced) if mode == Mode::SdkProducerUntraced => {
                    let (sender, delivered) = tokio::sync::oneshot::channel();
                    let record = BaseRecord::with_opaque_to(topic, Box::new(sender))
                        .key(&id)
                        .payload(&payload);
                    match traced.inner().send(record) {
                        Ok(()) => matches!(delivered.await, Ok(Ok(_))),
                        Err(_) => false,
                    }
                }
                Some(traced) => {
                    let event = KafkaEvent {
                        event_id: &id,
                        event_type: EVENT_TYPE,
                        schema: Some(SCHEMA),
                    };
                    traced
                        .send(record, event, None, QUEUE_TIMEOUT)
                        .await
                        .is_ok()
                }
                None => producer
                    .expect("a plain producer")
                    .send(record, QUEUE_TIMEOUT)
                    .await
                    .is_ok(),
            }
        });
    }
    while let Some(ok) = in_flight.next().await {
        delivered += u64::from(ok);
    }
    let total = start.elapsed();
    let cpu_end = support::cpu_millis();
    // The broker keeps every record in memory: free them, so later runs do not pay for growth.
    kafka.delete_topic(&topic).await;
    let stats = tracer.as_ref().map(Tracer::stats);
    if let Some(tracer) = &tracer {
        tracer.shutdown(Duration::from_secs(5));
    }
    if let Some(provider) = otel_provider {
        let _ = provider.shutdown();
    }
    let service = cpu_end.0.saturating_sub(cpu_start.0);
    let machine = cpu_end.1.saturating_sub(cpu_start.1);
    Run {
        total,
        service_cpu_ms: service as f64,
        other_cpu_ms: machine.saturating_sub(service) as f64,
        delivered,
        stats,
    }
}

/// Headers for a record, written by hand.
fn headers(pairs: &[(&str, &str)]) -> OwnedHeaders {
    pairs
        .iter()
        .fold(OwnedHeaders::new(), |headers, &(key, value)| {
            headers.insert(Header {
                key,
                value: Some(value),
            })
        })
}

/// OpenTelemetry's injector over rdkafka's append-only headers.
struct OtelHeaders(Option<OwnedHeaders>);

impl opentelemetry::propagation::Injector for OtelHeaders {
    fn set(&mut self, key: &str, value: String) {
        let headers = self.0.take().unwrap_or_default();
        self.0 = Some(headers.insert(Header {
            key,
            value: Some(&value),
        }));
    }
}

/// An OpenTelemetry exporter whose every export fails at once, as a refused connection does.
#[derive(Debug)]
struct FailingExporter;

impl SpanExporter for FailingExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        drop(batch);
        Err(OTelSdkError::InternalFailure(
            "connection refused".to_string(),
        ))
    }
}

fn main() {
    let benchmarking = support::benchmarking();
    let (events, rounds) = if benchmarking {
        (100_000, 15)
    } else {
        (2_000, 1)
    };
    let modes = [
        Mode::Plain,
        Mode::CollectorDown,
        Mode::HeadersOnly,
        Mode::TraceparentOnly,
        Mode::OpenTelemetry,
        Mode::SdkProducerUntraced,
    ];
    let flavor = match std::env::var("MUNINN_BENCH_RUNTIME").as_deref() {
        Err(_) | Ok("current-thread") => "current-thread",
        Ok("multi-thread") => "multi-thread",
        Ok(other) => {
            eprintln!(
                "MUNINN_BENCH_RUNTIME={other:?}: the service's tokio runtime must be \
                 \"current-thread\" (the default) or \"multi-thread\""
            );
            std::process::exit(2);
        }
    };
    // The service's loop runs in `block_on` on the main thread either way; the flavour
    // changes how rdkafka's polling thread wakes it.
    let runtime = if flavor == "multi-thread" {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    }
    .expect("a runtime");
    let kafka = brokers::Kafka::start();
    let (rss_start, _) = support::rss_kib();
    let load_before = support::load_average();
    let mut runs: Vec<Vec<Run>> = modes.iter().map(|_| Vec::new()).collect();
    runtime.block_on(async {
        // Warm-up (connections, allocator), not reported.
        for mode in modes {
            run(&kafka, mode, events / 5, 99).await;
        }
        for round in 0..rounds {
            for offset in 0..modes.len() {
                let index = (round + offset) % modes.len();
                let result = run(&kafka, modes[index], events, round).await;
                assert_eq!(result.delivered, events as u64, "every record delivered");
                runs[index].push(result);
            }
        }
    });
    let (rss_end, hwm_end) = support::rss_kib();

    let totals: Vec<f64> = runs
        .iter()
        .map(|runs| {
            let mut totals: Vec<f64> = runs
                .iter()
                .map(|run| run.total.as_secs_f64() * 1e3)
                .collect();
            support::median(&mut totals)
        })
        .collect();
    println!();
    println!(
        "== collector down, producing to Kafka (tansu on loopback, rdkafka, {IN_FLIGHT} in \
         flight, a {flavor} tokio runtime): {events} events per run, {rounds} rounds \
         interleaved =="
    );
    let cpu = |index: usize, pick: fn(&Run) -> f64| {
        let mut values: Vec<f64> = runs[index].iter().map(pick).collect();
        support::median(&mut values)
    };
    let round_totals = support::round_totals_ms(&runs, |run| run.total);
    let paired = |index: usize, against: usize| {
        support::paired_excess(&round_totals[index], &round_totals[against])
    };
    println!(
        "{:<30} {:>10} {:>8} {:>22} {:>11} {:>12} {:>11}   totals per round, ms",
        "run",
        "median ms",
        "vs (a)",
        "paired: median [IQR]",
        "µs / event",
        "service CPU",
        "other CPU"
    );
    for (index, mode) in modes.iter().enumerate() {
        let cells: Vec<String> = round_totals[index]
            .iter()
            .map(|total| format!("{total:.0}"))
            .collect();
        let (low, middle, high) = paired(index, 0);
        println!(
            "{:<30} {:>10.1} {:>7.1}% {:>22} {:>11.2} {:>9.0}ms {:>9.0}ms   {}",
            mode.label(),
            totals[index],
            (totals[index] / totals[0] - 1.0) * 100.0,
            format!("{middle:+.1}% [{low:+.1}, {high:+.1}]"),
            totals[index] * 1e3 / events as f64,
            cpu(index, |run| run.service_cpu_ms),
            cpu(index, |run| run.other_cpu_ms),
            cells.join("  ")
        );
    }
    println!(
        "  (service CPU: this process, all its threads; other CPU: the rest of the machine, \
         mostly the broker; medians over the rounds)"
    );
    if let Some(stats) = runs[1].last().and_then(|run| run.stats.as_ref()) {
        println!(
            "\n  SDK counters (last (b) run): queued {}, exported {}, dropped {} (queue full {}), \
             failed export attempts {}; queue peak {} KiB of {} KiB configured",
            stats.spans_queued,
            stats.spans_exported,
            stats.spans_dropped(),
            stats.spans_dropped_queue_full,
            stats.export_attempts_failed,
            stats.queue_bytes_peak >> 10,
            stats.max_queue_bytes >> 10,
        );
    }
    println!(
        "  process RSS: {:.1} MiB at start, {:.1} MiB at end, peak (VmHWM) {:.1} MiB",
        rss_start as f64 / 1024.0,
        rss_end as f64 / 1024.0,
        hwm_end as f64 / 1024.0
    );
    println!(
        "  load average before: {load_before}, after: {}",
        support::load_average()
    );
    let (low, excess, high) = paired(1, 0);
    println!(
        "\n  target (b) within 10% of (a), paired by round: {excess:+.1}% (quartiles {low:+.1}%, \
         {high:+.1}%) -> {}",
        support::verdict(excess <= 10.0)
    );
    println!(
        "  (b) against the same service writing the same headers by hand, (c): {:+.1}%; \
         against the OpenTelemetry SDK, (e): {:+.1}% (paired medians)",
        paired(1, 2).1,
        paired(1, 4).1
    );
    println!(
        "  what tracing adds on the SDK's own producer, (b) against (f): {:+.1}%; what that \
         producer changes without tracing, (f) against (a): {:+.1}% (paired medians)",
        paired(1, 5).1,
        paired(5, 0).1
    );
    support::print_collector_down_checks(runs[1].iter().map(|run| run.stats.as_ref()), events);
    println!();
}
