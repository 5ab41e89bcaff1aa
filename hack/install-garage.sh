#!/usr/bin/env bash
# Prints the path of a Garage S3 server binary, building it with cargo on first
# use (about 10-15 minutes on 2 cores) and caching it.
# Garage is used because it implements every S3 call the store needs, multipart
# listing included; lighter fakes do not (see docs/testing.md).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
GARAGE_VERSION=2.5.0
OUT=$ARTIFORTRESS_CACHE/garage-$GARAGE_VERSION/bin/garage

build() {
  [ -x "$OUT" ] && return 0
  log "building garage $GARAGE_VERSION into $ARTIFORTRESS_CACHE (first use only)"
  # Garage links sqlite and friends from bundled sources; only a C compiler is needed.
  CARGO_TARGET_DIR=$ARTIFORTRESS_CACHE/garage-build \
    cargo install --locked --root "$ARTIFORTRESS_CACHE/garage-$GARAGE_VERSION" \
    garage --version "$GARAGE_VERSION" >&2
  rm -rf "$ARTIFORTRESS_CACHE/garage-build"
}
[ -x "$OUT" ] || with_lock garage build
echo "$OUT"
