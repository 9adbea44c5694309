//! The `trace_id` bloom filters: probed where they lie in the file, or kept in memory folded.
//! A split block bloom filter (Parquet's) answers a check from one 32-byte block of its
//! bitset, so a probe of the file reads those 32 bytes and costs no memory (the filters of
//! 100M spans of the random workload are 93 MB as written); kept in memory within the store's
//! budget, a filter is folded to fewer bytes where its false positives stay under the 1% it
//! was sized for, and a check reads no file at all.

use std::ops::Range;

use parquet::bloom_filter::Sbbf;

/// The bytes of one block of a split block bloom filter.
pub(super) const BLOCK_BYTES: u64 = 32;

/// The Parquet specification's salts, one per 32-bit word of a block.
const SALT: [u32; 8] = [
    0x47b6_137b,
    0x4497_4d91,
    0x8824_ad5b,
    0xa2b7_289d,
    0x7054_95c7,
    0x2df1_424b,
    0x9efc_4947,
    0x5c6b_fb31,
];

/// One row group's filter of a column.
#[derive(Debug)]
pub(super) enum Filter {
    /// The bitset's place in the file: probed 32 bytes at a time.
    InFile { bitset_offset: u64, n_blocks: u64 },
    /// Kept whole, for a file whose metadata does not give the filter's length (writers
    /// other than ours), where the bitset cannot be found without its header.
    InMemory(Sbbf),
}

impl Filter {
    /// Where `filter`, read whole from the `length` bytes at `offset` (its header, then its
    /// bitset), lies in the file; kept whole when the length is not known.
    pub(super) fn locate(filter: Sbbf, offset: Option<i64>, length: Option<i32>) -> Filter {
        let n_blocks = filter.num_blocks() as u64;
        let bitset_bytes = n_blocks * BLOCK_BYTES;
        match (offset, length) {
            (Some(offset), Some(length)) => match (u64::try_from(offset), u64::try_from(length)) {
                (Ok(offset), Ok(length)) if length > bitset_bytes && n_blocks > 0 => {
                    Filter::InFile {
                        bitset_offset: offset + length - bitset_bytes,
                        n_blocks,
                    }
                }
                _ => Filter::InMemory(filter),
            },
            _ => Filter::InMemory(filter),
        }
    }

    /// The bytes this filter keeps in memory.
    pub(super) fn memory_bytes(&self) -> u64 {
        match self {
            Filter::InFile { .. } => 0,
            Filter::InMemory(filter) => filter.num_blocks() as u64 * BLOCK_BYTES,
        }
    }
}

/// The false positives a kept filter may be folded up to (the chance that a value not
/// inserted passes, as Parquet estimates it from the folded bitset): the rate `trace_id`'s
/// filters are sized for (`BlockWriteOptions::bloom_filter_fpp`), so folding only takes back
/// what the rounding to a power of two (or an estimate of distinct ids that was too high) gave.
pub(super) const FOLDED_FPP: f64 = 0.01;

/// A `trace_id` filter to keep in memory, folded while its false positives stay under
/// `max_fpp` (Parquet's `Sbbf::fold_to_target_fpp`: blocks `2j` and `2j + 1` ORed into block
/// `j`, which is the filter the same ids would have built with half the blocks, so it misses
/// nothing that was inserted). Parquet sizes a filter in a power of two of bytes, so one sized
/// for 1% holds up to twice the bits it needs: 30,000 trace ids of a row group get 64 KiB,
/// whose false positives are about 0.08% (folded to 32 KiB they would be 2.3%, so such a filter
/// stays whole). A filter of another number of blocks (another writer's) is kept as it is.
pub(super) fn folded(mut filter: Sbbf, max_fpp: f64) -> Sbbf {
    if filter.num_blocks().is_power_of_two() {
        filter.fold_to_target_fpp(max_fpp);
    }
    filter
}

/// The bytes a filter kept in memory takes: its bitset.
pub(super) fn kept_bytes(filter: &Sbbf) -> u64 {
    filter.num_blocks() as u64 * BLOCK_BYTES
}

/// The hash a split block bloom filter files `value` under (xxHash64, seed 0).
pub(super) fn hash(value: &[u8]) -> u64 {
    twox_hash::XxHash64::oneshot(0, value)
}

/// The range of the file holding the block that `hash` falls in, of a filter in the file.
pub(super) fn block_range(bitset_offset: u64, n_blocks: u64, hash: u64) -> Range<u64> {
    let block = ((hash >> 32) * n_blocks) >> 32;
    let start = bitset_offset + block * BLOCK_BYTES;
    start..start + BLOCK_BYTES
}

