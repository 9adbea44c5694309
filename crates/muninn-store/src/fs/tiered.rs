//! Two tiers behind one `ObjectStore`: the remote store (S3) holds every object and is the
//! truth; a local directory keeps a copy of the most recent blocks, bounded in bytes. Writes go
//! to the remote store first, then to the local copy (a flush's blocks and a compaction's output,
//! as they are written: the blocks queries read most); reads are served from the local copy when
//! it has the object, else from the remote store with ranged reads of only what the query needs
//! (row groups and columns, never whole objects). When the copies pass the bound, those of the
//! oldest partitions go first (object paths sort by `dt=…/hour=…`, so by age). Listings always
//! come from the remote store, so a copy whose object is gone is never seen.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result, UploadPart,
};

use super::LocalDir;

/// What the tiers did since the store opened, for `/metrics`.
#[derive(Debug, Default)]
pub struct TierCounters {
    /// Reads served from the local copy.
    pub cache_hits: AtomicU64,
    /// Reads sent to the remote store, and the bytes they asked for.
    pub remote_reads: AtomicU64,
    pub remote_read_bytes: AtomicU64,
    /// The bytes of the local copies now, and their bound.
    pub cache_bytes: AtomicU64,
    pub cache_max_bytes: AtomicU64,
    /// Local copies written and evicted, and local writes that failed (the object is then read
    /// from the remote store).
    pub cached_objects: AtomicU64,
    pub evicted_objects: AtomicU64,
    pub cache_errors: AtomicU64,
}

/// A snapshot of `TierCounters`, for `StoreStats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TierStats {
    pub cache_hits: u64,
    pub remote_reads: u64,
    pub remote_read_bytes: u64,
    pub cache_bytes: u64,
    pub cache_max_bytes: u64,
    pub cached_objects: u64,
    pub evicted_objects: u64,
    pub cache_errors: u64,
}

impl TierStats {
    pub fn of(counters: &TierCounters) -> TierStats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        TierStats {
            cache_hits: load(&counters.cache_hits),
            remote_reads: load(&counters.remote_reads),
            remote_read_bytes: load(&counters.remote_read_bytes),
            cache_bytes: load(&counters.cache_bytes),
            cache_max_bytes: load(&counters.cache_max_bytes),
            cached_objects: load(&counters.cached_objects),
            evicted_objects: load(&counters.evicted_objects),
            cache_errors: load(&counters.cache_errors),
        }
    }
}

/// The remote store with a bounded local copy of its newest objects.
pub struct TieredStore {
    remote: Arc<dyn ObjectStore>,
    local: LocalDir,
    /// The objects with a local copy, by path (oldest partition first), and their sizes.
    copies: Arc<Mutex<BTreeMap<Path, u64>>>,
    counters: Arc<TierCounters>,
}

impl fmt::Debug for TieredStore {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "TieredStore({}, cache {})",
            self.remote, self.local
        )
    }
}

impl fmt::Display for TieredStore {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{} (cached in {})", self.remote, self.local)
    }
}

impl TieredStore {
    /// Tiers over `remote`, keeping up to `max_bytes` of copies in `local` (what an earlier run
    /// left there is counted, and evicted first if it is older).
    pub async fn open(
        remote: Arc<dyn ObjectStore>,
        local: LocalDir,
        max_bytes: u64,
    ) -> Result<TieredStore> {
        local.remove_temporary_files().await?;
        let found: Vec<ObjectMeta> = local.list(None).try_collect().await?;
        let copies: BTreeMap<Path, u64> = found
            .into_iter()
            .map(|meta| (meta.location, meta.size))
            .collect();
        let counters = Arc::new(TierCounters::default());
        counters
            .cache_bytes
            .store(copies.values().sum(), Ordering::Relaxed);
        counters.cache_max_bytes.store(max_bytes, Ordering::Relaxed);
        let store = TieredStore {
            remote,
            local,
            copies: Arc::new(Mutex::new(copies)),
            counters,
        };
        store.evict().await;
        Ok(store)
    }

    pub fn counters(&self) -> Arc<TierCounters> {
        self.counters.clone()
    }

