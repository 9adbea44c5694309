//! The store engine, split along its seams:
//! - `mod.rs` (this file): the `Store` façade, its configuration, appends and the background
//!   maintenance loop;
//! - `recovery.rs`: opening a data directory (blocks, roll-ups, WAL replay);
//! - `wal_thread.rs`: the one WAL writer and group commit;
//! - `head.rs`: what is acknowledged but not yet in blocks;
//! - `flush.rs`: head → blocks, then the WAL segments they replace are deleted;
//! - `retention.rs`: dropping whole hourly partitions;
//! - `lookup.rs`: look-ups by trace and event id across memory and blocks.
//!
//! Invariant: a record is acknowledged only when it is durable in the WAL, and its WAL segment
//! is deleted only when the blocks holding it are durable, so that at every instant each
//! acknowledged record is on stable storage in at least one of them (see `flush.rs`).

pub mod cluster;
mod compaction;
mod flush;
mod head;
mod integrity;
pub(crate) use head::HeadBatch;
mod lookup;
mod recovery;
mod retention;
#[cfg(test)]
mod testing;
mod wal_record;
mod wal_thread;

/// What the fuzz targets reach of the engine (`crate::fuzzing`).
pub(crate) mod fuzzing {
    use crate::wal::WalFormat;

    /// A WAL record's payload → the head batch and roll-up delta recovery would make of it,
    /// read as each format's segment would hold it; the most spans a format found.
    pub(crate) fn decode_wal_record(payload: &[u8]) -> usize {
        let mut most = 0;
        for format in [WalFormat::V1, WalFormat::V2, WalFormat::Unknown] {
            if let Ok((head, delta)) = super::wal_record::decode(format, payload) {
                most = most.max(head.n_spans());
                std::hint::black_box((delta, head.memory_bytes()));
            }
        }
        most
    }
}

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use muninn_model::{EventCount, Span};
use object_store::ObjectStore;
use tokio::sync::{Mutex, Notify, mpsc, oneshot};

use crate::block::{BlockHandle, BlockMeta, BlockWriteOptions, IndexBytes};
use crate::error::{StoreError, StoreErrorKind};
use crate::fs::{self, FileSystem, LocalDir, LocalReads, OsFileSystem};
use crate::fs::{TierStats, TieredStore};
use crate::location::BlockStorage;
use crate::rollup::Rollups;
use crate::wal::WalWriter;
use compaction::CompactionTotals;
pub use compaction::{CompactionConfig, CompactionReport};
use head::Head;
pub use integrity::ScrubConfig;
pub use lookup::Lookup;
pub(crate) use lookup::{joined, read_blocks};
pub use recovery::DATA_FORMAT_VERSION;
use recovery::WalDamage;
use wal_thread::WalCommand;

/// Appends wait while more than this many times `flush_max_spans` spans are not yet in blocks.
const UNFLUSHED_FACTOR: u64 = 3;

/// The default of `StoreConfig::memory_limit_bytes`: a node fits a 2 GiB container with half a
/// gigabyte to spare for what no bound counts (code, thread stacks, the allocator's own use).
pub const DEFAULT_MEMORY_LIMIT_BYTES: u64 = 1536 << 20;

/// The share of `memory_limit_bytes` kept for working memory no count follows: a flush's and
/// a compaction's columns and row groups, queries, and memory freed but not yet handed back by
/// the allocator (about a second of it). Measured at 100M spans in docs/storage.md (memory).
const WORKING_MEMORY_DIVISOR: u64 = 4;

/// Unless set otherwise (`StoreConfig::trace_filter_memory_bytes`), the opened blocks'
/// `trace_id` bloom filters may be kept in memory up to this share of `memory_limit_bytes`
/// (128 MiB of the default 1.5 GiB: some 130M spans of the random workload, whose filters
/// take a byte a span); past it, a block's are probed in its file, one small read each.
const TRACE_FILTER_DIVISOR: u64 = 12;

/// However large the blocks' filters grow, the spans not yet in blocks may hold this share of
/// `memory_limit_bytes` (ingest goes on; `/metrics` then shows the node over its bound).
const MIN_HEAD_DIVISOR: u64 = 8;

