//! The write-ahead log: length- and CRC-framed records in numbered segment files under
//! `<data_dir>/wal/`. A record is acknowledged only after `fdatasync`; many concurrent
//! appends share one sync (group commit). All file access goes through `FileSystem`.
//!
//! Segment file: an 8-byte magic, then records of
//! `[payload length: u32 LE][crc32 of seq and payload: u32 LE][seq: u64 LE][payload]`.
//! Within a segment, sequence numbers follow each other by one, from the number in its name.
//! The magic names the format of the payloads (`WalFormat`): `MUNWAL02` is written, and
//! `MUNWAL01` segments, which older builds wrote, are still replayed.
//!
//! Damage on replay is handled in two ways. A record that does not check out with no intact
//! record after it is a torn tail (a crash mid-write): it was never acknowledged, and replay of
//! the segment ends there. A record that does not check out *followed by intact records* is
//! damage in the middle (a bad disk block, a stray write): acknowledged data may be gone, so
//! replay reports it (`Damage`: segment, offset, bytes) and resumes at the next intact record,
//! keeping everything after it.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::StoreError;
use crate::fs::{FileSystem, WriteFile};

/// The magic of the segments this build writes.
const MAGIC: &[u8; 8] = b"MUNWAL02";
/// The magic of segments written before records could hold columns.
const MAGIC_V1: &[u8; 8] = b"MUNWAL01";

/// The format of a segment's payloads, from its magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WalFormat {
    /// `MUNWAL01`: every payload is a batch's spans and counts (postcard).
    V1,
    /// `MUNWAL02`: every payload starts with a byte naming its kind (`engine::wal_record`).
    V2,
    /// The magic is damaged: either.
    Unknown,
}
const RECORD_HEADER_BYTES: usize = 16;
/// A record larger than this is treated as corruption on replay.
const MAX_RECORD_BYTES: usize = 1 << 30;
/// How far past the last intact record a resynchronising scan accepts a sequence number: the
/// damaged region can only have held so many records.
const MAX_SKIPPED_SEQS: u64 = 1 << 20;

/// The open segment being appended to.
pub(crate) struct WalWriter {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    file: BufWriter<Box<dyn WriteFile>>,
    segment_path: PathBuf,
    /// The seq the segment's first record has (or will have).
    first_seq: u64,
    next_seq: u64,
    /// The segment's length so far, written or buffered.
    bytes: u64,
}

/// One segment on disk: its path and the first sequence number it may hold.
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    pub first_seq: u64,
    pub path: PathBuf,
}

/// A damaged region in the middle of a segment that replay skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Damage {
    /// Byte offset of the first damaged byte in the segment file.
    pub offset: u64,
    /// Bytes skipped up to the next intact record.
    pub bytes: u64,
    /// Sequence numbers that the skipped region held (the gap between intact records).
    pub lost_seqs: std::ops::Range<u64>,
}

/// What replaying one segment found.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    /// Bytes up to the end of the last intact record (the rest is a torn tail).
    pub intact_bytes: u64,
    /// Damaged regions followed by intact records, in file order.
    pub damage: Vec<Damage>,
}

pub(crate) fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.wal"))
}

/// Lists segments in sequence order.
pub(crate) fn list_segments(fs: &dyn FileSystem, dir: &Path) -> Result<Vec<Segment>, StoreError> {
    let entries = fs
        .read_dir(dir)
        .map_err(|error| StoreError::io(format!("listing {}", dir.display()), error))?;
    let mut segments: Vec<Segment> = entries
        .into_iter()
        .filter(|entry| !entry.is_dir)
        .filter_map(|entry| {
            let first_seq = entry.name.strip_suffix(".wal")?.parse::<u64>().ok()?;
            Some(Segment {
                first_seq,
                path: dir.join(&entry.name),
            })
        })
        .collect();
    segments.sort_by_key(|segment| segment.first_seq);
    Ok(segments)
}

/// The record at `position` when it is intact: its seq, payload and total length.
fn intact_record(bytes: &[u8], position: usize) -> Option<(u64, &[u8], usize)> {
    let header = bytes.get(position..position.checked_add(RECORD_HEADER_BYTES)?)?;
    let length = u32::from_le_bytes(header[0..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..8].try_into().ok()?);
    if length > MAX_RECORD_BYTES {
        return None;
    }
    let payload_start = position + RECORD_HEADER_BYTES;
    let payload = bytes.get(payload_start..payload_start.checked_add(length)?)?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header[8..16]);
    hasher.update(payload);
    if hasher.finalize() != crc {
        return None;
    }
    let seq = u64::from_le_bytes(header[8..16].try_into().ok()?);
    Some((seq, payload, RECORD_HEADER_BYTES + length))
}

