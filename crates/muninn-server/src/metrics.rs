//! Prometheus metrics of the server: ingest counters, rejections by field, query latencies,
//! sampling config requests, and the store and sampling-rule gauges refreshed at each scrape;
//! `events.rs` adds the per-edge event metrics from the roll-ups.

mod events;
mod limits;
mod tenants;

pub(crate) use limits::{ConnectionMetrics, LimitMetrics};
pub(crate) use tenants::TenantMetrics;

use muninn_store::Store;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::body_budget::BodyBudget;

type Labels = Vec<(String, String)>;

pub(crate) struct Metrics {
    registry: Registry,
    pub ingested_spans: Counter,
    /// Times the Kafka ingest bus left and rejoined its consumer group (`kafka_ingest.rs`).
    pub kafka_rejoins: Counter,
    pub ingested_counts: Counter,
    pub rejected: Family<Labels, Counter>,
    pub ingest_requests: Family<Labels, Counter>,
    /// Ingest requests answered with the stored answer of an earlier one (same key).
    pub idempotent_replays: Counter,
    pub query_seconds: Family<Labels, Histogram>,
    pub sampling_config_requests: Family<Labels, Counter>,
    /// Requests refused by authentication (`auth.rs`), by reason.
    auth_refusals: Family<Labels, Counter>,
    /// Connections, TLS, rate limits, body timeouts and query slots.
    pub limits: LimitMetrics,
    /// The open tenants and their stores.
    pub tenants: TenantMetrics,
    sampling_rules: Gauge,
    head_spans: Gauge,
    head_bytes: Gauge,
    head_limit_bytes: Gauge,
    memory_limit_bytes: Gauge,
    block_index_bytes: Gauge,
    body_bytes: Gauge,
    body_memory_limit_bytes: Gauge,
    blocks: Gauge,
    block_bytes: Gauge,
    block_spans: Gauge,
    wal_bytes: Gauge,
    rollup_cells: Gauge,
    wal_damaged_regions: Gauge,
    wal_damaged_bytes: Gauge,
    wal_damaged_records: Gauge,
    blocks_quarantined: Gauge,
    scrubbed_blocks: Counter,
    scrubbed_bytes: Counter,
    compactions: Counter,
    compaction_spans: Counter,
    compaction_bytes: Counter,
    flush_failures: Counter,
    wal_failures: Counter,
    /// Blocks in a remote store with local copies of the newest (`[storage]`).
    storage_cache_hits: Counter,
    storage_remote_reads: Counter,
    storage_remote_read_bytes: Counter,
    storage_cache_evictions: Counter,
    storage_cache_errors: Counter,
    storage_cache_bytes: Gauge,
    storage_cache_max_bytes: Gauge,
    /// Held while the counters above catch up with the store's totals, so that two scrapes at
    /// once do not both add the same difference.
    catching_up: std::sync::Mutex<()>,
}

fn query_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 18))
}

