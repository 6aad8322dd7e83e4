#!/usr/bin/env bash
# Installs the system packages Vectron's build and tests need, idempotently.
#
# - protobuf-compiler, libprotobuf-dev: protoc and the well-known .proto files (tonic codegen)
# - libclang-dev, clang: bindgen for the bundled RocksDB (librocksdb-sys)
# - sccache: caches rustc and C++ objects across target dirs (RocksDB is ~12 min cold)
# - etcd-server: the auth store's backend in tests
# - python3 venv with hnswlib + numpy: the reference library the benchmark compares against
set -euo pipefail

need=()
for pkg in protobuf-compiler libprotobuf-dev libclang-dev clang sccache etcd-server; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

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
