//! OTLP protobuf (`POST /v1/traces`, and the OTLP/gRPC message), decoded and mapped.
#![no_main]

use libfuzzer_sys::fuzz_target;
use muninn_ingest::OtlpMapping;
use muninn_model::Limits;

/// A fixed "now" (2026-12-01), so that a crash reproduces.
const NOW: i64 = 1_796_083_200_000_000_000;

fuzz_target!(|body: &[u8]| {
    let _ =
        muninn_ingest::decode_otlp_protobuf(body, &OtlpMapping::default(), &Limits::default(), NOW);
});
