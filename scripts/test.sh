#!/usr/bin/env bash
# Runs Vectron's whole test suite (installing what it needs first), and clippy.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$(dirname "$here")"
VECTRON_SETUP_PYTHON=0 bash "$here/setup.sh"
. "$here/env.sh"
bash "$here/prune-target.sh"
cargo clippy --workspace --all-targets --locked -- -D warnings

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked "$@" 2>&1 | tee "$log" || status=$?
# The HTTP API against its own OpenAPI document (schemathesis, positive and negative
# data, every check), on the `vectron dev` binary the tests just built.
bash "$here/schemathesis.sh" 2>&1 | tee -a "$log" || status=$?
# The Python SDK against a real `vectron dev` (pytest, its own venv).
VECTRON_BIN="${CARGO_TARGET_DIR:-$HOME/.cache/vectron/target}/debug/vectron" \
  bash "$here/python-sdk-test.sh" 2>&1 | tee -a "$log" || status=$?
# The management console in Debian's Chromium (Playwright) against a real `vectron dev`.
VECTRON_BIN="${CARGO_TARGET_DIR:-$HOME/.cache/vectron/target}/debug/vectron" \
  bash "$here/console-test.sh" 2>&1 | tee -a "$log" || status=$?
# The Kubernetes manifests: rendered, validated against the Kubernetes schemas, checkov,
# yamllint (deploy/k8s).
bash "$here/k8s-check.sh" 2>&1 | tee -a "$log" || status=$?
# One closing line for the whole run (cargo's last line is some crate's doc-tests).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     /^(schemathesis|k8s-check|python-sdk|console): [0-9]+ passed, [0-9]+ failed$/ { p += $2; f += $4 }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
