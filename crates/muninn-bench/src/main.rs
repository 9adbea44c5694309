//! `muninn-bench`: starts a real Muninn server in this process on a fresh data directory and
//! measures it over HTTP on loopback: durable ingest throughput, bytes per span at rest (by
//! column, and against the entropy floor of the workload), a week of a fleet's counts, query
//! latency with every span and count stored, and peak memory, each printed next to its target.
//!
//! ```text
//! cargo run --release -p muninn-bench -- [--spans 10000000] [--connections 4] [--batch 1000]
//!                                        [--workload reference|random] [--protocol native|otlp]
//!                                        [--body-encoding gzip|identity] [--count-days 7]
//!                                        [--queries 200] [--data-dir DIR]
//! ```
//!
//! # Reference workload (`--workload reference`, the default)
//!
//! - Each event is one producer span and 1–3 consumer spans (uniformly 1, 2 or 3) in one trace:
//!   the consumers share the producer's trace id and have it as their parent; all carry the
//!   event id (a UUIDv4), event type, schema, stream, broker and message id (24 hex digits).
//!   Trace and span ids are random with their last bit set (127 and 63 random bits).
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
//!   batches do not fit `--pool-mib` (as sent, so gzip'd by default), the first ones are built
//!   in full and the rest are copies of 32 template batches with fresh trace, span, event and
//!   message ids and start times, made (and gzip'd) by a background thread ahead of the
//!   senders (its CPU time is printed separately). Every span is unique. At most 10,000
//!   events, spread evenly over the run, are remembered for the journey queries, so the
//!   client's memory does not grow with `--spans`.
//! - With `--protocol otlp` the same events are OTLP protobuf `ExportTraceServiceRequest`s for
//!   `POST /v1/traces` (`otlp.rs`: messaging semantic conventions, 12–13 attributes a span, a
//!   four-attribute resource per service).
//! - The reference workload's bytes do not change (`golden.rs`), so its figures compare across
//!   versions of the benchmark.
//!
//! # Random workload (`--workload random`)
//!
//! Ids as real fleets make them: each event is one producer span and uniformly 0–5 consumer
//! spans (a lone producer is a journey of one hop); trace ids are 16 and span ids 8 uniformly
//! random bytes, event ids UUIDv4. Each consumer span is, with probability 1/4, in a new trace
//! of its own (a fresh trace id, no parent) with a span link to the producer span (its trace
//! and span id: `links` in native JSON, `Span.links` in OTLP); otherwise in the producer's trace
//! with the producer as parent. Consumer spans 4 and 5 go to the event type's first and second
//! consumer service again (a redelivery). Everything else is drawn as in the reference
//! workload. A journey must have as many traces as the event has: the producer's and one per
//! consumer in a new trace.
//!
//! # Request bodies (`--body-encoding gzip|identity`)
//!
//! Gzip'd by default, as the SDK sends them (flate2 at the SDK's `GZIP_LEVEL`,
//! `Content-Encoding: gzip`): compressed before the clock starts, or by the background
//! generator for template copies. The mean body and bytes per span as sent are printed.
//!
//! # Entropy floor
//!
//! The information in a run's spans that no lossless format can store in fewer bytes, from the
//! generator's parameters (`entropy.rs`), in expected bits per event divided by the expected
//! spans per event (E(c) consumers: 2 in the reference workload, 2.5 in the random one; the
//! trimming of each batch's last event is left out):
//!
//! - trace ids: 128 bits per distinct trace (127 in the reference workload), that is per event
//!   1 + E(c)/4 traces (random) or 1 (reference); span ids 64 bits per span (63);
//! - parent span ids and links: 0 bits (the trace structure determines them); offsets: 0 bits
//!   (a function of the batch and the event's place in it);
//! - event ids 122 bits (UUIDv4) and message ids 95 bits (12 random bytes, last bit set) per
//!   event;
//! - producer start: log2(window in ns); each consumer: log2 of its lag range and of its
//!   duration range in ns; the producer: log2 of its duration range;
//! - choices: log2 20 (event type), log2 of the number of consumer counts (3 or 6), E(c) ×
//!   H(1/4) (new trace or not, random only), (13/20) × log2 12 (partition, kafka event types),
//!   log2 3 (tenant tier), per span log2 4 and log2 5 (region, client version), and E(c) ×
//!   H(1/200) (status), where H(p) = −p log2 p − (1−p) log2(1−p).
//!
//! A template copy draws only its ids and producer start anew; its lags, durations and choices
//! repeat the template's, so its spans count for ids and starts only, and the floor of a run is
//! the mean over fresh and copied spans. Printed as `entropy floor: X B/span; at rest Y B/span
//! (Y/X ×)`, with the bits per span of each term. That is the floor of the spans as a sequence;
//! a store keeps a set, whose order it need not keep (sorting by trace id does exactly that to
//! the trace id column), so the floor of the set, X less log2(N!)/N bits (≈ log2 N − 1.44) a
//! span for N spans, is printed beside it.
//!
//! # What is measured
//!
//! 1. Ingest: spans per second acknowledged with 2xx (durable in the WAL) from `--connections`
//!    connections sending one batch at a time; batches per second; batch latency p50/p99. The
//!    store flushes its head in the background (when it is full) on the server's runtime, so the flushes that happen while the senders run are inside the timed window and
//!    in the server's CPU; what is left in memory when the senders finish is flushed by `POST
//!    /api/v1/admin/flush`, and the figures "including the flush backlog" count that flush too
//!    (spans/s over ingest + flush time, server CPU per span over both).
//! 2. At rest: after the flush, the bytes under `blocks/` (Parquet, roll-ups, metas) divided by
//!    the spans; the WAL left over and the whole data directory; every `spans.parquet` below
//!    `blocks/`, whatever the format version's directory, broken down from its footer by column
//!    (leaf path: bytes, bytes per span, share), bloom filters, page indexes, footers and the
//!    rest (`columns.rs`); and the entropy floor.
//! 3. Counts (`counts.rs`): `--count-days` days of per-minute counts of 100 services × 50 event
//!    types (300 roll-up keys, one cell per key and minute), gzip'd, then flushed; the time it
//!    took and the roll-up cells before and after.
//! 4. Queries: p50/p99/mean over `--queries` sequential requests each of lineage, producers of a
//!    random event type, throughput of a random event type over the last hour, the event-type
//!    catalog, journeys of random sampled events (hop and trace counts are checked), compare
//!    (the last 15 minutes against a day earlier), and the schemas and impact of a random event
//!    type.
//! 5. Peak RSS (`VmHWM`) of the process, which includes the client; and a server-side estimate,
//!    the largest RSS minus the request bodies the client held at that moment.
//!
//! Client and server share the machine's cores; the client is a bare hyper connection per
//! sender and its CPU time is printed next to the server's.

