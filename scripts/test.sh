#!/usr/bin/env bash
#! The whole test suite: every crate's unit and integration tests, including the crash test
#! that SIGKILLs a real server process. Needs only Rust; no other service.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked "$@"
