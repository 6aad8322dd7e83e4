#!/usr/bin/env bash
# Tests the management console (console/) in a real browser against a real `vectron dev`:
# installs Debian's chromium if /usr/bin/chromium is missing (apt; Playwright downloads no
# browser), installs the console's pinned dependencies (npm ci), builds it (npm run build:
# console/dist, which the gateway serves at /console), and runs its Playwright suite (which
# starts the server with --console-dir and stops it itself). Ends with the line
# `console: N passed, M failed`. Exits non-zero on any failure.
#
# Environment:
#   VECTRON_BIN                the server binary [${CARGO_TARGET_DIR:-~/.cache/vectron/target}/debug/vectron]
#   VECTRON_CONSOLE_ARTIFACTS  screenshots (one per page), the server's logs, failure traces
#                              [a new temp dir, printed]
#   VECTRON_CONSOLE_TIMEOUT    hard limit in seconds on the whole run [900]
#   CHROMIUM                   the browser [/usr/bin/chromium]
# Extra arguments go to `playwright test` as they are (e.g. -g search, -x).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
console="$repo/console"
run_timeout="${VECTRON_CONSOLE_TIMEOUT:-900}"
started=$SECONDS

if [ -z "${VECTRON_CONSOLE_HARD_LIMIT:-}" ]; then
  # The whole run (install, build, suite) under one hard limit: run again inside `timeout`.
  rc=0
  VECTRON_CONSOLE_HARD_LIMIT=1 timeout --kill-after=30 "$run_timeout" bash "$here/console-test.sh" "$@" || rc=$?
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    echo "console: timed out after ${run_timeout}s" >&2
    echo "console: 0 passed, 1 failed"
  fi
  exit "$rc"
fi

fail() {
  echo "console: $*" >&2
  echo "console: 0 passed, 1 failed"
  exit 1
}

# 1. The browser: Debian's chromium (Playwright's own download is skipped).
chromium="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
  if [ "$chromium" != /usr/bin/chromium ] || ! command -v apt-get >/dev/null; then
    fail "no browser at $chromium (install Debian's chromium, or set CHROMIUM)"
  fi
  echo "console: installing chromium (apt)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  [ -x "$chromium" ] || fail "apt installed no $chromium"
fi
export CHROMIUM="$chromium"

# 2. The binary under test.
bin="${VECTRON_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/vectron/target}/debug/vectron}"
if [ ! -x "$bin" ]; then
  fail "no vectron binary at $bin (build it with cargo build -p vectron-server, or set VECTRON_BIN)"
fi
"$bin" dev --help 2>/dev/null | grep -q -- '--console-dir' ||
  fail "$bin does not serve the console (its 'dev --help' lists no --console-dir): rebuild it"
export VECTRON_BIN="$bin"

# 3. The console's pinned dependencies, and its build.
if ! command -v npm >/dev/null && command -v apt-get >/dev/null; then
  echo "console: installing nodejs and npm (apt)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs
  command -v npm >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm
fi
command -v npm >/dev/null || fail "npm is not installed (node >= 20.19 and npm are needed)"
node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' ||
  fail "node $(node --version) is too old: the console's build (vite) needs node >= 20.19"
cd "$console"
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
npm run build --silent

# 4. The suite. Its processes record their pids in the run directory; whatever a cut-short
# run left running is stopped here (only those pids, and only if they are still vectron).
tmp="$(mktemp -d "${TMPDIR:-/tmp}/vectron-console.XXXXXX")"
# The server's data: /dev/shm when it has 1 GiB free (fsyncs are slow on this kind of
# machine's disks), else the temp dir.
run_root="$tmp"
if [ -d /dev/shm ] && [ -w /dev/shm ] && [ "$(df -Pk /dev/shm | awk 'NR == 2 {print $4}')" -ge 1048576 ]; then
  run_root=/dev/shm
fi
VECTRON_CONSOLE_RUN_DIR="$(mktemp -d "$run_root/vectron-console-run.XXXXXX")"
export VECTRON_CONSOLE_RUN_DIR
export VECTRON_CONSOLE_STATE="$tmp/server.json"
export VECTRON_CONSOLE_REPORT="$tmp/report.json"
VECTRON_CONSOLE_ARTIFACTS="${VECTRON_CONSOLE_ARTIFACTS:-$(mktemp -d "${TMPDIR:-/tmp}/vectron-console-artifacts.XXXXXX")}"
export VECTRON_CONSOLE_ARTIFACTS
mkdir -p "$VECTRON_CONSOLE_RUN_DIR" "$VECTRON_CONSOLE_ARTIFACTS"
cleanup() {
  local f pid
  for f in "$VECTRON_CONSOLE_RUN_DIR"/*.pid; do
    [ -e "$f" ] || continue
    pid="$(cat "$f")"
    if [ -n "$pid" ] && [ "$( { tr '\0' '\n' <"/proc/$pid/cmdline"; } 2>/dev/null | head -1)" = "$bin" ]; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$VECTRON_CONSOLE_RUN_DIR" "$tmp"
}
trap cleanup EXIT
echo "console: artifacts (screenshots, server logs) in $VECTRON_CONSOLE_ARTIFACTS"

rc=0
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npx --no-install playwright test "$@" || rc=$?

read -r passed failed < <(node - "$VECTRON_CONSOLE_REPORT" <<'EOF'
const fs = require('node:fs');
let report;
try {
  report = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
} catch {
  console.log('0 1'); // no report: the suite did not get to run
  process.exit(0);
}
const s = report.stats ?? {};
const failed = (s.unexpected ?? 0) + (s.flaky ?? 0) + (report.errors?.length ? 1 : 0);
console.log(`${s.expected ?? 0} ${failed}`);
EOF
)
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
  failed=1 # failed outside any test (global setup, no tests found, a crash)
fi
echo "console: screenshots in $VECTRON_CONSOLE_ARTIFACTS/screenshots; took $((SECONDS - started)) s"
echo "console: $passed passed, $failed failed"
[ "$rc" -eq 0 ] && [ "$failed" -eq 0 ]
