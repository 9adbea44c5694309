//! The benchmark's command line: every option, its default and what it measures.

use std::path::PathBuf;

use clap::Parser;

use crate::feed::{BodyEncoding, Protocol};
use crate::http::ClientKind;
use crate::queries::QueryKind;
use crate::workload::Workload;

/// End-to-end benchmark of a Muninn server started in this process.
#[derive(Debug, Parser)]
#[command(version, about)]
pub(crate) struct Args {
    /// Spans to ingest.
    #[arg(long, default_value_t = 10_000_000)]
    pub(crate) spans: usize,
    /// Concurrent ingest connections.
    #[arg(long, default_value_t = 4)]
    pub(crate) connections: usize,
    /// Spans per request.
    #[arg(long, default_value_t = 1000)]
    pub(crate) batch: usize,
    /// Requests per kind of query.
    #[arg(long, default_value_t = 200)]
    pub(crate) queries: usize,
    /// Only these kinds of query (comma-separated), e.g. `--query-kinds compare,schemas,impact`
    /// when iterating; every kind by default.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub(crate) query_kinds: Vec<QueryKind>,
    /// Days of per-minute counts of a fleet of 100 services × 50 event types sent before the
    /// queries (`POST /api/v1/counts`, about 430,000 counts a day); 0 skips the counts phase.
    /// At most 7, the store's retention and the oldest minute the server accepts.
    #[arg(long, default_value_t = 7)]
    pub(crate) count_days: u32,
    /// Data directory (must be empty or absent); a fresh temporary directory by default.
    #[arg(long)]
    pub(crate) data_dir: Option<PathBuf>,
    /// Keep the temporary data directory instead of deleting it.
    #[arg(long)]
    pub(crate) keep_data: bool,
    /// Memory for pre-built request bodies, in MiB; beyond it, a background thread makes the
    /// rest by patching templates.
    #[arg(long, default_value_t = 3072)]
    pub(crate) pool_mib: u64,
    /// Before ingest, time a store's opening with this many spans of the workload in its WAL
    /// and none flushed: the replay a restart after a crash under full ingest does.
    #[arg(long)]
    pub(crate) replay_spans: Option<u64>,
    /// Override the store's `flush_max_spans` (spans in the head before a flush).
    #[arg(long)]
    pub(crate) flush_max_spans: Option<usize>,
    /// Override the store's `memory_limit`, in MiB (what the server's memory bound is
    /// measured against; 1536 by default).
    #[arg(long, value_parser = clap::value_parser!(u64).range(64..))]
    pub(crate) memory_limit_mib: Option<u64>,
    /// Block format the store writes (2, the default, or 1: the path before format 2 and
    /// compaction, for figures side by side).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=2))]
    pub(crate) block_format: u32,
    /// Where the blocks go: `s3://BUCKET[/PREFIX]` (any S3 API, set up by the `AWS_*`
    /// variables, e.g. `AWS_ENDPOINT_URL=http://127.0.0.1:5000 AWS_ALLOW_HTTP=true` for a
    /// `moto_server`) or a directory; under the data directory by default.
    #[arg(long)]
    pub(crate) storage: Option<String>,
    /// With `--storage s3://…`: the MiB of the newest blocks also kept on local disk (0: every
    /// read goes to the object store).
    #[arg(long, default_value_t = 8192)]
    pub(crate) storage_cache_mib: u64,
    /// Turn authentication on: the server accepts one token with every scope and each request
    /// of the run sends it (for the figure beside a run without).
    #[arg(long)]
    pub(crate) auth: bool,
    /// Turn the store's compaction off (in the background and after the flush).
    #[arg(long)]
    pub(crate) no_compaction: bool,
    /// Override compaction's `large_block_spans`: blocks of at least this many spans are left
    /// alone (2,000,000 by default; 500,000 leaves the flushes of a busy node alone).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) large_block_spans: Option<u64>,
    /// Override the most rows a data page of a format 2 block holds (what a look-up
    /// decompresses of each column for one row).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) page_rows: Option<u32>,
    /// HTTP client library for the senders and queries.
    #[arg(long, value_enum, default_value_t = ClientKind::Hyper)]
    pub(crate) client: ClientKind,
    /// Ingest as native JSON (`POST /api/v1/spans`) or as OTLP/HTTP protobuf (`POST
    /// /v1/traces`, spans with the messaging semantic conventions).
    #[arg(long, value_enum, default_value_t = Protocol::Native)]
    pub(crate) protocol: Protocol,
    /// The reference workload (1–3 consumers in the producer's trace), or fully random ids
    /// with 0–5 consumers, a quarter of them in new traces linked to the producer.
    #[arg(long, value_enum, default_value_t = Workload::Reference)]
    pub(crate) workload: Workload,
    /// Request bodies gzip'd as the SDK sends them, or as they are.
    #[arg(long, value_enum, default_value_t = BodyEncoding::Gzip)]
    pub(crate) body_encoding: BodyEncoding,
    /// Seed of the workload generator; random by default.
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// Instead of the HTTP benchmark, measure the tail sampler's memory per buffered trace and
    /// per remembered decision, and its CPU per span, on `--tail-traces` traces.
    #[arg(long)]
    pub(crate) tail_sampling: bool,
    /// Traces for `--tail-sampling`.
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) tail_traces: usize,
    /// Loads of each page of the browser UI in a headless chromium after the queries (Debian's
    /// chromium and chromium-driver: `bash scripts/browser.sh`); 0 skips the UI phase.
    #[arg(long, default_value_t = 20)]
    pub(crate) ui_visits: usize,
}
