//! What the SDK costs a service that produces to a real Kafka-API broker while its collector is
//! down: the service builds and serializes an order per event and sends it with rdkafka (up to
//! 1,000 sends in flight) to tansu on loopback, (a) through a plain `FutureProducer`, (b)
//! through the SDK's `TracedProducer` tracing every event with the collector stopped, (c)
//! without the SDK but with the same four headers written by hand; 100,000
//! events per run, the runs interleaved over several rounds. Prints total times, the SDK's
//! queue and drop counters, and the process's memory. Needs the `kafka` feature and tansu
//! (`bash scripts/brokers.sh` installs it): `cargo bench -p muninn-sdk --features kafka
//! --bench kafka_collector_down`; see `BENCHMARKS.md`.

#[path = "../tests/support/mod.rs"]
mod brokers;
mod support;

use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use muninn_sdk::kafka::{KafkaEvent, TracedProducer};
use muninn_sdk::{Stats, Tracer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

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
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Plain => "(a) rdkafka, without the SDK",
            Mode::CollectorDown => "(b) SDK, collector down",
            Mode::HeadersOnly => "(c) no SDK, same headers",
        }
    }
}

struct Run {
    total: Duration,
    delivered: u64,
    stats: Option<Stats>,
}

async fn run(kafka: &brokers::Kafka, mode: Mode, events: usize, round: usize) -> Run {
    let topic = format!("orders-{round}-{}-{events}", mode as u8);
    kafka.create_topic(&topic, 1).await;
    let producer: FutureProducer = kafka.config().create().expect("a producer");
    let tracer = (mode == Mode::CollectorDown).then(|| {
        Tracer::builder("checkout")
            .collector(support::closed_port_url())
            .configure(|options| {
                options.default_rate = 1.0;
                options.shutdown_timeout = Duration::from_millis(500);
            })
            .build()
            .expect("tracer")
    });
    let traced = tracer
        .as_ref()
        .map(|tracer| TracedProducer::new(producer.clone(), tracer.clone()));

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
        let producer = &producer;
        let traced = traced.as_ref();
        let topic = topic.as_str();
        in_flight.push(async move {
            let mut record = FutureRecord::to(topic).key(&id).payload(&payload);
            if mode == Mode::HeadersOnly {
                let traceparent = format!(
                    "00-{:032x}-{:016x}-01",
                    fastrand::u128(1..),
                    fastrand::u64(1..)
                );
                let headers = [
                    ("muninn-event-id", id.as_str()),
                    ("muninn-event-type", EVENT_TYPE),
                    ("muninn-event-schema", SCHEMA),
                    ("traceparent", traceparent.as_str()),
                ]
                .into_iter()
                .fold(OwnedHeaders::new(), |headers, (key, value)| {
                    headers.insert(Header {
                        key,
                        value: Some(value),
                    })
                });
                record = record.headers(headers);
            }
            match traced {
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
                None => producer.send(record, QUEUE_TIMEOUT).await.is_ok(),
            }
        });
    }
    while let Some(ok) = in_flight.next().await {
        delivered += u64::from(ok);
    }
    let total = start.elapsed();
    let stats = tracer.as_ref().map(Tracer::stats);
    if let Some(tracer) = &tracer {
        tracer.shutdown(Duration::from_secs(5));
    }
    Run {
        total,
        delivered,
        stats,
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn main() {
    let benchmarking = support::benchmarking();
    let (events, rounds) = if benchmarking {
        (100_000, 9)
    } else {
        (2_000, 1)
    };
    let modes = [Mode::Plain, Mode::CollectorDown, Mode::HeadersOnly];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
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
            median(&mut totals)
        })
        .collect();
    println!();
    println!(
        "== collector down, producing to Kafka (tansu on loopback, rdkafka, {IN_FLIGHT} in \
         flight): {events} events per run, {rounds} rounds interleaved =="
    );
    println!(
        "{:<30} {:>14} {:>8} {:>12}   totals per round, ms",
        "run", "median ms", "vs (a)", "µs / event"
    );
    for (index, mode) in modes.iter().enumerate() {
        let cells: Vec<String> = runs[index]
            .iter()
            .map(|run| format!("{:.0}", run.total.as_secs_f64() * 1e3))
            .collect();
        println!(
            "{:<30} {:>14.1} {:>7.1}% {:>12.2}   {}",
            mode.label(),
            totals[index],
            (totals[index] / totals[0] - 1.0) * 100.0,
            totals[index] * 1e3 / events as f64,
            cells.join("  ")
        );
    }
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
    let ratio = totals[1] / totals[0];
    println!(
        "\n  target (b) within 10% of (a): {:+.1}% -> {}",
        (ratio - 1.0) * 100.0,
        support::verdict(ratio <= 1.10)
    );
    support::print_collector_down_checks(runs[1].iter().map(|run| run.stats.as_ref()), events);
    println!();
}
