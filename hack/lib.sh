# Shared helpers for the harness scripts. Source it; do not execute it.
# Everything built or downloaded is cached outside the repository so that a
# second run on the same machine reuses it.
ARTIFORTRESS_CACHE=${ARTIFORTRESS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/artifortress-envtest}
mkdir -p "$ARTIFORTRESS_CACHE/bin"

log() { echo "[$(basename "$0")] $*" >&2; }

# apt-get as root or through sudo; `apt-get update` runs at most once per script.
APT_UPDATED=
apt_install() {
  local sudo=
  [ "$(id -u)" = 0 ] || sudo=sudo
  if [ -z "$APT_UPDATED" ]; then
    $sudo apt-get update -qq >&2 || true
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >&2
}

# Serialise concurrent installers of the same tool (e.g. two test runs at once).
with_lock() {
  local name=$1; shift
  (
    flock 9
    "$@"
  ) 9>"$ARTIFORTRESS_CACHE/.$name.lock"
}

# A TCP port nobody listens on right now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Runs a command (or a function of the calling shell) and says how long it
# took: on stderr, and as a line "NAME<TAB>SECONDS<TAB>STATUS" appended to
# $ARTIFORTRESS_TIMINGS when that is set (.ci/run prints them as a table).
timed() {
  local name=$1 start status=0
  shift
  start=$(date +%s.%N)
  "$@" || status=$?
  record_timing "$name" "$start" "$status"
  return $status
}

# record_timing NAME START STATUS: the line `timed` writes, for a step that
# started at START (date +%s.%N) and ends now.
record_timing() {
  local secs
  secs=$(awk -v s="$2" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
  echo "[timing] $1: ${secs}s" >&2
  if [ -n "${ARTIFORTRESS_TIMINGS:-}" ]; then
    printf '%s\t%s\t%s\n' "$1" "$secs" "$3" >> "$ARTIFORTRESS_TIMINGS"
  fi
}
