//! What the SDK costs a service while its collector is down: a "service" produces 100,000
//! events (each serialized to JSON and handed to a consumer thread through a bounded channel),
//! (a) without the SDK, (b) with the SDK tracing every event and the collector stopped, and
//! (c) with the SDK and a live collector that discards what it gets, and (d) without the SDK
//! but with the same message headers written by hand; the runs are interleaved over several
//! rounds. Prints total times, caller latency, the SDK's queue and drop counters,
//! and the process's memory. Run with `cargo bench -p muninn-sdk --bench collector_down`; see
//! `BENCHMARKS.md`.

mod support;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use muninn_sdk::{Broker, Stats, Tracer};
use support::{DiscardSink, quantile, rss_kib};

const EVENT_TYPE: &str = "order.created";
const STREAM: &str = "orders";
const SCHEMA: &str = "order.created/v2";
/// Messages the producer may be ahead of its consumer (a broker client's send buffer).
const CHANNEL_BOUND: usize = 1024;

/// The message the service sends: key, JSON payload, and headers.
struct Message {
    key: String,
    payload: Vec<u8>,
    headers: Vec<(String, String)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// (a) The service without the SDK.
    Plain,
    /// (b) The SDK tracing every event, its collector stopped (a closed port).
    CollectorDown,
    /// (c) The SDK tracing every event to a live collector that discards what it gets.
    LiveSink,
    /// (d) No SDK, but the same four headers written by hand: what carrying trace context
    /// and event metadata costs by itself, whatever writes it.
    HeadersOnly,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Plain => "(a) without the SDK",
            Mode::CollectorDown => "(b) SDK, collector down",
            Mode::LiveSink => "(c) SDK, live discard sink",
            Mode::HeadersOnly => "(d) no SDK, same headers",
        }
    }
}

