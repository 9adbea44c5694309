//! One WAL record's payload, decoded into the head batch and roll-up delta recovery makes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|payload: &[u8]| {
    muninn_store::fuzzing::wal_record(payload);
});
