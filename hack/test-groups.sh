#!/usr/bin/env bash
# hack/test-groups.sh CARGO-TEST-ARGS...: `cargo test` with its output passed
# through unchanged, and one timing per test binary (lib, each tests/*.rs, doc
# tests), recorded as `timed` does. The exit status is cargo's.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

group="" group_start="" group_failed=0
close_group() {
  [ -n "$group" ] || return 0
  record_timing "test: $group" "$group_start" "$group_failed"
}

run() {
  group="(build check)" group_start=$(date +%s.%N) group_failed=0
  while IFS= read -r line; do
    printf '%s\n' "$line"
    case $line in
      *"     Running "* | *"   Doc-tests "*)
        close_group
        # "Running unittests src/lib.rs (target/debug/deps/crate-hash)" ->
        # "src/lib.rs (crate)"; "Running tests/x.rs (...)" -> "tests/x.rs (x)".
        group=$(sed -E -e 's/^ *Doc-tests (.*)/doc tests of \1/' \
          -e 's/^ *Running (unittests )?([^ ]+) \(.*\/([^/]+)-[0-9a-f]+\)$/\2 (\3)/' <<< "$line")
        group_start=$(date +%s.%N) group_failed=0
        ;;
      "test result: FAILED"*) group_failed=1 ;;
    esac
  done
  close_group
}

"${CARGO:-cargo}" test "$@" 2>&1 | run