impl Metrics {
    /// Counts one request refused by authentication.
    pub fn count_auth_refusal(&self, refusal: &crate::auth::Refusal) {
        use crate::auth::Refusal;
        let reason = match refusal {
            Refusal::Missing => "missing",
            Refusal::NotBearer => "malformed",
            Refusal::Unknown => "unknown",
            Refusal::Scope { .. } => "scope",
        };
        self.auth_refusals
            .get_or_create(&vec![("reason".into(), reason.into())])
            .inc();
    }

    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("muninn");
        let ingested_spans = Counter::default();
        let kafka_rejoins = Counter::default();
        registry.register(
            "kafka_rejoins",
            "Times this node left and joined its Kafka consumer group again because partitions \
             of other members had messages waiting and no committed progress for three group \
             sessions ([kafka_ingest])",
            kafka_rejoins.clone(),
        );
        let ingested_counts = Counter::default();
        let rejected = Family::<Labels, Counter>::default();
        let ingest_requests = Family::<Labels, Counter>::default();
        let idempotent_replays = Counter::default();
        let query_seconds =
            Family::<Labels, Histogram>::new_with_constructor(query_histogram as fn() -> Histogram);
        let sampling_config_requests = Family::<Labels, Counter>::default();
        // The two answers of a working poll are exported from the start (as 0), so that rates
        // over them need no special case.
        for result in ["200", "304"] {
            let _ = sampling_config_requests.get_or_create(&vec![("result".into(), result.into())]);
        }
        let auth_refusals = Family::<Labels, Counter>::default();
        // Every reason from the start (as 0), so that rates and alerts over them need no
        // special case.
        for reason in ["missing", "malformed", "unknown", "scope"] {
            let _ = auth_refusals.get_or_create(&vec![("reason".into(), reason.into())]);
        }
        registry.register(
            "auth_refusals",
            "Requests refused by authentication, by reason: missing (no token), malformed (not \
             Bearer), unknown (no such token), scope (the token lacks the route's scope)",
            auth_refusals.clone(),
        );
        let limits = LimitMetrics::register(&mut registry);
        let tenants = TenantMetrics::register(&mut registry);
        let sampling_rules = Gauge::default();
        let (head_bytes, memory_limit_bytes) = (Gauge::default(), Gauge::default());
        let (head_limit_bytes, block_index_bytes) = (Gauge::default(), Gauge::default());
        let (body_bytes, body_memory_limit_bytes) = (Gauge::default(), Gauge::default());
        let (head_spans, blocks, block_bytes, block_spans, wal_bytes, rollup_cells) = (
            Gauge::default(),
            Gauge::default(),
            Gauge::default(),
            Gauge::default(),
            Gauge::default(),
            Gauge::default(),
        );
        registry.register(
            "ingested_spans",
            "Spans accepted and durably stored",
            ingested_spans.clone(),
        );
        registry.register(
            "ingested_counts",
            "Event-seen count records accepted",
            ingested_counts.clone(),
        );
        registry.register(
            "rejected_records",
            "Records rejected at ingest, by kind and offending field",
            rejected.clone(),
        );
        registry.register(
            "ingest_requests",
            "Ingest requests by endpoint and HTTP status",
            ingest_requests.clone(),
        );
        registry.register(
            "ingest_idempotent_replays",
            "Ingest requests with an Idempotency-Key already answered: the first answer was \
             sent again and nothing was stored",
            idempotent_replays.clone(),
        );
        registry.register(
            "query_duration_seconds",
            "Query latency by route",
            query_seconds.clone(),
        );
        registry.register(
            "sampling_config_requests",
            "Sampling config requests by result: 200 (config sent), 304 (unchanged), 400",
            sampling_config_requests.clone(),
        );
        registry.register(
            "sampling_rules",
            "Central sampling rules stored",
            sampling_rules.clone(),
        );
        registry.register(
            "head_spans",
            "Spans in memory not yet written to blocks",
            head_spans.clone(),
        );
        registry.register(
            "head_bytes",
            "Memory held by the spans not yet written to blocks",
            head_bytes.clone(),
        );
        registry.register(
            "head_limit_bytes",
            "The bound on head_bytes now: what memory_limit leaves after working memory, request \
             bodies and block_index_bytes; appends wait, then get 503, past it",
            head_limit_bytes.clone(),
        );
        registry.register(
            "memory_limit_bytes",
            "The memory the node keeps itself under (memory_limit)",
            memory_limit_bytes.clone(),
        );
        registry.register(
            "block_index_bytes",
            "Memory held by the opened blocks' footers and bloom filters",
            block_index_bytes.clone(),
        );
        registry.register(
            "ingest_body_bytes",
            "Memory held by ingest request bodies in flight, as received and decompressed",
            body_bytes.clone(),
        );
        registry.register(
            "ingest_body_memory_limit_bytes",
            "The bound on ingest_body_bytes (max_body_memory); requests wait, then get 503, past it",
            body_memory_limit_bytes.clone(),
        );
        registry.register("blocks", "Committed Parquet blocks", blocks.clone());
        registry.register(
            "block_bytes",
            "Bytes of committed blocks",
            block_bytes.clone(),
        );
        registry.register(
            "block_spans",
            "Spans in committed blocks",
            block_spans.clone(),
        );
        registry.register(
            "wal_bytes",
            "Bytes of write-ahead log on disk",
            wal_bytes.clone(),
        );
        registry.register(
            "rollup_cells",
            "Roll-up cells held in memory",
            rollup_cells.clone(),
        );
        let (wal_damaged_regions, wal_damaged_bytes, wal_damaged_records) =
            (Gauge::default(), Gauge::default(), Gauge::default());
        registry.register(
            "wal_damaged_regions",
            "Damaged regions found in the middle of WAL segments when the store opened \
             (skipped; the records after them were replayed; see the log for segment and offset)",
            wal_damaged_regions.clone(),
        );
        registry.register(
            "wal_damaged_bytes",
            "Bytes of WAL skipped as damaged when the store opened",
            wal_damaged_bytes.clone(),
        );
        registry.register(
            "wal_damaged_records",
            "WAL records (acknowledged batches) lost in damaged regions when the store opened",
            wal_damaged_records.clone(),
        );
        let blocks_quarantined = Gauge::default();
        registry.register(
            "blocks_quarantined",
            "Blocks out of the read path because a file failed its checksum or did not parse \
             (answers that need them say they are partial; /healthz: store.quarantined_blocks \
             names them; the log says why)",
            blocks_quarantined.clone(),
        );
        let (scrubbed_blocks, scrubbed_bytes) = (Counter::default(), Counter::default());
        registry.register(
            "block_scrubs",
            "Block files read and checked against their checksums since the process started",
            scrubbed_blocks.clone(),
        );
        registry.register(
            "block_scrub_read_bytes",
            "Bytes the checks of block files read since the process started",
            scrubbed_bytes.clone(),
        );
        let (compactions, compaction_spans, compaction_bytes) =
            (Counter::default(), Counter::default(), Counter::default());
        registry.register(
            "compactions",
            "Compactions committed since the process started",
            compactions.clone(),
        );
        registry.register(
            "compaction_spans",
            "Spans written by compactions since the process started (a span merged twice counts \
             twice; over ingested_spans, how often compaction rewrites a span)",
            compaction_spans.clone(),
        );
        registry.register(
            "compaction_written_bytes",
            "Bytes of the blocks compactions wrote since the process started",
            compaction_bytes.clone(),
        );
        let wal_failures = Counter::default();
        registry.register(
            "wal_failures",
            "WAL writes and syncs that failed since the process started (a full or failing \
             disk); meanwhile ingest answers 503 and acknowledges nothing, and the WAL is tried \
             again every second (/healthz: store.wal)",
            wal_failures.clone(),
        );
        let flush_failures = Counter::default();
        registry.register(
            "flush_failures",
            "Flushes that failed since the process started (the object store or the disk refused \
             a write); their spans stay in the WAL and in memory, and the next flush, a second \
             later, retries them",
            flush_failures.clone(),
        );
        let storage_counters: [(Counter, &str, &str); 5] = [
            (
                Counter::default(),
                "storage_cache_hits",
                "Reads of blocks served from their local copies (blocks in a remote store)",
            ),
            (
                Counter::default(),
                "storage_remote_reads",
                "Reads of blocks sent to the remote object store (row groups and columns a query \
                 needs, not whole files)",
            ),
            (
                Counter::default(),
                "storage_remote_read_bytes",
                "Bytes read from the remote object store",
            ),
            (
                Counter::default(),
                "storage_cache_evictions",
                "Local copies of blocks removed to keep the cache under its bound, oldest first",
            ),
            (
                Counter::default(),
                "storage_cache_errors",
                "Local copies that could not be written or read (read from the object store instead)",
            ),
        ];
        for (counter, name, help) in &storage_counters {
            registry.register(*name, *help, counter.clone());
        }
        let [
            (storage_cache_hits, ..),
            (storage_remote_reads, ..),
            (storage_remote_read_bytes, ..),
            (storage_cache_evictions, ..),
            (storage_cache_errors, ..),
        ] = storage_counters;
        let (storage_cache_bytes, storage_cache_max_bytes) = (Gauge::default(), Gauge::default());
        registry.register(
            "storage_cache_bytes",
            "Bytes of the local copies of blocks kept from a remote object store",
            storage_cache_bytes.clone(),
        );
        registry.register(
            "storage_cache_max_bytes",
            "The bound on storage_cache_bytes ([storage] cache)",
            storage_cache_max_bytes.clone(),
        );
        Metrics {
            registry,
            ingested_spans,
            kafka_rejoins,
            ingested_counts,
            rejected,
            ingest_requests,
            idempotent_replays,
            query_seconds,
            sampling_config_requests,
            auth_refusals,
            limits,
            tenants,
            sampling_rules,
            head_spans,
            head_bytes,
            head_limit_bytes,
            memory_limit_bytes,
            block_index_bytes,
            body_bytes,
            body_memory_limit_bytes,
            blocks,
            block_bytes,
            block_spans,
            wal_bytes,
            rollup_cells,
            wal_damaged_regions,
            wal_damaged_bytes,
            wal_damaged_records,
            blocks_quarantined,
            scrubbed_blocks,
            scrubbed_bytes,
            compactions,
            compaction_spans,
            compaction_bytes,
            flush_failures,
            wal_failures,
            storage_cache_hits,
            storage_remote_reads,
            storage_remote_read_bytes,
            storage_cache_evictions,
            storage_cache_errors,
            storage_cache_bytes,
            storage_cache_max_bytes,
            catching_up: std::sync::Mutex::new(()),
        }
    }

    /// The registry, for parts of the server that register their own metrics (tail sampling).
    pub(crate) fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// `attributes[3].key` → `attributes[].key`, so the label has bounded cardinality.
    pub fn count_rejection(&self, record_kind: &str, field: &str) {
        let mut normalized = String::with_capacity(field.len());
        let mut in_brackets = false;
        for char in field.chars() {
            match char {
                '[' => {
                    in_brackets = true;
                    normalized.push('[');
                }
                ']' => {
                    in_brackets = false;
                    normalized.push(']');
                }
                _ if in_brackets => {}
                _ => normalized.push(char),
            }
        }
        // Attribute names chosen by clients would be unbounded too.
        let normalized = match normalized.split_once('.') {
            Some((head @ ("attributes" | "resource"), _)) => format!("{head}.*"),
            _ => normalized,
        };
        self.rejected
            .get_or_create(&vec![
                ("record".into(), record_kind.into()),
                ("field".into(), normalized),
            ])
            .inc();
    }

    /// The exposition, with the gauges set from the store's stats and the number of rules,
    /// then the event metrics of the store's roll-ups.
    pub fn render(&self, store: &Store, sampling_rules: usize, bodies: &BodyBudget) -> String {
        let stats = store.stats();
        self.body_bytes
            .set(i64::try_from(bodies.held_bytes()).unwrap_or(i64::MAX));
        self.body_memory_limit_bytes
            .set(i64::try_from(bodies.total_bytes()).unwrap_or(i64::MAX));
        let as_i64 = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        self.sampling_rules
            .set(i64::try_from(sampling_rules).unwrap_or(i64::MAX));
        self.head_spans
            .set(as_i64(stats.head_spans + stats.flushing_spans));
        self.head_bytes.set(as_i64(stats.unflushed_bytes));
        self.head_limit_bytes.set(as_i64(stats.head_limit_bytes));
        self.memory_limit_bytes
            .set(as_i64(stats.memory_limit_bytes));
        self.block_index_bytes
            .set(as_i64(stats.block_index.total()));
        self.blocks.set(as_i64(stats.n_blocks));
        self.block_bytes.set(as_i64(stats.block_bytes));
        self.block_spans.set(as_i64(stats.block_spans));
        self.wal_bytes.set(as_i64(stats.wal_bytes));
        self.rollup_cells.set(as_i64(stats.rollup_cells));
        self.wal_damaged_regions
            .set(as_i64(stats.wal_damaged_regions));
        self.wal_damaged_bytes.set(as_i64(stats.wal_damaged_bytes));
        self.wal_damaged_records
            .set(as_i64(stats.wal_damaged_records));
        self.blocks_quarantined
            .set(as_i64(stats.quarantined_blocks));
        let tiers = stats.tiers.unwrap_or_default();
        self.storage_cache_bytes.set(as_i64(tiers.cache_bytes));
        self.storage_cache_max_bytes
            .set(as_i64(tiers.cache_max_bytes));
        // The store counts; the counters follow it (they only grow, as the store's totals do).
        let _catching_up = self
            .catching_up
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for (counter, total) in [
            (&self.compactions, stats.compactions),
            (&self.compaction_spans, stats.compaction_spans),
            (&self.compaction_bytes, stats.compaction_bytes),
            (&self.flush_failures, stats.flush_failures),
            (&self.wal_failures, stats.wal_failures),
            (&self.scrubbed_blocks, stats.scrubbed_blocks),
            (&self.scrubbed_bytes, stats.scrubbed_bytes),
            (&self.storage_cache_hits, tiers.cache_hits),
            (&self.storage_remote_reads, tiers.remote_reads),
            (&self.storage_remote_read_bytes, tiers.remote_read_bytes),
            (&self.storage_cache_evictions, tiers.evicted_objects),
            (&self.storage_cache_errors, tiers.cache_errors),
        ] {
            counter.inc_by(total.saturating_sub(counter.get()));
        }
        let mut text = String::new();
        let encoded = encode_registry(&mut text, &self.registry)
            .and_then(|()| encode_registry(&mut text, &events::registry(store)))
            .and_then(|()| encode_eof(&mut text));
        if encoded.is_err() {
            text.clear();
        }
        text
    }
}
