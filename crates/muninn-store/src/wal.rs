//! The write-ahead log: length- and CRC-framed records in numbered segment files under
//! `<data_dir>/wal/`. A record is acknowledged only after `fdatasync`; many concurrent
//! appends share one sync (group commit). A torn record at the tail (a crash mid-write) ends
//! replay of that segment: it was never acknowledged.
//!
//! Segment file: the 8-byte magic `MUNWAL01`, then records of
//! `[payload length: u32 LE][crc32 of seq and payload: u32 LE][seq: u64 LE][payload]`.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::StoreError;

const MAGIC: &[u8; 8] = b"MUNWAL01";
const RECORD_HEADER_BYTES: usize = 16;
/// A record larger than this is treated as corruption on replay.
const MAX_RECORD_BYTES: usize = 1 << 30;

/// The open segment being appended to.
pub(crate) struct WalWriter {
    dir: PathBuf,
    file: BufWriter<File>,
    segment_path: PathBuf,
    next_seq: u64,
}

/// One segment on disk: its path and the first sequence number it may hold.
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    pub first_seq: u64,
    pub path: PathBuf,
}

pub(crate) fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.wal"))
}

/// Lists segments in sequence order.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<Segment>, StoreError> {
    let mut segments = Vec::new();
    let entries = fs::read_dir(dir)
        .map_err(|error| StoreError::io(format!("listing {}", dir.display()), error))?;
    for entry in entries {
        let entry =
            entry.map_err(|error| StoreError::io(format!("listing {}", dir.display()), error))?;
        let path = entry.path();
        let Some(stem) = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.strip_suffix(".wal"))
        else {
            continue;
        };
        if let Ok(first_seq) = stem.parse::<u64>() {
            segments.push(Segment { first_seq, path });
        }
    }
    segments.sort_by_key(|segment| segment.first_seq);
    Ok(segments)
}

/// Reads every intact record of a segment, in order, calling `visit(seq, payload)`.
/// Returns the number of bytes of intact records (the rest is a torn tail).
pub(crate) fn replay_segment(
    path: &Path,
    mut visit: impl FnMut(u64, &[u8]) -> Result<(), StoreError>,
) -> Result<u64, StoreError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut file| file.read_to_end(&mut bytes))
        .map_err(|error| StoreError::io(format!("reading {}", path.display()), error))?;
    if bytes.len() < MAGIC.len() {
        return Ok(0);
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err(StoreError::corrupt(format!(
            "{} is not a Muninn WAL segment (bad magic)",
            path.display()
        )));
    }
    let mut position = MAGIC.len();
    while bytes.len() - position >= RECORD_HEADER_BYTES {
        let header = &bytes[position..position + RECORD_HEADER_BYTES];
        let length = u32::from_le_bytes(header[0..4].try_into().unwrap_or_default()) as usize;
        let crc = u32::from_le_bytes(header[4..8].try_into().unwrap_or_default());
        let seq_bytes = &header[8..16];
        if length > MAX_RECORD_BYTES || bytes.len() - position - RECORD_HEADER_BYTES < length {
            break;
        }
        let payload =
            &bytes[position + RECORD_HEADER_BYTES..position + RECORD_HEADER_BYTES + length];
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(seq_bytes);
        hasher.update(payload);
        if hasher.finalize() != crc {
            break;
        }
        let seq = u64::from_le_bytes(seq_bytes.try_into().unwrap_or_default());
        visit(seq, payload)?;
        position += RECORD_HEADER_BYTES + length;
    }
    Ok(position as u64)
}

impl WalWriter {
    /// Starts a new segment whose first record will have `next_seq`.
    pub(crate) fn create(dir: &Path, next_seq: u64) -> Result<WalWriter, StoreError> {
        let segment_path = segment_path(dir, next_seq);
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&segment_path)
            .map_err(|error| {
                StoreError::io(format!("creating {}", segment_path.display()), error)
            })?;
        let mut file = BufWriter::with_capacity(1 << 20, file);
        file.write_all(MAGIC).map_err(|error| {
            StoreError::io(format!("writing {}", segment_path.display()), error)
        })?;
        let mut writer = WalWriter {
            dir: dir.to_path_buf(),
            file,
            segment_path,
            next_seq,
        };
        writer.sync()?;
        // Make the new file's directory entry durable too.
        if let Ok(directory) = File::open(dir) {
            let _ = directory.sync_all();
        }
        Ok(writer)
    }

    /// Appends one record (buffered; call `sync` before acknowledging). Returns its seq.
    pub(crate) fn append(&mut self, payload: &[u8]) -> Result<u64, StoreError> {
        let seq = self.next_seq;
        let seq_bytes = seq.to_le_bytes();
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&seq_bytes);
        hasher.update(payload);
        let crc = hasher.finalize();
        let length = u32::try_from(payload.len()).map_err(|_| {
            StoreError::corrupt(format!(
                "a WAL record of {} bytes is too large",
                payload.len()
            ))
        })?;
        let write = |file: &mut BufWriter<File>| -> std::io::Result<()> {
            file.write_all(&length.to_le_bytes())?;
            file.write_all(&crc.to_le_bytes())?;
            file.write_all(&seq_bytes)?;
            file.write_all(payload)
        };
        write(&mut self.file).map_err(|error| {
            StoreError::io(format!("writing {}", self.segment_path.display()), error)
        })?;
        self.next_seq += 1;
        Ok(seq)
    }

    /// Flushes buffered records and waits until they are on stable storage.
    pub(crate) fn sync(&mut self) -> Result<(), StoreError> {
        self.file
            .flush()
            .and_then(|()| self.file.get_ref().sync_data())
            .map_err(|error| {
                StoreError::io(format!("syncing {}", self.segment_path.display()), error)
            })
    }

    /// Closes the current segment and starts the next; returns the last seq of the closed one.
    pub(crate) fn rotate(&mut self) -> Result<u64, StoreError> {
        self.sync()?;
        let last_seq = self.next_seq - 1;
        *self = WalWriter::create(&self.dir.clone(), self.next_seq)?;
        Ok(last_seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_what_was_written_and_stops_at_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = WalWriter::create(dir.path(), 5).unwrap();
        assert_eq!(writer.append(b"first").unwrap(), 5);
        assert_eq!(writer.append(b"second").unwrap(), 6);
        writer.sync().unwrap();
        drop(writer);
        let path = segment_path(dir.path(), 5);
        // A torn record: a header promising more bytes than were written.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&100u32.to_le_bytes()).unwrap();
        file.write_all(&[1, 2, 3]).unwrap();
        let mut seen = Vec::new();
        replay_segment(&path, |seq, payload| {
            seen.push((seq, payload.to_vec()));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, vec![(5, b"first".to_vec()), (6, b"second".to_vec())]);
        assert_eq!(list_segments(dir.path()).unwrap().len(), 1);
    }

    #[test]
    fn a_flipped_bit_is_not_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = WalWriter::create(dir.path(), 1).unwrap();
        writer.append(b"payload").unwrap();
        writer.sync().unwrap();
        drop(writer);
        let path = segment_path(dir.path(), 1);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, bytes).unwrap();
        let mut n_records = 0;
        replay_segment(&path, |_, _| {
            n_records += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(n_records, 0);
    }
}
