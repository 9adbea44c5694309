//! A service traced by the SDK through a long collector outage, time-compressed: the service
//! handles events at a steady rate (each an order serialized to JSON and handed to a consumer
//! thread, as in `collector_down`), first untraced, then traced with its collector down for
//! `OUTAGE_MINUTES` (default 10), then the collector (a real Muninn server on the same port)
//! comes back. Time is compressed by `COMPRESSION` (default 20): the service's rate is
//! multiplied by it and every time setting of the SDK (batch timeout, backoff, request timeout,
//! count and sampling intervals) divided by it, so the outage holds as many events, batches,
//! attempts and backoffs as the real one, in a twentieth of the time. Prints the event latency
//! untraced and during the outage, the SDK's queue and the process's memory against the bound,
//! what was dropped and why, and what the queue delivered once the collector returned.
//!
//! `cargo bench -p muninn-sdk --bench outage_soak` (about 70 s); as a test (`cargo test
//! --benches`), a 2-second outage, checked.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use muninn_sdk::{Broker, Route, Tracer};
use support::{quantile, rss_kib};

const EVENT_TYPE: &str = "order.created";
const STREAM: &str = "orders";
const SCHEMA: &str = "order.created/v2";
/// The service's rate in real time, events per second.
const REAL_RATE: u64 = 1_000;

struct Message {
    key: String,
    payload: Vec<u8>,
    headers: Vec<(String, String)>,
}

/// Handles events at `rate` per second for `length`, traced through `route` when given;
/// the nanoseconds of each event (its id, SDK calls, JSON and hand-off).
fn serve(route: Option<&Route>, rate: u64, length: Duration, phase: &str) -> Vec<u64> {
    let (sender, receiver) = mpsc::sync_channel::<Message>(1024);
    let consumer = std::thread::spawn(move || {
        let mut bytes = 0u64;
        for message in receiver {
            bytes += (message.key.len() + message.payload.len() + message.headers.len()) as u64;
        }
        bytes
    });
    // Events go in ticks of a millisecond: `rate / 1000` each, then a sleep to the next tick.
    let per_tick = (rate / 1000).max(1) as usize;
    let ticks = length.as_millis() as u64;
    let mut latencies = Vec::with_capacity(per_tick * ticks as usize);
    let start = Instant::now();
    let mut n = 0usize;
    for tick in 0..ticks {
        for _ in 0..per_tick {
            let began = Instant::now();
            let id = format!("{phase}-{n:09}");
            let mut headers: Vec<(String, String)> = Vec::new();
            let span = route
                .map(|route| route.produce_with_headers(&id, Some(SCHEMA), None, &mut headers));
            let payload = support::order_payload(&id, n);
            sender
                .send(Message {
                    key: id,
                    payload,
                    headers,
                })
                .expect("the consumer runs");
            if let Some(span) = span {
                span.end();
            }
            latencies.push(u64::try_from(began.elapsed().as_nanos()).unwrap_or(u64::MAX));
            n += 1;
        }
        let next = start + Duration::from_millis(tick + 1);
        if let Some(ahead) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(ahead);
        }
    }
    drop(sender);
    consumer.join().expect("consumer");
    latencies
}

fn env_number(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|text| text.parse().ok())
        .filter(|value: &f64| *value > 0.0)
        .unwrap_or(default)
}

fn cells(latencies: &mut [u64]) -> (u64, u64, u64, u64) {
    latencies.sort_unstable();
    (
        quantile(latencies, 0.50),
        quantile(latencies, 0.99),
        quantile(latencies, 0.999),
        latencies.last().copied().unwrap_or(0),
    )
}

