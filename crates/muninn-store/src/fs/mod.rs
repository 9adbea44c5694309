//! The store's file-system layer: every local file the store writes (WAL segments, the data
//! directory's marker, blocks on the local backend) goes through the `FileSystem` trait, and
//! the helpers here are the only places that decide when something is durable. The real
//! implementation is `OsFileSystem`; tests put a simulated one under the store that can lose
//! power (`simulated.rs`) and check that nothing acknowledged is lost.
//!
//! Durability rules, as POSIX file systems need them:
//! - a file's bytes are durable once the file is synced (`sync_data`);
//! - a name (create, rename, unlink, mkdir) is durable once its directory is synced;
//! - so a commit point is written to a temporary name, synced, renamed, and its directory
//!   synced (`write_atomically`); a new directory is made durable by syncing its parent.

mod local_dir;
mod multipart;
mod open_files;
mod os;
#[cfg(any(test, feature = "fault-injection"))]
mod simulated;
mod tiered;

use std::fmt;
use std::io;
use std::ops::Range;
use std::path::Path;
use std::time::SystemTime;

pub use local_dir::LocalDir;

pub use os::OsFileSystem;
#[cfg(any(test, feature = "fault-injection"))]
pub use simulated::SimulatedFs;
pub use tiered::{TierStats, TieredStore};

/// Reads of objects' bytes on the calling thread, where a local disk holds them: for work on a
/// blocking thread already that reads many objects, such as a look-up probing the bloom
/// filters of every block at once (`engine/lookup.rs`). An error means "read it through the
/// object store instead" (no local copy, or the copy failed).
pub(crate) trait LocalReads: fmt::Debug + Send + Sync {
    fn read_ranges_here(
        &self,
        location: &object_store::path::Path,
        ranges: &[Range<u64>],
    ) -> io::Result<Vec<Vec<u8>>>;
}

/// A file open for writing from its start (the store only ever appends to a new file).
pub trait WriteFile: io::Write + Send {
    /// Waits until every byte written so far is on stable storage (`fdatasync`).
    fn sync_data(&mut self) -> io::Result<()>;
}

/// A file open for reading ranges of its bytes, from several threads at once. It reads the
/// file it opened, even after that file is removed or replaced under its name.
pub trait ReadFile: Send + Sync {
    /// Each of `ranges` of the file's bytes, in the order asked; an error when the file is
    /// shorter than one of them.
    fn read_ranges(&self, ranges: &[Range<u64>]) -> io::Result<Vec<Vec<u8>>>;
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub is_dir: bool,
}

/// What the store needs of a file system. Paths are absolute (or relative to the process's
/// directory); implementations do no caching of their own.
pub trait FileSystem: fmt::Debug + Send + Sync + 'static {
    /// Creates `path` (replacing a file of that name) for writing.
    fn create(&self, path: &Path) -> io::Result<Box<dyn WriteFile>>;
    /// The whole file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// `range` of the file's bytes; an error when the file is shorter.
    fn read_range(&self, path: &Path, range: Range<u64>) -> io::Result<Vec<u8>>;
    /// Each of `ranges` of the file's bytes, in the order asked; an error when the file is
    /// shorter than one of them.
    fn read_ranges(&self, path: &Path, ranges: &[Range<u64>]) -> io::Result<Vec<Vec<u8>>> {
        ranges
            .iter()
            .map(|range| self.read_range(path, range.clone()))
            .collect()
    }
    /// Opens the file for reads of ranges that need not open it again (`LocalDir` keeps a few
    /// such files open, `open_files.rs`).
    fn open_read(&self, path: &Path) -> io::Result<std::sync::Arc<dyn ReadFile>>;
    /// The file's size and last modification time.
    fn metadata(&self, path: &Path) -> io::Result<(u64, SystemTime)>;
    /// The directory's entries, in no particular order.
    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>>;
    /// Creates one directory (its parent must exist); `AlreadyExists` if it does.
    fn create_dir(&self, path: &Path) -> io::Result<()>;
    /// Renames a file within the same file system, replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Removes an empty directory.
    fn remove_dir(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creates, renames, removals in it) durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
}

