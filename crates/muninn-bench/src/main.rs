//! `muninn-bench`: starts a real Muninn server in this process on a fresh data directory and
//! measures it over HTTP on loopback: durable ingest throughput, bytes per span at rest, a week
//! of a fleet's counts, query latency with every span and count stored, and peak memory, each
//! printed next to its target.
//!
//! ```text
//! cargo run --release -p muninn-bench -- [--spans 10000000] [--connections 4] [--batch 1000]
//!                                        [--count-days 7] [--queries 200] [--data-dir DIR]
//! ```
//!
//! # Reference workload
//!
//! - Each event is one producer span and 1–3 consumer spans (uniformly 1, 2 or 3) in one trace:
//!   the consumers share the producer's trace id and have it as their parent; all carry the
//!   event id (a UUIDv4), event type, schema, stream, broker and message id (24 hex digits).
//! - 12 services, 8 streams (orders, payments, inventory, shipments on kafka; notifications,
//!   customers, audit, pricing on nats), 20 event types, each with a fixed stream, producer
//!   service and list of consumer services (an event goes to the first 1–3 of them).
//! - Kafka spans carry a partition (of 12) and an offset.
//! - 5 low-cardinality attributes per span: `cloud.region` (4 values), `tenant.tier` (3),
//!   `client.version` (5), `retry=false`, and `messaging.destination.partition.id` (kafka) or
//!   `messaging.nats.stream` (nats). One consumer span in 200 has status error.
//! - Producer start times are uniform over the 30 minutes before generation; consumers start
//!   2–800 ms later; durations 0.1–3 ms (producers) and 0.5–25 ms (consumers).
//! - Spans are serialized to the native JSON format of `POST /api/v1/spans` (about 560 bytes a
//!   span) and built into batches of exactly `--batch` spans before the clock starts. When the
//!   batches do not fit `--pool-mib`, the first ones are built in full and the rest are copies
//!   of 32 template batches with fresh trace, span, event and message ids and start times,
//!   made by a background thread ahead of the senders (its CPU time is printed separately).
//!   Every span is unique.
//! - With `--protocol otlp` the same events are OTLP protobuf `ExportTraceServiceRequest`s for
//!   `POST /v1/traces` (`otlp.rs`: messaging semantic conventions, 12–13 attributes a span, a
//!   four-attribute resource per service).
//!
//! # What is measured
//!
//! 1. Ingest: spans per second acknowledged with 2xx (durable in the WAL) from `--connections`
//!    connections sending one batch at a time; batches per second; batch latency p50/p99.
//! 2. At rest: after `POST /api/v1/admin/flush`, the bytes under `blocks/` (Parquet, roll-ups,
//!    metas) divided by the spans; the WAL left over and the whole data directory.
//! 3. Counts (`counts.rs`): `--count-days` days of per-minute counts of 100 services × 50 event
//!    types (300 roll-up keys, one cell per key and minute), gzip'd, then flushed; the time it
//!    took and the roll-up cells before and after.
//! 4. Queries: p50/p99/mean over `--queries` sequential requests each of lineage, producers of a
//!    random event type, throughput of a random event type over the last hour, the event-type
//!    catalog, journeys of random sampled events (hop counts are checked), compare (the last
//!    15 minutes against a day earlier), and the schemas and impact of a random event type.
//! 5. Peak RSS (`VmHWM`) of the process, which includes the client; and a server-side estimate,
//!    the largest RSS minus the request bodies the client held at that moment.
//!
//! Client and server share the machine's cores; the client is a bare hyper connection per
//! sender and its CPU time is printed next to the server's.

mod counts;
mod disk;
mod feed;
mod http;
mod ingest;
mod otlp;
mod queries;
mod report;
mod system;
mod tail;
mod ui;
mod workload;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;

use crate::feed::Protocol;
use crate::http::ClientKind;
use crate::queries::QueryKind;
use crate::report::{LatencySummary, Target, bytes, millis, seconds, thousands};
use crate::system::{CpuSnapshot, CpuSplit, RssSampler};

