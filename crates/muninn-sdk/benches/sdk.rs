//! Per-call cost of the SDK, and of the OpenTelemetry SDK on the same workload, in one run:
//! an unsampled produced event, a sampled one (built and enqueued for export), an unsampled
//! consumed one, and W3C/B3 header injection and extraction. Ends with a table of both, their
//! ratio and the targets. Run with `cargo bench -p muninn-sdk --bench sdk`; see `BENCHMARKS.md`.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion};
use muninn_sdk::propagation::{self, Format};
use muninn_sdk::{Broker, Route, SpanContext, Tracer};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{
    Span as _, SpanKind, TraceContextExt as _, TraceFlags, TraceState, Tracer as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider, SpanData, SpanExporter,
};
use support::DiscardSink;

/// Distinct event ids cycled through (a power of two: the index is masked).
const IDS: usize = 4096;
const EVENT_TYPE: &str = "order.created";
const STREAM: &str = "orders";
const SCHEMA: &str = "order.created/v2";
/// Distinct messages cycled through by the consume benchmarks.
const CONSUMED: usize = 256;
/// The "unsampled" rate: 1 event in a million, so the event-id hash runs on every call.
const TINY_RATE: f64 = 0.000_001;
/// Before each sample of the sampled benchmark, wait (untimed) until the export queue is back
/// under this many spans, so criterion's iterations always fit in the queue.
const QUEUE_LOW_WATER: usize = 500_000;
const WARM_UP_TIME: Duration = Duration::from_secs(1);
const MEASUREMENT_TIME: Duration = Duration::from_secs(2);
/// The OpenTelemetry batch processor's queue (default 2,048): large, like the SDK's here, so
/// that it too takes every span instead of dropping the excess (a cheaper path).
const OTEL_QUEUE: usize = 1_000_000;
/// The `tracestate` of the extraction benchmarks that carry one (the W3C spec's example).
const TRACESTATE: &str = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE";
/// How long a tracer may take to send what is left when a benchmark is done with it.
const QUICK_SHUTDOWN: Duration = Duration::from_millis(200);

/// Criterion's samples of each benchmark, in the order they ran: the last `sample_size` of
/// them are the measurement (the ones before are the warm-up).
type Samples = BTreeMap<String, Vec<Sample>>;

#[derive(Clone, Copy)]
struct Sample {
    iters: u64,
    wall: Duration,
    /// Time the benchmark thread was on a CPU during the sample (less than `wall` when the
    /// thread was preempted: the machine has 2 cores, shared with the export thread).
    cpu_nanos: u64,
}

/// A benchmark's figures, in nanoseconds per call.
#[derive(Clone, Copy)]
struct Figure {
    mean: f64,
    median: f64,
    cpu: f64,
}

struct Bench {
    samples: Arc<Mutex<Samples>>,
    sample_size: usize,
    notes: Vec<String>,
}

impl Bench {
    /// Benchmarks `call(index)` (index counts the calls of one sample), timing the whole loop
    /// of a sample with one clock read at each end; `before` runs untimed before each sample.
    fn measure(
        &self,
        group: &mut BenchmarkGroup<'_, WallTime>,
        group_name: &str,
        name: &str,
        mut before: impl FnMut(),
        mut call: impl FnMut(usize),
    ) {
        let key = format!("{group_name}/{name}");
        let samples = self.samples.clone();
        group.bench_function(name, |bencher| {
            bencher.iter_custom(|iters| {
                before();
                let cpu_start = support::thread_cpu_nanos();
                let start = Instant::now();
                for index in 0..iters {
                    call(index as usize);
                }
                let wall = start.elapsed();
                let cpu_nanos = support::thread_cpu_nanos().saturating_sub(cpu_start);
                samples
                    .lock()
                    .expect("samples")
                    .entry(key.clone())
                    .or_default()
                    .push(Sample {
                        iters,
                        wall,
                        cpu_nanos,
                    });
                wall
            });
        });
    }

