#!/usr/bin/env bash
# Installs (once, cached) the Python environment the tests run real OpenTelemetry clients in,
# and exports its interpreter as MUNINN_PYTHON. Source it (scripts/test.sh does), or run it to
# print the variable.
#
# A venv in $MUNINN_TOOLS_DIR/python (default /var/cache/muninn-tools/python) with the pinned
# packages of scripts/python-requirements.txt; it is made again when that file changes (its
# SHA-256 is kept in the venv). `apt-get install python3-venv` when python3 cannot make a venv.
# An executable $MUNINN_PYTHON is used as it is. Silent unless it installs.

set -euo pipefail

MUNINN_TOOLS_DIR="${MUNINN_TOOLS_DIR:-/var/cache/muninn-tools}"
_python_requirements="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/python-requirements.txt"

_python_say() { echo "python.sh: $*" >&2; }

_python_fail() {
    _python_say "$*"
    exit 1
}

# Runs "$@" with its output in a log file; on failure shows the log's tail and stops.
_python_logged() {
    local log="$1"
    shift
    if ! "$@" >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        _python_fail "failed: $* (full log: $log)"
    fi
}

_python_can_make_venvs() {
    "$1" -c 'import venv, ensurepip' >/dev/null 2>&1
}

_python_install() {
    if [[ -n "${MUNINN_PYTHON:-}" ]]; then
        [[ -x "$MUNINN_PYTHON" ]] || _python_fail "MUNINN_PYTHON=$MUNINN_PYTHON is not an executable"
        return
    fi
    [[ -f "$_python_requirements" ]] || _python_fail "$_python_requirements is missing"
    local venv="$MUNINN_TOOLS_DIR/python"
    local wanted installed=""
    wanted="$(sha256sum "$_python_requirements" | cut -d' ' -f1)"
    [[ -f "$venv/requirements.sha256" ]] && installed="$(cat "$venv/requirements.sha256")"
    MUNINN_PYTHON="$venv/bin/python"
    if [[ -x "$MUNINN_PYTHON" && "$installed" == "$wanted" ]]; then
        return
    fi

    local python started=$SECONDS sudo=()
    python="$(command -v python3)" || _python_fail "python3 is not installed; install it (apt-get install python3)"
    if ! _python_can_make_venvs "$python"; then
        command -v apt-get >/dev/null || _python_fail "$python cannot make a venv and there is no apt-get to install python3-venv"
        [[ $(id -u) -eq 0 ]] || sudo=(sudo)
        _python_say "installing python3-venv with apt-get"
        _python_logged "$MUNINN_TOOLS_DIR/apt-python.log" "${sudo[@]}" apt-get update -q
        _python_logged "$MUNINN_TOOLS_DIR/apt-python.log" env DEBIAN_FRONTEND=noninteractive \
            "${sudo[@]}" apt-get install -y -q python3-venv
        _python_can_make_venvs "$python" || _python_fail "python3-venv is installed but $python still cannot make a venv"
    fi
    _python_say "installing the test packages of $_python_requirements into $venv"
    rm -rf "$venv"
    _python_logged "$MUNINN_TOOLS_DIR/python-venv.log" "$python" -m venv "$venv"
    _python_logged "$MUNINN_TOOLS_DIR/pip.log" "$MUNINN_PYTHON" -m pip install --quiet \
        --disable-pip-version-check --no-input -r "$_python_requirements"
    echo "$wanted" >"$venv/requirements.sha256"
    _python_say "installed $("$MUNINN_PYTHON" --version) with the test packages in $((SECONDS - started)) s"
}

mkdir -p "$MUNINN_TOOLS_DIR"
# One installer at a time: a second run waits here, then finds the venv installed.
exec {_python_lock}>"$MUNINN_TOOLS_DIR/.install.lock"
if command -v flock >/dev/null && ! flock -n "$_python_lock"; then
    _python_say "waiting for another run's install to finish (lock: $MUNINN_TOOLS_DIR/.install.lock)"
    flock "$_python_lock"
fi
_python_install
exec {_python_lock}>&-
unset _python_lock

export MUNINN_PYTHON MUNINN_TOOLS_DIR

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    echo "MUNINN_PYTHON=$MUNINN_PYTHON"
fi