    /// Copies `location` from the remote store into the local tier, unless it has a copy or
    /// the copy would not fit without evicting others (a query node keeps the newest blocks it
    /// finds this way, newest first). Returns the bytes copied; a missing object copies none.
    pub async fn prefetch(&self, location: &Path) -> Result<u64> {
        if !self.keeps_copies() || self.has_copy(location) {
            return Ok(0);
        }
        let object = match self.remote.get(location).await {
            Ok(object) => object,
            Err(object_store::Error::NotFound { .. }) => return Ok(0),
            Err(error) => return Err(error),
        };
        let size = object.meta.size;
        let (held, max) = (
            self.counters.cache_bytes.load(Ordering::Relaxed),
            self.counters.cache_max_bytes.load(Ordering::Relaxed),
        );
        if held + size > max {
            return Ok(0);
        }
        let bytes = object.bytes().await?;
        self.remote_read(size);
        self.local.put(location, bytes.into()).await?;
        self.copied(location, size).await;
        Ok(size)
    }

    /// False with a bound of 0: every read goes to the remote store (and is counted).
    fn keeps_copies(&self) -> bool {
        self.counters.cache_max_bytes.load(Ordering::Relaxed) > 0
    }

    fn has_copy(&self, location: &Path) -> bool {
        self.copies
            .lock()
            .map(|copies| copies.contains_key(location))
            .unwrap_or(false)
    }

    /// Records a local copy written, then evicts past the bound.
    async fn copied(&self, location: &Path, size: u64) {
        if let Ok(mut copies) = self.copies.lock()
            && let Some(earlier) = copies.insert(location.clone(), size)
        {
            self.counters
                .cache_bytes
                .fetch_sub(earlier, Ordering::Relaxed);
        }
        self.counters.cache_bytes.fetch_add(size, Ordering::Relaxed);
        self.counters.cached_objects.fetch_add(1, Ordering::Relaxed);
        self.evict().await;
    }

    /// Deletes the copies of the oldest objects until the rest fit the bound.
    async fn evict(&self) {
        let max_bytes = self.counters.cache_max_bytes.load(Ordering::Relaxed);
        loop {
            let oldest = match self.copies.lock() {
                Ok(mut copies) if self.counters.cache_bytes.load(Ordering::Relaxed) > max_bytes => {
                    copies.pop_first()
                }
                _ => None,
            };
            let Some((location, size)) = oldest else {
                return;
            };
            self.counters.cache_bytes.fetch_sub(size, Ordering::Relaxed);
            self.counters
                .evicted_objects
                .fetch_add(1, Ordering::Relaxed);
            self.forget_copy(&location).await;
        }
    }

    /// Deletes a local copy (a missing one is fine).
    async fn forget_copy(&self, location: &Path) {
        match self.local.delete(location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(error) => {
                self.counters.cache_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, "removing a cached block file");
            }
        }
    }

    /// A read the local copy could not serve: the copy is forgotten, and the failure counted
    /// unless the copy was simply gone (evicted, or its block deleted, while the read began).
    async fn copy_failed(&self, location: &Path, error: &object_store::Error) {
        if !matches!(error, object_store::Error::NotFound { .. }) {
            tracing::warn!(%error, "reading a cached block file; reading it from the object store");
            self.counters.cache_errors.fetch_add(1, Ordering::Relaxed);
        }
        let removed = self
            .copies
            .lock()
            .ok()
            .and_then(|mut copies| copies.remove(location));
        if let Some(size) = removed {
            self.counters.cache_bytes.fetch_sub(size, Ordering::Relaxed);
        }
        self.forget_copy(location).await;
    }

    fn remote_read(&self, bytes: u64) {
        self.counters.remote_reads.fetch_add(1, Ordering::Relaxed);
        self.counters
            .remote_read_bytes
            .fetch_add(bytes, Ordering::Relaxed);
    }
}

