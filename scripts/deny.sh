#!/usr/bin/env bash
# Checks the workspace's dependency tree against deny.toml with cargo-deny: licences, bans
# (OpenSSL; duplicate versions are listed as warnings) and sources. Exits non-zero when a check
# fails. .ci/run runs it after clippy.
#
#   bash scripts/deny.sh               # licenses bans sources (what CI runs)
#   bash scripts/deny.sh advisories    # by hand: needs the RustSec database on github.com
#
# Installs cargo-deny $CARGO_DENY_VERSION into the tools dir once ($MUNINN_TOOLS_DIR, default
# /var/cache/muninn-tools; about 3 minutes on 2 cores), building in a target directory of its
# own. fuzz/ is a workspace of its own and is not checked (docs/security.md#dependencies).

set -euo pipefail

CARGO_DENY_VERSION=0.20.2
MUNINN_TOOLS_DIR="${MUNINN_TOOLS_DIR:-/var/cache/muninn-tools}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
deny="$MUNINN_TOOLS_DIR/bin/cargo-deny"

_deny_installed() {
    [[ -x "$deny" && "$("$deny" --version 2>/dev/null)" == "cargo-deny $CARGO_DENY_VERSION" ]]
}

if ! _deny_installed; then
    mkdir -p "$MUNINN_TOOLS_DIR"
    # One installer at a time (the lock brokers.sh takes): a second run waits, then finds it.
    exec {lock}>"$MUNINN_TOOLS_DIR/.install.lock"
    if command -v flock >/dev/null && ! flock -n "$lock"; then
        echo "deny.sh: waiting for another run's install to finish (lock: $MUNINN_TOOLS_DIR/.install.lock)" >&2
        flock "$lock"
    fi
    if ! _deny_installed; then
        command -v cargo >/dev/null || { echo "deny.sh: cannot install cargo-deny: cargo is not on PATH" >&2; exit 1; }
        log="$MUNINN_TOOLS_DIR/cargo-deny-install.log"
        started=$SECONDS
        echo "deny.sh: installing cargo-deny $CARGO_DENY_VERSION into $MUNINN_TOOLS_DIR (about 3 minutes on 2 cores; log: $log)" >&2
        # nice: the install shares the machine with builds; its own target directory keeps it
        # out of the workspace's build cache.
        if ! env CARGO_TARGET_DIR="$MUNINN_TOOLS_DIR/cargo-deny-target" nice -n 10 \
            cargo install cargo-deny --version "$CARGO_DENY_VERSION" --locked --force \
            --root "$MUNINN_TOOLS_DIR" >"$log" 2>&1; then
            tail -n 40 "$log" >&2
            echo "deny.sh: failed to install cargo-deny $CARGO_DENY_VERSION (full log: $log)" >&2
            exit 1
        fi
        _deny_installed || {
            echo "deny.sh: installed cargo-deny but $deny --version does not say cargo-deny $CARGO_DENY_VERSION" >&2
            exit 1
        }
        echo "deny.sh: installed cargo-deny $CARGO_DENY_VERSION at $deny in $((SECONDS - started)) s" >&2
    fi
    exec {lock}>&-
fi

checks=("$@")
if [[ ${#checks[@]} -eq 0 ]]; then
    checks=(licenses bans sources)
fi
cd "$root"
# --locked: check the Cargo.lock that is committed, never a re-resolved one. Duplicates are
# listed without their inclusion graphs (about 3,500 lines); `cargo deny check bans` shows them.
exec "$deny" --locked check --show-stats --hide-inclusion-graph "${checks[@]}"