/// The most memory the spans not yet in blocks (the live head and the heads being flushed) may
/// hold: `memory_limit_bytes` less the working memory share, the caller's reserve (request
/// bodies) and what the opened blocks keep in memory (footers, bloom filters), but at least an
/// eighth of `memory_limit_bytes`.
fn head_limit_bytes(config: &StoreConfig, index_bytes: u64) -> u64 {
    let limit = config.memory_limit_bytes;
    config
        .keep_resident_bytes()
        .saturating_sub(config.reserved_bytes)
        .saturating_sub(index_bytes)
        .max(limit / MIN_HEAD_DIVISOR)
}

/// The head is flushed when its spans hold a quarter of what the spans not yet in blocks may
/// hold (or `flush_max_spans` spans), so that a few frozen heads can wait for their flush.
fn flush_max_bytes(shared: &Shared) -> u64 {
    shared.head_limit_bytes() / 4
}

/// The memory one appended batch of `spans` holds in the head, as the memory bound counts it:
/// its columns (or, under 8 spans, the spans themselves) and its look-up keys.
pub fn head_memory_bytes(spans: Vec<Span>) -> Result<u64, StoreError> {
    HeadBatch::with_counts(spans, Vec::new()).map(|batch| batch.memory_bytes())
}

/// How the store is set up. Built by the server from its validated configuration.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Where the WAL and (with the default object store) the blocks live.
    pub data_dir: PathBuf,
    /// Partitions entirely older than this are dropped; `None` keeps everything.
    pub retention: Option<Duration>,
    /// Flush the head into blocks when it holds this many spans.
    pub flush_max_spans: usize,
    /// Flush the head when its oldest record is this old.
    pub flush_max_age: Duration,
    /// How long an append waits when memory is full (`memory_limit_bytes`, or more than
    /// 3 × `flush_max_spans` spans not yet in blocks) before it is refused as overloaded.
    pub max_append_wait: Duration,
    /// The memory the node keeps itself under. The spans not yet in blocks (the live head and
    /// the heads being flushed, counted with `HeadBatch::memory_bytes`: columns and look-up
    /// keys) may hold what is left of it after a quarter for working memory, `reserved_bytes`,
    /// and the footers and bloom filters of the opened blocks ([`head_limit_bytes`]); the head
    /// is flushed once it holds a quarter of that.
    pub memory_limit_bytes: u64,
    /// Memory within `memory_limit_bytes` that the store's caller bounds and holds apart: the
    /// server's request bodies in flight (`max_body_memory`).
    pub reserved_bytes: u64,
    /// Called after a flush or a compaction has freed what it held (a frozen head, merged
    /// row groups), with the bytes the node may keep resident ([`Self::keep_resident_bytes`], three
    /// quarters of `memory_limit_bytes`), to hand freed pages back to the system at once when
    /// more is resident rather than as the allocator's decay gets to them; the binaries pass
    /// jemalloc's purge. `None`: nothing.
    pub release_memory: Option<fn(u64)>,
    pub block: BlockWriteOptions,
    /// Background compaction of each partition's small blocks.
    pub compaction: CompactionConfig,
    /// Background checks of the blocks' checksums (`integrity.rs`).
    pub scrub: ScrubConfig,
    /// Where the blocks (and their roll-ups and commit points) live: `None` under `data_dir`,
    /// else another directory or an S3 bucket. The WAL is always under `data_dir`.
    pub blocks: Option<BlockStorage>,
    /// Whether this store takes writes, or only reads what the nodes of a cluster committed.
    pub role: StoreRole,
    /// A WAL segment is closed and the next one started once it holds this many bytes (64 MiB),
    /// besides at each flush: a restart reads one segment into memory at a time, so this
    /// bounds what its replay holds beyond the head it rebuilds.
    pub wal_segment_bytes: u64,
    /// The opened blocks' `trace_id` bloom filters are kept in memory up to this many bytes
    /// (counted in the blocks' index, so within `memory_limit_bytes`); past it, a block's are
    /// probed in its file, a small read each. `None`: a twelfth of `memory_limit_bytes`.
    pub trace_filter_memory_bytes: Option<u64>,
}

/// What a store does with its blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreRole {
    /// Takes writes (WAL, head, flushes, compaction, retention) and answers queries.
    #[default]
    ReadWrite,
    /// A query node: reads the committed blocks of every node under `nodes/` of its storage
    /// (`[storage] node` on the ingest nodes), lists them again every `refresh_every`, and
    /// refuses writes. Compaction and retention are the ingest nodes' own.
    ReadOnly { refresh_every: Duration },
}