#[async_trait]
impl ObjectStore for TieredStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        options: PutOptions,
    ) -> Result<PutResult> {
        let result = self
            .remote
            .put_opts(location, payload.clone(), options)
            .await?;
        let size = payload.content_length() as u64;
        if !self.keeps_copies() {
            return Ok(result);
        }
        match self.local.put(location, payload).await {
            Ok(_) => self.copied(location, size).await,
            Err(error) => {
                self.counters.cache_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, "caching a block file written to the object store");
            }
        }
        Ok(result)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        options: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let remote = self.remote.put_multipart_opts(location, options).await?;
        let local = if self.keeps_copies() {
            match self.local.put_multipart(location).await {
                Ok(local) => Some(local),
                Err(error) => {
                    self.counters.cache_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%error, "caching a block file being written to the object store");
                    None
                }
            }
        } else {
            None
        };
        Ok(Box::new(TeeUpload {
            remote,
            local,
            location: location.clone(),
            size: 0,
            store: TieredHandle {
                copies: self.copies.clone(),
                counters: self.counters.clone(),
            },
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        if self.has_copy(location) {
            match self.local.get_opts(location, options.clone()).await {
                Ok(result) => {
                    self.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(result);
                }
                Err(error) => self.copy_failed(location, &error).await,
            }
        }
        let result = self.remote.get_opts(location, options).await?;
        self.remote_read(result.range.end - result.range.start);
        Ok(result)
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        if self.has_copy(location) {
            match self.local.get_ranges(location, ranges).await {
                Ok(read) => {
                    self.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(read);
                }
                Err(error) => self.copy_failed(location, &error).await,
            }
        }
        let read = self.remote.get_ranges(location, ranges).await?;
        self.remote_read(read.iter().map(|bytes| bytes.len() as u64).sum());
        Ok(read)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let remote = self.remote.clone();
        let local = self.local.clone();
        let copies = self.copies.clone();
        let counters = self.counters.clone();
        locations
            .map(move |location| {
                let (remote, local, copies, counters) = (
                    remote.clone(),
                    local.clone(),
                    copies.clone(),
                    counters.clone(),
                );
                async move {
                    let location = location?;
                    remote.delete(&location).await?;
                    let removed = copies
                        .lock()
                        .ok()
                        .and_then(|mut copies| copies.remove(&location));
                    if let Some(size) = removed {
                        counters.cache_bytes.fetch_sub(size, Ordering::Relaxed);
                        if let Err(error) = local.delete(&location).await {
                            counters.cache_errors.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(%error, "removing a cached block file");
                        }
                    }
                    Ok(location)
                }
            })
            .buffered(8)
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.remote.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.remote.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.remote.copy_opts(from, to, options).await
    }
}

/// What an upload needs of its store once it completes.
struct TieredHandle {
    copies: Arc<Mutex<BTreeMap<Path, u64>>>,
    counters: Arc<TierCounters>,
}

/// A multipart upload to the remote store whose parts are also written to the local copy; the
/// copy is kept only if both complete (eviction waits for the next write).
struct TeeUpload {
    remote: Box<dyn MultipartUpload>,
    local: Option<Box<dyn MultipartUpload>>,
    location: Path,
    size: u64,
    store: TieredHandle,
}

impl fmt::Debug for TeeUpload {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "TeeUpload({})", self.location)
    }
}

#[async_trait]
impl MultipartUpload for TeeUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.size += data.content_length() as u64;
        if let Some(local) = &mut self.local {
            // The local part is written before this returns (`LocalUpload`); its result comes
            // with `complete`.
            let written = local.put_part(data.clone());
            drop(written);
        }
        self.remote.put_part(data)
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let result = self.remote.complete().await;
        let Some(mut local) = self.local.take() else {
            return result;
        };
        if result.is_err() {
            let _ = local.abort().await;
            return result;
        }
        match local.complete().await {
            Ok(_) => {
                if let Ok(mut copies) = self.store.copies.lock() {
                    copies.insert(self.location.clone(), self.size);
                }
                let counters = &self.store.counters;
                counters.cache_bytes.fetch_add(self.size, Ordering::Relaxed);
                counters.cached_objects.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                self.store
                    .counters
                    .cache_errors
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, "caching a block file written to the object store");
            }
        }
        result
    }

    async fn abort(&mut self) -> Result<()> {
        if let Some(mut local) = self.local.take() {
            let _ = local.abort().await;
        }
        self.remote.abort().await
    }
}

