//! A `Content-Encoding: gzip` body: decompressed under a 1 MiB cap, then decoded as spans.
#![no_main]

use libfuzzer_sys::fuzz_target;
use muninn_model::Limits;

/// A fixed "now" (2026-12-01), so that a crash reproduces.
const NOW: i64 = 1_796_083_200_000_000_000;

fuzz_target!(|body: &[u8]| {
    if let Ok(plain) = muninn_ingest::decompress(body, Some("gzip"), 1 << 20) {
        let _ = muninn_ingest::decode_spans(&plain, &Limits::default(), NOW);
    }
});
