//! The store engine: appends go to the WAL (group commit) and then into the in-memory head and
//! the roll-ups; a flush turns the head into Parquet blocks and only then lets the WAL go;
//! opening replays what the blocks do not already hold.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use muninn_model::{EventCount, NANOS_PER_SECOND, Span, TraceId};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, Notify, mpsc, oneshot};

use crate::block::{
    self, BlockContents, BlockHandle, BlockMeta, BlockWriteOptions, IdLookup, StoredCell,
};
use crate::error::{StoreError, StoreErrorKind};
use crate::rollup::{self, RollupDelta, Rollups};
use crate::wal::{self, WalWriter};

/// Appends wait while more than this many times `flush_max_spans` spans are not yet in blocks.
const UNFLUSHED_FACTOR: u64 = 3;

/// The data directory's format marker, `muninn.json`.
pub const DATA_FORMAT_VERSION: u32 = 1;

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
    /// How long an append waits when memory is full (more than 3 × `flush_max_spans` spans not
    /// yet in blocks) before it is refused as overloaded.
    pub max_append_wait: Duration,
    pub block: BlockWriteOptions,
}

impl StoreConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        StoreConfig {
            data_dir: data_dir.into(),
            retention: Some(Duration::from_secs(7 * 86_400)),
            flush_max_spans: 500_000,
            flush_max_age: Duration::from_secs(300),
            max_append_wait: Duration::from_secs(30),
            block: BlockWriteOptions::default(),
        }
    }
}

#[derive(Serialize)]
struct WalBatchRef<'a> {
    spans: &'a [Span],
    counts: &'a [EventCount],
}

#[derive(Deserialize)]
struct WalBatch {
    spans: Vec<Span>,
    counts: Vec<EventCount>,
}

#[derive(Serialize, Deserialize)]
struct DataDirMarker {
    format_version: u32,
}

/// Spans and roll-up cells not yet in blocks.
#[derive(Default)]
struct Head {
    batches: Vec<Arc<Vec<Span>>>,
    n_spans: usize,
    delta: RollupDelta,
    first_append: Option<Instant>,
    last_seq: u64,
}

impl Head {
    fn insert(&mut self, seq: u64, spans: Vec<Span>, delta: &RollupDelta) {
        self.n_spans += spans.len();
        if !spans.is_empty() {
            self.batches.push(Arc::new(spans));
        }
        rollup::merge_delta(&mut self.delta, delta);
        self.first_append.get_or_insert_with(Instant::now);
        self.last_seq = self.last_seq.max(seq);
    }

    fn is_empty(&self) -> bool {
        self.n_spans == 0 && self.delta.is_empty()
    }

    fn spans(&self) -> impl Iterator<Item = &Span> {
        self.batches.iter().flat_map(|batch| batch.iter())
    }
}

enum WalCommand {
    Append {
        payload: Vec<u8>,
        spans: Vec<Span>,
        delta: RollupDelta,
        reply: oneshot::Sender<Result<u64, StoreError>>,
    },
    Freeze {
        reply: oneshot::Sender<Result<Arc<Head>, StoreError>>,
    },
}

struct Shared {
    config: StoreConfig,
    object_store: Arc<dyn ObjectStore>,
    wal_dir: PathBuf,
    head: RwLock<Head>,
    /// Frozen heads being written as blocks, oldest first; still queried.
    flushing: RwLock<Vec<Arc<Head>>>,
    blocks: RwLock<Vec<Arc<BlockHandle>>>,
    rollups: RwLock<Rollups>,
    flush_lock: Mutex<()>,
    flush_wanted: Notify,
    failed: AtomicBool,
    /// Spans in the head and in frozen heads: what memory holds that blocks do not yet.
    unflushed_spans: AtomicU64,
    /// Fired when a flush has moved spans out of memory.
    space_freed: Notify,
    spans_appended: AtomicU64,
    counts_appended: AtomicU64,
    /// The tail sampler's hooks (`hooks.rs`): an append observer and a flush filter.
    hooks: crate::hooks::Hooks,
}

/// A handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
    wal_tx: mpsc::Sender<WalCommand>,
}

/// The result of a look-up across head and blocks: what could be read, and which blocks could
/// not (partial failure is data, not an error).
#[derive(Debug, Default)]
pub struct Lookup {
    pub spans: Vec<Span>,
    pub unreadable_blocks: Vec<String>,
}

