#!/usr/bin/env bash
# Prints the directory holding a real Kubernetes v1.20.2 — kube-apiserver,
# kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubectl and a
# static `pause` (the pod sandbox's process) — and makes sure etcd is installed.
#
# These machines reach Debian's archive but no container registry or release
# download, so kind and envtest binaries cannot be fetched. Debian bookworm ships
# the complete Kubernetes 1.20.2 source (vendor/ included) as the source package
# of its kubectl; we build kube-apiserver from it with Debian's Go 1.19.
# The vendored modern-go/reflect2 1.0.1 crashes under Go >= 1.18 ("unexpected
# fault address" while iterating maps), so Debian's reflect2 1.0.2 replaces it.
# First build: about 15 minutes on 2 cores; the binaries are cached afterwards.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
OUT=$ARTIFORTRESS_CACHE/kubernetes-1.20.2
BINARIES="kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl"

command -v etcd >/dev/null 2>&1 || { log "installing etcd-server"; apt_install etcd-server; }

build() {
  [ -x "$OUT/pause" ] && return 0
  log "building Kubernetes v1.20.2 from Debian's source package (first use only)"
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
  apt_install golang-go rsync golang-github-modern-go-reflect2-dev make gcc libc6-dev
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
  local what
  what=$(for b in $BINARIES; do printf 'cmd/%s ' "$b"; done)
  GOPATH=$PWD/.go CGO_ENABLED=0 HOME=$ARTIFORTRESS_CACHE/home KUBE_BUILD_PLATFORMS=linux/amd64 \
    make WHAT="$what" >&2
  rm -rf "$OUT.tmp" && mkdir -p "$OUT.tmp"
  for b in $BINARIES; do cp "_output/bin/$b" "$OUT.tmp/"; done
  gcc -Os -static -DVERSION=v3.2-artifortress -o "$OUT.tmp/pause" build/pause/linux/pause.c
  strip "$OUT.tmp"/*
  rm -rf "$OUT" && mv "$OUT.tmp" "$OUT"
  # The source tree and its Go cache are ~3 GB; only the binaries are worth keeping.
  cd / && rm -rf "$src"
  log "built $OUT"
}
[ -x "$OUT/pause" ] || with_lock kubernetes build
echo "$OUT"
