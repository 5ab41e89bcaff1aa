#!/usr/bin/env bash
# Prints the path of a cargo-installed tool, building it on first use and
# caching it (like Garage): hack/install-cargo-tool.sh cargo-deny 0.20.2
# Extra arguments go to `cargo install` (e.g. --no-default-features).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
NAME=${1:?crate}; VERSION=${2:?version}; shift 2
ROOT=$ARTIFORTRESS_CACHE/$NAME-$VERSION
OUT=$ROOT/bin/$NAME

build() {
  [ -x "$OUT" ] && return 0
  log "building $NAME $VERSION into $ARTIFORTRESS_CACHE (first use only)"
  CARGO_TARGET_DIR=$ARTIFORTRESS_CACHE/$NAME-build \
    cargo install --locked --root "$ROOT" "$NAME" --version "$VERSION" "$@" >&2
  rm -rf "$ARTIFORTRESS_CACHE/$NAME-build"
}
[ -x "$OUT" ] || with_lock "$NAME" build "$@"
echo "$OUT"
