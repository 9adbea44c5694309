//! WAL recovery on the fuzz targets' seeds (`fuzz/seeds/wal_record/`, `fuzz/seeds/wal_segment/`)
//! and on deterministic damage to them: every seed decodes, and no damage to a payload makes
//! recovery panic, the Arrow IPC stream of a record of columns included.

use std::path::{Path, PathBuf};

fn files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    files
}

#[test]
fn every_seed_decodes() {
    let spans: Vec<(String, usize)> = files("fuzz/seeds/wal_record")
        .iter()
        .map(|seed| {
            let name = seed.file_name().unwrap().to_string_lossy().into_owned();
            (
                name,
                muninn_store::fuzzing::wal_record(&std::fs::read(seed).unwrap()),
            )
        })
        .collect();
    // The record of columns is the golden directory `v2-wal-columns/`'s: 14 spans.
    assert_eq!(
        spans,
        [
            ("columns-0.bin".to_string(), 14),
            ("record-0.bin".to_string(), 1),
            ("record-1.bin".to_string(), 0),
        ]
    );
    let segments: Vec<usize> = files("fuzz/seeds/wal_segment")
        .iter()
        .map(|seed| muninn_store::fuzzing::wal_segment(&std::fs::read(seed).unwrap()))
        .collect();
    assert_eq!(segments, [14, 1]);
}

/// Truncations, flipped bytes all over the payload, and runs of zeros and ones, in a record of
/// columns (past its CRC, as a record of another build or a CRC collision would be): none
/// panics, and none decodes into more spans than the record holds.
#[test]
fn damaged_records_of_columns_never_panic_recovery() {
    // The IPC reader's panics are caught and become errors; their messages are not wanted here.
    std::panic::set_hook(Box::new(|_| {}));
    let seed = files("fuzz/seeds/wal_record")
        .into_iter()
        .find(|seed| seed.ends_with("columns-0.bin"))
        .unwrap();
    let bytes = std::fs::read(seed).unwrap();
    let len = bytes.len();
    let mut damaged: Vec<Vec<u8>> = Vec::new();
    for cut in [1, 4, 5, 9, 40, len / 2, len - 9, len - 1] {
        damaged.push(bytes[..cut].to_vec());
    }
    for at in (0..len).step_by(31) {
        for mask in [0x01, 0x80, 0xff] {
            let mut flipped = bytes.clone();
            flipped[at] ^= mask;
            damaged.push(flipped);
        }
    }
    for fill in [0x00, 0xff] {
        for start in (1..len).step_by(len / 16) {
            let mut run = bytes.clone();
            let end = (start + 64).min(len);
            run[start..end].fill(fill);
            damaged.push(run);
        }
    }
    for input in &damaged {
        assert!(muninn_store::fuzzing::wal_record(input) <= 14);
    }
    let _ = std::panic::take_hook();
}