/// Creates `path` and any missing parents, syncing the parent of each directory created so
/// that the new names survive a power loss.
pub fn create_dir_all(fs: &dyn FileSystem, path: &Path) -> io::Result<()> {
    let mut missing: Vec<&Path> = Vec::new();
    let mut current = Some(path);
    while let Some(dir) = current {
        if dir.as_os_str().is_empty() || fs.read_dir(dir).is_ok() {
            break;
        }
        missing.push(dir);
        current = dir.parent();
    }
    for dir in missing.into_iter().rev() {
        match fs.create_dir(dir) {
            Ok(()) => {}
            // Another writer made it meanwhile: it syncs the parent itself.
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(error) => return Err(error),
        }
        if let Some(parent) = dir.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            fs.sync_dir(parent)?;
        }
    }
    Ok(())
}

/// The temporary name `write_atomically` writes to before renaming; listings skip such names.
pub(crate) fn is_temporary(name: &str) -> bool {
    name.contains(TEMPORARY_MARK)
}

const TEMPORARY_MARK: &str = ".muninn-tmp-";

/// Writes `path` so that after a crash or power loss it holds either its old contents (or is
/// absent) or all of `chunks`, never a part: a temporary file in the same directory, synced,
/// renamed over `path`, then the directory synced. The parent directory must exist.
pub fn write_atomically<'a>(
    fs: &dyn FileSystem,
    path: &Path,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> io::Result<()> {
    let parent = parent_of(path)?;
    let temporary = temporary_beside(path)?;
    let written = (|| {
        let mut file = fs.create(&temporary)?;
        for chunk in chunks {
            file.write_all(chunk)?;
        }
        file.flush()?;
        file.sync_data()?;
        fs.rename(&temporary, path)
    })();
    if let Err(error) = written {
        let _ = fs.remove_file(&temporary);
        return Err(error);
    }
    fs.sync_dir(parent)
}

/// Removes the temporary files a crash left in `dir` (not in its subdirectories), durably.
/// Returns how many there were.
/// A new temporary file's name beside `path`: what a crash leaves under such a name is removed
/// at the next start.
fn temporary_beside(path: &Path) -> io::Result<std::path::PathBuf> {
    let file_name = path
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "a file needs a name"))?;
    Ok(parent_of(path)?.join(format!(
        "{file_name}{TEMPORARY_MARK}{}",
        uuid::Uuid::new_v4().simple()
    )))
}

pub fn remove_temporary_files(fs: &dyn FileSystem, dir: &Path) -> io::Result<usize> {
    let mut n_removed = 0;
    for entry in fs.read_dir(dir)? {
        if !entry.is_dir && is_temporary(&entry.name) {
            fs.remove_file(&dir.join(&entry.name))?;
            n_removed += 1;
        }
    }
    if n_removed > 0 {
        fs.sync_dir(dir)?;
    }
    Ok(n_removed)
}

/// Removes a file and makes the removal durable.
pub(crate) fn remove_file(fs: &dyn FileSystem, path: &Path) -> io::Result<()> {
    fs.remove_file(path)?;
    fs.sync_dir(parent_of(path)?)
}

fn parent_of(path: &Path) -> io::Result<&Path> {
    path.parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} has no parent directory", path.display()),
            )
        })
}

/// The total size of the files directly in `dir` (0 when it cannot be listed).
pub(crate) fn dir_bytes(fs: &dyn FileSystem, dir: &Path) -> u64 {
    fs.read_dir(dir)
        .map(|entries| {
            entries
                .iter()
                .filter(|entry| !entry.is_dir)
                .filter_map(|entry| fs.metadata(&dir.join(&entry.name)).ok())
                .map(|(size, _)| size)
                .sum()
        })
        .unwrap_or_default()
}