/// Reads every block with `read`, `concurrency` at a time. Returns what the readable blocks
/// gave and the unreadable ones, named with their error and sorted: a block that cannot be
/// read makes a partial answer, not a failure.
pub(crate) async fn read_blocks<T, Fut>(
    blocks: Vec<Arc<BlockHandle>>,
    concurrency: usize,
    read: impl Fn(Arc<BlockHandle>) -> Fut,
) -> (Vec<T>, Vec<String>)
where
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let results: Vec<(Path, Result<T, StoreError>)> = futures::stream::iter(blocks)
        .map(|handle| {
            let dir = handle.dir.clone();
            let reading = read(handle);
            async move { (dir, reading.await) }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut found = Vec::with_capacity(results.len());
    let mut unreadable_blocks = Vec::new();
    for (dir, result) in results {
        match result {
            Ok(value) => found.push(value),
            Err(error) => {
                tracing::warn!(block = %dir, %error, "block could not be read");
                unreadable_blocks.push(format!("{dir}: {error}"));
            }
        }
    }
    unreadable_blocks.sort();
    (found, unreadable_blocks)
}

impl Lookup {
    /// A look-up's answer from the spans found: each (trace id, span id) once, ordered by
    /// start time.
    pub(crate) fn of(mut spans: Vec<Span>, unreadable_blocks: Vec<String>) -> Lookup {
        let mut seen = HashSet::new();
        spans.retain(|span| seen.insert((span.trace_id, span.span_id)));
        spans.sort_by(|left, right| {
            (left.start_unix_nanos, left.span_id).cmp(&(right.start_unix_nanos, right.span_id))
        });
        Lookup {
            spans,
            unreadable_blocks,
        }
    }
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
    pub n_blocks: u64,
    pub block_spans: u64,
    pub block_bytes: u64,
    pub wal_bytes: u64,
    pub rollup_cells: u64,
    pub spans_appended: u64,
    pub counts_appended: u64,
}

fn marker_path(config: &StoreConfig) -> PathBuf {
    config.data_dir.join("muninn.json")
}

impl Store {
    /// Opens (or creates) the store in `config.data_dir` with blocks on the local file system.
    pub async fn open(config: StoreConfig) -> Result<Store, StoreError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|error| {
            StoreError::io(
                format!("creating data directory {}", config.data_dir.display()),
                error,
            )
        })?;
        // Deleting a block's last file also removes its emptied directories, so dropped
        // partitions and deleted partial blocks leave nothing behind.
        let object_store = LocalFileSystem::new_with_prefix(&config.data_dir)
            .map_err(|error| StoreError::object_store(config.data_dir.display(), error))?
            .with_automatic_cleanup(true);
        Store::open_with_object_store(config, Arc::new(object_store)).await
    }

    /// Opens the store with blocks in the given object store (the WAL stays in `data_dir`).
    pub async fn open_with_object_store(
        config: StoreConfig,
        object_store: Arc<dyn ObjectStore>,
    ) -> Result<Store, StoreError> {
        if config.flush_max_spans == 0 {
            return Err(StoreError::new(
                StoreErrorKind::Config,
                "flush_max_spans must be at least 1",
            ));
        }
        std::fs::create_dir_all(&config.data_dir).map_err(|error| {
            StoreError::io(
                format!("creating data directory {}", config.data_dir.display()),
                error,
            )
        })?;
        check_or_write_marker(&config)?;
        let wal_dir = config.data_dir.join("wal");
        std::fs::create_dir_all(&wal_dir)
            .map_err(|error| StoreError::io(format!("creating {}", wal_dir.display()), error))?;

        // Blocks: keep complete flushes, delete the rest (a crash mid-flush; the WAL still has it).
        let segments = wal::list_segments(&wal_dir)?;
        let oldest_wal_seq = segments.first().map(|segment| segment.first_seq);
        let (blocks, committed_seq) = load_blocks(&object_store, oldest_wal_seq).await?;
        let mut rollups = Rollups::default();
        for handle in &blocks {
            let cells = handle.read_rollup(&object_store).await?;
            rollups.apply(&cells_to_delta(cells));
        }

        // WAL: replay what the blocks do not hold; delete segments the blocks fully cover.
        let mut head = Head::default();
        let mut max_seq = committed_seq;
        for (segment_idx, segment) in segments.iter().enumerate() {
            let covered_by_blocks = segments
                .get(segment_idx + 1)
                .is_some_and(|next| next.first_seq.saturating_sub(1) <= committed_seq);
            if covered_by_blocks {
                let _ = std::fs::remove_file(&segment.path);
                continue;
            }
            wal::replay_segment(&segment.path, |seq, payload| {
                max_seq = max_seq.max(seq);
                if seq <= committed_seq {
                    return Ok(());
                }
                let batch: WalBatch = postcard::from_bytes(payload).map_err(|error| {
                    StoreError::corrupt(format!(
                        "{}: record {seq}: {error}",
                        segment.path.display()
                    ))
                })?;
                let delta = rollup::batch_delta(&batch.spans, &batch.counts);
                rollups.apply(&delta);
                head.insert(seq, batch.spans, &delta);
                Ok(())
            })?;
        }
        let head_spans_at_open = head.n_spans as u64;
        let writer = WalWriter::create(&wal_dir, max_seq + 1)?;
        let (wal_tx, wal_rx) = mpsc::channel(1024);
        let shared = Arc::new(Shared {
            config,
            object_store,
            wal_dir,
            head: RwLock::new(head),
            flushing: RwLock::new(Vec::new()),
            blocks: RwLock::new(blocks),
            rollups: RwLock::new(rollups),
            flush_lock: Mutex::new(()),
            flush_wanted: Notify::new(),
            failed: AtomicBool::new(false),
            unflushed_spans: AtomicU64::new(head_spans_at_open),
            space_freed: Notify::new(),
            spans_appended: AtomicU64::new(0),
            counts_appended: AtomicU64::new(0),
            hooks: crate::hooks::Hooks::default(),
        });
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name("muninn-wal".into())
            .spawn(move || wal_thread(thread_shared, writer, wal_rx))
            .map_err(|error| StoreError::io("starting the WAL thread", error))?;
        let store = Store { shared, wal_tx };
        store
            .enforce_retention(muninn_model::now_unix_nanos())
            .await?;
        Ok(store)
    }

    /// Appends spans and counts durably: when this returns `Ok`, they are in the WAL on stable
    /// storage and visible to queries.
    pub async fn append(
        &self,
        spans: Vec<Span>,
        counts: Vec<EventCount>,
    ) -> Result<u64, StoreError> {
        if self.shared.failed.load(Ordering::Relaxed) {
            return Err(StoreError::new(
                StoreErrorKind::Closed,
                "the store stopped taking writes after a WAL failure",
            ));
        }
        self.wait_for_memory().await?;
        self.shared.hooks.observe(&spans);
        // Sized up front (about 300 bytes per span is typical) so the record is not regrown.
        let capacity = spans.len() * 384 + counts.len() * 96 + 64;
        let payload = postcard::to_extend(
            &WalBatchRef {
                spans: &spans,
                counts: &counts,
            },
            Vec::with_capacity(capacity),
        )
        .map_err(|error| StoreError::corrupt(format!("encoding a WAL record: {error}")))?;
        let delta = rollup::batch_delta(&spans, &counts);
        self.shared
            .spans_appended
            .fetch_add(spans.len() as u64, Ordering::Relaxed);
        self.shared
            .counts_appended
            .fetch_add(counts.len() as u64, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        self.wal_tx
            .send(WalCommand::Append {
                payload,
                spans,
                delta,
                reply,
            })
            .await
            .map_err(|_| StoreError::new(StoreErrorKind::Closed, "the store is closed"))?;
        answer
            .await
            .map_err(|_| StoreError::new(StoreErrorKind::Closed, "the store is closed"))?
    }

    /// Bounds memory: while more than `UNFLUSHED_FACTOR × flush_max_spans` spans wait to be
    /// written to blocks, appends wait for a flush, and give up with `Overloaded` (HTTP 503
    /// with `Retry-After`) after `max_append_wait`.
    async fn wait_for_memory(&self) -> Result<(), StoreError> {
        let shared = &self.shared;
        let limit = (shared.config.flush_max_spans as u64).saturating_mul(UNFLUSHED_FACTOR);
        if shared.unflushed_spans.load(Ordering::Relaxed) < limit {
            return Ok(());
        }
        shared.flush_wanted.notify_one();
        let deadline = tokio::time::Instant::now() + shared.config.max_append_wait;
        loop {
            let notified = shared.space_freed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if shared.unflushed_spans.load(Ordering::Relaxed) < limit {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(StoreError::new(
                    StoreErrorKind::Overloaded,
                    format!(
                        "{} spans are waiting to be written to blocks (limit {limit}); retry shortly",
                        shared.unflushed_spans.load(Ordering::Relaxed)
                    ),
                ));
            }
        }
    }

    /// Writes everything in the head (and any earlier unfinished flush) to blocks.
    pub async fn flush(&self) -> Result<FlushReport, StoreError> {
        let shared = &self.shared;
        let _flushing = shared.flush_lock.lock().await;
        let (reply, answer) = oneshot::channel();
        self.wal_tx
            .send(WalCommand::Freeze { reply })
            .await
            .map_err(|_| StoreError::new(StoreErrorKind::Closed, "the store is closed"))?;
        answer
            .await
            .map_err(|_| StoreError::new(StoreErrorKind::Closed, "the store is closed"))??;
        let pending: Vec<Arc<Head>> = shared
            .flushing
            .read()
            .map(|list| list.clone())
            .unwrap_or_default();
        let mut report = FlushReport::default();
        for frozen in pending {
            let written = write_head(shared, &frozen).await?;
            report.n_blocks += written.len();
            report.n_spans += written
                .iter()
                .map(|handle| handle.meta.n_spans)
                .sum::<u64>();
            report.bytes += written
                .iter()
                .map(|handle| handle.meta.spans_bytes + handle.meta.rollup_bytes)
                .sum::<u64>();
            for handle in &written {
                let _ = handle.warm(&shared.object_store).await;
            }
            if let Ok(mut blocks) = shared.blocks.write() {
                blocks.extend(written);
            }
            if let Ok(mut flushing) = shared.flushing.write() {
                flushing.retain(|head| !Arc::ptr_eq(head, &frozen));
            }
            shared
                .unflushed_spans
                .fetch_sub(frozen.n_spans as u64, Ordering::Relaxed);
            shared.space_freed.notify_waiters();
            delete_segments_up_to(&shared.wal_dir, frozen.last_seq);
        }
        Ok(report)
    }

    /// Drops every hourly partition that ends before `now - retention`.
    pub async fn enforce_retention(
        &self,
        now_unix_nanos: i64,
    ) -> Result<RetentionReport, StoreError> {
        let Some(retention) = self.shared.config.retention else {
            return Ok(RetentionReport::default());
        };
        let retention_nanos = i64::try_from(retention.as_nanos()).unwrap_or(i64::MAX);
        // The first partition that still holds data younger than the cutoff.
        let keep_from = block::partition_of(now_unix_nanos.saturating_sub(retention_nanos));
        let shared = &self.shared;
        let expired: Vec<Arc<BlockHandle>> = match shared.blocks.write() {
            Ok(mut blocks) => {
                let (expired, kept) = blocks
                    .drain(..)
                    .partition(|handle| handle.meta.partition_unix_seconds < keep_from);
                *blocks = kept;
                expired
            }
            Err(_) => Vec::new(),
        };
        if let Ok(mut rollups) = shared.rollups.write() {
            rollups.drop_before(keep_from);
        }
        let partitions: BTreeSet<i64> = expired
            .iter()
            .map(|handle| handle.meta.partition_unix_seconds)
            .collect();
        let mut report = RetentionReport {
            dropped_partitions: Vec::new(),
            dropped_blocks: expired.len(),
        };
        for partition in partitions {
            let prefix = block::partition_path(partition);
            delete_prefix(&shared.object_store, &prefix).await?;
            report.dropped_partitions.push(prefix.to_string());
        }
        Ok(report)
    }

    /// Every span carrying this event id, from head and blocks, deduplicated by span id.
    pub async fn spans_by_event_id(&self, event_id: &str) -> Lookup {
        self.lookup(IdLookup::Event(event_id), |span| {
            span.event.event_id.as_deref() == Some(event_id)
        })
        .await
    }

    /// Every span of this trace, from head and blocks, deduplicated by span id.
    pub async fn spans_by_trace_id(&self, trace_id: TraceId) -> Lookup {
        self.lookup(IdLookup::Trace(trace_id), |span| span.trace_id == trace_id)
            .await
    }

    async fn lookup(&self, id: IdLookup<'_>, matches: impl Fn(&Span) -> bool) -> Lookup {
        let shared = &self.shared;
        let mut spans: Vec<Span> = Vec::new();
        if let Ok(head) = shared.head.read() {
            spans.extend(head.spans().filter(|span| matches(span)).cloned());
        }
        let flushing: Vec<Arc<Head>> = shared
            .flushing
            .read()
            .map(|list| list.clone())
            .unwrap_or_default();
        for frozen in &flushing {
            spans.extend(frozen.spans().filter(|span| matches(span)).cloned());
        }
        let blocks: Vec<Arc<BlockHandle>> = shared
            .blocks
            .read()
            .map(|list| list.clone())
            .unwrap_or_default();
        let object_store = &shared.object_store;
        let id_ref = &id;
        let (found, unreadable_blocks) = read_blocks(blocks, 8, |handle| async move {
            handle.lookup(object_store, id_ref).await
        })
        .await;
        spans.extend(found.into_iter().flatten());
        Lookup::of(spans, unreadable_blocks)
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
        let mut batches: Vec<Arc<Vec<Span>>> = shared
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
        StoreStats {
            head_spans,
            flushing_spans,
            n_blocks,
            block_spans,
            block_bytes,
            wal_bytes: wal_dir_bytes(&shared.wal_dir),
            rollup_cells: self.with_rollups(|rollups| rollups.n_cells() as u64),
            spans_appended: shared.spans_appended.load(Ordering::Relaxed),
            counts_appended: shared.counts_appended.load(Ordering::Relaxed),
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

    /// Runs the background work: flush when the head is full or old, retention every minute.
    /// Returns when `shutdown` resolves, after a final flush.
    pub async fn run_maintenance(&self, shutdown: impl std::future::Future<Output = ()>) {
        let shared = &self.shared;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_retention = Instant::now();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tick.tick() => {}
                _ = shared.flush_wanted.notified() => {}
            }
            let head_due = shared.head.read().map(|head| {
                head.n_spans >= shared.config.flush_max_spans
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
        if let Err(error) = self.flush().await {
            tracing::error!(%error, "final flush failed; the data stays in the WAL");
        }
    }
}

fn check_or_write_marker(config: &StoreConfig) -> Result<(), StoreError> {
    let path = marker_path(config);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let marker: DataDirMarker = serde_json::from_slice(&bytes)
                .map_err(|error| StoreError::corrupt(format!("{}: {error}", path.display())))?;
            if marker.format_version != DATA_FORMAT_VERSION {
                return Err(StoreError::corrupt(format!(
                    "{} has data format version {}, this muninn reads version {DATA_FORMAT_VERSION}",
                    config.data_dir.display(),
                    marker.format_version
                )));
            }
            Ok(())
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let bytes = serde_json::to_vec_pretty(&DataDirMarker {
                format_version: DATA_FORMAT_VERSION,
            })
            .map_err(|error| StoreError::corrupt(error.to_string()))?;
            std::fs::write(&path, bytes)
                .map_err(|error| StoreError::io(format!("writing {}", path.display()), error))
        }
        Err(error) => Err(StoreError::io(format!("reading {}", path.display()), error)),
    }
}

fn cells_to_delta(cells: Vec<StoredCell>) -> RollupDelta {
    cells
        .into_iter()
        .map(|stored| ((stored.minute, stored.key), stored.cell))
        .collect()
}

/// Lists committed blocks; deletes blocks of unfinished flushes and directories without a meta.
/// A flush with blocks missing is unfinished only while the WAL still holds its records (the
/// WAL is trimmed only after every block of a flush is written); once the WAL no longer holds
/// them, retention dropped the flush's older partitions and its remaining blocks stay.
async fn load_blocks(
    object_store: &Arc<dyn ObjectStore>,
    oldest_wal_seq: Option<u64>,
) -> Result<(Vec<Arc<BlockHandle>>, u64), StoreError> {
    let prefix = Path::from(block::BLOCKS_PREFIX);
    let objects: Vec<object_store::ObjectMeta> = object_store
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|error| StoreError::object_store(&prefix, error))?;
    let mut files_by_dir: BTreeMap<String, Vec<Path>> = BTreeMap::new();
    for object in &objects {
        let location = object.location.to_string();
        if let Some((dir, _)) = location.rsplit_once('/') {
            files_by_dir
                .entry(dir.to_string())
                .or_default()
                .push(object.location.clone());
        }
    }
    let mut metas: Vec<(String, BlockMeta, String)> = Vec::new();
    let mut orphans: Vec<String> = Vec::new();
    for (dir, files) in &files_by_dir {
        let Some(meta_path) = files
            .iter()
            .find(|path| path.filename() == Some("meta.json"))
        else {
            orphans.push(dir.clone());
            continue;
        };
        let bytes = object_store
            .get(meta_path)
            .await
            .map_err(|error| StoreError::object_store(meta_path, error))?
            .bytes()
            .await
            .map_err(|error| StoreError::object_store(meta_path, error))?;
        let meta: BlockMeta = serde_json::from_slice(&bytes)
            .map_err(|error| StoreError::corrupt(format!("{meta_path}: {error}")))?;
        block::FormatVersion::of(&meta, meta_path)?;
        let flush_id = meta.flush_id.clone();
        metas.push((dir.clone(), meta, flush_id));
    }
    let mut flush_sizes: HashMap<String, u32> = HashMap::new();
    for (_, _, flush_id) in &metas {
        *flush_sizes.entry(flush_id.clone()).or_default() += 1;
    }
    let mut blocks = Vec::new();
    let mut committed_seq = 0;
    for (dir, meta, flush_id) in metas {
        let all_blocks_present = flush_sizes.get(&flush_id).copied() == Some(meta.flush_n_blocks);
        let wal_holds_flush = oldest_wal_seq.is_some_and(|first_seq| first_seq <= meta.flush_seq);
        if all_blocks_present || !wal_holds_flush {
            committed_seq = committed_seq.max(meta.flush_seq);
            blocks.push(Arc::new(BlockHandle::new(meta)));
        } else {
            tracing::warn!(block = %dir, "dropping a block of an unfinished flush; its data is replayed from the WAL");
            orphans.push(dir);
        }
    }
    for dir in orphans {
        delete_prefix(object_store, &Path::from(dir)).await?;
    }
    Ok((blocks, committed_seq))
}