impl StoreConfig {
    /// What the node may keep resident before a flush or compaction hands freed pages back:
    /// all but the working memory share, which freed pages waiting for the allocator may fill.
    pub fn keep_resident_bytes(&self) -> u64 {
        let limit = self.memory_limit_bytes;
        limit.saturating_sub(limit / WORKING_MEMORY_DIVISOR)
    }

    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        StoreConfig {
            data_dir: data_dir.into(),
            retention: Some(Duration::from_secs(7 * 86_400)),
            flush_max_spans: 1_000_000,
            flush_max_age: Duration::from_secs(300),
            max_append_wait: Duration::from_secs(30),
            memory_limit_bytes: DEFAULT_MEMORY_LIMIT_BYTES,
            reserved_bytes: 0,
            release_memory: None,
            block: BlockWriteOptions::default(),
            compaction: CompactionConfig::default(),
            scrub: ScrubConfig::default(),
            blocks: None,
            role: StoreRole::ReadWrite,
            wal_segment_bytes: 64 << 20,
            trace_filter_memory_bytes: None,
        }
    }
}

struct Shared {
    config: StoreConfig,
    /// Local files: the WAL, the marker (and the blocks, with the default object store).
    fs: Arc<dyn FileSystem>,
    object_store: Arc<dyn ObjectStore>,
    /// The same blocks' directory, when `object_store` is a local one.
    local_blocks: Option<Arc<dyn LocalReads>>,
    wal_dir: PathBuf,
    head: RwLock<Head>,
    /// Frozen heads being written as blocks, oldest first; still queried.
    flushing: RwLock<Vec<Arc<Head>>>,
    blocks: RwLock<Vec<Arc<BlockHandle>>>,
    rollups: RwLock<Rollups>,
    flush_lock: Mutex<()>,
    /// Held by a compaction round (background or asked for), so that rounds do not overlap.
    compaction_lock: Mutex<()>,
    flush_wanted: Notify,
    /// Whether the WAL can be written (`wal_thread.rs`).
    wal: wal_thread::WalHealth,
    /// Spans in the head and in frozen heads: what memory holds that blocks do not yet.
    unflushed_spans: AtomicU64,
    /// The memory those spans hold (`HeadBatch::memory_bytes`).
    unflushed_bytes: AtomicU64,
    /// The part of `unflushed_bytes` in frozen heads. Counted a second time against the
    /// head's share: a flush joins the columns of its frozen head into one copy per partition
    /// (and builds those of the batches held as spans), and under
    /// full ingest the live head grows by the whole of a flush's time, so that the next frozen
    /// head, and its flush's columns, grow with the backlog.
    flushing_bytes: AtomicU64,
    /// What the opened blocks keep in memory (footers, bloom filters), as of the last change
    /// of the block list ([`Shared::count_index_bytes`]).
    index_bytes: AtomicU64,
    /// Fired when a flush has moved spans out of memory.
    space_freed: Notify,
    spans_appended: AtomicU64,
    /// What compactions did since the store opened (`CompactionTotals`).
    compacted: CompactionTotals,
    /// Flushes that failed since the store opened, and the error of the last flush when it
    /// failed (cleared by the next that succeeds).
    flush_failures: AtomicU64,
    flush_error: std::sync::Mutex<Option<String>>,
    counts_appended: AtomicU64,
    /// The tail sampler's hooks (`hooks.rs`): an append observer and a flush filter.
    hooks: crate::hooks::Hooks,
    /// Damage found in the middle of WAL segments when the store was opened.
    wal_damage: WalDamage,
    /// Block directories whose `meta.json` did not parse at open (`integrity.rs`).
    unloadable_blocks: Vec<String>,
    /// What the scrubber checked since the store opened.
    scrubbed: integrity::ScrubTotals,
    /// What the local copies of blocks in a remote store did, when there are some.
    tiers: std::sync::Mutex<Option<Arc<TieredStore>>>,
    /// A query node's view of the cluster beyond its blocks (`cluster.rs`), how it asks the
    /// ingest nodes for their heads, and those that did not answer at the last refresh.
    cluster: Mutex<cluster::ClusterState>,
    head_fetcher: RwLock<Option<cluster::HeadFetcher>>,
    missing_nodes: RwLock<Vec<String>>,
}

