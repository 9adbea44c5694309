//! Native spans (`POST /api/v1/spans`): a JSON array or NDJSON, decoded and validated; a body
//! the hand-written scan reads must be read the same by serde_json.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// A fixed "now" (2026-12-01), so that a crash reproduces.
const NOW: i64 = 1_796_083_200_000_000_000;

fuzz_target!(|body: &[u8]| {
    muninn_ingest::fuzzing::native_spans(body, NOW);
});
