//! Deterministic byte mutations for the decoders' never-panic tests: bytes flipped, bodies
//! cut, bytes doubled, chosen by xorshift64* so that a failure reproduces.

/// `count` mutated copies of `original`, each with 1 to `max_edits` edits, from `seed`
/// (`multiplier` is the xorshift64* output multiplier).
pub(crate) fn mutations(
    original: &[u8],
    seed: u64,
    multiplier: u64,
    count: usize,
    max_edits: u64,
) -> impl Iterator<Item = Vec<u8>> + '_ {
    let mut state = seed;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(multiplier)
    };
    (0..count).map(move |_| {
        let mut body = original.to_vec();
        for _ in 0..(next() % max_edits + 1) {
            let position = (next() as usize) % body.len();
            match next() % 3 {
                0 => body[position] = (next() % 256) as u8,
                1 => body.truncate(position.max(1)),
                _ => {
                    let byte = body[position];
                    body.insert(position, byte);
                }
            }
        }
        body
    })
}
