#!/usr/bin/env bash
# Replica catch-up throughput: 1 placement node, 1 worker, a 2-shard RF-1 collection of
# N points x 128-d (batches of 2000, through the Python SDK's venv: run
# scripts/python-sdk-test.sh once first); then a second worker joins and the scheduler
# moves a shard to it (about N/2 points). Prints the time from the new replica's opening
# to its becoming the group's voter (the log replicated to it; applying it to the graph
# goes on after), and the leader's AppendEntries timeouts meanwhile. Loopback ports 36001, 38080-1, 39091-2.
#   N=100000 bash scripts/bench-catchup.sh     (VECTRON_BIN: the binary; default the dev build)
set -euo pipefail
B=${VECTRON_BIN:-$HOME/.cache/vectron/target/debug/vectron}
N=${N:-100000}
d=$(mktemp -d); cd "$d"; head -c 48 /dev/urandom | base64 > secret
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$d"' EXIT
$B placement --node-id 1 --listen 127.0.0.1:36001 --data-dir p --cluster-secret-file secret > p.log 2>&1 &
$B worker --listen 127.0.0.1:39091 --placement 127.0.0.1:36001 --data-dir w1 --cluster-secret-file secret > w1.log 2>&1 &
$B gateway --http 127.0.0.1:38080 --grpc 127.0.0.1:38081 --placement 127.0.0.1:36001 --no-auth --cluster-secret-file secret > g.log 2>&1 &
sleep 4
N=$N ~/.cache/vectron/python-sdk-venv/bin/python - <<'PY'
import numpy as np, os, vectron
n = int(os.environ["N"])
c = vectron.Client("127.0.0.1:38081", timeout=60)
c.create_collection("cu", dimension=128, distance="euclid", shard_count=2, replication_factor=1)
v = np.random.default_rng(1).standard_normal((n, 128)).astype(np.float32)
for i in range(0, n, 2000):
    c.upsert("cu", [{"id": j, "vector": v[j]} for j in range(i, min(n, i + 2000))], wait=True)
PY
$B worker --listen 127.0.0.1:39092 --placement 127.0.0.1:36001 --data-dir w2 --cluster-secret-file secret > w2.log 2>&1 &
for _ in $(seq 120); do cat w1.log w2.log | sed 's/\x1b\[[0-9;]*m//g' | grep -qE "membership changed shard=[0-9]* voters=\{2\}" && break; sleep 0.5; done
opened=$(sed 's/\x1b\[[0-9;]*m//g' w2.log | grep "replica opened worker=2" | head -1 | cut -c12-26)
voter=$(cat w1.log w2.log | sed 's/\x1b\[[0-9;]*m//g' | grep -E "membership changed shard=[0-9]* voters=\{2\}" | head -1 | cut -c12-26)
timeouts=$(sed 's/\x1b\[[0-9;]*m//g' w1.log | grep -c "timeout after 200ms when AppendEntries" || true)
python3 -c "
from datetime import datetime as D
t=lambda s: D.strptime(s,'%H:%M:%S.%f')
s=(t('$voter')-t('$opened')).total_seconds()
print(f'log caught up {s:.2f} s after the new replica opened; AppendEntries timeouts: $timeouts')"
