//! The real file system, through `std::fs`: `sync_data` is `fdatasync`, and a directory is
//! synced by opening it and calling `fsync` on it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::Path;
use std::time::SystemTime;

use super::{DirEntry, FileSystem, ReadFile, WriteFile};

/// The operating system's file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsFileSystem;

struct OsFile(File);

impl Write for OsFile {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.write(bytes)
    }
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.write_all(bytes)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl WriteFile for OsFile {
    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }
}

/// `range` of an open file's bytes, read into a buffer that is not zeroed first (`File` reads
/// into spare capacity): a look-up reads a few hundred kilobytes of pages, and filling them
/// with zeros before the kernel copies them in cost as much as the copy.
fn read_range_of(mut file: &File, range: Range<u64>) -> io::Result<Vec<u8>> {
    let length = usize::try_from(range.end.saturating_sub(range.start))
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "range too large"))?;
    file.seek(SeekFrom::Start(range.start))?;
    let mut bytes = Vec::with_capacity(length);
    file.take(length as u64).read_to_end(&mut bytes)?;
    if bytes.len() < length {
        return Err(past_the_end(&range, bytes.len()));
    }
    Ok(bytes)
}

/// A file open for reading: ranges are read with `pread`, so threads share it without seeking.
struct OsReadFile(File);

impl ReadFile for OsReadFile {
    fn read_ranges(&self, ranges: &[Range<u64>]) -> io::Result<Vec<Vec<u8>>> {
        ranges
            .iter()
            .map(|range| pread_range(&self.0, range.clone()))
            .collect()
    }
}

/// `range` of the file's bytes by `pread`, into a buffer that is not zeroed first, as
/// `read_range_of` reads.
fn pread_range(file: &File, range: Range<u64>) -> io::Result<Vec<u8>> {
    let length = usize::try_from(range.end.saturating_sub(range.start))
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "range too large"))?;
    let mut bytes = Vec::with_capacity(length);
    while bytes.len() < length {
        let offset = range.start + bytes.len() as u64;
        match rustix::io::pread(file, rustix::buffer::spare_capacity(&mut bytes), offset) {
            Ok(0) => break,
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(error) => return Err(error.into()),
        }
    }
    bytes.truncate(length);
    if bytes.len() < length {
        return Err(past_the_end(&range, bytes.len()));
    }
    Ok(bytes)
}

fn past_the_end(range: &Range<u64>, read: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!(
            "{}..{} is past the end of the file ({read} bytes read)",
            range.start, range.end
        ),
    )
}

impl FileSystem for OsFileSystem {
    fn create(&self, path: &Path) -> io::Result<Box<dyn WriteFile>> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(path)?;
        Ok(Box::new(OsFile(file)))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn read_range(&self, path: &Path, range: Range<u64>) -> io::Result<Vec<u8>> {
        read_range_of(&File::open(path)?, range)
    }

    fn read_ranges(&self, path: &Path, ranges: &[Range<u64>]) -> io::Result<Vec<Vec<u8>>> {
        let file = File::open(path)?;
        ranges
            .iter()
            .map(|range| read_range_of(&file, range.clone()))
            .collect()
    }

    fn open_read(&self, path: &Path) -> io::Result<std::sync::Arc<dyn ReadFile>> {
        Ok(std::sync::Arc::new(OsReadFile(File::open(path)?)))
    }

    fn metadata(&self, path: &Path) -> io::Result<(u64, SystemTime)> {
        let metadata = fs::metadata(path)?;
        Ok((
            metadata.len(),
            metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        ))
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        let mut entries = Vec::new();
        for entry in fs::read_dir(path)? {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            entries.push(DirEntry {
                name,
                is_dir: entry.file_type()?.is_dir(),
            });
        }
        Ok(entries)
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        fs::create_dir(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }
}
