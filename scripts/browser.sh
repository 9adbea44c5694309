#!/usr/bin/env bash
# Installs (once) the real browser the UI's tests drive, and exports its paths as
# MUNINN_CHROMIUM and MUNINN_CHROMEDRIVER. Source it (scripts/test.sh does), or run it to print
# the variables.
#
# Debian's chromium and chromium-driver (apt-get; about 40 s the first time). The packages are
# kept in $MUNINN_TOOLS_DIR/apt-archives (default /var/cache/muninn-tools), so installing again
# on this machine downloads nothing. Executables named by MUNINN_CHROMIUM and MUNINN_CHROMEDRIVER
# are used as they are. Silent unless it installs.

set -euo pipefail

MUNINN_TOOLS_DIR="${MUNINN_TOOLS_DIR:-/var/cache/muninn-tools}"

_browser_say() { echo "browser.sh: $*" >&2; }

_browser_fail() {
    _browser_say "$*"
    exit 1
}

_browser_install() {
    if [[ -n "${MUNINN_CHROMIUM:-}" || -n "${MUNINN_CHROMEDRIVER:-}" ]]; then
        [[ -x "${MUNINN_CHROMIUM:-}" ]] || _browser_fail "MUNINN_CHROMIUM=${MUNINN_CHROMIUM:-} is not an executable"
        [[ -x "${MUNINN_CHROMEDRIVER:-}" ]] || _browser_fail "MUNINN_CHROMEDRIVER=${MUNINN_CHROMEDRIVER:-} is not an executable"
        return
    fi
    MUNINN_CHROMIUM=/usr/bin/chromium
    MUNINN_CHROMEDRIVER=/usr/bin/chromedriver
    if [[ -x "$MUNINN_CHROMIUM" && -x "$MUNINN_CHROMEDRIVER" ]]; then
        return
    fi
    command -v apt-get >/dev/null || _browser_fail "cannot install chromium: no apt-get (set MUNINN_CHROMIUM and MUNINN_CHROMEDRIVER)"
    local started=$SECONDS sudo=()
    [[ $(id -u) -eq 0 ]] || sudo=(sudo)
    local archives="$MUNINN_TOOLS_DIR/apt-archives"
    mkdir -p "$archives/partial"
    _browser_say "installing chromium and chromium-driver with apt-get (packages kept in $archives)"
    local log="$MUNINN_TOOLS_DIR/apt-browser.log"
    if ! { "${sudo[@]}" apt-get update -q &&
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q \
            -o Dir::Cache::archives="$archives" chromium chromium-driver; } >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        _browser_fail "apt-get could not install chromium and chromium-driver (log: $log)"
    fi
    [[ -x "$MUNINN_CHROMIUM" && -x "$MUNINN_CHROMEDRIVER" ]] ||
        _browser_fail "chromium was installed but $MUNINN_CHROMIUM or $MUNINN_CHROMEDRIVER is missing"
    _browser_say "installed $("$MUNINN_CHROMIUM" --version 2>/dev/null | head -1) in $((SECONDS - started)) s"
}

mkdir -p "$MUNINN_TOOLS_DIR"
# One installer at a time: a second run waits here, then finds the browser installed.
exec {_browser_lock}>"$MUNINN_TOOLS_DIR/.install.lock"
if command -v flock >/dev/null && ! flock -n "$_browser_lock"; then
    _browser_say "waiting for another run's install to finish (lock: $MUNINN_TOOLS_DIR/.install.lock)"
    flock "$_browser_lock"
fi
_browser_install
exec {_browser_lock}>&-
export MUNINN_CHROMIUM MUNINN_CHROMEDRIVER

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    echo "MUNINN_CHROMIUM=$MUNINN_CHROMIUM"
    echo "MUNINN_CHROMEDRIVER=$MUNINN_CHROMEDRIVER"
fi
