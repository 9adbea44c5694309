//! A WAL segment as recovery reads it after a crash: records checked, damage skipped.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    muninn_store::fuzzing::wal_segment(bytes);
});