    /// The figures of `key` over its measurement samples.
    fn figure(&self, key: &str) -> Option<Figure> {
        let samples = self.samples.lock().expect("samples");
        let all = samples.get(key)?;
        let measured = &all[all.len().saturating_sub(self.sample_size)..];
        let iters = measured.iter().map(|sample| sample.iters).sum::<u64>() as f64;
        let wall: f64 = measured
            .iter()
            .map(|sample| sample.wall.as_nanos() as f64)
            .sum();
        let cpu = measured.iter().map(|sample| sample.cpu_nanos).sum::<u64>() as f64;
        let mut per_call: Vec<f64> = measured
            .iter()
            .map(|sample| sample.wall.as_nanos() as f64 / sample.iters as f64)
            .collect();
        per_call.sort_by(f64::total_cmp);
        let median = per_call.get(per_call.len() / 2).copied()?;
        Some(Figure {
            mean: wall / iters,
            median,
            cpu: cpu / iters,
        })
    }
}

fn event_ids() -> Vec<String> {
    let rate_ppm = muninn_model::sampling::rate_to_ppm(TINY_RATE).expect("a valid rate");
    let mut ids = Vec::with_capacity(IDS);
    while ids.len() < IDS {
        let id = muninn_sdk::new_event_id();
        // Keep only ids the tiny rate does not sample, so every call takes the unsampled path.
        if !muninn_sdk::is_sampled(id.as_bytes(), rate_ppm) {
            ids.push(id);
        }
    }
    ids
}

/// One produced event as a service records it: the span's context is used (it would go into
/// the message's headers), then the span ends. (Passing the whole span through
/// `black_box` would add a copy no caller makes.)
fn produce(route: &Route, event_id: &str) {
    let span = route.produce(black_box(event_id));
    black_box(span.context());
    span.end();
}

/// A sampled produce on a tracer whose queue takes every span criterion makes.
fn sampled_bench(
    group: &mut BenchmarkGroup<'_, WallTime>,
    bench: &mut Bench,
    ids: &[String],
    name: &str,
    collector: &str,
    sink: Option<&DiscardSink>,
) {
    let mask = IDS - 1;
    let tracer = Tracer::builder("bench-sampled")
        .collector(collector)
        .configure(|options| {
            options.default_rate = 1.0;
            options.max_queue_spans = 10_000_000;
            options.max_queue_bytes = 8 << 30;
            options.shutdown_timeout = QUICK_SHUTDOWN;
        })
        .build()
        .expect("tracer");
    let route = tracer.route(EVENT_TYPE, STREAM, Broker::Kafka);
    let waited = std::cell::Cell::new(Duration::ZERO);
    // With a live collector, let the exporter bring the queue down between samples (untimed),
    // so the queue never nears its bound; with the collector down there is nothing to wait for.
    let wait_for_queue = || {
        if sink.is_none() {
            return;
        }
        let start = Instant::now();
        while tracer.stats().queue_spans > QUEUE_LOW_WATER
            && start.elapsed() < Duration::from_secs(60)
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        waited.set(waited.get() + start.elapsed());
    };
    let before = tracer.stats();
    let (requests, bytes) = sink.map_or((0, 0), |sink| (sink.requests(), sink.bytes()));
    let started = Instant::now();
    if sink.is_none() {
        // Nothing leaves the queue: keep the run short enough for the queue to take it all.
        group
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(1));
    }
    bench.measure(group, "muninn", name, wait_for_queue, |index| {
        produce(&route, &ids[index & mask]);
    });
    group
        .warm_up_time(WARM_UP_TIME)
        .measurement_time(MEASUREMENT_TIME);
    let measured = tracer.stats();
    let mut note = format!(
        "muninn/{name}: {} spans queued, {} dropped (queue full: {}); queue peak {} MB of {} MB",
        measured.spans_queued - before.spans_queued,
        measured.spans_dropped() - before.spans_dropped(),
        measured.spans_dropped_queue_full - before.spans_dropped_queue_full,
        measured.queue_bytes_peak >> 20,
        measured.max_queue_bytes >> 20,
    );
    if let Some(sink) = sink {
        // Let the exporter catch up, to measure its throughput too.
        let deadline = Instant::now() + Duration::from_secs(60);
        while tracer.stats().queue_spans > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(300));
        let elapsed = started.elapsed();
        let exported = tracer.stats().spans_exported - before.spans_exported;
        note.push_str(&format!(
            "; {exported} exported to the discard sink in {} requests ({:.1} MB gzipped), \
             about {:.0} spans/s over {:.1} s ({:.1} s of it waiting for the queue between \
             samples)",
            sink.requests() - requests,
            (sink.bytes() - bytes) as f64 / 1e6,
            exported as f64 / elapsed.as_secs_f64(),
            elapsed.as_secs_f64(),
            waited.get().as_secs_f64(),
        ));
    }
    bench.notes.push(note);
    tracer.shutdown(Duration::from_secs(10));
}

