//! Files `LocalDir` keeps open for reading: an id look-up probes the bloom filter of every
//! block in its time range and reads the pages of the blocks that hold its ids, and opening and
//! closing a block's file for each of those reads cost about a tenth of the look-ups' CPU at a
//! hundred blocks (docs/lookups.md). At most `capacity` files stay open, the least recently
//! read closed first; a file deleted or put through the store is forgotten then, so that its
//! space is freed and the next read opens the new file.

use std::collections::HashMap;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{FileSystem, ReadFile};

/// How many files a `LocalDir` keeps open by default: a few hundred blocks of an hour's look-ups,
/// well inside the 1,024 descriptors a process gets by default.
pub(super) const DEFAULT_CAPACITY: usize = 256;

pub(super) struct OpenFiles {
    capacity: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    files: HashMap<PathBuf, Entry>,
    /// Counts reads, to find the least recently read file.
    clock: u64,
    /// Counts forgets: a file opened before one is not kept, since it may be the one forgotten.
    forgets: u64,
}

struct Entry {
    file: Arc<dyn ReadFile>,
    read_at: u64,
}

impl std::fmt::Debug for OpenFiles {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("OpenFiles")
            .field("capacity", &self.capacity)
            .field("open", &self.lock().files.len())
            .finish()
    }
}

impl OpenFiles {
    pub(super) fn new(capacity: usize) -> Self {
        OpenFiles {
            capacity,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Each of `ranges` of the file at `path`, read from its open file (opened now if it is not
    /// open). A failed read closes the file, so that the next read opens it again.
    pub(super) fn read_ranges(
        &self,
        fs: &dyn FileSystem,
        path: &Path,
        ranges: &[Range<u64>],
    ) -> io::Result<Vec<Vec<u8>>> {
        let file = self.open(fs, path)?;
        file.read_ranges(ranges).inspect_err(|_| self.forget(path))
    }

    /// Each of `ranges` of the file at `path` if it is open already; `None` if it is not (the
    /// caller then opens it where blocking is allowed, with [`OpenFiles::read_ranges`]).
    pub(super) fn read_ranges_if_open(
        &self,
        path: &Path,
        ranges: &[Range<u64>],
    ) -> Option<io::Result<Vec<Vec<u8>>>> {
        let file = {
            let mut state = self.lock();
            state.clock += 1;
            let now = state.clock;
            let entry = state.files.get_mut(path)?;
            entry.read_at = now;
            entry.file.clone()
        };
        Some(file.read_ranges(ranges).inspect_err(|_| self.forget(path)))
    }

    fn open(&self, fs: &dyn FileSystem, path: &Path) -> io::Result<Arc<dyn ReadFile>> {
        let forgets = {
            let mut state = self.lock();
            state.clock += 1;
            let now = state.clock;
            if let Some(entry) = state.files.get_mut(path) {
                entry.read_at = now;
                return Ok(entry.file.clone());
            }
            state.forgets
        };
        let file = fs.open_read(path)?;
        let mut state = self.lock();
        if state.forgets == forgets && self.capacity > 0 {
            if state.files.len() >= self.capacity {
                let oldest = state
                    .files
                    .iter()
                    .min_by_key(|(_, entry)| entry.read_at)
                    .map(|(path, _)| path.clone());
                if let Some(oldest) = oldest {
                    state.files.remove(&oldest);
                }
            }
            let read_at = state.clock;
            state.files.insert(
                path.to_path_buf(),
                Entry {
                    file: file.clone(),
                    read_at,
                },
            );
        }
        Ok(file)
    }

    /// Closes the file at `path` if it is open (reads in progress finish on it): called before
    /// the file is deleted or replaced.
    pub(super) fn forget(&self, path: &Path) {
        let mut state = self.lock();
        state.forgets += 1;
        state.files.remove(path);
    }

    #[cfg(test)]
    pub(super) fn open_count(&self) -> usize {
        self.lock().files.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::{OsFileSystem, write_atomically};

    #[test]
    #[allow(clippy::single_range_in_vec_init)] // one range of bytes asked, not a list of numbers
    fn reads_share_an_open_file_until_it_is_forgotten_and_the_oldest_is_closed_first() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFileSystem;
        let paths: Vec<PathBuf> = (0..3).map(|n| dir.path().join(format!("{n}"))).collect();
        for (n, path) in paths.iter().enumerate() {
            write_atomically(&fs, path, [format!("file {n} bytes").as_bytes()]).unwrap();
        }
        let files = OpenFiles::new(2);
        assert_eq!(
            files.read_ranges(&fs, &paths[0], &[0..6, 7..12]).unwrap(),
            [b"file 0".to_vec(), b"bytes".to_vec()]
        );
        files.read_ranges(&fs, &paths[1], &[0..1]).unwrap();
        // The first file read again is the most recent: the second is closed for the third.
        files.read_ranges(&fs, &paths[0], &[0..1]).unwrap();
        files.read_ranges(&fs, &paths[2], &[5..6]).unwrap();
        assert_eq!(files.open_count(), 2);

        // An open file reads what it opened, even after its name is replaced...
        write_atomically(&fs, &paths[0], [b"new contents".as_slice()]).unwrap();
        assert_eq!(
            files.read_ranges(&fs, &paths[0], &[0..6]).unwrap(),
            [b"file 0".to_vec()]
        );
        // ...until it is forgotten, as a put or a delete through the store does.
        files.forget(&paths[0]);
        assert_eq!(
            files.read_ranges(&fs, &paths[0], &[0..3]).unwrap(),
            [b"new".to_vec()]
        );
        std::fs::remove_file(&paths[2]).unwrap();
        files.forget(&paths[2]);
        let error = files.read_ranges(&fs, &paths[2], &[0..1]).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotFound);

        // A range past the end is an error naming it, and closes the file.
        let error = files.read_ranges(&fs, &paths[1], &[10..40]).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
        assert!(error.to_string().contains("10..40"), "{error}");
        assert_eq!(files.open_count(), 1);
    }

    #[test]
    #[allow(clippy::single_range_in_vec_init)] // one range of bytes asked, not a list of numbers
    fn a_read_without_opening_answers_only_from_a_file_open_already() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFileSystem;
        let path = dir.path().join("block");
        write_atomically(&fs, &path, [b"file bytes".as_slice()]).unwrap();
        let files = OpenFiles::new(2);
        assert!(files.read_ranges_if_open(&path, &[0..4]).is_none());
        files.read_ranges(&fs, &path, &[0..1]).unwrap();
        assert_eq!(
            files
                .read_ranges_if_open(&path, &[0..4, 5..10])
                .unwrap()
                .unwrap(),
            [b"file".to_vec(), b"bytes".to_vec()]
        );
        // A range past the end is an error, and closes the file as a read that opens does.
        let error = files
            .read_ranges_if_open(&path, &[8..40])
            .unwrap()
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
        assert!(files.read_ranges_if_open(&path, &[0..4]).is_none());
        // A forgotten file (deleted or replaced through the store) is not read from.
        files.read_ranges(&fs, &path, &[0..1]).unwrap();
        files.forget(&path);
        assert!(files.read_ranges_if_open(&path, &[0..4]).is_none());
    }
}
