#!/usr/bin/env bash
# Vectron's main job for now: the engine benchmark in quick mode, side by side with the
# hnswlib Python package on the same data. Extra flags go to `vectron-bench engine`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
exec bash "$here/bench-compare.sh" --quick "$@"
