#!/usr/bin/env bash
# The search cache's and the reranker's figures through a release `vectron dev`
# (no auth, fresh data for every run, default ports 8080/8081): QPS with the cache off
# and on (every query new), with half the queries repeated, and with an mmr rerank over
# 100 candidates; unqueued p50 of cache hits and misses with one client.
#
#   scripts/bench-cache.sh [rounds]   (default 1; each round takes ~2 minutes)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
. "$here/env.sh"
cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p vectron-server -p vectron-bench
bin="$CARGO_TARGET_DIR/release"
work="$(mktemp -d)"
dev=""
stop_dev() { if [ -n "$dev" ]; then kill "$dev" 2>/dev/null || true; wait "$dev" 2>/dev/null || true; dev=""; fi; }
trap 'stop_dev; rm -rf "$work"' EXIT
start_dev() {  # $1: gateway.search_cache_bytes
  stop_dev
  rm -rf "$work/data"
  VECTRON__GATEWAY__SEARCH_CACHE_BYTES="$1" "$bin/vectron" dev --no-auth --data-dir "$work/data" >"$work/dev.log" 2>&1 &
  dev=$!
  for _ in $(seq 1 120); do curl -sf http://127.0.0.1:8080/v1/system/health >/dev/null && return; sleep 0.5; done
  echo "vectron dev did not come up:" >&2; tail -20 "$work/dev.log" >&2; exit 1
}
common=(--n 100000 --dim 128 --batch 1000 --queries 4000 --ef 64 --repeat 2)
mmr=(--rerank mmr --rerank-params '{"lambda":0.7}' --rerank-candidates 100)
run() {  # $1: title; the rest: flags
  echo "== $1"
  shift
  "$bin/vectron-bench" cluster "${common[@]}" "$@" 2>&1 | grep -E "^gateway|p50 of" | sed 's/^/    /'
}
for round in $(seq 1 "${1:-1}"); do
  echo "# round $round"
  start_dev 0
  run "cache off, 32 clients" --clients 32
  run "cache off, 32 clients, mmr over 100 candidates" --clients 32 "${mmr[@]}"
  start_dev 67108864
  run "cache on, 32 clients, every query new" --clients 32
  run "cache on, 32 clients, 50% repeated" --clients 32 --repeat-queries 0.5
  run "cache on, 1 client, 50% repeated" --clients 1 --repeat-queries 0.5
  run "cache on, 1 client, mmr, 50% repeated" --clients 1 "${mmr[@]}" --repeat-queries 0.5
done
