//! A file system in memory that can lose power, for the store's power-loss tests (a fault
//! injector: no user runs it). It keeps two views: what a running machine sees, and what would
//! be on disk after the power went out. The second follows the strictest reading of POSIX:
//! - a file's bytes survive only up to its last `sync_data`; bytes written after it are lost;
//! - a name (a file created, renamed or removed, a directory made or removed) survives only
//!   once its directory has been synced; until then the directory's last synced entries come
//!   back, with the files they named as those files were last synced.
//!
//! `cut_power_after(n)` makes the n-th mutating operation from then on fail, and every
//! operation after it (the machine is off); `after_power_loss()` is the file system that a
//! reboot would find.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::ops::Range;
use std::path::{Component, Path};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use super::{DirEntry, FileSystem, ReadFile, WriteFile};

type NodeId = u64;
const ROOT: NodeId = 0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    File(NodeId),
    Dir(NodeId),
}

#[derive(Debug, Clone, Default)]
struct Inode {
    data: Vec<u8>,
    /// Bytes on stable storage: files are only ever appended to, so a prefix.
    synced_len: usize,
}

#[derive(Debug, Default)]
struct State {
    files: HashMap<NodeId, Inode>,
    /// Each directory's entries as a running machine sees them.
    dirs: HashMap<NodeId, BTreeMap<String, Node>>,
    /// Each directory's entries as of its last sync (absent: never synced, empty on disk).
    synced_dirs: HashMap<NodeId, BTreeMap<String, Node>>,
    next_id: NodeId,
    mutating_ops: u64,
    cut_at: Option<u64>,
    powered_off: bool,
    /// Every mutating operation attempted with the power on, in order, as text.
    journal: Vec<String>,
}

/// An in-memory file system that can lose power. Clones share the same state.
#[derive(Debug, Clone)]
pub struct SimulatedFs {
    state: Arc<Mutex<State>>,
}

impl Default for SimulatedFs {
    fn default() -> Self {
        Self::new()
    }
}

fn powered_off() -> io::Error {
    io::Error::other("simulated power loss: the machine is off")
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file or directory", path.display()),
    )
}

impl State {
    /// Counts a mutating operation; the one at the cut, and all after, fail.
    fn mutate(&mut self, operation: impl FnOnce() -> String) -> io::Result<()> {
        if self.powered_off {
            return Err(powered_off());
        }
        self.mutating_ops += 1;
        if self
            .cut_at
            .is_some_and(|cut_at| self.mutating_ops >= cut_at)
        {
            self.powered_off = true;
            return Err(powered_off());
        }
        self.journal.push(operation());
        Ok(())
    }

    fn read_check(&self) -> io::Result<()> {
        if self.powered_off {
            Err(powered_off())
        } else {
            Ok(())
        }
    }

    fn new_id(&mut self) -> NodeId {
        self.next_id += 1;
        self.next_id
    }

    fn lookup(&self, path: &Path) -> io::Result<Node> {
        let mut node = Node::Dir(ROOT);
        for component in path.components() {
            match component {
                Component::RootDir | Component::CurDir => {}
                Component::Normal(name) => {
                    let Node::Dir(dir) = node else {
                        return Err(not_found(path));
                    };
                    let name = name.to_str().ok_or_else(|| not_found(path))?;
                    node = *self
                        .dirs
                        .get(&dir)
                        .and_then(|entries| entries.get(name))
                        .ok_or_else(|| not_found(path))?;
                }
                Component::Prefix(_) | Component::ParentDir => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("{}: only plain absolute paths", path.display()),
                    ));
                }
            }
        }
        Ok(node)
    }

    /// The directory holding `path` and `path`'s name in it.
    fn parent<'a>(&self, path: &'a Path) -> io::Result<(NodeId, &'a str)> {
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .ok_or_else(|| not_found(path))?;
        match self.lookup(path.parent().ok_or_else(|| not_found(path))?)? {
            Node::Dir(dir) => Ok((dir, name)),
            Node::File(_) => Err(not_found(path)),
        }
    }

    fn file(&self, path: &Path) -> io::Result<&Inode> {
        match self.lookup(path)? {
            Node::File(id) => self.files.get(&id).ok_or_else(|| not_found(path)),
            Node::Dir(_) => Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("{} is a directory", path.display()),
            )),
        }
    }

    fn dir_id(&self, path: &Path) -> io::Result<NodeId> {
        match self.lookup(path)? {
            Node::Dir(id) => Ok(id),
            Node::File(_) => Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is not a directory", path.display()),
            )),
        }
    }
}