/// Reads from the local copies only: an object without one, or whose copy fails, is read
/// through the object store (which then deals with the failed copy).
impl super::LocalReads for TieredStore {
    fn read_ranges_here(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> std::io::Result<Vec<Vec<u8>>> {
        if !self.has_copy(location) {
            return Err(std::io::Error::other("no local copy"));
        }
        let read = self.local.read_ranges_here(location, ranges)?;
        self.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use object_store::ObjectStoreExt;

    use super::*;
    use crate::fs::{LocalReads, OsFileSystem};

    fn dir_store(path: &std::path::Path) -> LocalDir {
        LocalDir::new(path, Arc::new(OsFileSystem))
    }

    fn block_file(hour: u32, name: &str) -> Path {
        Path::from(format!(
            "blocks/v2/dt=2026-12-06/hour={hour:02}/b{hour}/{name}"
        ))
    }

    async fn read(store: &dyn ObjectStore, location: &Path) -> Bytes {
        store.get(location).await.unwrap().bytes().await.unwrap()
    }

    /// Written through to both tiers; read from the copy; the oldest partitions' copies go
    /// first past the bound, and their reads go to the remote store, ranged; a delete removes
    /// both; a copy lost under the store is read from the remote store.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_newest_blocks_are_read_locally_and_the_rest_from_the_remote_store() {
        let dir = tempfile::tempdir().unwrap();
        let remote = Arc::new(dir_store(&dir.path().join("remote")));
        let tiered = TieredStore::open(remote.clone(), dir_store(&dir.path().join("cache")), 2_500)
            .await
            .unwrap();
        let counters = tiered.counters();
        let content = |hour: u32| Bytes::from(vec![hour as u8; 1_000]);
        for hour in [3, 1, 2] {
            tiered
                .put(&block_file(hour, "spans.parquet"), content(hour).into())
                .await
                .unwrap();
        }
        for hour in [1, 2, 3] {
            assert_eq!(
                read(remote.as_ref(), &block_file(hour, "spans.parquet")).await,
                content(hour),
                "every object is in the remote store"
            );
        }
        let stats = TierStats::of(&counters);
        assert_eq!(stats.cache_bytes, 2_000, "{stats:?}");
        assert_eq!(stats.evicted_objects, 1, "{stats:?}");
        assert!(
            !dir.path()
                .join("cache/blocks/v2/dt=2026-12-06/hour=01/b1/spans.parquet")
                .exists(),
            "the oldest hour's copy is gone"
        );

        assert_eq!(
            read(&tiered, &block_file(3, "spans.parquet")).await,
            content(3)
        );
        let ranges = tiered
            .get_ranges(&block_file(2, "spans.parquet"), &[0..10, 500..510])
            .await
            .unwrap();
        assert_eq!(
            ranges,
            vec![content(2).slice(0..10), content(2).slice(500..510)]
        );
        assert_eq!(TierStats::of(&counters).cache_hits, 2);
        assert_eq!(TierStats::of(&counters).remote_reads, 0);
        let old = tiered
            .get_ranges(&block_file(1, "spans.parquet"), &[100..164, 900..910])
            .await
            .unwrap();
        assert_eq!(
            old,
            vec![content(1).slice(100..164), content(1).slice(900..910)]
        );
        let stats = TierStats::of(&counters);
        assert_eq!(
            (stats.remote_reads, stats.remote_read_bytes),
            (1, 74),
            "{stats:?}"
        );
        // A look-up's reads on its own thread: from a copy, or not at all.
        let here = LocalReads::read_ranges_here(
            &tiered,
            &block_file(2, "spans.parquet"),
            &[8..12, 20..22],
        );
        assert_eq!(here.unwrap(), vec![vec![2u8; 4], vec![2u8; 2]]);
        assert_eq!(TierStats::of(&counters).cache_hits, 3);
        let evicted =
            LocalReads::read_ranges_here(&tiered, &block_file(1, "spans.parquet"), &[0..4, 8..9]);
        assert!(evicted.is_err(), "no copy of hour 1: {evicted:?}");
        assert_eq!(TierStats::of(&counters).remote_reads, 1);

        tiered
            .delete(&block_file(3, "spans.parquet"))
            .await
            .unwrap();
        assert!(remote.head(&block_file(3, "spans.parquet")).await.is_err());
        assert_eq!(TierStats::of(&counters).cache_bytes, 1_000);
        std::fs::remove_file(
            dir.path()
                .join("cache/blocks/v2/dt=2026-12-06/hour=02/b2/spans.parquet"),
        )
        .unwrap();
        assert_eq!(
            read(&tiered, &block_file(2, "spans.parquet")).await,
            content(2)
        );
        let stats = TierStats::of(&counters);
        assert_eq!(
            stats.cache_bytes, 0,
            "the lost copy is forgotten: {stats:?}"
        );
        assert_eq!(
            stats.remote_reads, 2,
            "and read from the remote store: {stats:?}"
        );
        let listed: Vec<ObjectMeta> = tiered.list(None).try_collect().await.unwrap();
        assert_eq!(listed.len(), 2, "listings come from the remote store");
    }

    /// A multipart upload (a compaction's output) lands in both tiers; copies an earlier run
    /// left are counted when the store opens again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn uploads_are_copied_and_copies_are_found_again_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let remote = Arc::new(dir_store(&dir.path().join("remote")));
        let open = || async {
            TieredStore::open(
                remote.clone(),
                dir_store(&dir.path().join("cache")),
                1 << 20,
            )
            .await
            .unwrap()
        };
        let tiered = open().await;
        let location = block_file(5, "spans.parquet");
        let mut upload = tiered.put_multipart(&location).await.unwrap();
        upload
            .put_part(Bytes::from(vec![1u8; 300]).into())
            .await
            .unwrap();
        upload
            .put_part(Bytes::from(vec![2u8; 200]).into())
            .await
            .unwrap();
        upload.complete().await.unwrap();
        let expected: Vec<u8> = [vec![1u8; 300], vec![2u8; 200]].concat();
        assert_eq!(read(remote.as_ref(), &location).await, expected);
        assert_eq!(TierStats::of(&tiered.counters()).cache_bytes, 500);
        drop(tiered);
        let reopened = open().await;
        assert_eq!(TierStats::of(&reopened.counters()).cache_bytes, 500);
        assert_eq!(read(&reopened, &location).await, expected);
        assert_eq!(TierStats::of(&reopened.counters()).cache_hits, 1);
    }

