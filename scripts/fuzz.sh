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

cd "$root/fuzz"
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    mapfile -t targets < <("$fuzz" list)
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for target in "${targets[@]}"; do
    mkdir -p "$work/$target"
    log="$work/$target.log"
    started=$SECONDS
    # New inputs go to the scratch corpus; the committed seeds are only read.
    if "$fuzz" +nightly run --release "$target" "$work/$target" "seeds/$target" -- \
        -runs="$RUNS" -max_len=65536 -rss_limit_mb=4096 -timeout=10 >"$log" 2>&1; then
        done_line="$(grep -E '^Done [0-9]+ runs' "$log" | tail -n 1)"
        echo "$target: ${done_line:-finished} ($((SECONDS - started)) s with the build), no crash"
    else
        tail -n 40 "$log" >&2
        echo "$target: CRASHED; the input is in fuzz/artifacts/$target/" >&2
        exit 1
    fi
done