impl SimulatedFs {
    /// An empty file system with only its root directory `/`.
    pub fn new() -> Self {
        let mut state = State::default();
        state.dirs.insert(ROOT, BTreeMap::new());
        state.synced_dirs.insert(ROOT, BTreeMap::new());
        SimulatedFs {
            state: Arc::new(Mutex::new(state)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Mutating operations (creates, writes, syncs, renames, removals) so far.
    pub fn mutating_ops(&self) -> u64 {
        self.lock().mutating_ops
    }

    /// The `n`-th mutating operation from now (1 = the next) loses power: it and every
    /// operation after it fail.
    pub fn cut_power_after(&self, n: u64) {
        let mut state = self.lock();
        state.cut_at = Some(state.mutating_ops + n.max(1));
    }

    /// The mutating operations so far, in order: `create PATH`, `write PATH`, `sync PATH`,
    /// `mkdir PATH`, `rename FROM -> TO`, `remove PATH`, `rmdir PATH`, `sync_dir PATH`.
    pub fn journal(&self) -> Vec<String> {
        self.lock().journal.clone()
    }

    /// Whether the power went out.
    pub fn is_powered_off(&self) -> bool {
        self.lock().powered_off
    }

    /// What a reboot finds: only synced names and synced bytes, powered on, no cut planned.
    pub fn after_power_loss(&self) -> SimulatedFs {
        let state = self.lock();
        let mut rebooted = State {
            next_id: state.next_id,
            ..State::default()
        };
        let mut pending = vec![ROOT];
        while let Some(dir) = pending.pop() {
            let entries = state.synced_dirs.get(&dir).cloned().unwrap_or_default();
            for node in entries.values() {
                match *node {
                    Node::Dir(child) => pending.push(child),
                    Node::File(id) => {
                        let inode = state.files.get(&id).cloned().unwrap_or_default();
                        let synced = inode.data[..inode.synced_len].to_vec();
                        rebooted.files.insert(
                            id,
                            Inode {
                                synced_len: synced.len(),
                                data: synced,
                            },
                        );
                    }
                }
            }
            rebooted.synced_dirs.insert(dir, entries.clone());
            rebooted.dirs.insert(dir, entries);
        }
        SimulatedFs {
            state: Arc::new(Mutex::new(rebooted)),
        }
    }
}

struct SimulatedFile {
    state: Arc<Mutex<State>>,
    id: NodeId,
    path: String,
}

impl SimulatedFile {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl io::Write for SimulatedFile {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let mut state = self.lock();
        state.mutate(|| format!("write {}", self.path))?;
        let inode = state
            .files
            .get_mut(&self.id)
            .ok_or_else(|| io::Error::other("simulated file is gone"))?;
        inode.data.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl WriteFile for SimulatedFile {
    fn sync_data(&mut self) -> io::Result<()> {
        let mut state = self.lock();
        state.mutate(|| format!("sync {}", self.path))?;
        if let Some(inode) = state.files.get_mut(&self.id) {
            inode.synced_len = inode.data.len();
        }
        Ok(())
    }
}

fn range_of(data: &[u8], range: Range<u64>, path: &str) -> io::Result<Vec<u8>> {
    let start = usize::try_from(range.start).unwrap_or(usize::MAX);
    let end = usize::try_from(range.end).unwrap_or(usize::MAX);
    data.get(start..end).map(<[u8]>::to_vec).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("{path}: {start}..{end} is past its end"),
        )
    })
}

/// A file open for reading: its inode, which a removal or a rename over its name leaves
/// readable, as POSIX keeps an open file's.
struct SimulatedReadFile {
    state: Arc<Mutex<State>>,
    id: NodeId,
    path: String,
}

impl ReadFile for SimulatedReadFile {
    fn read_ranges(&self, ranges: &[Range<u64>]) -> io::Result<Vec<Vec<u8>>> {
        let state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.read_check()?;
        let inode = state.files.get(&self.id).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("{} is gone", self.path))
        })?;
        ranges
            .iter()
            .map(|range| range_of(&inode.data, range.clone(), &self.path))
            .collect()
    }
}

