//! `LocalDir`: the store's object store on a local directory, through `FileSystem`. It differs
//! from `object_store`'s `LocalFileSystem` in what the store's commit points need: a put
//! returns only once the object's bytes and its name (and any directory it created) are on
//! stable storage, and a delete only once the removal is, so that a flush may delete the WAL
//! segments its blocks replace. Emptied directories are removed on delete, so dropped
//! partitions leave nothing behind.

use std::fmt;
use std::io;
use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    Attributes, CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult,
    Result,
};

use super::multipart::LocalUpload;
use super::open_files::{DEFAULT_CAPACITY, OpenFiles};
use super::{FileSystem, create_dir_all, is_temporary, write_atomically};

const STORE_NAME: &str = "LocalDir";

/// The most bytes one `get_ranges` of an open file reads on the calling thread: a look-up's
/// pages of a row group (a few hundred KiB), copied from the page cache in well under a
/// tenth of a millisecond.
const INLINE_READ_BYTES: u64 = 1 << 20;

/// An object store on a local directory whose writes are durable when they return.
#[derive(Debug, Clone)]
pub struct LocalDir {
    root: PathBuf,
    fs: Arc<dyn FileSystem>,
    /// Files kept open for ranged reads (look-ups' probes and pages), shared by the clones.
    open_files: Arc<OpenFiles>,
}

impl fmt::Display for LocalDir {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "LocalDir({})", self.root.display())
    }
}

pub(super) fn to_error(location: &Path, error: io::Error) -> object_store::Error {
    if error.kind() == io::ErrorKind::NotFound {
        object_store::Error::NotFound {
            path: location.to_string(),
            source: Box::new(error),
        }
    } else {
        object_store::Error::Generic {
            store: STORE_NAME,
            source: format!("{location}: {error}").into(),
        }
    }
}

fn not_implemented(operation: &str) -> object_store::Error {
    object_store::Error::NotImplemented {
        operation: operation.to_string(),
        implementer: STORE_NAME.to_string(),
    }
}

fn object_meta(location: Path, size: u64, modified: std::time::SystemTime) -> ObjectMeta {
    ObjectMeta {
        location,
        last_modified: modified.into(),
        size,
        e_tag: None,
        version: None,
    }
}

impl LocalDir {
    /// Objects live under `root` (created when it does not exist yet, on the first put).
    pub fn new(root: impl Into<PathBuf>, fs: Arc<dyn FileSystem>) -> Self {
        LocalDir {
            root: root.into(),
            fs,
            open_files: Arc::new(OpenFiles::new(DEFAULT_CAPACITY)),
        }
    }

    fn path_of(root: &FsPath, location: &Path) -> PathBuf {
        let mut path = root.to_path_buf();
        for part in location.parts() {
            path.push(part.as_ref());
        }
        path
    }

    /// Removes the temporary files that puts interrupted by a crash left anywhere under the
    /// root, and the directories that leaves empty. Returns how many files there were.
    pub async fn remove_temporary_files(&self) -> Result<usize> {
        self.run(|fs, root| {
            remove_temporary_files_under(fs, root, root)
                .map_err(|error| to_error(&Path::default(), error))
        })
        .await
    }

    /// Runs file-system work on a blocking thread.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&dyn FileSystem, &FsPath) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let fs = self.fs.clone();
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || work(fs.as_ref(), &root))
            .await
            .map_err(|error| object_store::Error::Generic {
                store: STORE_NAME,
                source: Box::new(error),
            })?
    }
}

impl super::LocalReads for LocalDir {
    fn read_ranges_here(&self, location: &Path, ranges: &[Range<u64>]) -> io::Result<Vec<Vec<u8>>> {
        self.open_files.read_ranges(
            self.fs.as_ref(),
            &LocalDir::path_of(&self.root, location),
            ranges,
        )
    }
}

/// Removes `path`, makes that durable, then removes the directories it leaves empty up to
/// (not including) `root`.
fn delete_file(fs: &dyn FileSystem, root: &FsPath, path: &FsPath) -> io::Result<()> {
    super::remove_file(fs, path)?;
    let mut dir = path.parent();
    while let Some(current) = dir.filter(|current| *current != root && current.starts_with(root)) {
        if !fs.read_dir(current)?.is_empty() {
            break;
        }
        match fs.remove_dir(current) {
            Ok(()) => {}
            // Something was put there meanwhile, or another delete removed it.
            Err(_) => break,
        }
        if let Some(parent) = current.parent() {
            fs.sync_dir(parent)?;
        }
        dir = current.parent();
    }
    Ok(())
}

