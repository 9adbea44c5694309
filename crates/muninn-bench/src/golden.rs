//! Guards the reference workload's bytes: its batches and patched copies, in both protocols,
//! must stay exactly what they were when its figures were first quoted, so that runs before
//! and after a change of the benchmark compare. The expected hashes were taken from the code
//! before the random workload was added; a change of `rand`'s `SmallRng` would change them too
//! (and would then need the same care).

use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::workload::Workload;
use crate::{native, otlp};

/// FNV-1a, 64 bits: stable across Rust releases, unlike `DefaultHasher`.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[test]
fn the_reference_workload_is_byte_for_byte_what_it_was() {
    const NOW: i64 = 1_795_000_000_000_000_000;
    let mut rng = SmallRng::seed_from_u64(42);
    let mut hashes = Vec::new();
    for n_spans in [2usize, 3, 7, 1000] {
        let built = native::build_batch(Workload::Reference, &mut rng, n_spans, 5, NOW);
        hashes.push(fnv1a(&built.template.body));
        let (body, sample) = native::patch(&built.template, &mut rng, NOW + 9);
        hashes.push(fnv1a(&body));
        hashes.push(fnv1a(sample.event_id.as_bytes()) ^ sample.n_spans as u64);
    }
    for n_spans in [2usize, 3, 7, 1000] {
        let mut built = otlp::build_batch(Workload::Reference, &mut rng, n_spans, 5, NOW);
        hashes.push(fnv1a(&built.template.body));
        let (body, sample) = otlp::patch(&mut built.template, &mut rng, NOW + 9);
        hashes.push(fnv1a(&body));
        hashes.push(fnv1a(sample.event_id.as_bytes()) ^ sample.n_spans as u64);
    }
    assert_eq!(
        hashes,
        [
            1975931356033671454,
            8473150268325332600,
            16581724562458060140,
            4272485957034162677,
            12185847200086210489,
            7361799938370655895,
            2057399005541075429,
            4500727139889831112,
            1913177209261217141,
            4298523227412255638,
            9245137675276758323,
            9073850698802010168,
            10797800430362229187,
            12897820945876989245,
            10001878963178053439,
            5560477327032601804,
            1694522857648998956,
            7314767901026831118,
            6109658153783750859,
            13576205521336962393,
            18071679516349767574,
            16056782203938031254,
            726456037331645873,
            16591915226770868815,
        ]
    );
}
