//! Bloom filters probed where they lie in the file instead of kept in memory. A split block
//! bloom filter (Parquet's) answers a check from one 32-byte block of its bitset, so a probe
//! reads those 32 bytes: the filters of `trace_id`, whose row groups hold disjoint ranges of
//! trace ids and are probed at most once a block per trace, cost no memory at all (93 MB at
//! 100M spans of the random workload when they were kept).

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
