#!/usr/bin/env python3
"""Peak memory of accepted HTTP upserts, per MiB of body.

Sends one upsert of each shape below (each under the 32 MiB upsert limit) and prints how
much peak RSS (VmHWM, reset with /proc/<pid>/clear_refs before each request) grew, as a
multiple of the body size. The security issue's target is 4x.

Two topologies, each on free loopback ports and a throwaway data dir:
- `dev` (default): one `vectron dev` process, so the figure is everything a write costs
  end to end: the gateway's parse, the shard's Raft log entry and its apply, and the
  RocksDB write buffers (memtables) that keep both the log entry and the payloads until
  they are flushed (each about the size of the batch's compact payload text).
- `split`: placement, worker and gateway as separate processes (as deployed), printing
  the gateway's growth (parse and forward) and the worker's (Raft log, apply, memtables)
  apart.

Usage: scripts/upsert-memory.py [--split] [VECTRON_BIN]
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

args = [a for a in sys.argv[1:] if a != "--split"]
split = "--split" in sys.argv[1:]
target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/vectron/target"))
binary = args[0] if args else os.path.join(target, "debug", "vectron")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


shapes = [
    ("vectors: 4,000 x 128-d, small payloads", 128, 4000, lambda i: {"n": i, "tag": f"t{i % 10}"}),
    ("payloads: objects of 1,500 short keys", 4, 1500, lambda i: {f"k{j}": j for j in range(1500)}),
    ("payloads: arrays of 5,000 small integers", 4, 1500, lambda i: {"a": [j % 10 for j in range(5000)]}),
]


def memory_kib(pid):
    status = open(f"/proc/{pid}/status").read().splitlines()
    field = lambda name: int(next(l for l in status if l.startswith(name)).split()[1])
    return field("VmRSS:"), field("VmHWM:")


def measure(label, dim, count, payload):
    """One shape on fresh servers: memory an earlier request freed (and the allocator
    kept) would otherwise absorb part of this one's growth."""
    workdir = tempfile.mkdtemp(prefix="vectron-upsert-memory.")
    servers = {}

    def start(name, argv):
        log = open(f"{workdir}/{name}.log", "w")
        servers[name] = subprocess.Popen([binary] + argv, stdout=log, stderr=subprocess.STDOUT)

    addr = {name: f"127.0.0.1:{free_port()}" for name in ["http", "grpc", "placement", "worker", "auth", "reranker"]}
    if split:
        secret = f"{workdir}/cluster.secret"
        with open(secret, "w") as f:
            f.write("the upsert memory script's cluster secret, 32+ bytes\n")
        common = ["--cluster-secret-file", secret]
        start("placement", ["placement", "--node-id", "1", "--listen", addr["placement"],
                            "--initial-members", f"1={addr['placement']}", "--data-dir", f"{workdir}/placement"]
              + common)
        start("worker", ["worker", "--listen", addr["worker"], "--placement", addr["placement"],
                         "--data-dir", f"{workdir}/worker"] + common)
        start("gateway", ["gateway", "--http", addr["http"], "--grpc", addr["grpc"], "--placement",
                          addr["placement"], "--no-auth"] + common)
    else:
        start("dev", ["dev", "--data-dir", f"{workdir}/data"] + [x for n, a in addr.items() for x in (f"--{n}", a)])
    base = f"http://{addr['http']}"
    try:
        key = None
        for _ in range(120):
            try:
                if not split:
                    key = open(f"{workdir}/data/admin.key").read().strip()
                if (split or key) and urllib.request.urlopen(f"{base}/v1/system/health", timeout=5).status == 200:
                    break
            except Exception:
                pass
            time.sleep(0.5)

        def post(path, body, attempts=1):
            headers = {"content-type": "application/json"}
            if key:
                headers["x-api-key"] = key
            for attempt in range(attempts):
                try:
                    request = urllib.request.Request(base + path, data=body, headers=headers)
                    return urllib.request.urlopen(request, timeout=600).status
                except urllib.error.HTTPError:
                    if attempt + 1 == attempts:
                        raise
                    time.sleep(0.5)

        # A split cluster's worker may still be registering: retry the creation.
        post("/v1/collections", json.dumps({"name": "m", "dimension": dim, "distance": "cosine"}).encode(), 60)
        points = [
            {"id": i, "vector": [((i * 31 + j * 7) % 97) / 97 + 0.01 for j in range(dim)], "payload": payload(i)}
            for i in range(count)
        ]
        body = json.dumps({"points": points}).encode()
        before = {}
        for process, server in servers.items():
            with open(f"/proc/{server.pid}/clear_refs", "w") as f:
                f.write("5")
            before[process] = memory_kib(server.pid)[0]
        post("/v1/collections/m/points", body, 20)
        mib = len(body) / 2**20
        parts = []
        for process, server in servers.items():
            if process == "placement":
                continue
            grown = (memory_kib(server.pid)[1] - before[process]) / 1024
            parts.append(f"{process} +{grown:.1f} MiB = {grown / mib:.1f}x")
        print(f"{label}: body {mib:.1f} MiB, peak RSS " + ", ".join(parts), flush=True)
    finally:
        for server in servers.values():
            server.terminate()
        for server in servers.values():
            server.wait()


for shape in shapes:
    measure(*shape)