impl Shared {
    /// The bound on the memory of the spans not yet in blocks, now.
    fn head_limit_bytes(&self) -> u64 {
        head_limit_bytes(&self.config, self.index_bytes.load(Ordering::Relaxed))
    }

    /// The bytes of `trace_id` filters a block being warmed may keep in memory: the budget
    /// ([`TRACE_FILTER_DIVISOR`]) less what the listed blocks keep, not counting `leaving`
    /// (the inputs a compaction's output is about to replace).
    fn trace_filter_room(&self, leaving: &[Arc<BlockHandle>]) -> u64 {
        let budget = self
            .config
            .trace_filter_memory_bytes
            .unwrap_or(self.config.memory_limit_bytes / TRACE_FILTER_DIVISOR);
        let kept: u64 = match self.blocks.read() {
            Ok(blocks) => blocks
                .iter()
                .filter(|handle| !leaving.iter().any(|input| Arc::ptr_eq(handle, input)))
                .map(|handle| handle.index_bytes().trace_id_filters)
                .sum(),
            Err(_) => return 0,
        };
        budget.saturating_sub(kept)
    }

    /// Counts again what the opened blocks keep in memory; called when the block list
    /// changes (a flush, a compaction, a retention sweep) and by the maintenance tick.
    fn count_index_bytes(&self) -> IndexBytes {
        let mut index = IndexBytes::default();
        if let Ok(blocks) = self.blocks.read() {
            for handle in blocks.iter() {
                index.add(handle.index_bytes());
            }
        }
        let before = self.index_bytes.swap(index.total(), Ordering::Relaxed);
        if index.total() < before {
            // The spans not yet in blocks have more room: appends waiting for it go on.
            self.space_freed.notify_waiters();
        }
        index
    }
}

/// A handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
    wal_tx: mpsc::Sender<WalCommand>,
}

/// What a flush wrote.
#[derive(Debug, Default, Clone)]
pub struct FlushReport {
    pub n_blocks: usize,
    pub n_spans: u64,
    pub bytes: u64,
}

/// What a retention sweep dropped.
#[derive(Debug, Default, Clone)]
pub struct RetentionReport {
    pub dropped_partitions: Vec<String>,
    pub dropped_blocks: usize,
}

/// Numbers for `/metrics` and the benchmark.
#[derive(Debug, Default, Clone)]
pub struct StoreStats {
    pub head_spans: u64,
    pub flushing_spans: u64,
    /// The memory the spans of the head and of the heads being flushed hold.
    pub unflushed_bytes: u64,
    /// The bound on `unflushed_bytes` now: what `memory_limit_bytes` leaves them
    /// ([`StoreConfig::memory_limit_bytes`]).
    pub head_limit_bytes: u64,
    /// The memory the node keeps itself under (`memory_limit`).
    pub memory_limit_bytes: u64,
    pub n_blocks: u64,
    pub block_spans: u64,
    pub block_bytes: u64,
    /// What the opened blocks keep in memory: footers and bloom filters.
    pub block_index: IndexBytes,
    pub wal_bytes: u64,
    pub rollup_cells: u64,
    pub spans_appended: u64,
    pub counts_appended: u64,
    /// Compactions committed since the store opened, the spans they wrote and the bytes of
    /// their outputs: divided by the spans appended, how many times compaction rewrites a span.
    pub compactions: u64,
    pub compaction_spans: u64,
    pub compaction_bytes: u64,
    /// Flushes that failed since the store opened (their data stays in the WAL and in memory,
    /// and the next flush retries them), and the error of the last flush if it failed.
    pub flush_failures: u64,
    pub flush_error: Option<String>,
    /// Failed WAL writes and syncs since the store opened, and the last one's error while
    /// the WAL is failing (appends are refused with `Unavailable` meanwhile).
    pub wal_failures: u64,
    pub wal_error: Option<String>,
    /// With blocks in a remote store and local copies of the newest (`[storage] cache`), what
    /// the copies did.
    pub tiers: Option<TierStats>,
    /// Damaged regions found in the middle of WAL segments when the store was opened, their
    /// bytes, and the WAL records (acknowledged batches) they held; the rest was replayed.
    pub wal_damaged_regions: u64,
    pub wal_damaged_bytes: u64,
    pub wal_damaged_records: u64,
    /// Blocks out of the read path because they failed a checksum or did not parse
    /// (`quarantined_blocks()` names them), and what the scrubber checked since the store
    /// opened.
    pub quarantined_blocks: u64,
    pub scrubbed_blocks: u64,
    pub scrubbed_bytes: u64,
}