async fn delete_prefix(
    object_store: &Arc<dyn ObjectStore>,
    prefix: &Path,
) -> Result<(), StoreError> {
    let objects: Vec<object_store::ObjectMeta> = object_store
        .list(Some(prefix))
        .try_collect()
        .await
        .map_err(|error| StoreError::object_store(prefix, error))?;
    for object in objects {
        match object_store.delete(&object.location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(error) => return Err(StoreError::object_store(&object.location, error)),
        }
    }
    Ok(())
}

/// Writes one frozen head as one block per hourly partition. On failure the blocks already
/// written are deleted again so that a retry does not duplicate them.
async fn write_head(shared: &Shared, frozen: &Head) -> Result<Vec<Arc<BlockHandle>>, StoreError> {
    let mut partitions: BTreeMap<i64, (Vec<&Span>, Vec<StoredCell>)> = BTreeMap::new();
    // Spans of traces the flush filter drops (tail sampling) stay out of the blocks; their
    // roll-up cells below are written all the same.
    let keep = shared.hooks.flush_filter();
    let kept = frozen
        .spans()
        .filter(|span| keep.as_ref().is_none_or(|keep| keep(&span.trace_id)));
    for span in kept {
        partitions
            .entry(block::partition_of(span.start_unix_nanos))
            .or_default()
            .0
            .push(span);
    }
    for ((minute, key), cell) in &frozen.delta {
        partitions
            .entry(block::partition_of(minute * NANOS_PER_SECOND))
            .or_default()
            .1
            .push(StoredCell {
                minute: *minute,
                key: key.clone(),
                cell: *cell,
            });
    }
    let flush_id = uuid::Uuid::new_v4().simple().to_string();
    let n_blocks = partitions.len() as u32;
    let mut written: Vec<Arc<BlockHandle>> = Vec::new();
    for (partition_unix_seconds, (spans, mut cells)) in partitions {
        cells.sort_by(|left, right| (left.minute, &left.key).cmp(&(right.minute, &right.key)));
        let contents = BlockContents {
            partition_unix_seconds,
            spans,
            cells,
        };
        match block::write_block(
            &shared.object_store,
            contents,
            frozen.last_seq,
            &flush_id,
            n_blocks,
            &shared.config.block,
        )
        .await
        {
            Ok(meta) => written.push(Arc::new(BlockHandle::new(meta))),
            Err(error) => {
                for handle in &written {
                    let _ = delete_prefix(&shared.object_store, &handle.dir).await;
                }
                return Err(error);
            }
        }
    }
    Ok(written)
}