fn muninn_benches(criterion: &mut Criterion, bench: &mut Bench, ids: &[String]) {
    let mask = IDS - 1;
    let mut group = criterion.benchmark_group("muninn");

    // Unsampled: the collector is down (closed port), so no sampling config replaces the
    // tiny default rate; each call counts the event, hashes its id, and returns a context.
    let down = support::closed_port_url();
    let unsampled_tracer = Tracer::builder("bench-unsampled")
        .collector(&down)
        .configure(|options| {
            options.default_rate = TINY_RATE;
            options.shutdown_timeout = QUICK_SHUTDOWN;
        })
        .build()
        .expect("tracer");
    let route = unsampled_tracer.route(EVENT_TYPE, STREAM, Broker::Kafka);
    bench.measure(
        &mut group,
        "muninn",
        "unsampled_produce",
        || {},
        |index| produce(&route, &ids[index & mask]),
    );
    // Unsampled consume: the headers of a produced message are read (trace context, event
    // id, type and schema), the event is counted and its id hashed.
    let messages: Vec<Vec<(String, String)>> = ids[..CONSUMED]
        .iter()
        .map(|id| {
            let mut headers = Vec::new();
            route
                .produce_with_headers(id, Some(SCHEMA), None, &mut headers)
                .end();
            headers
        })
        .collect();
    bench.measure(
        &mut group,
        "muninn",
        "unsampled_consume",
        || {},
        |index| {
            let span = route.consume(black_box(&messages[index % CONSUMED]));
            black_box(span.context());
            span.end();
        },
    );
    let stats = unsampled_tracer.stats();
    bench.notes.push(format!(
        "muninn/unsampled_produce, muninn/unsampled_consume: {} spans queued (expected 0)",
        stats.spans_queued
    ));
    unsampled_tracer.shutdown(Duration::from_secs(5));

    // Sampled: every call builds a span and enqueues it. With the discard sink, the export
    // thread encodes, gzips and posts the batches meanwhile (on the other core); with the
    // collector down, it mostly waits between failed attempts and the queue only grows.
    let sink = DiscardSink::start();
    sampled_bench(
        &mut group,
        bench,
        ids,
        "sampled_produce",
        &sink.url,
        Some(&sink),
    );
    sampled_bench(
        &mut group,
        bench,
        ids,
        "sampled_produce_collector_down",
        &down,
        None,
    );

    // Propagation, on the headers of a produced message: W3C `traceparent` and B3 `b3`.
    // Extraction borrows the event metadata (`extract_ref`, what a consume reads); the owned
    // `extract` copies it too. Each result is used by reference, as a caller reads it (moving
    // it into `black_box` would add a copy no caller makes), and so is OpenTelemetry's.
    let w3c_tracer = Tracer::builder("bench-w3c")
        .collector(&down)
        .configure(|options| options.shutdown_timeout = QUICK_SHUTDOWN)
        .build()
        .expect("tracer");
    let b3_tracer = Tracer::builder("bench-b3")
        .collector(&down)
        .configure(|options| {
            options.inject = vec![Format::B3Single];
            options.shutdown_timeout = QUICK_SHUTDOWN;
        })
        .build()
        .expect("tracer");
    for (format, tracer) in [("w3c", &w3c_tracer), ("b3", &b3_tracer)] {
        let route = tracer.route(EVENT_TYPE, STREAM, Broker::Kafka);
        let mut headers: Vec<(String, String)> = Vec::new();
        let span = route.produce_with_headers(&ids[0], Some(SCHEMA), None, &mut headers);
        let mut carrier: Vec<(String, String)> = Vec::with_capacity(4);
        bench.measure(
            &mut group,
            "muninn",
            &format!("inject_{format}"),
            || {},
            |_| {
                carrier.clear();
                span.inject(black_box(&mut carrier));
                black_box(&carrier);
            },
        );
        bench.measure(
            &mut group,
            "muninn",
            &format!("extract_{format}"),
            || {},
            |_| {
                black_box(&propagation::extract_ref(black_box(&headers)));
            },
        );
        if format == "w3c" {
            bench.measure(
                &mut group,
                "muninn",
                "extract_w3c_owned",
                || {},
                |_| {
                    black_box(&propagation::extract(black_box(&headers)));
                },
            );
            // The same message produced under a parent whose trace carries two vendors'
            // entries: `traceparent` and `tracestate` (the one part extraction copies).
            let parent = SpanContext {
                trace_state: propagation::TraceState::parse(&[TRACESTATE]),
                ..span.context().clone()
            };
            let mut headers: Vec<(String, String)> = Vec::new();
            route
                .produce_with_headers(&ids[1], Some(SCHEMA), Some(&parent), &mut headers)
                .end();
            bench.measure(
                &mut group,
                "muninn",
                "extract_w3c_tracestate",
                || {},
                |_| {
                    black_box(&propagation::extract_ref(black_box(&headers)));
                },
            );
        }
        drop(span);
    }
    group.finish();
    w3c_tracer.shutdown(Duration::from_secs(5));
    b3_tracer.shutdown(Duration::from_secs(5));
}