/// Targets (see the crate documentation).
const TARGET_SPANS_PER_SECOND: f64 = 300_000.0;
/// OTLP/HTTP protobuf (`--protocol otlp`) does more per span: protobuf and the mapping.
const TARGET_OTLP_SPANS_PER_SECOND: f64 = 250_000.0;
const TARGET_BYTES_PER_SPAN: f64 = 40.0;
const TARGET_SCALE_SPANS: usize = 10_000_000;
/// The query targets hold with this many days of the fleet's counts in the roll-ups.
const TARGET_COUNT_DAYS: u32 = 7;

/// End-to-end benchmark of a Muninn server started in this process.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Spans to ingest.
    #[arg(long, default_value_t = 10_000_000)]
    spans: usize,
    /// Concurrent ingest connections.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Spans per request.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Requests per kind of query.
    #[arg(long, default_value_t = 200)]
    queries: usize,
    /// Only these kinds of query (comma-separated), e.g. `--query-kinds compare,schemas,impact`
    /// when iterating; every kind by default.
    #[arg(long, value_enum, value_delimiter = ',')]
    query_kinds: Vec<QueryKind>,
    /// Days of per-minute counts of a fleet of 100 services × 50 event types sent before the
    /// queries (`POST /api/v1/counts`, about 430,000 counts a day); 0 skips the counts phase.
    /// At most 7, the store's retention and the oldest minute the server accepts.
    #[arg(long, default_value_t = 7)]
    count_days: u32,
    /// Data directory (must be empty or absent); a fresh temporary directory by default.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Keep the temporary data directory instead of deleting it.
    #[arg(long)]
    keep_data: bool,
    /// Memory for pre-built request bodies, in MiB; beyond it, a background thread makes the
    /// rest by patching templates.
    #[arg(long, default_value_t = 3072)]
    pool_mib: u64,
    /// Override the store's `flush_max_spans` (spans in the head before a flush).
    #[arg(long)]
    flush_max_spans: Option<usize>,
    /// HTTP client library for the senders and queries.
    #[arg(long, value_enum, default_value_t = ClientKind::Hyper)]
    client: ClientKind,
    /// Ingest as native JSON (`POST /api/v1/spans`) or as OTLP/HTTP protobuf (`POST
    /// /v1/traces`, spans with the messaging semantic conventions).
    #[arg(long, value_enum, default_value_t = Protocol::Native)]
    protocol: Protocol,
    /// Seed of the workload generator; random by default.
    #[arg(long)]
    seed: Option<u64>,
    /// Instead of the HTTP benchmark, measure the tail sampler's memory per buffered trace and
    /// per remembered decision, and its CPU per span, on `--tail-traces` traces.
    #[arg(long)]
    tail_sampling: bool,
    /// Traces for `--tail-sampling`.
    #[arg(long, default_value_t = 1_000_000)]
    tail_traces: usize,
    /// Loads of each page of the browser UI in a headless chromium after the queries (Debian's
    /// chromium and chromium-driver: `bash scripts/browser.sh`); 0 skips the UI phase.
    #[arg(long, default_value_t = 20)]
    ui_visits: usize,
}