/// The first intact record after the damaged one at `damaged`, whose seq follows
/// `expected_seq` (within `MAX_SKIPPED_SEQS`): first where the damaged record's own length
/// says the next one starts (a flipped payload bit), then at every later byte.
fn resynchronise(bytes: &[u8], damaged: usize, expected_seq: u64) -> Option<usize> {
    let plausible = |position: usize| -> bool {
        let Some(seq_bytes) = bytes.get(position + 8..position + RECORD_HEADER_BYTES) else {
            return false;
        };
        let seq = u64::from_le_bytes(seq_bytes.try_into().unwrap_or_default());
        // The cheap test first: most byte positions fail it.
        seq >= expected_seq
            && seq - expected_seq <= MAX_SKIPPED_SEQS
            && intact_record(bytes, position).is_some()
    };
    if let Some(header) = bytes.get(damaged..damaged + 4) {
        let length = u32::from_le_bytes(header.try_into().unwrap_or_default()) as usize;
        let next = damaged
            .saturating_add(RECORD_HEADER_BYTES)
            .saturating_add(length);
        if length <= MAX_RECORD_BYTES && plausible(next) {
            return Some(next);
        }
    }
    (damaged + 1..bytes.len().saturating_sub(RECORD_HEADER_BYTES - 1)).find(|&at| plausible(at))
}

/// Reads every intact record of a segment, in order, calling `visit(format, seq, payload)`; skips
/// damaged regions that intact records follow, and stops at a torn tail.
pub(crate) fn replay_segment(
    fs: &dyn FileSystem,
    segment: &Segment,
    visit: impl FnMut(WalFormat, u64, &[u8]) -> Result<(), StoreError>,
) -> Result<Replay, StoreError> {
    let path = &segment.path;
    let bytes = fs
        .read(path)
        .map_err(|error| StoreError::io(format!("reading {}", path.display()), error))?;
    replay_bytes(&bytes, segment.first_seq, path, visit)
}

/// `replay_segment` over a segment's bytes; `path` names it in errors.
pub(crate) fn replay_bytes(
    bytes: &[u8],
    first_seq: u64,
    path: &Path,
    mut visit: impl FnMut(WalFormat, u64, &[u8]) -> Result<(), StoreError>,
) -> Result<Replay, StoreError> {
    let mut replay = Replay::default();
    if bytes.len() < MAGIC.len() {
        return Ok(replay);
    }
    let format = match &bytes[..MAGIC.len()] {
        magic if magic == MAGIC => WalFormat::V2,
        magic if magic == MAGIC_V1 => WalFormat::V1,
        _ => WalFormat::Unknown,
    };
    if format == WalFormat::Unknown {
        // A damaged magic is damage like any other: the records after it are still read.
        tracing::error!(segment = %path.display(), "WAL segment does not start with the magic MUNWAL02 (or MUNWAL01); reading the records after it");
        replay.damage.push(Damage {
            offset: 0,
            bytes: MAGIC.len() as u64,
            lost_seqs: first_seq..first_seq,
        });
    }
    let mut position = MAGIC.len();
    let mut expected_seq = first_seq;
    while bytes.len() - position >= RECORD_HEADER_BYTES {
        match intact_record(bytes, position) {
            Some((seq, payload, length)) => {
                visit(format, seq, payload)?;
                expected_seq = seq.saturating_add(1);
                position += length;
            }
            None => {
                let Some(next) = resynchronise(bytes, position, expected_seq) else {
                    break;
                };
                let next_seq = intact_record(bytes, next).map_or(expected_seq, |(seq, ..)| seq);
                replay.damage.push(Damage {
                    offset: position as u64,
                    bytes: (next - position) as u64,
                    lost_seqs: expected_seq..next_seq,
                });
                position = next;
            }
        }
    }
    replay.intact_bytes = position as u64;
    Ok(replay)
}