/// An OpenTelemetry exporter that counts the spans it is given and discards them.
#[derive(Debug, Clone, Default)]
struct DiscardExporter {
    spans: Arc<AtomicU64>,
}

impl SpanExporter for DiscardExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.spans.fetch_add(batch.len() as u64, Ordering::Relaxed);
        drop(black_box(batch));
        Ok(())
    }
}

fn otel_provider(sampler: Sampler, exporter: DiscardExporter) -> SdkTracerProvider {
    SdkTracerProvider::builder()
        .with_sampler(sampler)
        .with_span_processor(
            BatchSpanProcessor::builder(exporter)
                .with_batch_config(
                    BatchConfigBuilder::default()
                        .with_max_queue_size(OTEL_QUEUE)
                        .build(),
                )
                .build(),
        )
        .build()
}

/// One produced event, as OpenTelemetry's messaging conventions record it.
fn otel_produce(tracer: &opentelemetry_sdk::trace::SdkTracer, event_id: &str) {
    let mut span = tracer
        .span_builder("publish orders")
        .with_kind(SpanKind::Producer)
        .with_attributes([
            KeyValue::new("messaging.system", "kafka"),
            KeyValue::new("messaging.destination.name", STREAM),
            KeyValue::new("messaging.message.id", event_id.to_string()),
            KeyValue::new("cloudevents.event_type", EVENT_TYPE),
        ])
        .start(tracer);
    black_box(span.span_context());
    span.end();
}