/// The UI's time to interactive per page, p99, with 10M spans stored.
const TARGET_UI_MILLIS: u64 = 300;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.tail_sampling {
        return tail::run(args.tail_traces, args.seed.unwrap_or_else(rand::random));
    }
    if args.batch < 3 {
        bail!("--batch must be at least 3 (an event has two to four spans)");
    }
    if args.spans < 2 {
        bail!("--spans must be at least 2");
    }
    if args.connections == 0 || args.queries == 0 {
        bail!("--connections and --queries must be at least 1");
    }
    if args.count_days > 7 {
        bail!("--count-days must be at most 7 (the server refuses counts older than 7 days)");
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let seed = args.seed.unwrap_or_else(rand::random);
    let command = std::iter::once("cargo run --release -p muninn-bench --".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");

    // The data directory.
    let mut temp_dir = None;
    let data_dir = match &args.data_dir {
        Some(dir) => {
            if std::fs::read_dir(dir)
                .map(|mut entries| entries.next().is_some())
                .unwrap_or(false)
            {
                bail!(
                    "--data-dir {} is not empty; give an empty or new directory",
                    dir.display()
                );
            }
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            dir.clone()
        }
        None => {
            let dir = tempfile::Builder::new()
                .prefix("muninn-bench-")
                .tempdir()
                .context("creating a temporary data directory")?;
            let path = dir.path().to_path_buf();
            temp_dir = Some(dir);
            path
        }
    };
    let filesystem = system::filesystem_of(&data_dir).unwrap_or_else(|| "unknown".into());
    let n_cores = std::thread::available_parallelism()
        .map(|count| count.get())
        .unwrap_or(1);

    println!("muninn-bench");
    println!("command: {command}");
    println!(
        "machine: {n_cores} cores; data dir {} on {filesystem}{}",
        data_dir.display(),
        if filesystem == "tmpfs" {
            " (WARNING: fsync is free on tmpfs; durability costs are not measured)"
        } else {
            ""
        }
    );
    println!(
        "workload: {} spans in batches of {}, {} connections, {} queries per kind, client {:?}, protocol {:?}, seed {seed}",
        thousands(args.spans as u64),
        args.batch,
        args.connections,
        args.queries,
        args.client,
        args.protocol
    );

    // The server, on its own multi-threaded runtime.
    let server_runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name("muninn-server")
        .enable_all()
        .build()
        .context("building the server runtime")?;
    let mut config = muninn_server::ServerConfig::new(&data_dir, 0);
    if let Some(flush_max_spans) = args.flush_max_spans {
        config.store.flush_max_spans = flush_max_spans;
    }
    let flush_max_spans = config.store.flush_max_spans;
    let retention = config.store.retention;
    let server = server_runtime
        .block_on(muninn_server::start(config))
        .context("starting the server")?;
    let address = server.local_addr;
    println!(
        "server: {} (store flush_max_spans {}, retention {})",
        server.base_url(),
        thousands(flush_max_spans as u64),
        retention.map_or("none".to_string(), |retention| format!(
            "{:.1} days",
            retention.as_secs_f64() / 86_400.0
        ))
    );

    // Phase 1: generation (not timed as part of ingest).
    println!();
    println!("== generation");
    let generation_started = Instant::now();
    let prepared = feed::prepare(
        args.protocol,
        args.spans,
        args.batch,
        args.pool_mib << 20,
        seed,
    )?;
    let generation_elapsed = generation_started.elapsed();
    let n_generated_later = prepared.n_batches - prepared.n_pool_batches;
    println!("generation time: {}", seconds(generation_elapsed));
    println!(
        "pre-built batches: {} of {} ({} of request bodies, {:.0} bytes/span)",
        thousands(prepared.n_pool_batches as u64),
        thousands(prepared.n_batches as u64),
        bytes(prepared.pool_bytes),
        prepared.mean_span_bytes
    );
    if n_generated_later > 0 {
        println!(
            "batches patched from templates by a background thread during ingest: {} (the pool would exceed --pool-mib {})",
            thousands(n_generated_later as u64),
            args.pool_mib
        );
    }
    let sampler = RssSampler::start(prepared.feed.held_bytes.clone())?;

    // Phase 2: ingest, on a single-threaded client runtime on the main thread.
    let client_runtime = tokio::runtime::Builder::new_current_thread()
        .thread_name("bench-client")
        .enable_all()
        .build()
        .context("building the client runtime")?;
    println!();
    println!("== ingest");
    let generator_ticks_before = prepared
        .generator
        .as_ref()
        .map(|generator| generator.cpu_ticks.load(Ordering::Relaxed));
    let cpu_before = CpuSnapshot::take();
    let status = {
        let store = server.store.clone();
        let held_bytes = prepared.feed.held_bytes.clone();
        move || {
            let stats = store.stats();
            format!(
                "RSS {} (client bodies {}), head {} spans, being flushed {} spans, {} blocks",
                bytes(system::rss_bytes()),
                bytes(held_bytes.load(Ordering::Relaxed)),
                thousands(stats.head_spans),
                thousands(stats.flushing_spans),
                stats.n_blocks
            )
        }
    };
    let ingest = client_runtime.block_on(ingest::run(
        args.client,
        ingest::Upload::Spans(args.protocol),
        address,
        prepared.feed.clone(),
        args.connections,
        args.spans as u64,
        status,
    ));
    let cpu_after = CpuSnapshot::take();
    let mut samples = prepared.samples;
    let mut generator_ticks = 0;
    if let Some(generator) = prepared.generator {
        let ticks_before = generator_ticks_before.unwrap_or_default();
        let cpu_ticks = generator.cpu_ticks.clone();
        samples.extend(generator.join()?);
        generator_ticks = cpu_ticks
            .load(Ordering::Relaxed)
            .saturating_sub(ticks_before);
    }
    let ingest_cpu = CpuSplit::between(&cpu_before, &cpu_after, generator_ticks);
    let stats_after_ingest = server.store.stats();
    println!(
        "ingest throughput: {:.0} spans/s (acknowledged 2xx, durable in the WAL)",
        ingest.records_per_second()
    );
    println!(
        "ingest batches: {:.1} batches/s",
        ingest.batches_per_second()
    );
    println!("ingest batch latency: {}", ingest.latency.describe());
    println!("ingest time: {}", seconds(ingest.elapsed));
    println!(
        "spans acknowledged: {} of {} sent; batches failed: {}; spans rejected: {}",
        thousands(ingest.n_records_acked),
        thousands(ingest.n_records_sent),
        ingest.n_batches_failed,
        ingest.n_rejected
    );
    if let Some(problem) = &ingest.first_problem {
        println!("first ingest problem: {problem}");
    }
    println!("ingest CPU: {}", ingest_cpu.describe(ingest.elapsed));
    println!(
        "server CPU per span: {:.2} µs",
        ingest_cpu.server * 1e6 / ingest.n_records_acked.max(1) as f64
    );
    println!(
        "store after ingest: {} blocks flushed in the background, {} spans in the head, {} being flushed, WAL {}",
        stats_after_ingest.n_blocks,
        thousands(stats_after_ingest.head_spans),
        thousands(stats_after_ingest.flushing_spans),
        bytes(stats_after_ingest.wal_bytes)
    );

    // Phase 3: flush and size at rest.
    println!();
    println!("== at rest");
    let flush_started = Instant::now();
    let flushed = client_runtime.block_on(ingest::flush(args.client, address))?;
    let flush_elapsed = flush_started.elapsed();
    let backlog_spans = stats_after_ingest.head_spans + stats_after_ingest.flushing_spans;
    println!(
        "flush time: {} ({} blocks, {} spans written by this flush{})",
        seconds(flush_elapsed),
        flushed.blocks_written,
        thousands(flushed.spans_written),
        if stats_after_ingest.flushing_spans > 0 {
            ", after waiting for the background flush in progress"
        } else {
            ""
        }
    );
    let sustained_spans_per_second =
        ingest.n_records_acked as f64 / (ingest.elapsed + flush_elapsed).as_secs_f64().max(1e-9);
    println!(
        "ingest including the flush backlog: {sustained_spans_per_second:.0} spans/s (spans / (ingest + flush time); {} spans were not yet in blocks when ingest ended)",
        thousands(backlog_spans)
    );
    let blocks = disk::dir_sizes(&data_dir.join("blocks"))?;
    let wal = disk::dir_sizes(&data_dir.join("wal"))?;
    let whole = disk::dir_sizes(&data_dir)?;
    let n_stored = ingest.n_records_acked.max(1);
    let bytes_per_span = blocks.total as f64 / n_stored as f64;
    let stats_after_flush = server.store.stats();
    println!(
        "bytes on disk per span: {bytes_per_span:.1} B/span ({} under blocks/ for {} spans)",
        bytes(blocks.total),
        thousands(ingest.n_records_acked)
    );
    println!(
        "blocks/: {} blocks, {} Parquet files {} ({:.1} B/span), rollup.json {} ({:.2} B/span), meta.json {}",
        stats_after_flush.n_blocks,
        blocks.n_parquet_files,
        bytes(blocks.parquet),
        blocks.parquet as f64 / n_stored as f64,
        bytes(blocks.rollup),
        blocks.rollup as f64 / n_stored as f64,
        bytes(blocks.meta)
    );
    println!("WAL remaining after flush: {}", bytes(wal.total));
    println!("data dir total: {}", bytes(whole.total));
    let breakdown = disk::parquet_breakdown(&blocks.parquet_paths)?;
    println!(
        "Parquet bytes per span by column ({} row groups):",
        breakdown.n_row_groups
    );
    let mut columns: Vec<(&String, &u64)> = breakdown.columns.iter().collect();
    columns.sort_by(|left, right| right.1.cmp(left.1));
    for (column, column_bytes) in columns {
        println!(
            "  {column:<16} {:>7.2} B/span",
            *column_bytes as f64 / n_stored as f64
        );
    }
    println!(
        "  {:<16} {:>7.2} B/span",
        "(bloom filters)",
        breakdown.bloom_filters as f64 / n_stored as f64
    );
    println!(
        "  {:<16} {:>7.2} B/span",
        "(page indexes)",
        breakdown.page_indexes as f64 / n_stored as f64
    );
    println!(
        "  {:<16} {:>7.2} B/span",
        "(footers, rest)",
        breakdown.rest as f64 / n_stored as f64
    );

    // Phase 4: counts of a fleet over the retention, so the queries see a week of roll-ups.
    let counts = if args.count_days > 0 {
        println!();
        println!("== counts ({} days)", args.count_days);
        let store = server.store.clone();
        Some(counts::run(
            &client_runtime,
            args.client,
            address,
            args.connections,
            args.count_days,
            seed,
            &data_dir,
            move || store.stats().rollup_cells,
        )?)
    } else {
        None
    };

    // Phase 5: queries.
    println!();
    println!(
        "== queries ({} spans stored, {} journeys sampled)",
        thousands(ingest.n_records_acked),
        thousands(samples.len() as u64)
    );
    let queries_started = Instant::now();
    let cpu_before_queries = CpuSnapshot::take();
    let query_kinds = if args.query_kinds.is_empty() {
        QueryKind::ALL.to_vec()
    } else {
        args.query_kinds.clone()
    };
    let query_outcomes = client_runtime.block_on(queries::run(
        args.client,
        address,
        &query_kinds,
        args.queries,
        &samples,
        seed,
    ))?;
    let queries_elapsed = queries_started.elapsed();
    let query_cpu = CpuSplit::between(&cpu_before_queries, &CpuSnapshot::take(), 0);
    for outcome in &query_outcomes {
        println!(
            "{}: {}; answer {} mean; slowest: request {}",
            outcome.kind.route(),
            outcome.latency.describe(),
            bytes(outcome.mean_answer_bytes),
            outcome.slowest_request
        );
        if outcome.kind.remembers_per_type() {
            println!(
                "  first request of each type: {}; later requests: {}",
                outcome.first_per_type.describe(),
                outcome.repeated_types.describe()
            );
        }
        if outcome.n_failed > 0 {
            println!(
                "  failures: {} ({} journeys with the wrong hop count)",
                outcome.n_failed, outcome.n_mismatched
            );
            for problem in &outcome.problems {
                println!("  - {problem}");
            }
        }
    }
    println!("query time: {}", seconds(queries_elapsed));
    println!("query CPU: {}", query_cpu.describe(queries_elapsed));

    // Phase 6: the browser UI.
    let ui_times = if args.ui_visits > 0 {
        println!();
        println!(
            "== UI (headless chromium, 1280×800, {} loads of each page; time from navigation to the page drawn)",
            args.ui_visits
        );
        let base_url = format!("http://{address}");
        let times = client_runtime.block_on(ui::run(&base_url, &samples, args.ui_visits))?;
        for page in &times {
            println!(
                "page {} (e.g. {}): {}",
                page.page,
                page.example,
                page.times.describe()
            );
        }
        times
    } else {
        Vec::new()
    };

    // Memory, then stop the server.
    let max_server_estimate = sampler.finish();
    let peak_rss = system::peak_rss_bytes();
    println!();
    println!("== memory");
    println!(
        "peak RSS (VmHWM, includes the client and its request bodies): {}",
        bytes(peak_rss)
    );
    println!(
        "server-side peak RSS estimate (RSS minus request bodies held by the client, sampled every 100 ms): {}",
        bytes(max_server_estimate)
    );
    let stop_started = Instant::now();
    server_runtime.block_on(server.stop());
    let stop_elapsed = stop_started.elapsed();

    // Targets and summary.
    let at_scale = args.spans >= TARGET_SCALE_SPANS;
    let scale_note = (!at_scale).then(|| {
        format!(
            "targets are set at {} spans",
            thousands(TARGET_SCALE_SPANS as u64)
        )
    });
    // Every query but the journey reads the roll-ups, which the counts fill.
    let query_scale_note = (!at_scale || args.count_days < TARGET_COUNT_DAYS).then(|| {
        format!(
            "targets are set at {} spans and {TARGET_COUNT_DAYS} days of counts",
            thousands(TARGET_SCALE_SPANS as u64)
        )
    });
    let latency_of = |kind: QueryKind| -> LatencySummary {
        query_outcomes
            .iter()
            .find(|outcome| outcome.kind == kind)
            .map(|outcome| outcome.latency)
            .unwrap_or_default()
    };
    let target_spans_per_second = match args.protocol {
        Protocol::Native => TARGET_SPANS_PER_SECOND,
        Protocol::Otlp => TARGET_OTLP_SPANS_PER_SECOND,
    };
    let mut targets = vec![
        Target {
            name: format!("ingest, durable ({:?})", args.protocol).to_lowercase(),
            measured: format!("{:.0} spans/s", ingest.records_per_second()),
            goal: format!(">= {target_spans_per_second:.0} spans/s"),
            met: ingest.records_per_second() >= target_spans_per_second
                && ingest.n_batches_failed == 0,
            note: (ingest.n_batches_failed > 0)
                .then(|| format!("{} batches failed", ingest.n_batches_failed)),
        },
        Target {
            name: "size at rest".into(),
            measured: format!("{bytes_per_span:.1} B/span"),
            goal: format!("<= {TARGET_BYTES_PER_SPAN:.0} B/span"),
            met: bytes_per_span <= TARGET_BYTES_PER_SPAN,
            note: scale_note.clone(),
        },
    ];
    for outcome in &query_outcomes {
        let target = outcome.kind.p99_target();
        let mut notes: Vec<String> = query_scale_note.iter().cloned().collect();
        if outcome.n_failed > 0 {
            notes.push(format!(
                "{} failed, {} wrong hop counts",
                outcome.n_failed, outcome.n_mismatched
            ));
        }
        targets.push(Target {
            name: format!("{} p99", outcome.kind.route()),
            measured: millis(latency_of(outcome.kind).p99),
            goal: format!("<= {}", millis(target)),
            met: outcome.latency.p99 <= target && outcome.n_failed == 0,
            note: (!notes.is_empty()).then(|| notes.join("; ")),
        });
    }

    for page in &ui_times {
        let target = Duration::from_millis(TARGET_UI_MILLIS);
        targets.push(Target {
            name: format!("UI page {} time to interactive p99", page.page),
            measured: millis(page.times.p99),
            goal: format!("<= {}", millis(target)),
            met: page.times.p99 <= target,
            note: scale_note.clone(),
        });
    }

    println!();
    println!("== targets");
    for target in &targets {
        println!("{}", target.line());
    }

    println!();
    println!("==== muninn-bench summary ====");
    println!("command: {command}");
    println!(
        "machine: {n_cores} cores, data dir on {filesystem}, client {:?} in the same process",
        args.client
    );
    println!(
        "workload: {} spans acknowledged of {} ({} batches of {}, {} connections), {:.0} B/span of {}",
        thousands(ingest.n_records_acked),
        thousands(args.spans as u64),
        thousands(prepared.n_batches as u64),
        args.batch,
        args.connections,
        prepared.mean_span_bytes,
        match args.protocol {
            Protocol::Native => "native JSON",
            Protocol::Otlp => "OTLP protobuf",
        }
    );
    println!(
        "ingest: {:.0} spans/s, {:.1} batches/s, batch latency p50 {} p99 {}; server CPU {:.2} µs/span",
        ingest.records_per_second(),
        ingest.batches_per_second(),
        millis(ingest.latency.p50),
        millis(ingest.latency.p99),
        ingest_cpu.server * 1e6 / ingest.n_records_acked.max(1) as f64
    );
    println!(
        "ingest including the flush backlog: {sustained_spans_per_second:.0} spans/s ({} spans not yet in blocks when ingest ended)",
        thousands(backlog_spans)
    );
    println!(
        "at rest: {bytes_per_span:.1} B/span under blocks/ ({}); WAL after flush {}; data dir {}",
        bytes(blocks.total),
        bytes(wal.total),
        bytes(whole.total)
    );
    match &counts {
        Some(counts) => println!(
            "counts: {} days, {} minutes × {} keys = {} counts in {} ({:.0} counts/s, {} failed requests, {} rejected), flushed in {} ({} blocks, rollup.json +{}); roll-up cells {} → {}",
            args.count_days,
            thousands(counts.n_minutes as u64),
            counts.n_keys,
            thousands(counts.n_counts),
            seconds(counts.ingest.elapsed),
            counts.ingest.records_per_second(),
            counts.ingest.n_batches_failed,
            counts.ingest.n_rejected,
            seconds(counts.flush_elapsed),
            counts.blocks_written,
            bytes(counts.rollup_bytes_added),
            thousands(counts.cells_before),
            thousands(counts.cells_after)
        ),
        None => println!("counts: skipped (--count-days 0)"),
    }
    for outcome in &query_outcomes {
        println!(
            "query {}: {}",
            outcome.kind.route(),
            outcome.latency.describe()
        );
    }
    println!(
        "peak RSS: {} (whole process incl. client); server-side estimate {}",
        bytes(peak_rss),
        bytes(max_server_estimate)
    );
    println!(
        "phases: generation {}, ingest {}, flush {}, counts {} + flush {}, queries {}, stop {}",
        seconds(generation_elapsed),
        seconds(ingest.elapsed),
        seconds(flush_elapsed),
        seconds(
            counts
                .as_ref()
                .map(|counts| counts.ingest.elapsed)
                .unwrap_or_default()
        ),
        seconds(
            counts
                .as_ref()
                .map(|counts| counts.flush_elapsed)
                .unwrap_or_default()
        ),
        seconds(queries_elapsed),
        seconds(stop_elapsed)
    );
    for target in &targets {
        println!("{}", target.line());
    }

    if let Some(dir) = temp_dir
        && args.keep_data
    {
        println!("data kept in {}", dir.keep().display());
    }
    Ok(())
}