impl FileSystem for SimulatedFs {
    fn create(&self, path: &Path) -> io::Result<Box<dyn WriteFile>> {
        let mut state = self.lock();
        state.mutate(|| format!("create {}", path.display()))?;
        let (dir, name) = state.parent(path)?;
        if let Some(Node::Dir(_)) = state.dirs.get(&dir).and_then(|entries| entries.get(name)) {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("{} is a directory", path.display()),
            ));
        }
        let id = state.new_id();
        state.files.insert(id, Inode::default());
        state
            .dirs
            .entry(dir)
            .or_default()
            .insert(name.to_string(), Node::File(id));
        Ok(Box::new(SimulatedFile {
            state: self.state.clone(),
            id,
            path: path.display().to_string(),
        }))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let state = self.lock();
        state.read_check()?;
        Ok(state.file(path)?.data.clone())
    }

    fn read_range(&self, path: &Path, range: Range<u64>) -> io::Result<Vec<u8>> {
        let state = self.lock();
        state.read_check()?;
        range_of(&state.file(path)?.data, range, &path.display().to_string())
    }

    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn ReadFile>> {
        let state = self.lock();
        state.read_check()?;
        let Node::File(id) = state.lookup(path)? else {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("{} is a directory", path.display()),
            ));
        };
        Ok(Arc::new(SimulatedReadFile {
            state: self.state.clone(),
            id,
            path: path.display().to_string(),
        }))
    }

    fn metadata(&self, path: &Path) -> io::Result<(u64, SystemTime)> {
        let state = self.lock();
        state.read_check()?;
        let size = state.file(path)?.data.len() as u64;
        Ok((size, SystemTime::UNIX_EPOCH + Duration::from_secs(1)))
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        let state = self.lock();
        state.read_check()?;
        let dir = state.dir_id(path)?;
        Ok(state
            .dirs
            .get(&dir)
            .map(|entries| {
                entries
                    .iter()
                    .map(|(name, node)| DirEntry {
                        name: name.clone(),
                        is_dir: matches!(node, Node::Dir(_)),
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.mutate(|| format!("mkdir {}", path.display()))?;
        let (dir, name) = state.parent(path)?;
        if state
            .dirs
            .get(&dir)
            .is_some_and(|entries| entries.contains_key(name))
        {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists", path.display()),
            ));
        }
        let id = state.new_id();
        state.dirs.insert(id, BTreeMap::new());
        state
            .dirs
            .entry(dir)
            .or_default()
            .insert(name.to_string(), Node::Dir(id));
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.mutate(|| format!("rename {} -> {}", from.display(), to.display()))?;
        let node = state.lookup(from)?;
        let (from_dir, from_name) = state.parent(from)?;
        let (to_dir, to_name) = state.parent(to)?;
        if let Some(entries) = state.dirs.get_mut(&from_dir) {
            entries.remove(from_name);
        }
        state
            .dirs
            .entry(to_dir)
            .or_default()
            .insert(to_name.to_string(), node);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.mutate(|| format!("remove {}", path.display()))?;
        state.file(path)?;
        let (dir, name) = state.parent(path)?;
        if let Some(entries) = state.dirs.get_mut(&dir) {
            entries.remove(name);
        }
        Ok(())
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.mutate(|| format!("rmdir {}", path.display()))?;
        let id = state.dir_id(path)?;
        if state
            .dirs
            .get(&id)
            .is_some_and(|entries| !entries.is_empty())
        {
            return Err(io::Error::new(
                io::ErrorKind::DirectoryNotEmpty,
                format!("{} is not empty", path.display()),
            ));
        }
        let (dir, name) = state.parent(path)?;
        if let Some(entries) = state.dirs.get_mut(&dir) {
            entries.remove(name);
        }
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.mutate(|| format!("sync_dir {}", path.display()))?;
        let id = state.dir_id(path)?;
        let entries = state.dirs.get(&id).cloned().unwrap_or_default();
        state.synced_dirs.insert(id, entries);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::{create_dir_all, write_atomically};
    use std::io::Write;

    fn names(fs: &dyn FileSystem, dir: &str) -> Vec<String> {
        let mut names: Vec<String> = fs
            .read_dir(Path::new(dir))
            .unwrap()
            .into_iter()
            .map(|entry| entry.name)
            .collect();
        names.sort();
        names
    }

    #[test]
    fn unsynced_bytes_and_names_are_lost_and_synced_ones_survive() {
        let fs = SimulatedFs::new();
        create_dir_all(&fs, Path::new("/data/wal")).unwrap();
        let mut file = fs.create(Path::new("/data/wal/1.wal")).unwrap();
        file.write_all(b"acknowledged").unwrap();
        file.sync_data().unwrap();
        file.write_all(b" not yet").unwrap();
        fs.sync_dir(Path::new("/data/wal")).unwrap();
        // Created but its directory never synced afterwards.
        fs.create(Path::new("/data/wal/2.wal"))
            .unwrap()
            .sync_data()
            .unwrap();
        let rebooted = fs.after_power_loss();
        assert_eq!(names(&rebooted, "/data/wal"), ["1.wal"]);
        assert_eq!(
            rebooted.read(Path::new("/data/wal/1.wal")).unwrap(),
            b"acknowledged"
        );
    }

    #[test]
    fn an_atomic_write_leaves_the_old_or_the_new_contents_never_a_part() {
        let fs = SimulatedFs::new();
        create_dir_all(&fs, Path::new("/d")).unwrap();
        write_atomically(&fs, Path::new("/d/meta.json"), [&b"old"[..]]).unwrap();
        let before = fs.mutating_ops();
        write_atomically(&fs, Path::new("/d/meta.json"), [&b"new"[..]]).unwrap();
        let n_ops = fs.mutating_ops() - before;
        for cut in 1..=n_ops + 1 {
            let fs = SimulatedFs::new();
            create_dir_all(&fs, Path::new("/d")).unwrap();
            write_atomically(&fs, Path::new("/d/meta.json"), [&b"old"[..]]).unwrap();
            fs.cut_power_after(cut);
            let result = write_atomically(&fs, Path::new("/d/meta.json"), [&b"new"[..]]);
            let rebooted = fs.after_power_loss();
            let contents = rebooted.read(Path::new("/d/meta.json")).unwrap();
            if result.is_ok() {
                assert_eq!(contents, b"new", "acknowledged at cut {cut}");
            } else {
                assert!(contents == b"old" || contents == b"new", "cut {cut}");
            }
            assert_eq!(names(&rebooted, "/d"), ["meta.json"], "cut {cut}");
        }
    }

    #[test]
    fn a_directory_made_without_syncing_its_parent_is_gone() {
        let fs = SimulatedFs::new();
        fs.create_dir(Path::new("/blocks")).unwrap();
        fs.create_dir(Path::new("/blocks/b1")).unwrap();
        fs.sync_dir(Path::new("/blocks/b1")).unwrap();
        fs.sync_dir(Path::new("/")).unwrap();
        let rebooted = fs.after_power_loss();
        assert_eq!(names(&rebooted, "/blocks"), Vec::<String>::new());
        assert!(fs.read_dir(Path::new("/blocks/b1")).is_ok());
    }

    #[test]
    fn the_machine_is_off_from_the_cut_on() {
        let fs = SimulatedFs::new();
        fs.cut_power_after(2);
        fs.create_dir(Path::new("/a")).unwrap();
        assert!(fs.create_dir(Path::new("/b")).is_err());
        assert!(fs.is_powered_off());
        assert!(fs.read_dir(Path::new("/")).is_err());
        assert!(fs.after_power_loss().read_dir(Path::new("/")).is_ok());
    }
}