fn otel_benches(criterion: &mut Criterion, bench: &mut Bench, ids: &[String]) {
    use opentelemetry::trace::TracerProvider as _;
    let mask = IDS - 1;
    let mut group = criterion.benchmark_group("otel");

    for (name, sampler) in [
        ("unsampled_produce", Sampler::TraceIdRatioBased(TINY_RATE)),
        ("sampled_produce", Sampler::AlwaysOn),
    ] {
        let exporter = DiscardExporter::default();
        let exported = exporter.spans.clone();
        let provider = otel_provider(sampler, exporter);
        let tracer = provider.tracer("bench");
        let calls = AtomicU64::new(0);
        bench.measure(
            &mut group,
            "otel",
            name,
            || {},
            |index| {
                otel_produce(&tracer, black_box(&ids[index & mask]));
                calls.fetch_add(1, Ordering::Relaxed);
            },
        );
        // Shutting down exports what is queued: what is missing then was dropped (or unsampled).
        let _ = provider.shutdown();
        let calls = calls.load(Ordering::Relaxed);
        let exported = exported.load(Ordering::Relaxed);
        bench.notes.push(format!(
            "otel/{name}: {calls} spans started, {exported} exported, {} not exported \
             (unsampled, or dropped by the batch processor)",
            calls.saturating_sub(exported)
        ));
    }

    // Unsampled consume: the context is extracted from a message's headers and a consumer
    // span started under it with the messaging attributes (the event id read from a header).
    let propagator = TraceContextPropagator::new();
    let messages: Vec<HashMap<String, String>> = ids[..CONSUMED]
        .iter()
        .map(|id| {
            let context =
                Context::new().with_remote_span_context(opentelemetry::trace::SpanContext::new(
                    opentelemetry::TraceId::from_bytes(fastrand::u128(1..).to_be_bytes()),
                    opentelemetry::SpanId::from_bytes(fastrand::u64(1..).to_be_bytes()),
                    TraceFlags::default(),
                    true,
                    TraceState::default(),
                ));
            let mut headers = HashMap::new();
            propagator.inject_context(&context, &mut headers);
            headers.insert("muninn-event-id".to_string(), id.clone());
            headers
        })
        .collect();
    let provider = otel_provider(
        Sampler::TraceIdRatioBased(TINY_RATE),
        DiscardExporter::default(),
    );
    let tracer = provider.tracer("bench");
    bench.measure(
        &mut group,
        "otel",
        "unsampled_consume",
        || {},
        |index| {
            let headers = black_box(&messages[index % CONSUMED]);
            let parent = propagator.extract(headers);
            let event_id = headers.get("muninn-event-id").cloned().unwrap_or_default();
            let mut span = tracer
                .span_builder("process orders")
                .with_kind(SpanKind::Consumer)
                .with_attributes([
                    KeyValue::new("messaging.system", "kafka"),
                    KeyValue::new("messaging.destination.name", STREAM),
                    KeyValue::new("messaging.message.id", event_id),
                    KeyValue::new("cloudevents.event_type", EVENT_TYPE),
                ])
                .start_with_context(&tracer, &parent);
            black_box(span.span_context());
            span.end();
        },
    );
    let _ = provider.shutdown();

    let context = Context::new().with_remote_span_context(opentelemetry::trace::SpanContext::new(
        opentelemetry::TraceId::from_bytes([0x4b; 16]),
        opentelemetry::SpanId::from_bytes([0x07; 8]),
        TraceFlags::SAMPLED,
        false,
        TraceState::default(),
    ));
    let mut carrier: HashMap<String, String> = HashMap::with_capacity(4);
    bench.measure(
        &mut group,
        "otel",
        "inject_w3c",
        || {},
        |_| {
            carrier.clear();
            propagator.inject_context(&context, black_box(&mut carrier));
            black_box(&carrier);
        },
    );
    let mut headers: HashMap<String, String> = HashMap::new();
    propagator.inject_context(&context, &mut headers);
    bench.measure(
        &mut group,
        "otel",
        "extract_w3c",
        || {},
        |_| {
            black_box(&propagator.extract(black_box(&headers)));
        },
    );
    let with_state =
        Context::new().with_remote_span_context(opentelemetry::trace::SpanContext::new(
            opentelemetry::TraceId::from_bytes([0x4b; 16]),
            opentelemetry::SpanId::from_bytes([0x07; 8]),
            TraceFlags::SAMPLED,
            false,
            TRACESTATE
                .parse::<TraceState>()
                .expect("a valid tracestate"),
        ));
    let mut headers: HashMap<String, String> = HashMap::new();
    propagator.inject_context(&with_state, &mut headers);
    bench.measure(
        &mut group,
        "otel",
        "extract_w3c_tracestate",
        || {},
        |_| {
            black_box(&propagator.extract(black_box(&headers)));
        },
    );
    group.finish();
}

/// One line of the summary: the benchmark's name, its label, the target in ns per call (of
/// the mean), and whether it is also meant to be at least 10 times cheaper than OpenTelemetry.
struct Row {
    name: &'static str,
    label: &'static str,
    target_ns: Option<f64>,
    ten_times: bool,
}

