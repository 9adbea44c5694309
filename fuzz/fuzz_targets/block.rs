//! A block's `spans.parquet` as the store reads it (format 1 or 2, by the first byte): footer,
//! filters, page indexes, row groups, every look-up.
#![no_main]

use std::sync::Once;

use libfuzzer_sys::fuzz_target;

static QUIET_CAUGHT_PANICS: Once = Once::new();

fuzz_target!(|bytes: &[u8]| {
    // The block reader catches panics of the Parquet decoder on damaged files and answers an
    // error (crates/muninn-store/tests/block_reader.rs): libFuzzer's hook would abort on
    // those. A panic that escapes the reader still aborts, in libfuzzer-sys's wrapper.
    QUIET_CAUGHT_PANICS.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    muninn_store::fuzzing::block(bytes);
});
