#!/usr/bin/env bash
# Static checks of the Kubernetes manifests and the image (deploy/), run from anywhere;
# works on the repository root. No cluster and no container engine needed.
#
# For each overlay (deploy/k8s/overlays/*):
#   render    kubectl kustomize (and no Secret may come out of it: secrets are created by
#             hand, see deploy/README.md)
#   validate  kubernetes-validate --strict against the Kubernetes versions below (every
#             object must have a schema: no CRDs in the overlays)
#   checkov   checkov --framework kubernetes with deploy/k8s/.checkov.yaml
# Then the optional ServiceMonitor component on top of prod (render, validate: the
# ServiceMonitor is a CRD without a schema there, so it alone is left unvalidated and
# said so), checkov on deploy/Dockerfile, and yamllint -s over deploy/.
#
# Tools: a venv at ~/.cache/vectron/k8s-venv (VECTRON_K8S_VENV) with the pinned
# checkov, kubernetes-validate and yamllint, created on first use; kubectl with
# kustomize v5 (or a standalone kustomize v5). Ends with one line
# `k8s-check: N passed, M failed` (N, M: check steps) and exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${VECTRON_K8S_VENV:-$HOME/.cache/vectron/k8s-venv}"
pins=(checkov==3.3.30 kubernetes-validate==1.37.0 yamllint==1.38.0)
k8s_versions=(${VECTRON_K8S_VERSIONS:-1.33.0 1.37.0})
checkov_config=deploy/k8s/.checkov.yaml

passed=0
failed=0
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# ---- tools -------------------------------------------------------------------------

venv_ready() {
  [ -x "$venv/bin/python" ] || return 1
  local frozen pin
  frozen="$("$venv/bin/python" -m pip freeze --disable-pip-version-check 2>/dev/null)" || return 1
  for pin in "${pins[@]}"; do
    grep -qix "$pin" <<<"$frozen" || return 1
  done
}

ensure_venv() {
  venv_ready && return 0
  if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    # Debian's python3 needs python3-venv for venvs (as scripts/setup.sh installs).
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "k8s-check: installing python3-venv (apt)"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-venv
  fi
  echo "k8s-check: creating $venv with ${pins[*]}"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "${pins[@]}"
  venv_ready || { echo "k8s-check: the venv at $venv does not hold ${pins[*]}" >&2; return 1; }
}

# Sets render=(command...) to a kustomize v5 that builds a directory to stdout, or
# explains what to install.
find_renderer() {
  local v
  if command -v kubectl >/dev/null 2>&1; then
    v="$(kubectl version --client 2>/dev/null | sed -n 's/^Kustomize Version: v\{0,1\}\([0-9]*\).*/\1/p')"
    if [ -n "$v" ] && [ "$v" -ge 5 ]; then
      render=(kubectl kustomize)
      return 0
    fi
  fi
  if command -v kustomize >/dev/null 2>&1; then
    v="$(kustomize version 2>/dev/null | sed -n 's/^v\{0,1\}\([0-9]*\)\..*/\1/p; s/.*kustomize\/v\([0-9]*\)\..*/\1/p' | head -1)"
    if [ -n "$v" ] && [ "$v" -ge 5 ]; then
      render=(kustomize build)
      return 0
    fi
  fi
  cat >&2 <<'EOF'
k8s-check: no kubectl with kustomize v5 (or kustomize v5) on PATH; the manifests cannot be rendered.
  Debian's own `kubernetes-client` package is kubectl 1.20 with kustomize v2, too old
  (no `labels`, components or inline patches), and PyPI has no kubectl. Install kubectl
  1.27 or later (the Kubernetes project's apt repository pkgs.k8s.io, or the Google
  Cloud SDK repository's `kubectl` package, which this project's machines have), or a
  kustomize v5 release binary, then run this again.
EOF
  return 1
}

# ---- steps -------------------------------------------------------------------------