fn remove_temporary_files_under(
    fs: &dyn FileSystem,
    root: &FsPath,
    dir: &FsPath,
) -> io::Result<usize> {
    let entries = match fs.read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(error),
    };
    let mut n_removed = 0;
    for entry in entries.iter().filter(|entry| entry.is_dir) {
        n_removed += remove_temporary_files_under(fs, root, &dir.join(&entry.name))?;
    }
    let n_here = super::remove_temporary_files(fs, dir)?;
    if n_here > 0
        && dir != root
        && fs.read_dir(dir)?.is_empty()
        && fs.remove_dir(dir).is_ok()
        && let Some(parent) = dir.parent()
    {
        fs.sync_dir(parent)?;
    }
    Ok(n_removed + n_here)
}

/// Every object under `dir` (recursively), named relative to `root`.
fn walk(
    fs: &dyn FileSystem,
    root: &FsPath,
    dir: &FsPath,
    found: &mut Vec<ObjectMeta>,
) -> io::Result<()> {
    let entries = match fs.read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    for entry in entries {
        let path = dir.join(&entry.name);
        if entry.is_dir {
            walk(fs, root, &path, found)?;
            continue;
        }
        if is_temporary(&entry.name) {
            continue;
        }
        let Some(relative) = path
            .strip_prefix(root)
            .ok()
            .and_then(|relative| relative.to_str())
        else {
            continue;
        };
        let Ok(location) = Path::parse(relative) else {
            continue;
        };
        let (size, modified) = match fs.metadata(&path) {
            Ok(metadata) => metadata,
            // Deleted while listing.
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => return Err(error),
        };
        found.push(object_meta(location, size, modified));
    }
    Ok(())
}

