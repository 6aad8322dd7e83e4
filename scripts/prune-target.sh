#!/usr/bin/env bash
# Keeps the persistent build dir from filling the disk: incremental compilation leaves a
# directory per crate and build configuration behind on every change, and a full disk
# fails tests in ways that look like bugs (every test process dying at once). When less
# than VECTRON_MIN_FREE_GIB (20) is free where the target dir lives, removes all but the
# two newest incremental directories of each crate. Never touches deps/ or build/, so
# nothing has to be rebuilt from scratch.
set -euo pipefail
target="${CARGO_TARGET_DIR:-$HOME/.cache/vectron/target}"
min_free_gib="${VECTRON_MIN_FREE_GIB:-20}"
[ -d "$target" ] || exit 0
free_gib=$(( $(df -Pk "$target" | awk 'NR == 2 {print $4}') / 1048576 ))
[ "$free_gib" -lt "$min_free_gib" ] || exit 0
for incremental in "$target"/*/incremental; do
  [ -d "$incremental" ] || continue
  # Directories are <crate>-<hash>; newest first within each crate, drop from the third on.
  ls -1t "$incremental" | awk '{ crate = $0; sub(/-[^-]+$/, "", crate); if (++seen[crate] > 2) print }' |
    while read -r stale; do rm -rf "${incremental:?}/$stale"; done
done
echo "prune-target: $free_gib GiB was free; now $(( $(df -Pk "$target" | awk 'NR == 2 {print $4}') / 1048576 )) GiB"
