"""Small steps of scripts/schemathesis.sh that are easier in Python (stdlib only).

    helper.py ports N                       N free loopback TCP ports, one a line
    helper.py wait KEYFILE URL SECS PID     wait for the admin key and a 200 from /v1/system/health
    helper.py seed URL KEY                  create the collection `st` and upsert a few points
    helper.py schema URL KEY OUT            save /v1/openapi.json to OUT, listing its operations
    helper.py summary JUNIT                 print `schemathesis: N passed, M failed` from a JUnit report
"""

import json
import os
import socket
import sys
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET

# The collection the run seeds; stateful and positive cases that name it reach real data.
COLLECTION = {"name": "st", "dimension": 4, "distance": "cosine", "shard_count": 1}
POINTS = [
    {"id": 1, "vector": [1.0, 0.0, 0.0, 0.0], "payload": {"tag": "a", "n": 1}},
    {"id": 2, "vector": [0.0, 1.0, 0.0, 0.0], "payload": {"tag": "b", "n": 2}},
    {"id": 3, "vector": [0.0, 0.0, 1.0, 0.0], "payload": {"tag": "a", "n": 3}},
    {"id": "p4", "vector": [0.5, 0.5, 0.5, 0.5], "payload": {"tag": "c", "n": 4}},
]


def request(method, url, key=None, body=None, timeout=10):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if key:
        req.add_header("x-api-key", key)
    if data is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def ports(n):
    socks = []
    try:
        for _ in range(int(n)):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        for s in socks:
            print(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()


def alive(pid):
    try:
        os.kill(int(pid), 0)
        return True
    except OSError:
        return False


def wait(keyfile, url, secs, pid):
    deadline = time.monotonic() + float(secs)
    key = None
    last = "no admin key file yet"
    while time.monotonic() < deadline:
        if not alive(pid):
            sys.exit(f"vectron dev (pid {pid}) exited before it was ready")
        if key is None and os.path.exists(keyfile):
            key = open(keyfile).read().strip() or None
        if key is not None:
            try:
                status, body = request("GET", url + "/v1/system/health", key, timeout=2)
                if status == 200:
                    return
                last = f"health answered {status}: {body[:200]!r}"
            except OSError as e:
                last = f"health: {e}"
        time.sleep(0.5)
    sys.exit(f"vectron dev not ready after {secs}s ({last})")


def seed(url, key):
    status, body = request("POST", url + "/v1/collections", key, COLLECTION, timeout=60)
    if status != 200:
        sys.exit(f"creating collection st: {status} {body[:300]!r}")
    status, body = request(
        "POST", url + "/v1/collections/st/points", key, {"points": POINTS, "wait": True}, timeout=60
    )
    if status != 200:
        sys.exit(f"upserting into st: {status} {body[:300]!r}")
    print(f"seeded collection st with {len(POINTS)} points")


def schema(url, key, out):
    status, body = request("GET", url + "/v1/openapi.json", key, timeout=30)
    if status != 200:
        sys.exit(f"GET /v1/openapi.json: {status} {body[:300]!r}")
    doc = json.loads(body)
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
    ops = sum(
        1
        for item in doc.get("paths", {}).values()
        for m in item
        if m in ("get", "put", "post", "delete", "patch", "head", "options", "trace")
    )
    print(f"schema: {ops} operations in {len(doc.get('paths', {}))} paths")


def summary(junit):
    root = ET.parse(junit).getroot()
    passed = failed = skipped = 0
    for case in root.iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        elif case.find("skipped") is not None:
            skipped += 1
        else:
            passed += 1
    line = f"schemathesis: {passed} passed, {failed} failed"
    print(line + (f", {skipped} skipped" if skipped else ""))


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    {"ports": ports, "wait": wait, "seed": seed, "schema": schema, "summary": summary}[cmd](*args)