#[async_trait]
impl ObjectStore for LocalDir {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        options: PutOptions,
    ) -> Result<PutResult> {
        let create_only = match options.mode {
            PutMode::Overwrite => false,
            PutMode::Create => true,
            PutMode::Update(_) => return Err(not_implemented("put with PutMode::Update")),
        };
        let location = location.clone();
        let open_files = self.open_files.clone();
        self.run(move |fs, root| {
            let path = LocalDir::path_of(root, &location);
            let parent = path.parent().unwrap_or(root);
            create_dir_all(fs, parent).map_err(|error| to_error(&location, error))?;
            if create_only && fs.metadata(&path).is_ok() {
                return Err(object_store::Error::AlreadyExists {
                    path: location.to_string(),
                    source: "the object exists".into(),
                });
            }
            let chunks: &[Bytes] = payload.as_ref();
            write_atomically(fs, &path, chunks.iter().map(|chunk| chunk.as_ref()))
                .map_err(|error| to_error(&location, error))?;
            open_files.forget(&path);
            Ok(PutResult {
                e_tag: None,
                version: None,
            })
        })
        .await
    }

    /// Parts are written to a temporary file as they are handed over (see `LocalUpload`); the
    /// object appears, durable, when the upload completes. Options (tags, attributes) are not
    /// kept, as with `put`.
    async fn put_multipart_opts(
        &self,
        location: &Path,
        _options: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let creating = location.clone();
        self.run(move |fs, root| {
            let path = LocalDir::path_of(root, &creating);
            let parent = path.parent().unwrap_or(root);
            create_dir_all(fs, parent).map_err(|error| to_error(&creating, error))
        })
        .await?;
        let path = LocalDir::path_of(&self.root, location);
        let upload = LocalUpload::start(
            self.fs.clone(),
            self.open_files.clone(),
            location.clone(),
            path,
        )
        .map_err(|error| to_error(location, error))?;
        Ok(Box::new(upload))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let location = location.clone();
        let open_files = self.open_files.clone();
        self.run(move |fs, root| {
            let path = LocalDir::path_of(root, &location);
            let (size, modified) = fs
                .metadata(&path)
                .map_err(|error| to_error(&location, error))?;
            let meta = object_meta(location.clone(), size, modified);
            options.check_preconditions(&meta)?;
            let range = match &options.range {
                Some(range) => {
                    range
                        .as_range(size)
                        .map_err(|error| object_store::Error::Generic {
                            store: STORE_NAME,
                            source: Box::new(error),
                        })?
                }
                None => 0..size,
            };
            let bytes = if options.head {
                Bytes::new()
            } else if range == (0..size) {
                Bytes::from(fs.read(&path).map_err(|error| to_error(&location, error))?)
            } else {
                // A part of a file (a block's footer, pages): from the file kept open.
                let mut read = open_files
                    .read_ranges(fs, &path, std::slice::from_ref(&range))
                    .map_err(|error| to_error(&location, error))?;
                Bytes::from(read.pop().unwrap_or_default())
            };
            Ok(GetResult {
                payload: GetResultPayload::Stream(
                    futures::stream::once(async { Ok(bytes) }).boxed(),
                ),
                meta,
                range,
                attributes: Attributes::default(),
            })
        })
        .await
    }

    /// Each range read exactly, from the file kept open (`open_files.rs`): a local disk has no
    /// per-request cost to amortise, so unlike `object_store`'s default, ranges are not merged
    /// across the gaps between them (up to 1 MiB each), which made a look-up copy every page
    /// between the few it needs.
    ///
    /// A few pages of a file open already are read on the calling thread: a `pread` of them
    /// from the page cache costs microseconds, and handing it to a blocking thread cost a
    /// thread wake-up and a switch for every column chunk a look-up reads
    /// ([`INLINE_READ_BYTES`]). Files not open yet, and larger reads, go to a blocking thread.
    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let n_bytes: u64 = ranges
            .iter()
            .map(|range| range.end.saturating_sub(range.start))
            .sum();
        if n_bytes <= INLINE_READ_BYTES
            && let Some(read) = self
                .open_files
                .read_ranges_if_open(&LocalDir::path_of(&self.root, location), ranges)
        {
            let read = read.map_err(|error| to_error(location, error))?;
            return Ok(read.into_iter().map(Bytes::from).collect());
        }
        let location = location.clone();
        let ranges = ranges.to_vec();
        let open_files = self.open_files.clone();
        self.run(move |fs, root| {
            let path = LocalDir::path_of(root, &location);
            let read = open_files
                .read_ranges(fs, &path, &ranges)
                .map_err(|error| to_error(&location, error))?;
            Ok(read.into_iter().map(Bytes::from).collect())
        })
        .await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let store = self.clone();
        locations
            .map(move |location| {
                let store = store.clone();
                async move {
                    let location = location?;
                    let deleted = location.clone();
                    let open_files = store.open_files.clone();
                    store
                        .run(move |fs, root| {
                            let path = LocalDir::path_of(root, &location);
                            let deleted = delete_file(fs, root, &path)
                                .map_err(|error| to_error(&location, error));
                            // Closed after the unlink, so that no read opens it again.
                            open_files.forget(&path);
                            deleted
                        })
                        .await?;
                    Ok(deleted)
                }
            })
            .buffered(8)
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let store = self.clone();
        let prefix = prefix.cloned().unwrap_or_default();
        futures::stream::once(async move {
            let listed = store
                .run(move |fs, root| {
                    let mut found = Vec::new();
                    walk(fs, root, &LocalDir::path_of(root, &prefix), &mut found)
                        .map_err(|error| to_error(&prefix, error))?;
                    Ok(found)
                })
                .await;
            futures::stream::iter(match listed {
                Ok(found) => found.into_iter().map(Ok).collect::<Vec<_>>(),
                Err(error) => vec![Err(error)],
            })
        })
        .flatten()
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let prefix = prefix.cloned().unwrap_or_default();
        self.run(move |fs, root| {
            let dir = LocalDir::path_of(root, &prefix);
            let mut result = ListResult {
                common_prefixes: Vec::new(),
                objects: Vec::new(),
            };
            let entries = match fs.read_dir(&dir) {
                Ok(entries) => entries,
                Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(result),
                Err(error) => return Err(to_error(&prefix, error)),
            };
            for entry in entries {
                if is_temporary(&entry.name) {
                    continue;
                }
                let location = prefix.clone().join(entry.name.as_str());
                if entry.is_dir {
                    result.common_prefixes.push(location);
                } else if let Ok((size, modified)) = fs.metadata(&dir.join(&entry.name)) {
                    result.objects.push(object_meta(location, size, modified));
                }
            }
            Ok(result)
        })
        .await
    }

    async fn copy_opts(&self, _from: &Path, _to: &Path, _options: CopyOptions) -> Result<()> {
        Err(not_implemented("copy"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::SimulatedFs;
    use futures::TryStreamExt;
    use object_store::ObjectStoreExt;

    fn local_dir(fs: &SimulatedFs) -> LocalDir {
        LocalDir::new("/data", Arc::new(fs.clone()))
    }

    /// On the real file system, as blocks are read: each range comes back exactly as
    /// written, however far apart, and a range past the end is an error naming the object.
    #[tokio::test]
    async fn ranges_are_read_exactly_and_one_past_the_end_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDir::new(dir.path(), Arc::new(crate::fs::OsFileSystem));
        let location = Path::from("p/b1/spans.parquet");
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        store
            .put(&location, PutPayload::from(bytes.clone()))
            .await
            .unwrap();
        let ranges = [
            10..20,
            2_500_000..2_500_100,
            0..1,
            2_999_990..3_000_000,
            5..5,
        ];
        let read = store.get_ranges(&location, &ranges).await.unwrap();
        assert_eq!(read.len(), ranges.len());
        for (range, got) in ranges.iter().zip(&read) {
            let expected = &bytes[range.start as usize..range.end as usize];
            assert_eq!(&got[..], expected, "range {range:?}");
        }
        let error = store
            .get_ranges(&location, &[0..10, 2_999_990..3_000_001])
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("spans.parquet"), "{error}");
        assert!(error.contains("past the end"), "{error}");
    }

    #[tokio::test]
    async fn objects_put_are_read_listed_and_deleted_with_their_empty_directories() {
        let fs = SimulatedFs::new();
        let store = local_dir(&fs);
        let location = Path::from("blocks/v1/dt=2026-11-20/hour=10/b1/spans.parquet");
        store
            .put(&location, PutPayload::from_static(b"0123456789"))
            .await
            .unwrap();
        assert_eq!(
            store.get_range(&location, 2..5).await.unwrap().as_ref(),
            b"234"
        );
        assert_eq!(
            store
                .get(&location)
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
                .len(),
            10
        );
        let listed: Vec<ObjectMeta> = store
            .list(Some(&Path::from("blocks")))
            .try_collect()
            .await
            .unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].location, location);
        assert_eq!(listed[0].size, 10);
        store.delete(&location).await.unwrap();
        assert!(fs.read_dir(FsPath::new("/data")).unwrap().is_empty());
        assert!(matches!(
            store.get(&location).await,
            Err(object_store::Error::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn a_put_that_returned_survives_a_power_loss_with_its_new_directories() {
        let fs = SimulatedFs::new();
        let location = Path::from("blocks/v1/dt=2026-11-20/hour=10/b1/meta.json");
        local_dir(&fs)
            .put(&location, PutPayload::from_static(b"{}"))
            .await
            .unwrap();
        let rebooted = local_dir(&fs.after_power_loss());
        assert_eq!(
            rebooted
                .get(&location)
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
                .as_ref(),
            b"{}"
        );
    }

    #[tokio::test]
    async fn a_delete_that_returned_stays_deleted_after_a_power_loss() {
        let fs = SimulatedFs::new();
        let store = local_dir(&fs);
        let kept = Path::from("p/a/kept");
        let dropped_beside = Path::from("p/a/dropped");
        let dropped_alone = Path::from("p/b/dropped");
        for location in [&kept, &dropped_beside, &dropped_alone] {
            store
                .put(location, PutPayload::from_static(b"x"))
                .await
                .unwrap();
        }
        store.delete(&dropped_beside).await.unwrap();
        store.delete(&dropped_alone).await.unwrap();
        let rebooted = fs.after_power_loss();
        let listed: Vec<Path> = local_dir(&rebooted)
            .list(None)
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .unwrap();
        assert_eq!(listed, vec![kept]);
        let mut dirs: Vec<String> = rebooted
            .read_dir(FsPath::new("/data/p"))
            .unwrap()
            .into_iter()
            .map(|entry| entry.name)
            .collect();
        dirs.sort();
        assert_eq!(dirs, ["a"], "an emptied directory does not come back");
    }

    #[tokio::test]
    async fn temporary_files_a_crash_left_are_removed_with_the_directories_they_alone_filled() {
        let fs = SimulatedFs::new();
        let store = local_dir(&fs);
        store
            .put(&Path::from("p/a/kept"), PutPayload::from_static(b"x"))
            .await
            .unwrap();
        crate::fs::create_dir_all(&fs, FsPath::new("/data/p/b")).unwrap();
        for leftover in [
            "/data/p/a/kept.muninn-tmp-1",
            "/data/p/b/meta.json.muninn-tmp-2",
        ] {
            fs.create(FsPath::new(leftover)).unwrap();
        }
        assert_eq!(store.remove_temporary_files().await.unwrap(), 2);
        let names = |dir: &str| -> Vec<String> {
            let mut names: Vec<String> = fs
                .read_dir(FsPath::new(dir))
                .unwrap()
                .into_iter()
                .map(|entry| entry.name)
                .collect();
            names.sort();
            names
        };
        assert_eq!(names("/data/p"), ["a"]);
        assert_eq!(names("/data/p/a"), ["kept"]);
        assert_eq!(store.remove_temporary_files().await.unwrap(), 0);
    }
}
