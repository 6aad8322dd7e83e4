#!/usr/bin/env bash
# Measures what idle Raft groups cost: starts a loopback cluster (1 placement node,
# 3 workers, gateway) from release binaries, creates collections totalling
# ${IDLE_GROUPS:-64} shards with RF 3 (every worker hosts every group: 1 leader or 2
# followers' worth of heartbeats each), waits for leaders, then samples each worker's
# CPU time over ${SECONDS_IDLE:-30} s of idleness. Prints CPU % per worker process.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$(dirname "$here")"
. "$here/env.sh"
bin="$CARGO_TARGET_DIR/release/vectron"
[ -x "$bin" ] || cargo build --release --locked -p vectron-server
groups="${IDLE_GROUPS:-64}"; idle="${SECONDS_IDLE:-30}"
dir="$(mktemp -d)"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
p=$(port); http=$(port); grpc=$(port)
"$bin" placement --listen 127.0.0.1:$p --data-dir "$dir/p" >"$dir/p.log" 2>&1 & pids+=($!)
wpids=()
for i in 1 2 3; do
  "$bin" worker --listen 127.0.0.1:$(port) --placement 127.0.0.1:$p --data-dir "$dir/w$i" >"$dir/w$i.log" 2>&1 &
  pids+=($!); wpids+=($!)
done
"$bin" gateway --http 127.0.0.1:$http --grpc 127.0.0.1:$grpc --placement 127.0.0.1:$p --no-auth >"$dir/g.log" 2>&1 & pids+=($!)
for _ in $(seq 50); do curl -sf "127.0.0.1:$http/v1/system/health" >/dev/null && break; sleep 0.2; done
sleep 2
per=16; n=$(( (groups + per - 1) / per ))
for c in $(seq "$n"); do
  curl -sf "127.0.0.1:$http/v1/collections" -H 'content-type: application/json' \
    -d "{\"name\":\"idle$c\",\"dimension\":8,\"distance\":\"euclid\",\"shard_count\":$per,\"replication_factor\":3}" >/dev/null
done
for _ in $(seq 100); do
  led=$(curl -sf "127.0.0.1:$http/v1/admin/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["shards_with_leader"])')
  [ "$led" -ge $((n * per)) ] && break; sleep 0.3
done
echo "groups with a leader: $led (RF 3, 3 workers); sampling ${idle}s of idleness"
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
declare -A before
for w in "${wpids[@]}"; do before[$w]=$(ticks "$w"); done
sleep "$idle"
hz=$(getconf CLK_TCK)
for w in "${wpids[@]}"; do
  used=$(( $(ticks "$w") - before[$w] ))
  python3 -c "print(f'worker pid $w: {100*$used/$hz/$idle:.1f}% of one core')"
done