struct Run {
    total: Duration,
    /// Per event: nanoseconds spent in SDK calls (`produce_with_headers` and `end`; for (d),
    /// writing the headers).
    sdk_nanos: Vec<u64>,
    /// Per event: nanoseconds for the whole event (id, SDK calls, JSON, send).
    event_nanos: Vec<u64>,
    /// The SDK's counters at the end of the run (for (c), once the queue is drained).
    stats: Option<Stats>,
    /// Resident memory before the tracer was built and at the end of the loop, KiB.
    rss_before: u64,
    rss_after: u64,
    /// Messages and payload bytes the consumer received.
    consumed: (u64, u64),
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

fn run(mode: Mode, events: usize, round: usize, sink: &DiscardSink) -> Run {
    let rss_before = rss_kib().0;
    let collector = match mode {
        Mode::Plain | Mode::HeadersOnly => None,
        Mode::CollectorDown => Some(support::closed_port_url()),
        Mode::LiveSink => Some(sink.url.clone()),
    };
    let tracer = collector.map(|url| {
        Tracer::builder("checkout")
            .collector(url)
            .configure(|options| {
                options.default_rate = 1.0;
                options.shutdown_timeout = Duration::from_millis(500);
            })
            .build()
            .expect("tracer")
    });
    let route = tracer
        .as_ref()
        .map(|tracer| tracer.route(EVENT_TYPE, STREAM, Broker::Kafka));

    let (sender, receiver) = mpsc::sync_channel::<Message>(CHANNEL_BOUND);
    let consumer = std::thread::spawn(move || {
        let (mut count, mut bytes) = (0u64, 0u64);
        for message in receiver {
            count += 1;
            bytes += (message.key.len() + message.payload.len() + message.headers.len()) as u64;
        }
        (count, bytes)
    });

    let mut sdk_nanos = Vec::with_capacity(events);
    let mut event_nanos = Vec::with_capacity(events);
    let start = Instant::now();
    for n in 0..events {
        let event_start = Instant::now();
        let id = format!("ord-{round:02}-{n:08}");
        let mut headers: Vec<(String, String)> = Vec::new();
        let sdk_start = Instant::now();
        let span = route
            .as_ref()
            .map(|route| route.produce_with_headers(&id, Some(SCHEMA), None, &mut headers));
        if mode == Mode::HeadersOnly {
            headers.push(("muninn-event-id".to_string(), id.clone()));
            headers.push(("muninn-event-type".to_string(), EVENT_TYPE.to_string()));
            headers.push(("muninn-event-schema".to_string(), SCHEMA.to_string()));
            let traceparent = format!(
                "00-{:032x}-{:016x}-01",
                fastrand::u128(1..),
                fastrand::u64(1..)
            );
            headers.push(("traceparent".to_string(), traceparent));
        }
        let sdk_produced = Instant::now();
        let payload = support::order_payload(&id, n);
        sender
            .send(Message {
                key: id,
                payload,
                headers,
            })
            .expect("the consumer runs");
        let sdk_end = Instant::now();
        if let Some(span) = span {
            span.end();
        }
        let event_end = Instant::now();
        sdk_nanos.push(nanos((sdk_produced - sdk_start) + (event_end - sdk_end)));
        event_nanos.push(nanos(event_end - event_start));
    }
    let total = start.elapsed();
    drop(sender);
    let consumed = consumer.join().expect("consumer");
    let rss_after = rss_kib().0;

    let stats = tracer.as_ref().map(|tracer| {
        if mode == Mode::LiveSink {
            // Untimed: let the exporter send what is queued, to count what got through.
            let deadline = Instant::now() + Duration::from_secs(30);
            while tracer.stats().queue_spans > 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        tracer.stats()
    });
    if let Some(tracer) = &tracer {
        tracer.shutdown(Duration::from_secs(5));
    }
    Run {
        total,
        sdk_nanos,
        event_nanos,
        stats,
        rss_before,
        rss_after,
        consumed,
    }
}

/// Mean, p50, p99 and max of sorted nanoseconds.
fn latency_cell(sorted: &[u64]) -> String {
    let mean = sorted.iter().sum::<u64>() as f64 / sorted.len().max(1) as f64;
    format!(
        "{mean:.0}/{}/{}/{}",
        quantile(sorted, 0.50),
        quantile(sorted, 0.99),
        sorted.last().copied().unwrap_or(0)
    )
}

fn print_stats(label: &str, stats: &Stats) {
    println!(
        "  {label}: queued {}, exported {}, dropped {} (queue full {}, export failed {}, \
         rejected {}, shutdown {}), failed export attempts {}; queue peak {} KiB of {} KiB \
         configured",
        stats.spans_queued,
        stats.spans_exported,
        stats.spans_dropped(),
        stats.spans_dropped_queue_full,
        stats.spans_dropped_export_failed,
        stats.spans_dropped_rejected,
        stats.spans_dropped_shutdown,
        stats.export_attempts_failed,
        stats.queue_bytes_peak >> 10,
        stats.max_queue_bytes >> 10,
    );
}

fn main() {
    let benchmarking = support::benchmarking();
    // `cargo test --benches` runs this once, small, as a smoke test.
    let (events, rounds) = if benchmarking {
        (100_000, 9)
    } else {
        (2_000, 1)
    };
    let modes = [
        Mode::Plain,
        Mode::CollectorDown,
        Mode::LiveSink,
        Mode::HeadersOnly,
    ];
    let sink = DiscardSink::start();
    let (rss_start, _) = rss_kib();
    let load_before = support::load_average();

    // Warm-up (allocator, page cache, thread start-up), not reported.
    for mode in modes {
        run(mode, events / 5, 99, &sink);
    }

    let mut runs: Vec<Vec<Run>> = modes.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        // Rotate the order so no mode always runs first or last in a round.
        for offset in 0..modes.len() {
            let index = (round + offset) % modes.len();
            let result = run(modes[index], events, round, &sink);
            assert_eq!(result.consumed.0, events as u64, "every message consumed");
            runs[index].push(result);
        }
    }
    let (rss_end, hwm_end) = rss_kib();

    let round_totals = support::round_totals_ms(&runs, |run| run.total);
    let totals: Vec<f64> = round_totals
        .iter()
        .map(|totals| support::median(&mut totals.clone()))
        .collect();
    let plain_total = totals[0];

    println!();
    println!(
        "== collector down: {events} events per run, {rounds} rounds interleaved, median total \
         and excess paired by round; latencies over all rounds, ns =="
    );
    println!(
        "{:<28} {:>10} {:>8} {:>22}  {:>27}  {:>28}  {:>9}",
        "run",
        "total ms",
        "vs (a)",
        "paired: median [IQR]",
        "SDK part mean/p50/p99/max",
        "event mean/p50/p99/max",
        "RSS +MiB"
    );
    let mut p99s = Vec::new();
    for (index, mode) in modes.iter().enumerate() {
        let mut sdk: Vec<u64> = runs[index]
            .iter()
            .flat_map(|run| run.sdk_nanos.iter().copied())
            .collect();
        let mut event: Vec<u64> = runs[index]
            .iter()
            .flat_map(|run| run.event_nanos.iter().copied())
            .collect();
        sdk.sort_unstable();
        event.sort_unstable();
        p99s.push(quantile(&event, 0.99));
        let mut rss_growth: Vec<f64> = runs[index]
            .iter()
            .map(|run| (run.rss_after as f64 - run.rss_before as f64) / 1024.0)
            .collect();
        let (low, middle, high) = support::paired_excess(&round_totals[index], &round_totals[0]);
        println!(
            "{:<28} {:>10.1} {:>7.1}% {:>22}  {:>27}  {:>28}  {:>9.1}",
            mode.label(),
            totals[index],
            (totals[index] / plain_total - 1.0) * 100.0,
            format!("{middle:+.1}% [{low:+.1}, {high:+.1}]"),
            latency_cell(&sdk),
            latency_cell(&event),
            support::median(&mut rss_growth),
        );
    }
    println!();
    println!("  totals per round, ms:");
    for (index, mode) in modes.iter().enumerate() {
        let cells: Vec<String> = runs[index]
            .iter()
            .map(|run| format!("{:.1}", run.total.as_secs_f64() * 1e3))
            .collect();
        println!("    {:<28} {}", mode.label(), cells.join("  "));
    }
    println!();
    println!("  SDK counters (last round):");
    for (index, mode) in modes.iter().enumerate() {
        if let Some(stats) = runs[index].last().and_then(|run| run.stats.as_ref()) {
            print_stats(mode.label(), stats);
        }
    }
    println!();
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

    let (low, excess, high) = support::paired_excess(&round_totals[1], &round_totals[0]);
    println!();
    println!(
        "  target (b) within 10% of (a), paired by round: {excess:+.1}% (quartiles {low:+.1}%, \
         {high:+.1}%) -> {}",
        support::verdict(excess <= 10.0)
    );
    println!(
        "  caller p99 per event, (b) vs (a): {} ns vs {} ns ({:+.1}%)",
        p99s[1],
        p99s[0],
        (p99s[1] as f64 / p99s[0] as f64 - 1.0) * 100.0
    );
    support::print_collector_down_checks(runs[1].iter().map(|run| run.stats.as_ref()), events);
    println!();
}