impl Store {
    /// Opens (or creates) the store in `config.data_dir` on the local file system, with its
    /// blocks there too or where `config.blocks` says.
    pub async fn open(config: StoreConfig) -> Result<Store, StoreError> {
        match config.blocks.clone() {
            None => Store::open_with_file_system(config, Arc::new(OsFileSystem)).await,
            Some(storage) => {
                let opened = storage.open(&config.data_dir).await?;
                let fs = Arc::new(OsFileSystem);
                let store = Store::open_with(config, fs, opened.object_store, opened.local).await?;
                if let Ok(mut slot) = store.shared.tiers.lock() {
                    *slot = opened.tiers;
                }
                Ok(store)
            }
        }
    }

    /// Opens the store on the given file system, blocks included (under `data_dir`;
    /// `config.blocks` is not read).
    pub async fn open_with_file_system(
        config: StoreConfig,
        fs: Arc<dyn FileSystem>,
    ) -> Result<Store, StoreError> {
        let object_store = LocalDir::new(config.data_dir.clone(), fs.clone());
        // A crash in the middle of a put leaves its temporary file behind.
        let n_removed = object_store
            .remove_temporary_files()
            .await
            .map_err(|error| StoreError::object_store(config.data_dir.display(), error))?;
        if n_removed > 0 {
            tracing::info!(
                n_removed,
                "removed temporary files of writes a crash interrupted"
            );
        }
        let local_blocks: Option<Arc<dyn LocalReads>> = Some(Arc::new(object_store.clone()));
        Store::open_with(config, fs, Arc::new(object_store), local_blocks).await
    }

    /// Opens the store with blocks in the given object store (the WAL stays in `data_dir`,
    /// on the local file system).
    pub async fn open_with_object_store(
        config: StoreConfig,
        object_store: Arc<dyn ObjectStore>,
    ) -> Result<Store, StoreError> {
        Store::open_with(config, Arc::new(OsFileSystem), object_store, None).await
    }

    async fn open_with(
        config: StoreConfig,
        fs: Arc<dyn FileSystem>,
        object_store: Arc<dyn ObjectStore>,
        local_blocks: Option<Arc<dyn LocalReads>>,
    ) -> Result<Store, StoreError> {
        crate::block::FormatVersion::writable(config.block.format_version)?;
        if config.flush_max_spans == 0 {
            return Err(StoreError::new(
                StoreErrorKind::Config,
                "flush_max_spans must be at least 1",
            ));
        }
        let data_dir = config.data_dir.clone();
        let wal_dir = data_dir.join("wal");
        fs::create_dir_all(fs.as_ref(), &wal_dir)
            .map_err(|error| StoreError::io(format!("creating {}", wal_dir.display()), error))?;
        recovery::check_or_write_marker(fs.as_ref(), &data_dir)?;
        let read_only = matches!(config.role, StoreRole::ReadOnly { .. });
        let recovered =
            recovery::recover(&fs, &object_store, &data_dir, &wal_dir, read_only).await?;
        let head_spans_at_open = recovered.head.n_spans as u64;
        let head_bytes_at_open = recovered.head.n_bytes;
        let writer = WalWriter::create(fs.clone(), &wal_dir, recovered.next_seq)?;
        let (wal_tx, wal_rx) = mpsc::channel(1024);
        let shared = Arc::new(Shared {
            config,
            fs,
            object_store,
            local_blocks,
            wal_dir,
            head: RwLock::new(recovered.head),
            flushing: RwLock::new(Vec::new()),
            blocks: RwLock::new(recovered.blocks),
            rollups: RwLock::new(recovered.rollups),
            flush_lock: Mutex::new(()),
            compaction_lock: Mutex::new(()),
            flush_wanted: Notify::new(),
            wal: Default::default(),
            unflushed_spans: AtomicU64::new(head_spans_at_open),
            unflushed_bytes: AtomicU64::new(head_bytes_at_open),
            flushing_bytes: AtomicU64::new(0),
            index_bytes: AtomicU64::new(0),
            space_freed: Notify::new(),
            spans_appended: AtomicU64::new(0),
            compacted: CompactionTotals::default(),
            flush_failures: AtomicU64::new(0),
            flush_error: std::sync::Mutex::new(None),
            counts_appended: AtomicU64::new(0),
            hooks: crate::hooks::Hooks::default(),
            wal_damage: recovered.damage,
            unloadable_blocks: recovered.unloadable,
            scrubbed: Default::default(),
            tiers: std::sync::Mutex::new(None),
            cluster: Mutex::new(cluster::ClusterState::default()),
            head_fetcher: RwLock::new(None),
            missing_nodes: RwLock::new(Vec::new()),
        });
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name("muninn-wal".into())
            .spawn(move || wal_thread::wal_thread(thread_shared, writer, wal_rx))
            .map_err(|error| StoreError::io("starting the WAL thread", error))?;
        let store = Store { shared, wal_tx };
        store
            .enforce_retention(muninn_model::now_unix_nanos())
            .await?;
        tokio::spawn(warm_blocks(Arc::downgrade(&store.shared)));
        Ok(store)
    }

