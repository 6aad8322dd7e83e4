#!/usr/bin/env bash
# Property-based tests of the gateway's HTTP API with schemathesis: starts a throwaway
# `vectron dev` on free loopback ports, seeds a collection, and runs every schemathesis
# phase (examples, coverage, fuzzing, stateful) with positive and negative data and every
# check against the server's own /v1/openapi.json. Exits non-zero on any failure.
#
# Environment:
#   VECTRON_BIN                      the binary [${CARGO_TARGET_DIR:-~/.cache/vectron/target}/debug/vectron]
#   VECTRON_SCHEMATHESIS_VENV        venv holding schemathesis [~/.cache/vectron/schemathesis-venv]
#   VECTRON_SCHEMATHESIS_EXAMPLES    --max-examples per operation and phase [100]
#   VECTRON_SCHEMATHESIS_TIMEOUT     hard limit in seconds on the schemathesis run [600]
#   VECTRON_SCHEMATHESIS_SEED        --seed, to replay a run
#   VECTRON_SCHEMATHESIS_KEEP=1      keep the temp dir (server log, schema, reports)
# Extra arguments go to `schemathesis run` as they are (e.g. --include-path-regex /points).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
helper="$here/schemathesis/helper.py"
version=4.32.5

venv="${VECTRON_SCHEMATHESIS_VENV:-$HOME/.cache/vectron/schemathesis-venv}"
examples="${VECTRON_SCHEMATHESIS_EXAMPLES:-100}"
run_timeout="${VECTRON_SCHEMATHESIS_TIMEOUT:-600}"

# 1. schemathesis in its own venv, installed once.
if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('schemathesis') != '$version')" 2>/dev/null; then
  echo "schemathesis: installing schemathesis==$version into $venv"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$version"
fi
py="$venv/bin/python"

# 2. The binary under test.
bin="${VECTRON_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/vectron/target}/debug/vectron}"
if [ ! -x "$bin" ]; then
  echo "schemathesis: no vectron binary at $bin (build it with cargo build -p vectron-server, or set VECTRON_BIN)" >&2
  exit 1
fi

# 3. A throwaway dev cluster, always stopped on exit.
tmp="$(mktemp -d "${TMPDIR:-/tmp}/vectron-schemathesis.XXXXXX")"
log="$tmp/server.log"
server=""
tests_ran=0
server_died=0
cleanup() {
  local rc=$?
  if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then
    kill "$server" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$server" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  if [ "$rc" -ne 0 ] && [ -f "$log" ]; then
    if [ "$tests_ran" = 1 ] && [ "$server_died" = 0 ]; then
      # The server stayed up; its errors, if any, may explain the failures.
      if grep -qE "ERROR|panicked" "$log"; then
        echo "schemathesis: the server's last errors ($log):" >&2
        grep -E "ERROR|panicked" "$log" | tail -n 20 >&2 || true
      fi
    else
      echo "schemathesis: last lines of the server log ($log):" >&2
      tail -n 40 "$log" >&2 || true
    fi
  fi
  if [ "${VECTRON_SCHEMATHESIS_KEEP:-0}" = "1" ]; then
    echo "schemathesis: kept $tmp" >&2
  else
    rm -rf "$tmp"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mapfile -t port < <("$py" "$helper" ports 6)
base="http://127.0.0.1:${port[0]}"
NO_COLOR=1 "$bin" dev --data-dir "$tmp/data" \
  --http "127.0.0.1:${port[0]}" --grpc "127.0.0.1:${port[1]}" --placement "127.0.0.1:${port[2]}" \
  --worker "127.0.0.1:${port[3]}" --auth "127.0.0.1:${port[4]}" --reranker "127.0.0.1:${port[5]}" >"$log" 2>&1 &
server=$!
"$py" "$helper" wait "$tmp/data/admin.key" "$base" 60 "$server"
key="$(cat "$tmp/data/admin.key")"
echo "schemathesis: vectron dev up at $base (pid $server)"

# 4. Data for the positive and stateful cases to find.
"$py" "$helper" seed "$base" "$key"

# 5. The server's own schema.
"$py" "$helper" schema "$base" "$key" "$tmp/openapi.json"

# Operations left out, as each would break the rest of the run (the server has one worker,
# and every request authenticates as the one admin with the one admin key):
#   DELETE /v1/admin/workers/{id}        removes the only worker: every data operation fails after
#   POST /v1/admin/workers/{id}/drain    moves replicas off the only worker, same effect
#   DELETE /v1/auth/keys/{key_id}        could revoke the admin key the run authenticates with
#   DELETE /v1/auth/users/{username}     could delete the admin user (and so its key)
#   PATCH /v1/auth/users/{username}      could demote or disable the admin user
#   POST /v1/auth/password               could change the admin's password / invalidate its sessions
#   POST /v1/auth/logout                 could end the admin's sessions
#   POST /v1/alerts/{id}/resolve         a fresh cluster has no alert to resolve (every case is a
#                                        404), and schemathesis 4.32.5 on CPython 3.11 fails on it
#                                        with an internal SystemError (hypothesis' lambda source
#                                        lookup); alerts are resolved in tests/tests/cluster.rs
excluded=(
  "DELETE /v1/admin/workers/{id}"
  "POST /v1/admin/workers/{id}/drain"
  "DELETE /v1/auth/keys/{key_id}"
  "DELETE /v1/auth/users/{username}"
  "PATCH /v1/auth/users/{username}"
  "POST /v1/auth/password"
  "POST /v1/auth/logout"
  "POST /v1/alerts/{id}/resolve"
)
filters=()
for op in "${excluded[@]}"; do filters+=(--exclude-name "$op"); done

# 6. Every phase; --mode all generates both valid data (positive_data_acceptance: must be
# accepted) and invalid data (negative_data_rejection: must get a 4xx), and --checks all
# checks status codes, content types, headers and bodies against the schema.
seed_args=()
[ -z "${VECTRON_SCHEMATHESIS_SEED:-}" ] || seed_args=(--seed "$VECTRON_SCHEMATHESIS_SEED")
cmd=(
  "$venv/bin/schemathesis" --config-file "$here/schemathesis/schemathesis.toml" run "$tmp/openapi.json"
  --url "$base"
  -H "x-api-key: $key"
  --phases examples,coverage,fuzzing,stateful
  --mode all
  --checks all
  --max-examples "$examples"
  --workers 2
  --request-timeout 30
  --generation-database none
  --no-color
  --report-junit-path "$tmp/junit.xml"
  "${filters[@]}" "${seed_args[@]}" "$@"
)
echo "schemathesis: ${cmd[*]//$key/<admin key>}"
status=0
tests_ran=1
(cd "$tmp" && timeout --kill-after=30 "$run_timeout" "${cmd[@]}") || status=$?
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
  echo "schemathesis: run did not finish within ${run_timeout}s" >&2
fi

# 7. One closing line, counted from the JUnit report: one test case per operation, plus one
# for the stateful phase (schemathesis's own "N failures" counts distinct failures instead).
if [ -f "$tmp/junit.xml" ]; then
  "$py" "$helper" summary "$tmp/junit.xml" || true
fi
if ! kill -0 "$server" 2>/dev/null; then
  echo "schemathesis: vectron dev died during the run" >&2
  server_died=1
  status=1
fi
exit "$status"
