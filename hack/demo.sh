#!/usr/bin/env bash
# `make demo`: a full local recovery drill on throwaway PostgreSQL servers.
#   1. start two PostgreSQL servers (source, and another server as drill target)
#   2. migrate and seed the source
#   3. drill: fresh backup into a file:// store, restore onto the other server,
#      parity, RPO/RTO against objectives, report
# Everything it starts is stopped at the end; the report stays in target/demo/.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/target/debug/artifortress-operator}
OUT=$ROOT/target/demo
SCALE=${DEMO_SCALE:-small}
say() { echo "demo: $*" >&2; }

[ -x "$BIN" ] || { say "build first: cargo build"; exit 2; }
STATE=$(mktemp -d "${TMPDIR:-/tmp}/artifortress-demo.XXXXXX")
trap '"$ROOT/hack/test-env.sh" stop "$STATE"' EXIT
rm -rf "$OUT" && mkdir -p "$OUT"

say "starting two throwaway PostgreSQL servers"
SOURCE_SERVER=$("$ROOT/hack/test-env.sh" postgres "$STATE")
TARGET_SERVER=$("$ROOT/hack/test-env.sh" postgres "$STATE")
SOURCE=${SOURCE_SERVER%/postgres}/artifortress
TARGET=${TARGET_SERVER%/postgres}/artifortress_drill
export ARTIFORTRESS_LOG_FORMAT=text

psql -q "$SOURCE_SERVER" -c 'CREATE DATABASE artifortress'
say "migrating and seeding the source (scale $SCALE)"
"$BIN" migrate --database "$SOURCE"
"$BIN" seed --database "$SOURCE" --scale "$SCALE"

say "running the recovery drill"
set +e
"$BIN" drill --source "$SOURCE" --target "$TARGET" --store "file://$OUT/store" \
  --rpo 15m --rto 30m --report "$OUT/drill-report.md" --json "$OUT/drill-result.json"
status=$?
set -e
say "report: $OUT/drill-report.md (JSON: $OUT/drill-result.json, backup: $OUT/store)"
exit $status