mod args;
mod at_rest;
mod columns;
mod compact;
mod counts;
mod disk;
mod entropy;
mod feed;
#[cfg(test)]
mod golden;
mod http;
mod ingest;
mod native;
mod otlp;
mod queries;
mod replay;
mod report;
mod restart;
mod storage;
mod system;
mod tail;
mod targets;
mod ui;
mod workload;

use std::sync::atomic::Ordering;
use std::time::Instant;

/// jemalloc, not glibc's allocator: under ingest glibc kept freed memory in its per-thread
/// arenas (9.5 GiB resident at 100M spans against a 1 GiB memory bound); jemalloc hands it
/// back to the system within seconds.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use anyhow::{Context, bail};
use clap::Parser;

use crate::args::Args;

use crate::entropy::EntropyFloor;
use crate::feed::{BodyEncoding, FeedSpec, Protocol};
use crate::queries::QueryKind;
use crate::report::{bytes, millis, seconds, thousands};
use crate::system::{CpuSnapshot, CpuSplit, RssSampler};

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.tail_sampling {
        return tail::run(args.tail_traces, args.seed.unwrap_or_else(rand::random));
    }
    if args.batch < 3 {
        bail!(
            "--batch must be at least 3 (an event of the reference workload has two to four spans)"
        );
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
        "workload: {:?}, {} spans in batches of {}, {} connections, {} queries per kind, client {:?}, protocol {:?}, body encoding {:?}, seed {seed}",
        args.workload,
        thousands(args.spans as u64),
        args.batch,
        args.connections,
        args.queries,
        args.client,
        args.protocol,
        args.body_encoding
    );

    // The server, on its own multi-threaded runtime.
    let server_runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name("muninn-server")
        .enable_all()
        .build()
        .context("building the server runtime")?;
    let mut config = muninn_server::ServerConfig::new(&data_dir, 0);
    config.store.release_memory = Some(muninn_server::allocator::release_freed_pages);
    if let Some(flush_max_spans) = args.flush_max_spans {
        config.store.flush_max_spans = flush_max_spans;
    }
    if let Some(mib) = args.memory_limit_mib {
        config.store.memory_limit_bytes = mib << 20;
    }
    config.store.block.format_version = args.block_format;
    config.store.blocks = storage::blocks(args.storage.as_deref(), args.storage_cache_mib)?;
    let config_blocks = config.store.blocks.clone();
    if let Some(page_rows) = args.page_rows {
        config.store.block.page_rows = page_rows as usize;
    }
    config.store.compaction.enabled = !args.no_compaction;
    if let Some(large_block_spans) = args.large_block_spans {
        config.store.compaction.large_block_spans = large_block_spans;
    }
    if args.auth {
        use muninn_server::auth::{ApiToken, AuthConfig, Scope, new_token};
        let token = new_token();
        config.auth = Some(AuthConfig::new(vec![ApiToken::for_token(
            "bench",
            &token,
            &Scope::ALL,
        )]));
        http::send_token(&token)?;
    }
    // Nothing reads a block while the bench compacts: replaced blocks go at once, so that the
    // at-rest figures count what stays.
    config.store.compaction.delete_grace = std::time::Duration::ZERO;
    let flush_max_spans = config.store.flush_max_spans;
    let page_rows = config.store.block.page_rows;
    let left_alone = config.store.compaction.large_block_spans;
    let config_memory_limit_bytes = config.store.memory_limit_bytes;
    let retention = config.store.retention;
    let restart_config = config.clone();
    let server = server_runtime
        .block_on(muninn_server::start(config))
        .context("starting the server")?;
    let address = server.local_addr;
    println!(
        "server: {} (store flush_max_spans {}, memory limit {}, block format {}, {} rows a page, compaction {}, retention {}, auth {})",
        server.base_url(),
        thousands(flush_max_spans as u64),
        bytes(config_memory_limit_bytes),
        args.block_format,
        thousands(page_rows as u64),
        if args.no_compaction || args.block_format == 1 {
            "off".to_string()
        } else {
            format!("on (blocks of {} spans left alone)", thousands(left_alone))
        },
        retention.map_or("none".to_string(), |retention| format!(
            "{:.1} days",
            retention.as_secs_f64() / 86_400.0
        )),
        if args.auth {
            "on: a bearer token checked on every request"
        } else {
            "off"
        }
    );

    // Phase 1: generation (not timed as part of ingest).
    println!();
    println!("== generation");
    let generation_started = Instant::now();
    let prepared = feed::prepare(FeedSpec {
        protocol: args.protocol,
        workload: args.workload,
        encoding: args.body_encoding,
        n_spans: args.spans,
        batch: args.batch,
        pool_budget_bytes: args.pool_mib << 20,
        seed,
    })?;
    let generation_elapsed = generation_started.elapsed();
    let n_generated_later = prepared.n_batches - prepared.n_pool_batches;
    println!("generation time: {}", seconds(generation_elapsed));
    println!(
        "pre-built batches: {} of {} ({} of request bodies, mean body {} {}, {:.0} B/span as sent; {:.0} B/span of {} before encoding)",
        thousands(prepared.n_pool_batches as u64),
        thousands(prepared.n_batches as u64),
        bytes(prepared.pool_bytes),
        bytes(prepared.pool_bytes / prepared.n_pool_batches.max(1) as u64),
        args.body_encoding.describe(),
        prepared.pool_bytes as f64 / prepared.n_pool_spans.max(1) as f64,
        prepared.mean_span_bytes,
        args.protocol.describe()
    );
    if n_generated_later > 0 {
        println!(
            "batches patched from templates by a background thread during ingest: {} (the pool would exceed --pool-mib {})",
            thousands(n_generated_later as u64),
            args.pool_mib
        );
    }
    if args.protocol == Protocol::Native {
        let bodies = prepared.feed.first_bodies(100);
        let gzip = args.body_encoding == BodyEncoding::Gzip;
        let memory = system::decoded_span_memory(&bodies, gzip)?;
        anyhow::ensure!(!bodies.is_empty(), "no body in the pool");
        let n_spans = memory.n_spans.max(1) as f64;
        println!(
            "decoded spans in memory ({} spans of the first bodies): {:.0} B/span as spans (Span::memory_bytes), {:.0} B/span allocated; {:.0} B/span in the head, as its columns, counted by the store's memory bound",
            thousands(memory.n_spans),
            memory.counted as f64 / n_spans,
            memory.allocated as f64 / n_spans,
            memory.in_head as f64 / n_spans,
        );
        if let Some(n_spans) = args.replay_spans {
            replay::run(&bodies, gzip, n_spans)?;
        }
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
            let (allocated, active, resident) = system::allocator_pages();
            format!(
                "RSS {} (client bodies {}; allocated {}, active {}, allocator resident {}), head {} spans, \
                 being flushed {} spans ({} together), {} blocks (in memory: footers {}, filters of \
                 trace ids {}, event ids {}, links {})",
                bytes(system::rss_bytes()),
                bytes(held_bytes.load(Ordering::Relaxed)),
                bytes(allocated),
                bytes(active),
                bytes(resident),
                thousands(stats.head_spans),
                thousands(stats.flushing_spans),
                bytes(stats.unflushed_bytes),
                stats.n_blocks,
                bytes(stats.block_index.footer),
                bytes(stats.block_index.trace_id_filters),
                bytes(stats.block_index.event_id_filters),
                bytes(stats.block_index.link_filters),
            )
        }
    };
    let ingest = client_runtime.block_on(ingest::run(
        args.client,
        ingest::Upload::Spans(args.protocol, args.body_encoding),
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
    let sent_bytes = prepared.feed.handed_out_bytes.load(Ordering::Relaxed);
    let n_batches_sent = ingest.n_batches_ok + ingest.n_batches_failed;
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
        "server CPU per span: {:.2} µs (with the background flushes during ingest)",
        ingest_cpu.server * 1e6 / ingest.n_records_acked.max(1) as f64
    );
    println!(
        "request bodies sent: {} {}, mean body {}, {:.0} B/span",
        bytes(sent_bytes),
        args.body_encoding.describe(),
        bytes(sent_bytes / n_batches_sent.max(1)),
        sent_bytes as f64 / ingest.n_records_sent.max(1) as f64
    );
    println!(
        "store after ingest: {} blocks flushed in the background (during the timed window, on the server's runtime), {} spans in the head, {} being flushed, WAL {}",
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
    let cpu_after_flush = CpuSnapshot::take();
    let ingest_and_flush_cpu = CpuSplit::between(&cpu_before, &cpu_after_flush, generator_ticks);
    let server_micros_per_span_with_flush =
        ingest_and_flush_cpu.server * 1e6 / ingest.n_records_acked.max(1) as f64;
    println!(
        "server CPU per span including the flush backlog: {server_micros_per_span_with_flush:.2} µs (server CPU over ingest + flush)"
    );
    if !args.no_compaction {
        let compacted = compact::run(&server_runtime, &server.store)?;
        let with_compaction = (ingest_and_flush_cpu.server + compacted.server_cpu) * 1e6
            / ingest.n_records_acked.max(1) as f64;
        println!(
            "server CPU per span including flushes and compaction: {with_compaction:.2} µs (ingest + flush + the compaction rounds after it, {} of {} spans merged after the flush, in {})",
            thousands(compacted.report.n_spans),
            thousands(ingest.n_records_acked),
            seconds(compacted.elapsed)
        );
    }
    let totals = server.store.stats();
    println!(
        "compaction over the whole run (background and after the flush): {} compactions wrote {} spans, {:.2}× the spans ingested (each span is written once by its flush besides), {}",
        thousands(totals.compactions),
        thousands(totals.compaction_spans),
        totals.compaction_spans as f64 / ingest.n_records_acked.max(1) as f64,
        bytes(totals.compaction_bytes)
    );
    let copy_share = prepared.n_template_copy_spans as f64 / args.spans.max(1) as f64;
    let stats = server.store.stats();
    let blocks_dir = storage::blocks_dir(config_blocks.as_ref(), &data_dir);
    let at_rest = at_rest::measure(
        &data_dir,
        &blocks_dir,
        ingest.n_records_acked,
        (stats.n_blocks, stats.block_bytes),
        EntropyFloor::of(args.workload, copy_share, ingest.n_records_acked),
    )?;
    let bytes_per_span = at_rest.bytes_per_span;

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
    let tiers_before_queries = server.store.stats().tiers;
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
                "  failures: {} ({} journeys with the wrong hop or trace count)",
                outcome.n_failed, outcome.n_mismatched
            );
            for problem in &outcome.problems {
                println!("  - {problem}");
            }
        }
    }
    println!("query time: {}", seconds(queries_elapsed));
    println!("query CPU: {}", query_cpu.describe(queries_elapsed));
    if let (Some(before), Some(after)) = (tiers_before_queries, server.store.stats().tiers) {
        storage::print_query_reads(&before, &after, (query_kinds.len() * args.queries) as u64);
    }

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
    let (max_server_estimate, max_at) = sampler.finish();
    let peak_rss = system::peak_rss_bytes();
    println!();
    println!("== memory");
    println!(
        "peak RSS (VmHWM, includes the client and its request bodies): {}",
        bytes(peak_rss)
    );
    println!(
        "server-side peak RSS estimate (RSS minus request bodies held by the client, sampled every 100 ms): {}, {} after ingest began (ingest took {})",
        bytes(max_server_estimate),
        seconds(max_at),
        seconds(ingest.elapsed)
    );
    let stop_started = Instant::now();
    server_runtime.block_on(server.stop());
    let stop_elapsed = stop_started.elapsed();
    let restart = restart::run(
        &server_runtime,
        &client_runtime,
        restart_config,
        args.client,
    )?;
    println!("{}", restart.line());

    // Targets and summary.
    let targets = targets::held_against_targets(&targets::Figures {
        protocol: args.protocol,
        n_spans: args.spans,
        count_days: args.count_days,
        ingest: &ingest,
        bytes_per_span,
        query_outcomes: &query_outcomes,
        ui_times: &ui_times,
        peak_server_rss_bytes: max_server_estimate,
        memory_limit_bytes: config_memory_limit_bytes,
    });

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
        "workload: {:?}, {} spans acknowledged of {} ({} batches of {}, {} connections), {:.0} B/span of {}, body encoding {:?}: mean body {} as sent ({:.0} B/span)",
        args.workload,
        thousands(ingest.n_records_acked),
        thousands(args.spans as u64),
        thousands(prepared.n_batches as u64),
        args.batch,
        args.connections,
        prepared.mean_span_bytes,
        args.protocol.describe(),
        args.body_encoding,
        bytes(sent_bytes / n_batches_sent.max(1)),
        sent_bytes as f64 / ingest.n_records_sent.max(1) as f64
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
        "ingest including the flush backlog: {sustained_spans_per_second:.0} spans/s, server CPU {server_micros_per_span_with_flush:.2} µs/span ({} spans not yet in blocks when ingest ended)",
        thousands(backlog_spans)
    );
    println!(
        "at rest: {bytes_per_span:.1} B/span under blocks/ ({}); WAL after flush {}; data dir {}",
        bytes(at_rest.blocks.total),
        bytes(at_rest.wal.total),
        bytes(at_rest.whole.total)
    );
    println!(
        "entropy floor: {:.1} B/span; at rest {bytes_per_span:.1} B/span ({:.2} ×); as a set {:.1} B/span ({:.2} ×)",
        at_rest.floor.bytes_per_span(),
        bytes_per_span / at_rest.floor.bytes_per_span().max(1e-9),
        at_rest.floor.set_bytes_per_span(),
        bytes_per_span / at_rest.floor.set_bytes_per_span().max(1e-9)
    );
    match &counts {
        Some(counts) => println!(
            "counts: {} days, {} minutes × {} keys = {} counts in {} ({:.0} counts/s, {} failed requests, {} rejected), flushed in {} ({} blocks, roll-up files +{}); roll-up cells {} → {}",
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
        "phases: generation {}, ingest {}, flush {}, counts {} + flush {}, queries {}, stop {}, restart to healthy {}",
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
        seconds(stop_elapsed),
        seconds(restart.to_healthy)
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