    /// Appends spans and counts durably: when this returns `Ok`, they are in the WAL on stable
    /// storage and visible to queries.
    pub async fn append(
        &self,
        spans: Vec<Span>,
        counts: Vec<EventCount>,
    ) -> Result<u64, StoreError> {
        // While the WAL is failing, only an append due to try it again goes to its thread.
        if self.shared.wal.failed() && !self.shared.wal.retry_due() {
            return Err(self.shared.wal.refusal());
        }
        if self.is_read_only() {
            return Err(StoreError::new(
                StoreErrorKind::ReadOnly,
                "this node is a query node (role query): send spans and counts to an ingest node",
            ));
        }

        self.wait_for_memory().await?;
        self.shared.hooks.observe(&spans);
        let n_counts = counts.len() as u64;
        let spans = HeadBatch::with_counts(spans, counts)?;
        let delta = spans.rollup_delta()?;
        let payload = wal_record::encode(&spans)?;
        let n_bytes = spans.memory_bytes();
        self.shared
            .spans_appended
            .fetch_add(spans.n_spans() as u64, Ordering::Relaxed);
        self.shared
            .counts_appended
            .fetch_add(n_counts, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        self.wal_tx
            .send(WalCommand::Append {
                payload,
                spans: Box::new(spans),
                n_bytes,
                delta,
                reply,
            })
            .await
            .map_err(|_| StoreError::new(StoreErrorKind::Closed, "the store is closed"))?;
        answer
            .await
            .map_err(|_| StoreError::new(StoreErrorKind::Closed, "the store is closed"))?
    }

    /// Bounds memory: while the spans waiting to be written to blocks hold more than the
    /// head's share of `memory_limit_bytes` (frozen heads counted twice, for the columns their
    /// flush builds), or number more than `UNFLUSHED_FACTOR × flush_max_spans`,
    /// appends wait for a flush, and give up with `Overloaded` (HTTP 503 with `Retry-After`)
    /// after `max_append_wait`.
    async fn wait_for_memory(&self) -> Result<(), StoreError> {
        let shared = &self.shared;
        let limit = (shared.config.flush_max_spans as u64).saturating_mul(UNFLUSHED_FACTOR);
        let room = || {
            shared.unflushed_spans.load(Ordering::Relaxed) < limit
                && shared.unflushed_bytes.load(Ordering::Relaxed)
                    + shared.flushing_bytes.load(Ordering::Relaxed)
                    < shared.head_limit_bytes()
        };
        if room() {
            return Ok(());
        }
        shared.flush_wanted.notify_one();
        let deadline = tokio::time::Instant::now() + shared.config.max_append_wait;
        loop {
            let notified = shared.space_freed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if room() {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(StoreError::new(
                    StoreErrorKind::Overloaded,
                    format!(
                        "{} spans holding {} MiB are waiting to be written to blocks, {} MiB \
                         of them being written and counted twice for their flush's columns \
                         (limits {limit} spans, {} MiB: what memory_limit {} MiB leaves them); \
                         retry shortly",
                        shared.unflushed_spans.load(Ordering::Relaxed),
                        shared.unflushed_bytes.load(Ordering::Relaxed) >> 20,
                        shared.flushing_bytes.load(Ordering::Relaxed) >> 20,
                        shared.head_limit_bytes() >> 20,
                        shared.config.memory_limit_bytes >> 20,
                    ),
                ));
            }
        }
    }

    /// Runs `read` over the roll-ups while holding the read lock.
    pub fn with_rollups<R>(&self, read: impl FnOnce(&Rollups) -> R) -> R {
        match self.shared.rollups.read() {
            Ok(rollups) => read(&rollups),
            Err(poisoned) => read(&poisoned.into_inner()),
        }
    }

    /// The tail sampler's hooks, for `hooks.rs`.
    pub(crate) fn hooks(&self) -> &crate::hooks::Hooks {
        &self.shared.hooks
    }

    /// The span batches in memory and the committed blocks, for `scan.rs` (no lock is held
    /// after this returns: batches and block handles are shared, not copied).
    pub(crate) fn snapshot(&self) -> crate::scan::Snapshot {
        let shared = &self.shared;
        let mut batches: Vec<Arc<HeadBatch>> = shared
            .head
            .read()
            .map(|head| head.batches.clone())
            .unwrap_or_default();
        if let Ok(flushing) = shared.flushing.read() {
            batches.extend(
                flushing
                    .iter()
                    .flat_map(|frozen| frozen.batches.iter().cloned()),
            );
        }
        crate::scan::Snapshot {
            batches,
            blocks: shared
                .blocks
                .read()
                .map(|list| list.clone())
                .unwrap_or_default(),
            object_store: shared.object_store.clone(),
            local_blocks: shared.local_blocks.clone(),
        }
    }

    pub fn stats(&self) -> StoreStats {
        let shared = &self.shared;
        let head_spans = shared
            .head
            .read()
            .map(|head| head.n_spans as u64)
            .unwrap_or_default();
        let flushing_spans = shared
            .flushing
            .read()
            .map(|list| list.iter().map(|head| head.n_spans as u64).sum())
            .unwrap_or_default();
        let (n_blocks, block_spans, block_bytes) = shared
            .blocks
            .read()
            .map(|blocks| {
                (
                    blocks.len() as u64,
                    blocks.iter().map(|handle| handle.meta.n_spans).sum(),
                    blocks
                        .iter()
                        .map(|handle| handle.meta.spans_bytes + handle.meta.rollup_bytes)
                        .sum(),
                )
            })
            .unwrap_or_default();
        let block_index = shared.count_index_bytes();
        StoreStats {
            head_spans,
            flushing_spans,
            unflushed_bytes: shared.unflushed_bytes.load(Ordering::Relaxed),
            head_limit_bytes: shared.head_limit_bytes(),
            memory_limit_bytes: shared.config.memory_limit_bytes,
            n_blocks,
            block_spans,
            block_bytes,
            block_index,
            wal_bytes: fs::dir_bytes(shared.fs.as_ref(), &shared.wal_dir),
            rollup_cells: self.with_rollups(|rollups| rollups.n_cells() as u64),
            spans_appended: shared.spans_appended.load(Ordering::Relaxed),
            compactions: shared.compacted.compactions.load(Ordering::Relaxed),
            compaction_spans: shared.compacted.spans.load(Ordering::Relaxed),
            compaction_bytes: shared.compacted.bytes.load(Ordering::Relaxed),
            flush_failures: shared.flush_failures.load(Ordering::Relaxed),
            wal_failures: shared.wal.failures(),
            wal_error: shared.wal.error(),
            tiers: shared.tiers.lock().ok().and_then(|tiers| {
                tiers
                    .as_ref()
                    .map(|tiered| TierStats::of(&tiered.counters()))
            }),
            flush_error: shared
                .flush_error
                .lock()
                .map(|error| error.clone())
                .unwrap_or_default(),
            counts_appended: shared.counts_appended.load(Ordering::Relaxed),
            wal_damaged_regions: shared.wal_damage.regions,
            wal_damaged_bytes: shared.wal_damage.bytes,
            wal_damaged_records: shared.wal_damage.records,
            quarantined_blocks: self.quarantined_blocks().len() as u64,
            scrubbed_blocks: shared.scrubbed.blocks.load(Ordering::Relaxed),
            scrubbed_bytes: shared.scrubbed.bytes.load(Ordering::Relaxed),
        }
    }

    /// Metas of the committed blocks, oldest partition first.
    pub fn blocks(&self) -> Vec<BlockMeta> {
        let mut metas: Vec<BlockMeta> = self
            .shared
            .blocks
            .read()
            .map(|blocks| blocks.iter().map(|handle| handle.meta.clone()).collect())
            .unwrap_or_default();
        metas.sort_by(|left, right| {
            (left.partition_unix_seconds, &left.block_id)
                .cmp(&(right.partition_unix_seconds, &right.block_id))
        });
        metas
    }

    /// Runs the background work: flush when the head is full or old, retention every minute,
    /// and compaction (in a task of its own) every `compaction.interval`.
    /// Returns when `shutdown` resolves, after a final flush.
    pub async fn run_maintenance(&self, shutdown: impl std::future::Future<Output = ()>) {
        let shared = &self.shared;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_retention = Instant::now();
        if let StoreRole::ReadOnly { refresh_every } = shared.config.role {
            let mut refresh = tokio::time::interval(refresh_every);
            refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tokio::pin!(shutdown);
            loop {
                tokio::select! {
                    _ = &mut shutdown => return,
                    _ = refresh.tick() => {}
                }
                if let Err(error) = self.refresh_cluster().await {
                    tracing::error!(%error, "listing the nodes' blocks failed; the answers hold the blocks listed before");
                }
            }
        }
        // The scrubber checks the blocks' checksums beside everything else.
        let _scrubber = {
            let store = self.clone();
            AbortOnDrop(tokio::spawn(async move { store.scrub_forever().await }))
        };
        // Compaction runs beside flushes, never holding them up.
        let _compactor = shared.config.compaction.enabled.then(|| {
            let store = self.clone();
            AbortOnDrop(tokio::spawn(async move {
                let mut tick = tokio::time::interval(store.shared.config.compaction.interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    if let Err(error) = store.compact_in_background().await {
                        tracing::error!(%error, "compaction failed; the blocks it read stay as they were");
                    }
                }
            }))
        });
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tick.tick() => {}
                _ = shared.flush_wanted.notified() => {}
            }
            // Links' filters are loaded on a block's first link look-up, not with the block.
            shared.count_index_bytes();
            let head_due = shared.head.read().map(|head| {
                head.n_spans >= shared.config.flush_max_spans
                    || head.n_bytes >= flush_max_bytes(shared)
                    || head
                        .first_append
                        .is_some_and(|first| first.elapsed() >= shared.config.flush_max_age)
            });
            // A flush that failed leaves its frozen head behind: retry it on the next tick
            // even though the live head is empty (appends wait for exactly that memory).
            let unfinished = shared
                .flushing
                .read()
                .map(|list| !list.is_empty())
                .unwrap_or(false);
            if (head_due.unwrap_or(false) || unfinished)
                && let Err(error) = self.flush().await
            {
                tracing::error!(%error, "flush failed; the data stays in the WAL and the next flush retries");
            }
            if last_retention.elapsed() >= Duration::from_secs(60) {
                last_retention = Instant::now();
                if let Err(error) = self.enforce_retention(muninn_model::now_unix_nanos()).await {
                    tracing::error!(%error, "retention sweep failed");
                }
            }
        }
        drop(_compactor);
        drop(_scrubber);
        if let Err(error) = self.flush().await {
            tracing::error!(%error, "final flush failed; the data stays in the WAL");
        }
    }
}

/// Aborts a background task when dropped (when `run_maintenance` returns or is cancelled), so
/// that it does not keep the store alive.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reads every block's footer, bloom filters and operations in the background after an open,
/// newest first, so the first searches and service lists after a start do not pay for all of
/// them. Stops early when the store is dropped.
async fn warm_blocks(shared: std::sync::Weak<Shared>) {
    let mut blocks: Vec<Arc<crate::block::BlockHandle>> = match shared.upgrade() {
        Some(shared) => shared
            .blocks
            .read()
            .map(|blocks| blocks.clone())
            .unwrap_or_default(),
        None => return,
    };
    blocks.sort_by_key(|handle| std::cmp::Reverse(handle.meta.max_time_unix_nanos));
    for handle in blocks {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        // A block that cannot be read is reported by the query that needs it.
        let _ = handle.operations(&shared.object_store).await;
        let room = shared.trace_filter_room(&[]);
        let _ = handle.warm(&shared.object_store, room).await;
    }
}
