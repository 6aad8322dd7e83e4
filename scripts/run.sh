#!/usr/bin/env bash
# Starts Vectron: `vectron dev`, an all-in-one cluster in one process (placement driver,
# one worker, auth, reranker, gateway) with data under ./data, HTTP on 127.0.0.1:8080 and gRPC on
# 127.0.0.1:8081. Extra flags go to `vectron dev` (e.g. --data-dir DIR).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$(dirname "$here")"
VECTRON_SETUP_PYTHON=0 bash "$here/setup.sh"
. "$here/env.sh"
cargo build --release --locked -p vectron-server
exec "$CARGO_TARGET_DIR/release/vectron" dev "$@"