# step NAME COMMAND...: runs COMMAND with its output kept; prints it only on failure.
step() {
  local name="$1"; shift
  local log="$work/step.log"
  if "$@" >"$log" 2>&1; then
    passed=$((passed + 1))
    printf 'ok    %s\n' "$name"
    sed -n 's/^\(note: .*\)/      \1/p' "$log"
  else
    failed=$((failed + 1))
    printf 'FAIL  %s\n' "$name"
    sed 's/^/      /' "$log" | tail -n 60
  fi
}

skip_failed() { # a step that cannot run because an earlier one failed
  failed=$((failed + 1))
  printf 'FAIL  %s (not run: %s)\n' "$1" "$2"
}

# render_to DIR OUT: renders DIR; refuses output holding a Secret. (Steps run in an
# `if`, where set -e is off: every command checks its own status.)
render_to() {
  "${render[@]}" "$1" >"$2" || { rm -f "$2"; return 1; }
  if grep -q '^kind: Secret$' "$2"; then
    echo "the rendering of $1 holds a Secret: secrets must be created by hand (deploy/README.md)"
    rm -f "$2"
    return 1
  fi
  echo "note: $(grep -c '^kind: ' "$2") objects"
}

# validate FILE [ALLOWED_UNVALIDATED_KIND]: every object against every version; an
# object without a schema fails unless it is of the one kind allowed.
validate() {
  local file="$1" allowed="${2:-}" v out
  for v in "${k8s_versions[@]}"; do
    out="$("$venv/bin/kubernetes-validate" --strict --quiet -k "$v" "$file" 2>&1)" || { echo "$out"; return 1; }
    if [ -n "$out" ]; then
      echo "$out"
      if grep -v "Couldn't find schema for kind ${allowed:-.none.} " <<<"$out" | grep -q .; then
        return 1
      fi
      echo "note: $allowed not schema-validated against $v (a CRD: not in the Kubernetes schemas)"
    fi
  done
  echo "note: ${allowed:+every other object }valid (strict) against Kubernetes ${k8s_versions[*]}"
}

checkov_run() { # FRAMEWORK FILE
  "$venv/bin/checkov" --config-file "$checkov_config" --framework "$1" -f "$2" >"$work/checkov.out" 2>&1 || {
    cat "$work/checkov.out"
    return 1
  }
  echo "note: $(grep -m1 -o 'Passed checks: [0-9]*, Failed checks: [0-9]*' "$work/checkov.out")"
}

# ---- run ---------------------------------------------------------------------------

if ! ensure_venv; then
  echo "k8s-check: cannot set up the Python tools (see above)"
  echo "k8s-check: 0 passed, 1 failed"
  exit 1
fi

have_renderer=1
find_renderer || have_renderer=0

for dir in deploy/k8s/overlays/*/; do
  o="$(basename "$dir")"
  out="$work/$o.yaml"
  if [ "$have_renderer" = 1 ]; then
    step "render $o" render_to "$dir" "$out"
  else
    skip_failed "render $o" "no kustomize v5"
  fi
  if [ -s "$out" ]; then
    step "validate $o" validate "$out"
    step "checkov $o" checkov_run kubernetes "$out"
  else
    skip_failed "validate $o" "not rendered"
    skip_failed "checkov $o" "not rendered"
  fi
done

# The optional component, on top of prod, from a kustomization outside the repository
# (kustomize wants relative paths).
sm="$work/prod-servicemonitor"
mkdir -p "$sm"
rel="$(realpath --relative-to="$sm" deploy/k8s)"
cat >"$sm/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: vectron
resources:
  - $rel/overlays/prod
components:
  - $rel/components/servicemonitor
EOF
if [ "$have_renderer" = 1 ]; then
  step "render prod+servicemonitor" render_to "$sm" "$work/prod-servicemonitor.yaml"
else
  skip_failed "render prod+servicemonitor" "no kustomize v5"
fi
if [ -s "$work/prod-servicemonitor.yaml" ]; then
  step "validate prod+servicemonitor" validate "$work/prod-servicemonitor.yaml" ServiceMonitor
else
  skip_failed "validate prod+servicemonitor" "not rendered"
fi

step "checkov Dockerfile" checkov_run dockerfile deploy/Dockerfile
step "yamllint deploy/" "$venv/bin/yamllint" -s -c deploy/k8s/.yamllint deploy/

echo "k8s-check: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