fn main() {
    let benchmarking = support::benchmarking();
    let (minutes, compression) = if benchmarking {
        (
            env_number("OUTAGE_MINUTES", 10.0),
            env_number("COMPRESSION", 20.0),
        )
    } else {
        // The smoke test: a 2-second outage, compressed 60×.
        (2.0, 60.0)
    };
    let outage = Duration::from_secs_f64(minutes * 60.0 / compression);
    let rate = (REAL_RATE as f64 * compression) as u64;
    let scaled = |real: Duration| real.div_f64(compression).max(Duration::from_millis(1));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    // Untraced, for the latency to compare with.
    let mut untraced = serve(None, rate, outage, "plain");

    // The collector's port, free: connections are refused until it comes back.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a loopback port")
        .port();
    let rss_before = rss_kib().0;
    let defaults = muninn_sdk::Options::default();
    let tracer = Tracer::builder("checkout")
        .collector(format!("http://127.0.0.1:{port}"))
        .configure(|options| {
            options.default_rate = 1.0;
            options.batch_timeout = scaled(defaults.batch_timeout);
            options.initial_backoff = scaled(defaults.initial_backoff);
            options.max_backoff = scaled(defaults.max_backoff);
            options.request_timeout = scaled(defaults.request_timeout);
            options.counts_interval = scaled(defaults.counts_interval);
            options.sampling_refresh = scaled(defaults.sampling_refresh);
            options.shutdown_timeout = Duration::from_secs(5);
        })
        .build()
        .expect("tracer");
    let route = tracer.route(EVENT_TYPE, STREAM, Broker::Kafka);
    // Memory and queue, sampled every 50 ms through the outage.
    let sampling = Arc::new(AtomicBool::new(true));
    let rss_peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (sampling, rss_peak, tracer) = (sampling.clone(), rss_peak.clone(), tracer.clone());
        std::thread::spawn(move || {
            let mut queue_peak_spans = 0usize;
            while sampling.load(Ordering::Relaxed) {
                rss_peak.fetch_max(rss_kib().0, Ordering::Relaxed);
                queue_peak_spans = queue_peak_spans.max(tracer.stats().queue_spans);
                std::thread::sleep(Duration::from_millis(50));
            }
            queue_peak_spans
        })
    };
    let mut traced = serve(Some(&route), rate, outage, "traced");
    sampling.store(false, Ordering::Relaxed);
    let queue_peak_spans = sampler.join().expect("sampler");
    let during = tracer.stats();

    // The collector comes back on the same port.
    let dir = tempfile::tempdir().expect("temporary directory");
    let server = runtime
        .block_on(muninn_server::start(muninn_server::ServerConfig::new(
            dir.path(),
            port,
        )))
        .expect("the collector starts on the outage's port");
    let returned = Instant::now();
    let deadline = returned + Duration::from_secs(60);
    while tracer.stats().queue_spans > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    // The batch in the exporter's hands, if any, goes with the next attempt.
    std::thread::sleep(scaled(defaults.max_backoff) + Duration::from_millis(200));
    let drained_in = returned.elapsed();
    let after = tracer.stats();
    let stored = server.store.stats().spans_appended;
    tracer.shutdown(Duration::from_secs(5));
    runtime.block_on(server.stop());

    let events = traced.len() as u64;
    let delivered = after.spans_exported - during.spans_exported;
    let dropped = after.spans_dropped();
    let (u50, u99, u999, umax) = cells(&mut untraced);
    let (t50, t99, t999, tmax) = cells(&mut traced);
    let excess = (t99 as f64 / u99.max(1) as f64 - 1.0) * 100.0;
    println!(
        "outage_soak: a {minutes} min outage compressed {compression}× into {:.1} s; {REAL_RATE} \
         events/s in real time ({rate}/s here): {events} events",
        outage.as_secs_f64()
    );
    println!(
        "  event latency ns p50/p99/p99.9/max: untraced {u50}/{u99}/{u999}/{umax}; traced, \
         collector down {t50}/{t99}/{t999}/{tmax}; p99 {excess:+.1}% (target within 10%)"
    );
    println!(
        "  memory: RSS {} MiB before the tracer, peak {} MiB during the outage; SDK queue peak \
         {} KiB of {} KiB (max_queue_bytes), {queue_peak_spans} spans of {} (max_queue_spans)",
        rss_before >> 10,
        rss_peak.load(Ordering::Relaxed) >> 10,
        after.queue_bytes_peak >> 10,
        after.max_queue_bytes >> 10,
        defaults.max_queue_spans
    );
    println!(
        "  during the outage: {} queued, {} dropped for a full queue, {} after {} attempts \
         ({} failed attempts), {} in the queue when the collector returned",
        during.spans_queued,
        during.spans_dropped_queue_full,
        during.spans_dropped_export_failed,
        defaults.max_attempts,
        during.export_attempts_failed,
        during.queue_spans
    );
    println!(
        "  after: {delivered} delivered in {:.2} s, {stored} stored by the collector; {dropped} \
         dropped in all; every event accounted for: {}",
        drained_in.as_secs_f64(),
        after.spans_queued + after.spans_dropped_queue_full == events
            && after.spans_queued
                == after.spans_exported + dropped - after.spans_dropped_queue_full
    );
    // What must hold whatever the machine's speed (the latency figure is the benchmark's).
    assert!(after.queue_bytes_peak <= after.max_queue_bytes, "{after:?}");
    assert!(queue_peak_spans <= defaults.max_queue_spans);
    assert_eq!(after.spans_queued + after.spans_dropped_queue_full, events);
    assert_eq!(
        after.spans_queued,
        after.spans_exported + after.spans_dropped_export_failed + after.spans_dropped_shutdown,
        "every queued span is exported or counted as dropped: {after:?}"
    );
    assert!(
        delivered >= during.queue_spans as u64,
        "what the queue held when the collector returned is delivered: {during:?} {after:?}"
    );
    assert_eq!(
        stored, after.spans_exported,
        "the collector stored what was exported"
    );
    assert!(
        dropped > 0,
        "an outage this long overflows the queue: {after:?}"
    );
}
