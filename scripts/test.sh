#!/usr/bin/env bash
# The whole test suite: every crate's unit and integration tests with all features, including the
# crash test that SIGKILLs a real server process and the SDK's adapter tests against real brokers
# (NATS JetStream and tansu's Kafka API), which the tests start on loopback ports and stop
# themselves, and real OpenTelemetry SDKs for Python exporting to a server. Needs Rust and
# python3; installs the two brokers and a Python venv once (scripts/brokers.sh,
# scripts/python.sh, cached in $MUNINN_TOOLS_DIR, default /var/cache/muninn-tools). Arguments
# go to `cargo test`, e.g.
# `bash scripts/test.sh -p muninn-sdk --test brokers`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/brokers.sh
source scripts/python.sh
# The whole workspace unless a package is named (cargo ignores -p next to --workspace).
scope=(--workspace)
for arg in "$@"; do
    case "$arg" in
    --) break ;;
    -p* | --package | --package=*) scope=() ;;
    esac
done
cargo test "${scope[@]}" --locked --all-features "$@"
