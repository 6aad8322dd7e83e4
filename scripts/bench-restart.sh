#!/usr/bin/env bash
# Restart-to-serving of a SIGKILLed worker, by data size: a placement node, one worker
# and a gateway (release build, loopback, no auth); N points of DIM dimensions ingested
# into SHARDS shards with vectron-bench; WAIT seconds later the worker is SIGKILLed and
# started again on its data, and the time until a search through the gateway answers
# whole again is measured (and until the worker reports ready).
#
#   N=100000 DIM=128 SHARDS=4 bash scripts/bench-restart.sh
#   SAVE=1000h bash scripts/bench-restart.sh   # no background graph saves (as before
#                                              # them: only every 100k writes and on a clean stop)
#
# Prints one line: points, shards, save interval, seconds to ready, seconds to serving.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$(dirname "$here")"
. "$here/env.sh"
cargo build --release --locked -p vectron-server -p vectron-bench >&2
bin="$CARGO_TARGET_DIR/release/vectron"
bench="$CARGO_TARGET_DIR/release/vectron-bench"
n="${N:-100000}"
dim="${DIM:-128}"
shards="${SHARDS:-4}"
save="${SAVE:-10s}"
wait_s="${WAIT:-15}"
dir="$(mktemp -d /tmp/vectron-restart.XXXXXX)"
base="${PORT_BASE:-27100}"
placement="127.0.0.1:$base" worker="127.0.0.1:$((base + 1))"
http="127.0.0.1:$((base + 2))" grpc="127.0.0.1:$((base + 3))"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM

"$bin" placement --listen "$placement" --data-dir "$dir/placement" >"$dir/placement.log" 2>&1 &
pids+=($!)
start_worker() {
  VECTRON__WORKER__GRAPH_SAVE_INTERVAL="$save" "$bin" worker --listen "$worker" --placement "$placement" \
    --data-dir "$dir/worker" --heartbeat 500ms >>"$dir/worker.log" 2>&1 &
  worker_pid=$!
  pids+=("$worker_pid")
}
start_worker
"$bin" gateway --http "$http" --grpc "$grpc" --placement "$placement" --no-auth >"$dir/gateway.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  curl -sf -o /dev/null "http://$http/v1/admin/workers" && break
  sleep 0.2
done
sleep 2
"$bench" cluster --gateway "http://$grpc" --collection restart --n "$n" --dim "$dim" --shards "$shards" \
  --clients 4 --batch 500 --queries 20 --ef 64 --repeat 1 --metrics-url "" >"$dir/bench.out" 2>&1
sleep "$wait_s"

probe=0
serving() { # a whole (not partial) answer with hits, to a query never asked before (nothing cached)
  probe=$((probe + 1))
  local query
  query="$(python3 -c "import json; print(json.dumps({'vector': [0.01 * ($probe % 97 + 1)] + [0.01] * ($dim - 1), 'top_k': 5}))")"
  curl -sf -m 1 "http://$http/v1/collections/restart/points/search" -H 'content-type: application/json' \
    -d "$query" 2>/dev/null | python3 -c 'import json,sys; r=json.load(sys.stdin); sys.exit(0 if r["hits"] and not r["partial"] else 1)' 2>/dev/null
}
serving || { echo "the cluster does not serve before the kill" >&2; tail -20 "$dir/worker.log" >&2; exit 1; }

kill -9 "$worker_pid"
wait "$worker_pid" 2>/dev/null || true
lines="$(wc -l <"$dir/worker.log")"
t0="$(date +%s.%N)"
start_worker
while ! serving; do
  if python3 -c "import sys; sys.exit(0 if $(date +%s.%N) - $t0 > 600 else 1)"; then
    echo "not serving 600 s after the restart" >&2
    exit 1
  fi
  sleep 0.05
done
served="$(python3 -c "print(f'{$(date +%s.%N) - $t0:.2f}')")"
# When the worker reported ready, from its log's timestamp.
ready_at="$(tail -n +"$((lines + 1))" "$dir/worker.log" | sed 's/\x1b\[[0-9;]*m//g' | grep -m1 'ready=true' | cut -d' ' -f1)"
ready="$(python3 -c "
from datetime import datetime
t = datetime.fromisoformat('$ready_at'.rstrip('Z')[:26] + '+00:00')
print(f'{t.timestamp() - $t0:.2f}')" 2>/dev/null || echo '?')"
ingest="$(grep -m1 '^ingest:' "$dir/bench.out" || echo 'ingest: ?')"
echo "points $n × $dim in $shards shards, graph saves every $save: ready after $ready s, serving after $served s ($ingest)"