impl WalWriter {
    /// Starts a new segment whose first record will have `next_seq`, durably (the file and
    /// its directory entry).
    pub(crate) fn create(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        next_seq: u64,
    ) -> Result<WalWriter, StoreError> {
        let segment_path = segment_path(dir, next_seq);
        let file = fs.create(&segment_path).map_err(|error| {
            StoreError::io(format!("creating {}", segment_path.display()), error)
        })?;
        let mut file = BufWriter::with_capacity(1 << 20, file);
        file.write_all(MAGIC).map_err(|error| {
            StoreError::io(format!("writing {}", segment_path.display()), error)
        })?;
        let mut writer = WalWriter {
            fs,
            dir: dir.to_path_buf(),
            file,
            segment_path,
            first_seq: next_seq,
            next_seq,
            bytes: MAGIC.len() as u64,
        };
        writer.sync()?;
        writer
            .fs
            .sync_dir(dir)
            .map_err(|error| StoreError::io(format!("syncing {}", dir.display()), error))?;
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
        let write = |file: &mut BufWriter<Box<dyn WriteFile>>| -> std::io::Result<()> {
            file.write_all(&length.to_le_bytes())?;
            file.write_all(&crc.to_le_bytes())?;
            file.write_all(&seq_bytes)?;
            file.write_all(payload)
        };
        write(&mut self.file).map_err(|error| {
            StoreError::io(format!("writing {}", self.segment_path.display()), error)
        })?;
        self.next_seq += 1;
        self.bytes += (RECORD_HEADER_BYTES + payload.len()) as u64;
        Ok(seq)
    }

    /// The current segment's length, written or buffered.
    pub(crate) fn segment_bytes(&self) -> u64 {
        self.bytes
    }

    /// Flushes buffered records and waits until they are on stable storage.
    pub(crate) fn sync(&mut self) -> Result<(), StoreError> {
        self.file
            .flush()
            .and_then(|()| self.file.get_mut().sync_data())
            .map_err(|error| {
                StoreError::io(format!("syncing {}", self.segment_path.display()), error)
            })
    }

    /// After a failed write or sync: leaves the current segment as it is (what it holds past
    /// its last sync was never acknowledged, and its buffer is dropped unwritten) and starts a
    /// new segment at the next seq. Fails, and keeps the current writer, while the disk still
    /// refuses.
    pub(crate) fn reopen(&mut self) -> Result<(), StoreError> {
        let fresh = WalWriter::create(self.fs.clone(), &self.dir.clone(), self.next_seq)?;
        let failed = std::mem::replace(self, fresh);
        let (_file, _unwritten) = failed.file.into_parts();
        Ok(())
    }

    /// Closes the current segment and starts the next; returns the last seq of the closed one.
    /// A segment without records is kept as the current one.
    pub(crate) fn rotate(&mut self) -> Result<u64, StoreError> {
        self.sync()?;
        let last_seq = self.next_seq - 1;
        if self.next_seq == self.first_seq {
            return Ok(last_seq);
        }
        *self = WalWriter::create(self.fs.clone(), &self.dir.clone(), self.next_seq)?;
        Ok(last_seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::OsFileSystem;
    use std::fs::{self, OpenOptions};

    fn os() -> Arc<dyn FileSystem> {
        Arc::new(OsFileSystem)
    }

    /// Writes records `first_seq..` with the given payloads into a new segment; its path.
    fn segment_of(dir: &Path, first_seq: u64, payloads: &[&[u8]]) -> Segment {
        let mut writer = WalWriter::create(os(), dir, first_seq).unwrap();
        for payload in payloads {
            writer.append(payload).unwrap();
        }
        writer.sync().unwrap();
        Segment {
            first_seq,
            path: segment_path(dir, first_seq),
        }
    }

    fn replayed(segment: &Segment) -> (Vec<(u64, Vec<u8>)>, Replay) {
        let mut seen = Vec::new();
        let replay = replay_segment(&OsFileSystem, segment, |_, seq, payload| {
            seen.push((seq, payload.to_vec()));
            Ok(())
        })
        .unwrap();
        (seen, replay)
    }

    #[test]
    fn replays_what_was_written_and_stops_at_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let segment = segment_of(dir.path(), 5, &[b"first", b"second"]);
        // A torn record: a header promising more bytes than were written.
        let mut file = OpenOptions::new().append(true).open(&segment.path).unwrap();
        file.write_all(&100u32.to_le_bytes()).unwrap();
        file.write_all(&[1, 2, 3]).unwrap();
        let (seen, replay) = replayed(&segment);
        assert_eq!(seen, vec![(5, b"first".to_vec()), (6, b"second".to_vec())]);
        assert!(replay.damage.is_empty(), "a torn tail is not damage");
        assert_eq!(list_segments(&OsFileSystem, dir.path()).unwrap().len(), 1);
    }

    #[test]
    fn a_flipped_bit_in_the_last_record_is_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let segment = segment_of(dir.path(), 1, &[b"payload"]);
        let mut bytes = fs::read(&segment.path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&segment.path, bytes).unwrap();
        let (seen, replay) = replayed(&segment);
        assert!(seen.is_empty());
        assert!(replay.damage.is_empty());
    }

