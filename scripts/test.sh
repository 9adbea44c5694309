#!/usr/bin/env bash
# The whole test suite: every crate's unit and integration tests with all features, including the
# crash test that SIGKILLs a real server process and the SDK's adapter tests against real brokers
# (NATS JetStream and tansu's Kafka API), which the tests start on loopback ports and stop
# themselves, real OpenTelemetry SDKs for Python exporting to a server, and a headless chromium
# driving the browser UI. Needs Rust and
# python3. Arguments go to `cargo test`, e.g. `bash scripts/test.sh -p muninn-sdk --test brokers`.
#
# What the tests need besides Rust is installed once (cached in $MUNINN_TOOLS_DIR, default
# /var/cache/muninn-tools), and only when a selected package's tests use it (the NEEDS table):
#   muninn-sdk, muninn-archive, muninn
#                  the brokers (scripts/brokers.sh: MUNINN_NATS_SERVER, MUNINN_TANSU; tansu is a
#                  `cargo install` of 10 to 17 minutes the first time)
#   muninn-server, muninn-archive
#                  the Python venv (scripts/python.sh: MUNINN_PYTHON; DuckDB, moto_server for S3)
#   muninn-server, muninn
#                  a real browser for the UI's tests (scripts/browser.sh: MUNINN_CHROMIUM,
#                  MUNINN_CHROMEDRIVER; Debian's chromium and chromium-driver, about 40 s once)
# With no -p/--package, or with --workspace, everything is selected and everything installed;
# `-p muninn-model` or `-p muninn-store` installs nothing. A test whose tool is missing fails,
# it never skips. Package names may be cargo's globs (`-p 'muninn-*'`).
set -euo pipefail
cd "$(dirname "$0")/.."

# Package → what its tests need; a package whose tests start using one of the tools goes here.
declare -A NEEDS=(
    [muninn-sdk]="brokers"   # tests/adapters.rs, tests/brokers.rs (features kafka + nats)
    [muninn-archive]="brokers python" # tests/nats.rs, tests/replay.rs; tests/duckdb.rs, tests/s3.rs
    [muninn]="brokers python browser" # tests/archive.rs (the recorder SIGKILLed against tansu, into moto); tests/cli (the demo in the UI)
    [muninn-server]="python browser" # tests/api/otlp.rs, tests/api/zipkin.rs; tests/api/ui.rs
)

# The packages named by -p/--package; none, or --workspace/--all, means the whole workspace.
packages=()
whole_workspace=false
next_is_package=false
for arg in "$@"; do
    if $next_is_package; then
        packages+=("$arg")
        next_is_package=false
        continue
    fi
    case "$arg" in
    --) break ;;
    --workspace | --all) whole_workspace=true ;;
    -p | --package) next_is_package=true ;;
    --package=*) packages+=("${arg#--package=}") ;;
    -p*) packages+=("${arg#-p}") ;;
    esac
done
if [[ ${#packages[@]} -eq 0 ]]; then
    whole_workspace=true
fi

needed=""
if $whole_workspace; then
    needed="${NEEDS[*]}"
else
    for package in "${packages[@]}"; do
        for name in "${!NEEDS[@]}"; do
            # Unquoted on the right: the package may be a glob, as cargo allows.
            # shellcheck disable=SC2053
            if [[ $name == ${package%%@*} ]]; then
                needed+=" ${NEEDS[$name]}"
            fi
        done
    done
fi
if [[ " $needed " == *" brokers "* ]]; then
    source scripts/brokers.sh
fi
if [[ " $needed " == *" python "* ]]; then
    source scripts/python.sh
fi
if [[ " $needed " == *" browser "* ]]; then
    source scripts/browser.sh
fi

# A build cache kept outside the clone (CI's CARGO_TARGET_DIR) grows with every change: the
# incremental files and the test executables of older builds. Past 40 GiB, those a build makes
# again are removed (incremental files, and executables not written for a day), so that the
# cache does not fill the disk.
if [[ -n "${CARGO_TARGET_DIR:-}" && -d "$CARGO_TARGET_DIR/debug/deps" ]]; then
    cache_kib=$(du -sk "$CARGO_TARGET_DIR" 2>/dev/null | cut -f1)
    if (( ${cache_kib:-0} > 40 * 1024 * 1024 )); then
        echo "test.sh: the build cache $CARGO_TARGET_DIR holds $((cache_kib >> 20)) GiB; removing its incremental files and executables not written for a day" >&2
        rm -rf "$CARGO_TARGET_DIR/debug/incremental"
        find "$CARGO_TARGET_DIR/debug/deps" -maxdepth 1 -type f -mmin +1440 -size +10M \
            -perm -u+x ! -name '*.*' -delete
    fi
fi

# The whole workspace unless a package is named (cargo ignores -p next to --workspace).
scope=()
if [[ ${#packages[@]} -eq 0 ]]; then
    scope=(--workspace)
fi
cargo test "${scope[@]}" --locked --all-features "$@"