/// Whether a block read from the file may hold the value `hash` is of: every one of the eight
/// bits the hash picks is set. A block of the wrong size holds nothing for sure, so it is
/// answered `true` (read the row group) rather than risk a wrong answer.
pub(super) fn block_may_hold(block: &[u8], hash: u64) -> bool {
    if block.len() as u64 != BLOCK_BYTES {
        return true;
    }
    let low = hash as u32;
    SALT.iter().enumerate().all(|(word_idx, salt)| {
        let start = word_idx * 4;
        let word = u32::from_le_bytes([
            block[start],
            block[start + 1],
            block[start + 2],
            block[start + 3],
        ]);
        word & (1u32 << (low.wrapping_mul(*salt) >> 27)) != 0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bitset of `filter` as the file holds it (little-endian words, block after block).
    fn bitset(filter: &Sbbf) -> Vec<u8> {
        let mut bytes = Vec::new();
        filter.write_bitset(&mut bytes).unwrap();
        bytes
    }

    /// A probe of the bytes answers exactly as Parquet's own check does, for values in the
    /// filter (always yes) and for values not in it (the same false positives).
    #[test]
    fn a_probe_answers_as_parquets_check() {
        let mut filter = Sbbf::new_with_num_of_bytes(4096);
        let inserted: Vec<[u8; 16]> = (0u64..300)
            .map(|n| {
                let mut id = [0u8; 16];
                id[..8].copy_from_slice(&n.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
                id[8..].copy_from_slice(&n.to_be_bytes());
                id
            })
            .collect();
        for id in &inserted {
            filter.insert(&id[..]);
        }
        let bytes = bitset(&filter);
        let n_blocks = filter.num_blocks() as u64;
        let probe = |value: &[u8]| {
            let hash = hash(value);
            let range = block_range(0, n_blocks, hash);
            block_may_hold(&bytes[range.start as usize..range.end as usize], hash)
        };
        for id in &inserted {
            assert!(probe(&id[..]));
        }
        let mut false_positives = 0;
        for n in 0u64..20_000 {
            let mut id = [0xffu8; 16];
            id[..8].copy_from_slice(&n.wrapping_mul(0xd6e8_feb8_6659_fd93).to_le_bytes());
            assert_eq!(probe(&id[..]), filter.check(&id[..]), "id {n}");
            false_positives += usize::from(probe(&id[..]));
        }
        assert!(false_positives < 2_000, "{false_positives} of 20,000");
    }

    /// A filter sized for 30,000 ids at 1% (64 KiB, a power of two) that holds 12,000 folds to
    /// 16 KiB, still passes every id inserted and lets through under 1% of others; holding
    /// 30,000 it is not folded (half would let 2.3% through), and answers as it did.
    #[test]
    fn a_kept_filter_folds_while_it_stays_under_its_rate_and_misses_nothing() {
        let id = |n: u64, salt: u64| {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&n.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
            id[8..].copy_from_slice(&(n ^ salt).wrapping_mul(0xd6e8_feb8_6659_fd93).to_be_bytes());
            id
        };
        let filled = |n_ids: u64| {
            let mut filter = Sbbf::new_with_ndv_fpp(30_000, 0.01).unwrap();
            for n in 0..n_ids {
                filter.insert(&id(n, 0)[..]);
            }
            assert_eq!(filter.num_blocks() * 32, 64 << 10);
            filter
        };
        let full = filled(30_000);
        let kept = folded(full.clone(), FOLDED_FPP);
        assert_eq!(kept_bytes(&kept), 64 << 10);
        for n in 0..20_000 {
            let other = id(n, u64::MAX);
            assert_eq!(kept.check(&other[..]), full.check(&other[..]), "id {n}");
        }

        let folded = folded(filled(12_000), FOLDED_FPP);
        assert_eq!(kept_bytes(&folded), 16 << 10);
        for n in 0..12_000 {
            assert!(folded.check(&id(n, 0)[..]), "id {n}");
        }
        let others = 200_000u64;
        let passed: u64 = (0..others)
            .map(|n| u64::from(folded.check(&id(n, u64::MAX)[..])))
            .sum();
        let measured = passed as f64 / others as f64;
        assert!(
            folded.estimated_fpp() <= FOLDED_FPP,
            "estimated {}",
            folded.estimated_fpp()
        );
        assert!(measured < FOLDED_FPP, "measured {measured}");
        // Folded once more it would let through more than its rate: the fold stopped there.
        assert!(measured > FOLDED_FPP / 8.0, "measured {measured}");
    }

    /// Parquet's fold asserts a power of two of blocks; a filter of three (as another writer
    /// may size one) is kept whole rather than folded, and the server does not panic on it.
    #[test]
    fn a_filter_of_blocks_not_a_power_of_two_is_kept_unfolded() {
        let filter = Sbbf::new(&[0u8; 96]);
        assert_eq!(filter.num_blocks(), 3);
        let kept = folded(filter, FOLDED_FPP);
        assert_eq!(kept_bytes(&kept), 96);
        assert!(!kept.check(&[7u8; 16][..]));
    }

    #[test]
    fn a_filter_without_a_known_length_stays_in_memory() {
        let filter = Sbbf::new_with_num_of_bytes(64);
        assert!(matches!(
            Filter::locate(filter.clone(), Some(100), None),
            Filter::InMemory(_)
        ));
        match Filter::locate(filter, Some(100), Some(80)) {
            Filter::InFile {
                bitset_offset,
                n_blocks,
            } => assert_eq!((bitset_offset, n_blocks), (116, 2)),
            other => panic!("{other:?}"),
        }
    }
}
