#!/usr/bin/env bash
# A manual check, not part of the test command: runs a real `muninn serve` under strace through
# ingest → flush → WAL deletion and verifies, from the system calls, that every block file was
# synced before its rename, every renamed file's directory and every new directory's parent were
# synced before the first WAL segment was unlinked, and that the unlink was synced
# (docs/durability.md). Needs strace (`apt-get install -y strace`) and python3; builds the
# debug binary. Prints one line per file and directory, then `ALL ORDERED: True` or exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v strace >/dev/null || { echo "check-fsync-order.sh: needs strace (apt-get install -y strace)" >&2; exit 1; }
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/muninn-target}"
cargo build -q -p muninn
work="$(mktemp -d)"
trap 'pkill -P "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
port=$((20000 + RANDOM % 20000))
strace -f -y -o "$work/trace.txt" \
    -e trace=openat,fsync,fdatasync,rename,renameat,renameat2,unlink,unlinkat,mkdir,mkdirat \
    "$CARGO_TARGET_DIR/debug/muninn" serve --data-dir "$work/data" --listen "127.0.0.1:$port" \
    --otlp-grpc-listen off >"$work/server.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
    grep -q "muninn listening on" "$work/server.log" 2>/dev/null && break
    sleep 0.1
done
now=$(date +%s%N)
hour=3600000000000
span() { # trace id suffix, start
    echo '{"trace_id":"4bf92f3577b34da6a3ce929d0e0e473'"$1"'","span_id":"00f067aa0ba902b'"$1"'","name":"publish",
      "kind":"producer","service":"checkout","start_time_unix_nano":'"$2"',"duration_nano":1200000,
      "event_id":"e'"$1"'","event_type":"order.created","stream":"orders","broker":"kafka"}'
}
curl -sf "127.0.0.1:$port/api/v1/spans" -H 'content-type: application/json' \
    -d "[$(span 1 "$now"), $(span 2 $((now - hour)))]" >/dev/null
curl -sf -X POST "127.0.0.1:$port/api/v1/admin/flush"
echo
# Stop the server itself: strace, sent a signal, detaches and keeps waiting for it.
kill "$(pgrep -P "$pid")"
wait "$pid" 2>/dev/null || true
python3 - "$work/trace.txt" "$work" <<'PY'
import re, sys
trace, root = sys.argv[1], sys.argv[2]
lines = [re.sub(r"\s+= ", " = ", re.sub(r"^\d+ +", "", line.rstrip()))
         for line in open(trace) if root in line and "ENOENT" not in line]
def fsync_of(line, directory):
    return line.startswith("fsync(") and line.endswith("<" + directory + ">) = 0")
unlinks = [i for i, line in enumerate(lines) if line.startswith("unlink") and "/wal/" in line]
if not unlinks:
    sys.exit("no WAL segment was unlinked: the flush did not run")
first_unlink, ok = unlinks[0], True
for i, line in enumerate(lines):
    paths = re.findall(r'"([^"]+)"', line)
    if line.startswith("rename"):
        temporary, final = paths[0], paths[1]
        directory = final.rsplit("/", 1)[0]
        synced = any(l.startswith("fdatasync") and temporary in l for l in lines[:i])
        dir_synced = any(fsync_of(l, directory) for l in lines[i:first_unlink])
        print(f"rename {final[len(root) + 1:]}: file synced before the rename {synced}, "
              f"directory synced before the WAL unlink {dir_synced}")
        ok &= synced and dir_synced
    elif line.startswith("mkdir"):
        parent = paths[0].rsplit("/", 1)[0]
        parent_synced = any(fsync_of(l, parent) for l in lines[i:first_unlink])
        print(f"mkdir {paths[0][len(root) + 1:]}: parent synced before the WAL unlink {parent_synced}")
        ok &= parent_synced
wal_dir = re.findall(r'"([^"]+)"', lines[first_unlink])[0].rsplit("/", 1)[0]
unlink_synced = any(fsync_of(l, wal_dir) for l in lines[first_unlink:])
print(f"unlink {lines[first_unlink]}: WAL directory synced after it {unlink_synced}")
ok &= unlink_synced
print("ALL ORDERED:", ok)
sys.exit(0 if ok else 1)
PY
