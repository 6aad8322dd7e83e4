# Sourced by the entry scripts: where builds go and how they are cached.
# A persistent target dir outside the checkout lets repeated runs (and CI runs from
# fresh clones) reuse builds; sccache keeps the bundled RocksDB's C++ objects too.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vectron/target}"
# Use sccache only if its server answers (it starts on demand); a broken cache must not
# break the build.
if [ -z "${RUSTC_WRAPPER:-}" ] && command -v sccache >/dev/null 2>&1 && sccache --show-stats >/dev/null 2>&1; then
  export RUSTC_WRAPPER=sccache
fi
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
