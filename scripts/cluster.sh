#!/usr/bin/env bash
# A local multi-process cluster on loopback, for trying failover by hand: 3 placement
# nodes (127.0.0.1:6001-6003), 3 workers (127.0.0.1:9091-9093, zones a/b/c), an auth
# service (127.0.0.1:8090, embedded store) and a gateway (HTTP 127.0.0.1:8080, gRPC
# 127.0.0.1:8081). Data and logs go under ${VECTRON_CLUSTER_DIR:-./data/cluster}; the
# admin API key is in <dir>/admin.key. Ctrl-C stops everything.
#
# Try: kill -9 a worker's pid (printed below) while writing, then start it again with
# the command printed next to it; or kill the placement leader (see
# GET /v1/system/health).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$(dirname "$here")"
VECTRON_SETUP_PYTHON=0 bash "$here/setup.sh"
. "$here/env.sh"
cargo build --release --locked -p vectron-server
bin="$CARGO_TARGET_DIR/release/vectron"
dir="${VECTRON_CLUSTER_DIR:-./data/cluster}"
mkdir -p "$dir"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM
start() { # name, args...
  local name="$1"; shift
  "$bin" "$@" >>"$dir/$name.log" 2>&1 &
  pids+=($!)
  printf '%-12s pid %-7s log %s\n             restart: %s %s\n' "$name" "$!" "$dir/$name.log" "$bin" "$*"
}
new_secret() { # path: 256 random bits as hex, owner-only, kept across runs
  [ -s "$1" ] || { mkdir -p "$(dirname "$1")"; (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$1"); }
}
cluster_secret="$dir/cluster.secret"   # authenticates the internal APIs
new_secret "$cluster_secret"
members="1=127.0.0.1:6001,2=127.0.0.1:6002,3=127.0.0.1:6003"
placement="127.0.0.1:6001,127.0.0.1:6002,127.0.0.1:6003"
for i in 1 2 3; do
  start "placement-$i" placement --node-id "$i" --listen "127.0.0.1:600$i" --initial-members "$members" \
    --data-dir "$dir/placement-$i" --cluster-secret-file "$cluster_secret"
done
zones=(a b c)
for i in 1 2 3; do
  start "worker-$i" worker --listen "127.0.0.1:909$i" --placement "$placement" --zone "${zones[$((i-1))]}" \
    --data-dir "$dir/worker-$i" --cluster-secret-file "$cluster_secret"
done
secret="$dir/auth/jwt.secret"
new_secret "$secret"
start auth auth --listen 127.0.0.1:8090 --data-dir "$dir/auth" --signing-key-file "$secret" \
  --admin-key-file "$dir/admin.key"
start gateway gateway --http 127.0.0.1:8080 --grpc 127.0.0.1:8081 --placement "$placement" --auth 127.0.0.1:8090 \
  --cluster-secret-file "$cluster_secret"
echo
echo "Cluster starting: HTTP http://127.0.0.1:8080/v1 (health: /v1/system/health), gRPC 127.0.0.1:8081"
echo "Admin API key: $dir/admin.key (e.g. curl -H \"x-api-key: \$(cat $dir/admin.key)\" http://127.0.0.1:8080/v1/collections)"
echo "Ctrl-C stops it."
wait
