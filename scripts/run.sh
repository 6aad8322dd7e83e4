#!/usr/bin/env bash
# Starts Vectron: `vectron dev`, an all-in-one cluster in one process (placement driver,
# one worker, auth, reranker, gateway) with data under ./data, HTTP on 127.0.0.1:8080 and gRPC on
# 127.0.0.1:8081, and the management console at http://127.0.0.1:8080/console/ (built
# with npm when npm is on the machine). Extra flags go to `vectron dev` (e.g. --data-dir DIR).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$(dirname "$here")"
VECTRON_SETUP_PYTHON=0 bash "$here/setup.sh"
. "$here/env.sh"
cargo build --release --locked -p vectron-server
console=()
if command -v npm >/dev/null &&
  (cd console && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error && npm run build --silent); then
  console=(--console-dir "$PWD/console/dist")
else
  echo "run.sh: the console was not built (npm missing or the build failed); starting without it" >&2
fi
exec "$CARGO_TARGET_DIR/release/vectron" dev "${console[@]}" "$@"
