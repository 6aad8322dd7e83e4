#!/usr/bin/env python3
"""Peak memory of accepted HTTP upserts, per MiB of body, on a throwaway `vectron dev`.

Starts `vectron dev` on free loopback ports, sends one upsert of each shape below (each
under the 32 MiB upsert limit), and prints how much the server's peak RSS (VmHWM, reset
with /proc/<pid>/clear_refs before each request) grew, as a multiple of the body size.
The security issue's target is 4x. Usage: scripts/upsert-memory.py [VECTRON_BIN]
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/vectron/target"))
binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(target, "debug", "vectron")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


workdir = tempfile.mkdtemp(prefix="vectron-upsert-memory.")
addr = {name: f"127.0.0.1:{free_port()}" for name in ["http", "grpc", "placement", "worker", "auth"]}
args = [binary, "dev", "--data-dir", f"{workdir}/data"] + [x for n, a in addr.items() for x in (f"--{n}", a)]
server = subprocess.Popen(args, stdout=open(f"{workdir}/server.log", "w"), stderr=subprocess.STDOUT)
base = f"http://{addr['http']}"
try:
    key = None
    for _ in range(120):
        try:
            key = open(f"{workdir}/data/admin.key").read().strip()
            if key and urllib.request.urlopen(f"{base}/v1/system/health", timeout=5).status == 200:
                break
        except Exception:
            pass
        time.sleep(0.5)

    def post(path, body):
        request = urllib.request.Request(
            base + path, data=body, headers={"x-api-key": key, "content-type": "application/json"}
        )
        return urllib.request.urlopen(request, timeout=600).status

    def memory_kib():
        status = open(f"/proc/{server.pid}/status").read().splitlines()
        field = lambda name: int(next(l for l in status if l.startswith(name)).split()[1])
        return field("VmRSS:"), field("VmHWM:")

    shapes = [
        ("vectors: 4,000 x 128-d, small payloads", 128, 4000,
         lambda i: {"n": i, "tag": f"t{i % 10}"}),
        ("payloads: objects of 1,500 short keys", 4, 1500, lambda i: {f"k{j}": j for j in range(1500)}),
        ("payloads: arrays of 5,000 small integers", 4, 1500, lambda i: {"a": [j % 10 for j in range(5000)]}),
    ]
    for n, (label, dim, count, payload) in enumerate(shapes):
        name = f"m{n}"
        post("/v1/collections", json.dumps({"name": name, "dimension": dim, "distance": "cosine"}).encode())
        points = [
            {"id": i, "vector": [((i * 31 + j * 7) % 97) / 97 + 0.01 for j in range(dim)], "payload": payload(i)}
            for i in range(count)
        ]
        body = json.dumps({"points": points}).encode()
        with open(f"/proc/{server.pid}/clear_refs", "w") as f:
            f.write("5")
        before, _ = memory_kib()
        post(f"/v1/collections/{name}/points", body)
        _, peak = memory_kib()
        mib = len(body) / 2**20
        grown = (peak - before) / 1024
        print(f"{label}: body {mib:.1f} MiB, peak RSS +{grown:.1f} MiB = {grown / mib:.1f}x the body")
finally:
    server.terminate()
    server.wait()
