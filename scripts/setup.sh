#!/usr/bin/env bash
# Installs the system packages Vectron's build and tests need, idempotently.
#
# - g++: the bundled RocksDB is C++ (and pip builds hnswlib from source)
# - protobuf-compiler, libprotobuf-dev: protoc and the well-known .proto files (tonic codegen)
# - libclang-dev, clang: bindgen for the bundled RocksDB (librocksdb-sys)
# - sccache: caches rustc and C++ objects across target dirs (the bundled RocksDB is ~20 min cold)
# - etcd-server: the auth store's backend in tests
# - iproute2: `ip netns` for the partition test's isolated hosts
# - python3-venv: the venvs below and scripts/schemathesis.sh's (schemathesis, for the tests)
# - python3 venv with hnswlib + numpy: the reference library the benchmark compares against
set -euo pipefail

apt_install() {
  local need=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
  done
  [ ${#need[@]} -gt 0 ] || return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
}

apt_install g++ protobuf-compiler libprotobuf-dev libclang-dev clang sccache etcd-server iproute2

# Python venvs: the tests' schemathesis (scripts/schemathesis.sh) and the benchmark's
# hnswlib each live in one of their own; Debian's own python3 needs these for venvs and
# for building hnswlib.
python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv python3-dev

# The Python reference (hnswlib) lives in its own venv so it never touches system Python.
if [ "${VECTRON_SETUP_PYTHON:-1}" = "1" ]; then
  venv="${VECTRON_PY_VENV:-$HOME/.cache/vectron/pyenv}"
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
  fi
  if ! "$venv/bin/python" -c 'import hnswlib, numpy' 2>/dev/null; then
    "$venv/bin/pip" install -q --disable-pip-version-check numpy hnswlib
  fi
fi
