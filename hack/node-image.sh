#!/usr/bin/env bash
# Builds the images the harness's node runs, without any registry, and writes
# them as docker archives for `ctr images import`:
#
#   hack/node-image.sh OUT_DIR BINARY   -> OUT_DIR/pause.tar, OUT_DIR/operator.tar;
#                                          prints the operator image's name
#
#   - the pod sandbox `k8s.gcr.io/pause:3.2`: the static pause built with
#     Kubernetes (hack/install-kubernetes.sh), user 65535;
#   - the operator image from the repository's own Dockerfile, built by buildah
#     (Debian) with BASE_IMAGE = a Debian bookworm image made here from a
#     debootstrap root file system (cached), PG_CLIENTS=debian and
#     BINARY=prebuilt (BINARY, stripped, is the whole build context).
# buildah keeps its layers (/var/lib/containers), so only the binary's layer is
# rebuilt on a later run.
set -euo pipefail
HACK=$(cd "$(dirname "$0")" && pwd)
. "$HACK/lib.sh"
OUT=${1:?output directory}
BINARY=${2:?operator binary}
REPO=$(cd "$HACK/.." && pwd)
BASE=localhost/artifortress-base:bookworm
IMAGE=localhost/artifortress-operator:test
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

for tool in buildah debootstrap; do
  command -v $tool >/dev/null || apt_install "$tool"
done
mkdir -p "$OUT"

base_image() {
  buildah inspect --type image "$BASE" >/dev/null 2>&1 && return 0
  local rootfs=$ARTIFORTRESS_CACHE/debian-bookworm-rootfs.tar
  if [ ! -f "$rootfs" ]; then
    log "making a Debian bookworm root file system (debootstrap, first use only)"
    local dir
    dir=$(mktemp -d)
    debootstrap --variant=minbase bookworm "$dir" "$MIRROR" >&2
    cat > "$dir/etc/apt/sources.list" <<LIST
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb ${MIRROR%/debian}/debian-security bookworm-security main
LIST
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
    tar -C "$dir" -cf "$rootfs.tmp" . && mv "$rootfs.tmp" "$rootfs"
    rm -rf "$dir"
  fi
  local c
  c=$(buildah from scratch)
  buildah add "$c" "$rootfs" / >/dev/null
  buildah config --cmd /bin/bash "$c"
  buildah commit --rm "$c" "$BASE" >/dev/null
}

pause_image() {
  local c
  c=$(buildah from scratch)
  buildah copy "$c" "$("$HACK/install-kubernetes.sh")/pause" /pause >/dev/null
  buildah config --entrypoint '["/pause"]' --user 65535:65535 "$c"
  buildah commit --rm "$c" k8s.gcr.io/pause:3.2 >/dev/null
  rm -f "$OUT/pause.tar"
  buildah push k8s.gcr.io/pause:3.2 "docker-archive:$OUT/pause.tar:k8s.gcr.io/pause:3.2" >/dev/null
}

operator_image() {
  local context
  context=$(mktemp -d)
  strip -o "$context/artifortress-operator" "$BINARY"
  buildah bud --layers --pull-never --network host -f "$REPO/Dockerfile" \
    --build-arg BASE_IMAGE="$BASE" --build-arg PG_CLIENTS=debian --build-arg BINARY=prebuilt \
    -t "$IMAGE" "$context" >&2
  rm -rf "$context"
  rm -f "$OUT/operator.tar"
  buildah push "$IMAGE" "docker-archive:$OUT/operator.tar:$IMAGE" >/dev/null
}

with_lock buildah base_image
with_lock buildah pause_image
with_lock buildah operator_image
echo "$IMAGE"