fn delete_segments_up_to(wal_dir: &std::path::Path, last_seq: u64) {
    let Ok(segments) = wal::list_segments(wal_dir) else {
        return;
    };
    for pair in segments.windows(2) {
        if pair[1].first_seq.saturating_sub(1) <= last_seq {
            let _ = std::fs::remove_file(&pair[0].path);
        }
    }
}

fn wal_dir_bytes(wal_dir: &std::path::Path) -> u64 {
    std::fs::read_dir(wal_dir)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok()?.metadata().ok())
                .map(|meta| meta.len())
                .sum()
        })
        .unwrap_or_default()
}

struct PendingAck {
    seq: u64,
    spans: Vec<Span>,
    delta: RollupDelta,
    reply: oneshot::Sender<Result<u64, StoreError>>,
}

/// The WAL thread: drains commands, writes appends, syncs once per group, then makes the
/// group visible (head and roll-ups) and acknowledges it. Freezes are barriers.
fn wal_thread(
    shared: Arc<Shared>,
    mut writer: WalWriter,
    mut commands: mpsc::Receiver<WalCommand>,
) {
    let mut pending: Vec<PendingAck> = Vec::new();
    while let Some(first) = commands.blocking_recv() {
        let mut group = vec![first];
        while group.len() < 4096 {
            match commands.try_recv() {
                Ok(command) => group.push(command),
                Err(_) => break,
            }
        }
        for command in group {
            match command {
                WalCommand::Append {
                    payload,
                    spans,
                    delta,
                    reply,
                } => {
                    if shared.failed.load(Ordering::Relaxed) {
                        let _ = reply.send(Err(StoreError::new(
                            StoreErrorKind::Closed,
                            "the WAL failed earlier",
                        )));
                        continue;
                    }
                    match writer.append(&payload) {
                        Ok(seq) => pending.push(PendingAck {
                            seq,
                            spans,
                            delta,
                            reply,
                        }),
                        Err(error) => {
                            shared.failed.store(true, Ordering::Relaxed);
                            let _ = reply.send(Err(error));
                        }
                    }
                }
                WalCommand::Freeze { reply } => {
                    commit(&shared, &mut writer, &mut pending);
                    let result = writer.rotate().map(|_| {
                        let frozen = match shared.head.write() {
                            Ok(mut head) => Arc::new(std::mem::take(&mut *head)),
                            Err(_) => Arc::new(Head::default()),
                        };
                        if !frozen.is_empty()
                            && let Ok(mut flushing) = shared.flushing.write()
                        {
                            flushing.push(frozen.clone());
                        }
                        frozen
                    });
                    let _ = reply.send(result);
                }
            }
        }
        commit(&shared, &mut writer, &mut pending);
    }
    let _ = writer.sync();
}

fn commit(shared: &Shared, writer: &mut WalWriter, pending: &mut Vec<PendingAck>) {
    if pending.is_empty() {
        return;
    }
    if let Err(error) = writer.sync() {
        shared.failed.store(true, Ordering::Relaxed);
        tracing::error!(%error, "WAL sync failed; the store stops taking writes");
        for ack in pending.drain(..) {
            let _ = ack
                .reply
                .send(Err(StoreError::new(error.kind, error.message.clone())));
        }
        return;
    }
    let mut head_full = false;
    {
        let mut rollups = shared
            .rollups
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut head = shared
            .head
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut n_inserted = 0;
        for ack in pending.iter_mut() {
            rollups.apply(&ack.delta);
            n_inserted += ack.spans.len() as u64;
            head.insert(ack.seq, std::mem::take(&mut ack.spans), &ack.delta);
        }
        shared
            .unflushed_spans
            .fetch_add(n_inserted, Ordering::Relaxed);
        head_full |= head.n_spans >= shared.config.flush_max_spans;
    }
    for ack in pending.drain(..) {
        let _ = ack.reply.send(Ok(ack.seq));
    }
    if head_full {
        shared.flush_wanted.notify_one();
    }
}
