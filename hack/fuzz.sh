#!/usr/bin/env bash
# Fuzzes every parser of untrusted bytes (fuzz/fuzz_targets) with libFuzzer via
# cargo-fuzz on the stable toolchain (`--sanitizer none`: Rust's own checks with overflow checks on
# catch what matters here — panics, overflows, unbounded allocation, hangs).
#
#   hack/fuzz.sh [SECONDS]   each target for SECONDS (default 15; make test 10, make bench 300)
#
# Seeds are real files from formats/tests (pg_dump archives, manifests, verdicts,
# a tokens file) plus every past failure in formats/tests/fuzz-regressions; what a
# run learns is kept in a corpus under the cache, so later runs go deeper.
# A failure stops with the input's path: fix the parser, then copy the input to
# formats/tests/fuzz-regressions/<target>/ so that `make test` keeps checking it.
set -euo pipefail
HACK=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HACK")
. "$HACK/lib.sh"
SECONDS_EACH=${1:-15}
CARGO_FUZZ=$(timed "install: cargo-fuzz" "$HACK/install-cargo-tool.sh" cargo-fuzz 0.13.2)
export PATH=$(dirname "$CARGO_FUZZ"):$PATH
# Instrumented builds live in the cache: a clean checkout reuses them.
export CARGO_TARGET_DIR=$ARTIFORTRESS_CACHE/fuzz-target
FORMATS=$ROOT/formats/tests
WORK=$(mktemp -d "${TMPDIR:-/tmp}/artifortress-fuzz.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

seeds() { # target -> files
  case $1 in
    archive) ls "$FORMATS"/data/*.dump ;;
    manifest) ls "$FORMATS"/golden/store-v1/*/manifest.json ;;
    verdict) ls "$FORMATS"/golden/verdict-*.json "$FORMATS"/golden/restore-record-*.json ;;
    tokens) printf '%s\n' "$ROOT/fuzz/seeds/tokens" ;;
    physical) ls "$FORMATS"/golden/base-manifest-*.json ;;
  esac
  find "$FORMATS/fuzz-regressions/$1" -type f ! -name .gitkeep
}

cd "$ROOT/fuzz"
log "building the fuzz targets (instrumented, cached in $CARGO_TARGET_DIR)"
timed "build: fuzz targets" cargo fuzz build --sanitizer none -O --debug-assertions >&2
for target in $(cargo fuzz list); do
  corpus=$ARTIFORTRESS_CACHE/fuzz-corpus/$target
  mkdir -p "$corpus" "$WORK/$target/seeds" "$WORK/$target/artifacts"
  seeds "$target" | while read -r f; do cp "$f" "$WORK/$target/seeds/"; done
  log "fuzzing $target for ${SECONDS_EACH}s"
  # -rss_limit_mb bounds memory (an unbounded allocation is a failure), -timeout
  # bounds one input (a hang is a failure).
  if ! cargo fuzz run --sanitizer none -O --debug-assertions "$target" "$corpus" "$WORK/$target/seeds" -- \
      -max_total_time="$SECONDS_EACH" -rss_limit_mb=512 -timeout=10 -print_final_stats=1 \
      -artifact_prefix="$WORK/$target/artifacts/" >"$WORK/$target/log" 2>&1; then
    tail -n 40 "$WORK/$target/log" >&2
    mkdir -p "$ROOT/target/fuzz-failures/$target"
    cp "$WORK/$target/artifacts/"* "$ROOT/target/fuzz-failures/$target/" 2>/dev/null || true
    log "FAILED: $target; the input is in target/fuzz-failures/$target/ — fix it, then add it to formats/tests/fuzz-regressions/$target/"
    exit 1
  fi
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$WORK/$target/log" | sed "s/^/[$target] /" >&2
done
log "every target ran ${SECONDS_EACH}s without a failure"