    #[test]
    fn a_damaged_magic_is_reported_and_every_record_is_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let segment = segment_of(dir.path(), 7, &[b"first", b"second"]);
        let mut bytes = fs::read(&segment.path).unwrap();
        bytes[2] ^= 0xff;
        fs::write(&segment.path, bytes).unwrap();
        let (seen, replay) = replayed(&segment);
        assert_eq!(seen, vec![(7, b"first".to_vec()), (8, b"second".to_vec())]);
        assert_eq!(
            replay.damage,
            vec![Damage {
                offset: 0,
                bytes: MAGIC.len() as u64,
                lost_seqs: 7..7,
            }],
            "reported, and no record lost"
        );
    }

    #[test]
    fn the_magic_names_the_format_of_the_payloads() {
        let dir = tempfile::tempdir().unwrap();
        let segment = segment_of(dir.path(), 3, &[b"record"]);
        let written = fs::read(&segment.path).unwrap();
        let mut older = written.clone();
        older[..8].copy_from_slice(MAGIC_V1);
        let mut damaged = written.clone();
        damaged[0] ^= 0xff;
        for (bytes, expected) in [
            (written, WalFormat::V2),
            (older, WalFormat::V1),
            (damaged, WalFormat::Unknown),
        ] {
            fs::write(&segment.path, bytes).unwrap();
            let mut formats = Vec::new();
            replay_segment(&OsFileSystem, &segment, |format, seq, payload| {
                formats.push((format, seq, payload.to_vec()));
                Ok(())
            })
            .unwrap();
            assert_eq!(formats, [(expected, 3, b"record".to_vec())]);
        }
    }

    /// Offsets of each record of a segment of records of the given payload lengths.
    fn record_offsets(lengths: &[usize]) -> Vec<usize> {
        let mut offsets = Vec::new();
        let mut position = MAGIC.len();
        for length in lengths {
            offsets.push(position);
            position += RECORD_HEADER_BYTES + length;
        }
        offsets
    }

    #[test]
    fn damage_in_the_middle_is_reported_and_the_records_after_it_are_kept() {
        let payloads: [&[u8]; 4] = [b"one", b"two two", b"three", b"four four four"];
        let offsets = record_offsets(&payloads.map(<[u8]>::len));
        // A flipped payload bit in record 2 (its length is intact), and a smashed header of
        // record 2 (the scan must find record 3 byte by byte).
        for (what, damage_at) in [
            ("payload", offsets[1] + RECORD_HEADER_BYTES + 2),
            ("header", offsets[1]),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let segment = segment_of(dir.path(), 10, &payloads);
            let mut bytes = fs::read(&segment.path).unwrap();
            for byte in &mut bytes[damage_at..damage_at + 4] {
                *byte ^= 0xa5;
            }
            fs::write(&segment.path, &bytes).unwrap();
            let (seen, replay) = replayed(&segment);
            let seqs: Vec<u64> = seen.iter().map(|(seq, _)| *seq).collect();
            assert_eq!(seqs, [10, 12, 13], "damaged {what}");
            assert_eq!(
                replay.damage,
                vec![Damage {
                    offset: offsets[1] as u64,
                    bytes: (offsets[2] - offsets[1]) as u64,
                    lost_seqs: 11..12,
                }],
                "damaged {what}"
            );
            assert_eq!(replay.intact_bytes, bytes.len() as u64);
        }
    }

    #[test]
    fn several_damaged_records_in_a_row_are_one_region() {
        let payloads: [&[u8]; 5] = [b"a", b"bb", b"ccc", b"dddd", b"eeeee"];
        let offsets = record_offsets(&payloads.map(<[u8]>::len));
        let dir = tempfile::tempdir().unwrap();
        let segment = segment_of(dir.path(), 1, &payloads);
        let mut bytes = fs::read(&segment.path).unwrap();
        for byte in &mut bytes[offsets[1]..offsets[3] + 3] {
            *byte = 0;
        }
        fs::write(&segment.path, &bytes).unwrap();
        let (seen, replay) = replayed(&segment);
        let seqs: Vec<u64> = seen.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(seqs, [1, 5]);
        assert_eq!(replay.damage.len(), 1);
        assert_eq!(replay.damage[0].lost_seqs, 2..5);
        assert_eq!(replay.damage[0].offset, offsets[1] as u64);
    }
}
