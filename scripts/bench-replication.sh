#!/usr/bin/env bash
# Batched ingest through the gateway at RF 1 and RF 3 on the local multi-process
# cluster (scripts/cluster.sh), each worker capped at the same CPU quota so that every
# replica has the same "machine" (on one host the three replicas of RF 3 would
# otherwise share the cores a single RF 1 replica has to itself, which caps RF 3 / RF 1
# at 1/3 whatever the code does).
#
#   Needs a writable cpu cgroup (cgroup v2 `cpu.max` or v1 `cpu.cfs_quota_us`, e.g. as root).
#   VECTRON_WORKER_CPUS=0.5 N=50000 DIM=128 bash scripts/bench-replication.sh
#
# Prints one line per run: shards, RF, vectors/s; then RF 3 / RF 1 per shard count.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$(dirname "$here")"
. "$here/env.sh"
cargo build --release --locked -p vectron-server -p vectron-bench
bench="$CARGO_TARGET_DIR/release/vectron-bench"
cpus="${VECTRON_WORKER_CPUS:-0.5}"
n="${N:-50000}"
dim="${DIM:-128}"
dir="$(mktemp -d /tmp/vectron-replication.XXXXXX)"
period=100000
quota="$(python3 -c "print(int($cpus * $period))")"

cgroups=()
cap() { # pid name: puts pid (and its threads) in a cgroup of its own with the quota
  local pid="$1" name="vectron-bench-$2"
  if [ -w /sys/fs/cgroup/cgroup.subtree_control ] && [ -e /sys/fs/cgroup/cgroup.controllers ]; then
    local cg="/sys/fs/cgroup/$name"
    mkdir -p "$cg"
    echo "$quota $period" >"$cg/cpu.max"
    echo "$pid" >"$cg/cgroup.procs"
  elif [ -d /sys/fs/cgroup/cpu ]; then
    local cg="/sys/fs/cgroup/cpu/$name"
    mkdir -p "$cg"
    echo "$period" >"$cg/cpu.cfs_period_us"
    echo "$quota" >"$cg/cpu.cfs_quota_us"
    echo "$pid" >"$cg/cgroup.procs"
  else
    echo "no writable cpu cgroup: cannot cap the workers" >&2
    exit 1
  fi
  cgroups+=("$cg")
}

cluster_pid=""
cleanup() {
  [ -n "$cluster_pid" ] && kill "$cluster_pid" 2>/dev/null && wait "$cluster_pid" 2>/dev/null
  for cg in "${cgroups[@]}"; do rmdir "$cg" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM

VECTRON_CLUSTER_DIR="$dir" bash "$here/cluster.sh" >"$dir/cluster.out" 2>&1 &
cluster_pid=$!
for _ in $(seq 120); do
  [ -s "$dir/admin.key" ] && curl -sf -o /dev/null -H "x-api-key: $(cat "$dir/admin.key")" \
    http://127.0.0.1:8080/v1/admin/workers && break
  sleep 1
done
sleep 3 # the workers register and heartbeat
for i in 1 2 3; do
  pid="$(pgrep -f "vectron worker --listen 127.0.0.1:909$i")"
  cap "$pid" "worker-$i"
done
echo "workers capped at $cpus CPU each; $n × $dim, 8 clients, batches of 500"

declare -A rate
for shards in 1 3; do
  for rf in 1 3; do
    out="$("$bench" cluster --api-key "$(cat "$dir/admin.key")" --n "$n" --dim "$dim" --clients 8 --batch 500 \
      --queries 100 --ef 64 --repeat 1 --shards "$shards" --replication-factor "$rf" --json 2>/dev/null)"
    rate[$shards,$rf]="$(printf '%s\n' "$out" | python3 -c '
import json, sys
for line in sys.stdin:
    try:
        row = json.loads(line)
    except ValueError:
        continue
    if isinstance(row, dict) and row.get("phase") == "ingest":
        print(round(row["vectors_per_s"]))')"
    echo "shards $shards RF $rf: ${rate[$shards,$rf]} vectors/s"
  done
  python3 -c "print('shards $shards: RF 3 / RF 1 = %.2f' % (${rate[$shards,3]} / ${rate[$shards,1]}))"
done
