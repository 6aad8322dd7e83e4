#!/usr/bin/env bash
# Tests the Python SDK (sdk/python) against a real `vectron dev`: installs the SDK with its
# pinned test dependencies into its own venv (the stubs are generated from proto/ by the
# package's build), runs its pytest suite (which starts and stops the server itself), and
# ends with the line `python-sdk: N passed, M failed`. Exits non-zero on any failure.
#
# Environment:
#   VECTRON_BIN                the server binary [${CARGO_TARGET_DIR:-~/.cache/vectron/target}/debug/vectron]
#   VECTRON_PYTHON_SDK_VENV    the venv [~/.cache/vectron/python-sdk-venv]
#   VECTRON_PY_DATA_ROOT       where the test server keeps its data [/dev/shm when it has
#                              1 GiB free, else pytest's tmp dir]
#   VECTRON_PY_BENCH_N         points of the throughput test [100000]
#   VECTRON_PYTHON_SDK_TIMEOUT hard limit in seconds on the pytest run [1800]
# Extra arguments go to pytest as they are (e.g. -k search, -x).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
sdk="$repo/sdk/python"
venv="${VECTRON_PYTHON_SDK_VENV:-$HOME/.cache/vectron/python-sdk-venv}"
run_timeout="${VECTRON_PYTHON_SDK_TIMEOUT:-1800}"

# 1. A venv of its own (Debian's python3 needs python3-venv for that; installed only if missing).
if [ ! -x "$venv/bin/python" ]; then
  if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    if command -v dpkg >/dev/null && ! dpkg -s python3-venv >/dev/null 2>&1; then
      echo "python-sdk: installing python3-venv (apt)"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
    fi
  fi
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 9))' || {
    echo "python-sdk: needs Python >= 3.9, python3 is $(python3 --version)" >&2
    exit 1
  }
  echo "python-sdk: creating $venv"
  python3 -m venv "$venv"
fi
py="$venv/bin/python"

# 2. The SDK, built from this checkout (stubs generated from proto/ at build time), with
# the test extra's pinned pytest, numpy and tqdm. Reinstalled every run: the protos or
# the code may have changed; a stale build/ could carry deleted modules into the wheel.
rm -rf "$sdk/build"
"$py" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$sdk"
"$py" -m pip install -q --disable-pip-version-check "$sdk[test]"
rm -rf "$sdk/build" "$sdk/src/vectron_client.egg-info"

# 3. The binary under test.
bin="${VECTRON_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/vectron/target}/debug/vectron}"
if [ ! -x "$bin" ]; then
  echo "python-sdk: no vectron binary at $bin (build it with cargo build -p vectron-server, or set VECTRON_BIN)" >&2
  echo "python-sdk: 0 passed, 1 failed"
  exit 1
fi
if [ -z "${VECTRON_PY_DATA_ROOT:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ] &&
  [ "$(df -Pk /dev/shm | awk 'NR == 2 {print $4}')" -ge 1048576 ]; then
  export VECTRON_PY_DATA_ROOT=/dev/shm
fi

# 4. The suite; the counts come from its JUnit report.
tmp="$(mktemp -d "${TMPDIR:-/tmp}/vectron-python-sdk.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
rc=0
(cd "$sdk" && VECTRON_BIN="$bin" timeout --kill-after=30 "$run_timeout" \
  "$py" -m pytest -ra -p no:cacheprovider --junitxml="$tmp/junit.xml" "$@") || rc=$?

read -r passed failed < <("$py" - "$tmp/junit.xml" <<'EOF'
import sys
import xml.etree.ElementTree as ET

try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError):
    print(0, 1)  # no report: pytest did not get to run the tests
    sys.exit()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
n = lambda key: sum(int(s.get(key, 0)) for s in suites)
failed = n("failures") + n("errors")
print(n("tests") - failed - n("skipped"), failed)
EOF
)
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
  failed=1  # pytest failed outside any test (collection, timeout, no tests run)
fi
echo "python-sdk: $passed passed, $failed failed"
[ "$rc" -eq 0 ] && [ "$failed" -eq 0 ]
