//! The block reader on the fuzz target's seeds (`fuzz/seeds/block/`, the golden blocks) and on
//! deterministic damage to them: every seed reads, and no damage makes the reader panic. The
//! inputs that made the Parquet decoder panic are in `fuzz/regressions/block/`, read here too.

use std::path::{Path, PathBuf};

fn files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(dir);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.map(|entry| entry.unwrap().path()).collect();
    files.sort();
    files
}

#[test]
fn every_seed_reads_whole() {
    let seeds = files("fuzz/seeds/block");
    assert_eq!(seeds.len(), 14, "{seeds:?}");
    for seed in seeds {
        let bytes = std::fs::read(&seed).unwrap();
        let found = muninn_store::fuzzing::block(&bytes);
        assert!(found >= 10, "{}: {found} spans", seed.display());
        // The other version's reader on the same file: errors, not panics.
        let mut other = bytes.clone();
        other[0] ^= 1;
        muninn_store::fuzzing::block(&other);
    }
}

/// Truncations, flipped bytes in every region of the file, and runs of zeros and ones, over
/// each seed: none panics.
#[test]
fn damaged_blocks_never_panic_the_reader() {
    for seed in files("fuzz/seeds/block") {
        let bytes = std::fs::read(&seed).unwrap();
        let len = bytes.len();
        let mut damaged: Vec<Vec<u8>> = Vec::new();
        for cut in [1, 5, 9, len / 2, len - 9, len - 8, len - 5, len - 1] {
            damaged.push(bytes[..cut].to_vec());
        }
        for at in (1..len).step_by(97) {
            for mask in [0x01, 0x80, 0xff] {
                let mut flipped = bytes.clone();
                flipped[at] ^= mask;
                damaged.push(flipped);
            }
        }
        for fill in [0x00, 0xff] {
            for start in (1..len).step_by(len / 8) {
                let mut run = bytes.clone();
                let end = (start + 64).min(len);
                run[start..end].fill(fill);
                damaged.push(run);
            }
        }
        for input in &damaged {
            muninn_store::fuzzing::block(input);
        }
    }
}

/// The damaged files that made parquet 59 or arrow 59 panic (one per place in their code);
/// the reader turns each panic into an error about the block.
#[test]
fn each_decoder_panic_found_is_an_error() {
    let crashes = files("fuzz/regressions/block");
    assert_eq!(crashes.len(), 8, "{crashes:?}");
    for crash in crashes {
        muninn_store::fuzzing::block(&std::fs::read(&crash).unwrap());
    }
}

/// A damaged footer whose thrift holds a list of 2^31 booleans, the kind of slow input the
/// fuzzer found: parquet 59 skips them one by one, about 9 s of a core. The footer guard
/// (`block/footer_guard.rs`) refuses it before the decoder sees it: the read ends at once,
/// with an error.
#[test]
fn a_footer_that_costs_seconds_still_ends_in_an_error() {
    let slow = files("fuzz/regressions/block-slow");
    assert_eq!(slow.len(), 1, "{slow:?}");
    let found = muninn_store::fuzzing::block(&std::fs::read(&slow[0]).unwrap());
    assert_eq!(found, 0);
}
