#!/usr/bin/env bash
# Runs the engine benchmark and the hnswlib Python package on the same generated data,
# then prints QPS-at-equal-recall and build-time ratios.
#
#   scripts/bench-compare.sh [vectron-bench engine flags…]
#   e.g. scripts/bench-compare.sh --n 100000 --dim 768 --filter-selectivity 0.01
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
bash "$here/setup.sh"
. "$here/env.sh"
cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p vectron-bench

data="$(mktemp -d)"
trap 'rm -rf "$data"' EXIT
out="$data/rows.jsonl"
"$CARGO_TARGET_DIR/release/vectron-bench" engine --json --save-dataset "$data" "$@" | tee "$out"

# hnswlib gets the same M / ef_construction / ef list / threads / k as vectron-bench.
args=("$@")
pick() { # pick FLAG DEFAULT
  local i
  for ((i = 0; i < ${#args[@]}; i++)); do
    if [ "${args[$i]}" = "$1" ]; then echo "${args[$((i + 1))]}"; return; fi
    case "${args[$i]}" in "$1="*) echo "${args[$i]#*=}"; return;; esac
  done
  echo "$2"
}
space=l2
case "$(pick --distance euclid)" in cosine) space=cosine;; dot) space=ip;; esac
venv="${VECTRON_PY_VENV:-$HOME/.cache/vectron/pyenv}"
"$venv/bin/python" "$here/hnswlib_bench.py" --dataset "$data" --space "$space" \
  --m "$(pick --m 16)" --ef-construction "$(pick --ef-construction 200)" \
  --ef "$(pick --ef 16,32,64,128)" --threads "$(pick --threads 2)" --k "$(pick --k 10)" \
  --repeat "$(pick --repeat 3)" $(for a in "$@"; do [ "$a" = --self-check ] && echo --self-check; done) | tee -a "$out"
echo
python3 "$here/compare.py" "$out"
