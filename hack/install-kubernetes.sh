#!/usr/bin/env bash
# Prints the path of a real kube-apiserver (Kubernetes v1.20.2) and makes sure
# etcd is installed.
#
# These machines reach Debian's archive but no container registry or release
# download, so kind and envtest binaries cannot be fetched. Debian bookworm ships
# the complete Kubernetes 1.20.2 source (vendor/ included) as the source package
# of its kubectl; we build kube-apiserver from it with Debian's Go 1.19.
# The vendored modern-go/reflect2 1.0.1 crashes under Go >= 1.18 ("unexpected
# fault address" while iterating maps), so Debian's reflect2 1.0.2 replaces it.
# First build: about 10 minutes on 2 cores; the binary is cached afterwards.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
OUT=$ARTIFORTRESS_CACHE/bin/kube-apiserver

command -v etcd >/dev/null 2>&1 || { log "installing etcd-server"; apt_install etcd-server; }

build() {
  [ -x "$OUT" ] && return 0
  log "building kube-apiserver v1.20.2 from Debian's source package (first use only)"
  if [ -z "$(apt-cache showsrc kubernetes 2>/dev/null)" ]; then
    # Add deb-src entries mirroring the binary archives this machine already uses.
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -e "$f" ] || continue
      case "$f" in *-artifortress-src.sources) continue ;; esac
      sed -e 's/^Types:.*/Types: deb-src/' "$f" \
        > "/etc/apt/sources.list.d/$(basename "$f" .sources)-artifortress-src.sources"
    done
    if [ -f /etc/apt/sources.list ]; then
      grep -E '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' \
        > /etc/apt/sources.list.d/artifortress-src.list || true
    fi
    APT_UPDATED=
  fi
  apt_install golang-go rsync golang-github-modern-go-reflect2-dev make
  local src=$ARTIFORTRESS_CACHE/src
  mkdir -p "$src"
  cd "$src"
  if [ ! -d kubernetes-1.20.2 ]; then
    apt-get source --download-only kubernetes >&2
    tar xzf kubernetes_*.orig.tar.gz
  fi
  cd kubernetes-1.20.2
  local r=vendor/github.com/modern-go/reflect2
  find "$r" -maxdepth 1 \( -name '*.go' -o -name '*.s' \) -delete
  cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.go \
     /usr/share/gocode/src/github.com/modern-go/reflect2/*.s "$r"/
  mkdir -p .go/src/k8s.io
  [ -L .go/src/k8s.io/kubernetes ] || ln -s ../../.. .go/src/k8s.io/kubernetes
  GOPATH=$PWD/.go CGO_ENABLED=0 HOME=$ARTIFORTRESS_CACHE/home KUBE_BUILD_PLATFORMS=linux/amd64 \
    make WHAT=cmd/kube-apiserver >&2
  cp _output/bin/kube-apiserver "$OUT.tmp" && mv "$OUT.tmp" "$OUT"
  # The source tree is ~1 GB; only the binary is worth keeping.
  cd / && rm -rf "$src"
  log "built $OUT"
}
[ -x "$OUT" ] || with_lock kube-apiserver build
echo "$OUT"
