#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ (cargo-fuzz, libFuzzer, the nightly toolchain) for RUNS
# inputs each (default 1,000,000), starting from the committed seeds in fuzz/seeds/<target>,
# and prints one line per target: inputs run, seconds, and whether it crashed. A crash leaves
# its input in fuzz/artifacts/<target>/ and stops the script (exit 1); make it a regression
# test (docs/security.md#fuzzing).
#
#   bash scripts/fuzz.sh [RUNS] [TARGET...]
#
# Installs cargo-fuzz into the tools dir once ($MUNINN_TOOLS_DIR, default
# /var/cache/muninn-tools; about 2 minutes). Needs `rustup toolchain install nightly`.

set -euo pipefail

RUNS="${1:-1000000}"
shift || true
MUNINN_TOOLS_DIR="${MUNINN_TOOLS_DIR:-/var/cache/muninn-tools}"
CARGO_FUZZ_VERSION=0.13.1
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "fuzz.sh: the nightly toolchain is missing; install it with: rustup toolchain install nightly" >&2
    exit 1
fi
fuzz="$MUNINN_TOOLS_DIR/bin/cargo-fuzz"
if [[ ! -x "$fuzz" ]]; then
    echo "fuzz.sh: installing cargo-fuzz $CARGO_FUZZ_VERSION into $MUNINN_TOOLS_DIR" >&2
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --root "$MUNINN_TOOLS_DIR" \
        >"$MUNINN_TOOLS_DIR/cargo-fuzz-install.log" 2>&1 || {
        tail -n 20 "$MUNINN_TOOLS_DIR/cargo-fuzz-install.log" >&2
        exit 1
    }
fi

export PATH="$MUNINN_TOOLS_DIR/bin:$PATH"
cd "$root/fuzz"
# Instrumented builds of their own: never the main build's target directory.
export CARGO_TARGET_DIR="$MUNINN_TOOLS_DIR/fuzz-target"
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    mapfile -t targets < <(cargo fuzz list)
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for target in "${targets[@]}"; do
    mkdir -p "$work/$target"
    log="$work/$target.log"
    started=$SECONDS
    # New inputs go to the scratch corpus; the committed seeds are only read.
    # parquet's thrift decoder skips a list of up to 2^31 booleans one by one, about 9 s of a
    # free core (fuzz/regressions/block-slow/). The block reader's footer guard refuses such
    # footers, but page indexes and page headers are thrift too: the block target gets 300 s
    # before an input counts as hung, the others 30 s.
    timeout=30
    [[ "$target" == block ]] && timeout=300
    # No sanitizer: the code is safe Rust, whose faults are panics and aborts that libFuzzer
    # catches as it is; without ASan's shadow memory it runs about twice as many inputs.
    if cargo +nightly fuzz run --release --sanitizer none "$target" "$work/$target" "seeds/$target" -- \
        -runs="$RUNS" -max_len=65536 -rss_limit_mb=4096 -timeout="$timeout" >"$log" 2>&1; then
        done_line="$(grep -E '^Done [0-9]+ runs' "$log" | tail -n 1)"
        echo "$target: ${done_line:-finished} ($((SECONDS - started)) s with the build), no crash"
    else
        tail -n 40 "$log" >&2
        if compgen -G "artifacts/$target/*" >/dev/null; then
            echo "$target: CRASHED; the input is in fuzz/artifacts/$target/" >&2
        else
            echo "$target: did not run (see the output above)" >&2
        fi
        exit 1
    fi
done