    /// A query node's copies: fetched whole from the remote store while they fit, never by
    /// evicting others; a missing object copies nothing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn prefetch_copies_what_fits_and_evicts_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let remote = Arc::new(dir_store(&dir.path().join("remote")));
        for (hour, size) in [(1, 600), (2, 600), (3, 600)] {
            remote
                .put(
                    &block_file(hour, "spans.parquet"),
                    Bytes::from(vec![hour as u8; size]).into(),
                )
                .await
                .unwrap();
        }
        let tiered = TieredStore::open(remote.clone(), dir_store(&dir.path().join("cache")), 1_000)
            .await
            .unwrap();
        assert_eq!(
            tiered
                .prefetch(&block_file(3, "spans.parquet"))
                .await
                .unwrap(),
            600
        );
        assert_eq!(
            tiered
                .prefetch(&block_file(3, "spans.parquet"))
                .await
                .unwrap(),
            0,
            "already copied"
        );
        assert_eq!(
            tiered
                .prefetch(&block_file(2, "spans.parquet"))
                .await
                .unwrap(),
            0,
            "does not fit beside the newer copy"
        );
        assert_eq!(
            tiered.prefetch(&block_file(9, "meta.json")).await.unwrap(),
            0
        );
        let stats = TierStats::of(&tiered.counters());
        assert_eq!(
            (stats.cache_bytes, stats.evicted_objects),
            (600, 0),
            "{stats:?}"
        );
        assert_eq!(
            read(&tiered, &block_file(3, "spans.parquet")).await,
            Bytes::from(vec![3u8; 600])
        );
        assert_eq!(TierStats::of(&tiered.counters()).cache_hits, 1);
    }
}