const fn row(
    name: &'static str,
    label: &'static str,
    target_ns: Option<f64>,
    ten_times: bool,
) -> Row {
    Row {
        name,
        label,
        target_ns,
        ten_times,
    }
}

fn print_summary(bench: &Bench) {
    let rows = [
        row("unsampled_produce", "unsampled produce", Some(25.0), true),
        row(
            "sampled_produce",
            "sampled produce (enqueue)",
            Some(250.0),
            true,
        ),
        row(
            "sampled_produce_collector_down",
            "sampled, collector down",
            Some(250.0),
            true,
        ),
        row("unsampled_consume", "unsampled consume", Some(60.0), false),
        row("inject_w3c", "inject W3C", None, false),
        row("inject_b3", "inject B3", None, false),
        row("extract_w3c", "extract W3C", Some(60.0), false),
        row("extract_w3c_owned", "extract W3C, owned", None, false),
        row(
            "extract_w3c_tracestate",
            "extract W3C + tracestate",
            None,
            false,
        ),
        row("extract_b3", "extract B3", None, false),
    ];
    println!();
    println!(
        "== muninn-sdk vs opentelemetry_sdk 0.33: ns per call, mean [median] of criterion's \
         samples, and on-CPU =="
    );
    println!(
        "{:<27} {:>22} {:>22} {:>9}  target",
        "", "muninn  mean [med] cpu", "otel  mean [med] cpu", "otel/mun"
    );
    let otel_sampled = bench.figure("otel/sampled_produce");
    for Row {
        name,
        label,
        target_ns,
        ten_times,
    } in rows
    {
        let muninn = bench.figure(&format!("muninn/{name}"));
        let otel = if name == "sampled_produce_collector_down" {
            otel_sampled
        } else {
            bench.figure(&format!("otel/{name}"))
        };
        if muninn.is_none() {
            continue;
        }
        let cell = |figure: Option<Figure>| match figure {
            Some(figure) => format!(
                "{:.1} [{:.1}] {:.1}",
                figure.mean, figure.median, figure.cpu
            ),
            None => "-".to_string(),
        };
        let ratio = match (muninn, otel) {
            (Some(muninn), Some(otel)) => Some(otel.mean / muninn.mean),
            _ => None,
        };
        let mut verdict = Vec::new();
        if let (Some(target), Some(figure)) = (target_ns, muninn) {
            let ok = if figure.mean <= target {
                "met"
            } else {
                "MISSED"
            };
            verdict.push(format!("<= {target:.0} ns: {ok}"));
            if let Some(ratio) = ratio.filter(|_| ten_times) {
                let ok = if ratio >= 10.0 { "met" } else { "MISSED" };
                verdict.push(format!(">= 10x: {ok}"));
            }
        }
        println!(
            "{:<27} {:>22} {:>22} {:>9}  {}",
            label,
            cell(muninn),
            cell(otel),
            ratio.map_or("-".to_string(), |ratio| format!("{ratio:.1}x")),
            if verdict.is_empty() {
                "-".to_string()
            } else {
                verdict.join(", ")
            }
        );
    }
    println!("  (the collector-down row is compared with OpenTelemetry's sampled produce)");
    println!();
    for note in &bench.notes {
        println!("  {note}");
    }
    println!();
}

fn main() {
    let sample_size = 30;
    let mut criterion = Criterion::default()
        .sample_size(sample_size)
        .warm_up_time(WARM_UP_TIME)
        .measurement_time(MEASUREMENT_TIME)
        .nresamples(10_000)
        .configure_from_args();
    let mut bench = Bench {
        samples: Arc::new(Mutex::new(BTreeMap::new())),
        sample_size,
        notes: Vec::new(),
    };
    let ids = event_ids();
    let load_before = support::load_average();
    muninn_benches(&mut criterion, &mut bench, &ids);
    otel_benches(&mut criterion, &mut bench, &ids);
    criterion.final_summary();
    if support::benchmarking() {
        bench.notes.push(format!(
            "load average before: {load_before}, after: {}",
            support::load_average()
        ));
        print_summary(&bench);
    }
}
