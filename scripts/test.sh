#!/usr/bin/env bash
# Runs Vectron's whole test suite (installing what it needs first), and clippy.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$(dirname "$here")"
VECTRON_SETUP_PYTHON=0 bash "$here/setup.sh"
. "$here/env.sh"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked "$@"
