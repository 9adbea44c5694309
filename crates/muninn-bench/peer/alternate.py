#!/usr/bin/env python3
"""Look-ups of two or more `muninn` binaries alternated on one data directory, so that the
machine's drift between benchmark runs does not hide a difference: each round starts each
binary in turn (`muninn serve --data-dir DIR`), asks the same 400 traces by id over one
connection, and prints their p50 and p99 and the server's CPU a look-up (from /proc).

    cargo run --release -p muninn-bench -- --spans 10000000 --workload random --count-days 0 \
        --queries 1 --query-kinds lineage --ui-visits 0 --seed 11 --keep-data --data-dir /tmp/kept
    python3 crates/muninn-bench/peer/alternate.py /tmp/kept 8 ./muninn-before ./muninn-after
"""
import http.client, json, os, subprocess, sys, time, random
if len(sys.argv) < 4 or not sys.argv[2].isdigit():
    sys.exit("usage: alternate.py DATA_DIR ROUNDS MUNINN_BINARY... (a data directory muninn-bench kept)")
d = sys.argv[1]; rounds = int(sys.argv[2]); bins = sys.argv[3:]
PORT = 47123
def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
def start(b):
    p = subprocess.Popen([b, "serve", "--data-dir", d, "--listen", f"127.0.0.1:{PORT}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30); c.request("GET", "/api/v1/event-types")
            r = c.getresponse(); r.read()
            if r.status == 200: return p, c
        except Exception: time.sleep(0.1)
    raise SystemExit("no server")
def get(c, path):
    c.request("GET", path); r = c.getresponse(); body = r.read()
    return r.status, body
ids = None
res = {b: [] for b in bins}
for rnd in range(rounds):
    for b in bins:
        p, c = start(b)
        if ids is None:
            st, body = get(c, "/api/services"); services = json.loads(body)["data"]
            tids = set(); eids = set()
            now = int(time.time() * 1e6)
            for s in services:
                st, body = get(c, f"/api/traces?service={s}&limit=60&start=0&end={now}")
                for t in json.loads(body).get("data", []):
                    tids.add(t["traceID"])
            ids = sorted(tids); random.Random(1).shuffle(ids); ids = ids[:400]
            print(f"{len(ids)} trace ids", flush=True)
        time.sleep(3)  # let the start's background warm finish
        for t in ids[:20]: get(c, f"/api/v1/traces/{t}")
        c0 = cpu(p.pid); lat = []
        for t in ids:
            t0 = time.perf_counter(); st, body = get(c, f"/api/v1/traces/{t}"); lat.append(time.perf_counter() - t0)
            assert st == 200, (st, body[:200])
        c1 = cpu(p.pid)
        lat.sort()
        r = (lat[len(lat)//2]*1e3, lat[int(len(lat)*0.99)]*1e3, (c1-c0)/len(ids)*1e3)
        res[b].append(r)
        print(f"round {rnd} {os.path.basename(b)}: p50 {r[0]:.2f} ms p99 {r[1]:.2f} ms cpu/lookup {r[2]:.2f} ms", flush=True)
        p.terminate(); p.wait()
for b in bins:
    rs = res[b]
    print(os.path.basename(b), "mean p50 %.2f p99 %.2f cpu %.2f" % tuple(sum(x[i] for x in rs)/len(rs) for i in range(3)))
