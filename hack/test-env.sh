#!/usr/bin/env bash
# Starts (and stops) the real services the tests talk to:
#   - two throwaway PostgreSQL 15 servers, "source" and "target", and one server
#     of each other supported major (14, 16, 17, 18; hack/install-postgres-majors.sh);
#   - a Garage S3 server (HTTP, path-style, region us-east-1);
#   - a Ceph object gateway (hack/rgw.sh) for bucket versioning and Object Lock;
#   - etcd + kube-apiserver (no scheduler or kubelet: tests play the job controller;
#     generic ephemeral volumes, alpha in v1.20, enabled as they are GA since v1.23);
#   - a second, complete single-node cluster whose pods run the operator image
#     built from the repo's Dockerfile (hack/node.sh; needs root). PostgreSQL and
#     Garage also listen on its bridge address, where pods reach them;
#   - the chart checkers helm, kubernetes-validate and checkov (AF_TEST_CHART_TOOLS),
#     and Debian's promtool for the alert rules (AF_TEST_PROMTOOL).
# Everything runs on free loopback ports inside one state directory, installing
# what is missing first (cached, see install-*.sh).
#
#   hack/test-env.sh run -- CMD...   start, run CMD with the env, always stop; exit with CMD's status
#   hack/test-env.sh start DIR       start into DIR and write DIR/env (sourceable)
#   hack/test-env.sh stop DIR        stop everything started into DIR and remove it
#
# Variables handed to the tests (see docs/testing.md):
#   AF_TEST_PG_SOURCE_URL, AF_TEST_PG_TARGET_URL   superuser URLs (database "postgres")
#   AF_TEST_PG_BINDIR, AF_TEST_PG_USER             to start extra servers for fault tests
#   AF_TEST_PG14_URL … AF_TEST_PG18_URL            superuser URL of a server of that major (15: the source)
#   ARTIFORTRESS_PG_BINDIR                         the client tools of 15, 16 and 18, for the operator
#   AF_TEST_S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION
#   AF_TEST_RGW_ENDPOINT, AF_TEST_RGW_ACCESS_KEY_ID, AF_TEST_RGW_SECRET_ACCESS_KEY   the Ceph gateway
#   KUBECONFIG (cluster admin), AF_TEST_KUBE_SERVER, AF_TEST_KUBE_TOKEN_{ADMIN,ALICE,BOB}
#   AF_TEST_NODE_KUBECONFIG, AF_TEST_NODE_KUBECTL, AF_TEST_NODE_IP, AF_TEST_NODE_IMAGE   the node cluster
#   AF_TEST_ENV_DIR                                the state directory
set -euo pipefail
HACK=$(cd "$(dirname "$0")" && pwd)
. "$HACK/lib.sh"

pg_bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
  if [ -z "$d" ] || [ ! -x "$d/initdb" ]; then
    log "installing PostgreSQL"
    apt_install postgresql >/dev/null
    d=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
  fi
  echo "$d"
}

# PostgreSQL refuses to run as root; as root we use the unprivileged `postgres` user.
pg_user() {
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin postgres
    echo postgres
  else
    id -un
  fi
}

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u "$PG_USER" -- "$@"; else "$@"; fi
}

start_postgres() { # name [bindir] -> prints URL
  local name=$1 dir=$STATE/$1 bindir=${2:-$PG_BINDIR} port password
  port=$(free_port)
  password=$(openssl rand -hex 12)
  mkdir -p "$dir"
  echo "$password" > "$dir/pwfile"
  [ "$(id -u)" = 0 ] && chown -R "$PG_USER" "$dir"
  as_pg "$bindir/initdb" -D "$dir/data" -U postgres --pwfile="$dir/pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; return 1; }
  # Durability settings off: these servers are thrown away after the run.
  echo "$bindir" > "$dir/bindir"
  # Pods of the node cluster connect through its bridge.
  # (replication too: the WAL archiver and base backups run as pods).
  [ -n "${NODE_IP:-}" ] && printf 'host all all %s scram-sha-256\nhost replication all %s scram-sha-256\n' \
    "${NODE_IP%.*}.0/24" "${NODE_IP%.*}.0/24" >> "$dir/data/pg_hba.conf"
  as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start -o \
    "-p $port -c listen_addresses=127.0.0.1${NODE_IP:+,$NODE_IP} -c unix_socket_directories=$dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 ${PG_EXTRA_OPTS:-}" \
    >/dev/null || { cat "$dir/server.log" >&2; return 1; }
  echo "postgres://postgres:$password@127.0.0.1:$port/postgres"
}

# A streaming standby of the server in $1 (a pg-* dir), in a new pg-* dir beside it: prints its URL.
start_standby() {
  local primary=$1 dir bindir password pport port
  dir=$(dirname "$primary")/pg-$(basename "$(mktemp -u XXXXXX)")
  bindir=$(cat "$primary/bindir"); password=$(cat "$primary/pwfile")
  pport=$(sed -n 4p "$primary/data/postmaster.pid"); port=$(free_port)
  mkdir -p "$dir"; cp "$primary/pwfile" "$primary/bindir" "$dir/"; echo "$primary" > "$dir/standby-of"
  [ "$(id -u)" = 0 ] && chown -R "$PG_USER" "$dir"
  as_pg "$bindir/pg_basebackup" -D "$dir/data" -R -X stream --checkpoint=fast \
    -d "host=127.0.0.1 port=$pport user=postgres password=$password" >"$dir/basebackup.log" 2>&1 \
    || { cat "$dir/basebackup.log" >&2; return 1; }
  as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start -o \
    "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
    >/dev/null || { cat "$dir/server.log" >&2; return 1; }
  echo "postgres://postgres:$password@127.0.0.1:$port/postgres"
}

# A failover as an HA manager makes one: the primary stops, its standby is
# promoted (a new timeline) and takes over the primary's address.
failover() {
  local standby=$1 primary bindir pport
  primary=$(cat "$standby/standby-of"); bindir=$(cat "$standby/bindir")
  pport=$(sed -n 4p "$primary/data/postmaster.pid")
  as_pg "$bindir/pg_ctl" -D "$primary/data" -m fast -w stop >/dev/null
  as_pg "$bindir/pg_ctl" -D "$standby/data" -w -t 60 promote >/dev/null
  as_pg "$bindir/pg_ctl" -D "$standby/data" -l "$standby/server.log" -w -t 60 restart -m fast -o \
    "-p $pport -c listen_addresses=127.0.0.1 -c unix_socket_directories=$standby -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
    >/dev/null || { cat "$standby/server.log" >&2; return 1; }
  rm "$standby/standby-of"
}

# Starts (or restarts, keeping its data) the Garage server configured in $1.
run_garage() {
  local dir=$1
  RUST_LOG=warn setsid "$GARAGE" -c "$dir/garage.toml" server >>"$dir/server.log" 2>&1 &
  echo $! > "$dir/pid"
  echo $! >> "$STATE/pids"
  for _ in $(seq 100); do "$GARAGE" -c "$dir/garage.toml" status >/dev/null 2>&1 && return 0; sleep 0.2; done
  cat "$dir/server.log" >&2
  log "garage did not start"
  return 1
}

start_garage() {
  local dir=$STATE/garage s3 rpc admin id
  s3=$(free_port); rpc=$(free_port); admin=$(free_port)
  mkdir -p "$dir"
  # LMDB, Garage's default metadata engine, as deployments run it: with sqlite
  # Garage serves metadata reads one at a time, and listing 200 000 objects
  # took twice as long.
  cat > "$dir/garage.toml" <<TOML
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "lmdb"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc"
rpc_public_addr = "127.0.0.1:$rpc"
rpc_secret = "$(openssl rand -hex 32)"
[s3_api]
s3_region = "us-east-1"
api_bind_addr = "${NODE_IP:-127.0.0.1}:$s3"
root_domain = ".s3.garage.localhost"
[admin]
api_bind_addr = "127.0.0.1:$admin"
admin_token = "$(openssl rand -hex 16)"
TOML
  local g="$GARAGE -c $dir/garage.toml"
  run_garage "$dir"
  id=$($g node id -q 2>/dev/null | cut -d@ -f1)
  [ -n "$id" ] || { cat "$dir/server.log" >&2; log "garage did not start"; return 1; }
  $g layout assign -z dc1 -c 1G "$id" >/dev/null
  $g layout apply --version 1 >/dev/null
  # Import a key we generate, so nothing has to be scraped from CLI output.
  S3_KEY_ID=GK$(openssl rand -hex 12)
  S3_SECRET=$(openssl rand -hex 32)
  $g key import --yes -n test-key "$S3_KEY_ID" "$S3_SECRET" >/dev/null
  $g key allow --create-bucket test-key >/dev/null
  S3_ENDPOINT=http://${NODE_IP:-127.0.0.1}:$s3
}

start_kube() {
  local dir=$STATE/kube ep pp
  ep=$(free_port); pp=$(free_port); KUBE_PORT=$(free_port)
  mkdir -p "$dir/certs"
  setsid etcd --data-dir "$dir/etcd" --listen-client-urls "http://127.0.0.1:$ep" \
    --advertise-client-urls "http://127.0.0.1:$ep" --listen-peer-urls "http://127.0.0.1:$pp" \
    --initial-advertise-peer-urls "http://127.0.0.1:$pp" --initial-cluster "default=http://127.0.0.1:$pp" \
    >"$dir/etcd.log" 2>&1 &
  echo $! >> "$STATE/pids"
  openssl genrsa -out "$dir/sa.key" 2048 2>/dev/null
  openssl rsa -in "$dir/sa.key" -pubout -out "$dir/sa.pub" 2>/dev/null
  TOKEN_ADMIN=$(openssl rand -hex 16); TOKEN_ALICE=$(openssl rand -hex 16); TOKEN_BOB=$(openssl rand -hex 16)
  # Static users: admin is cluster-admin; alice and bob get only what a test grants them.
  cat > "$dir/tokens.csv" <<CSV
$TOKEN_ADMIN,admin,admin,system:masters
$TOKEN_ALICE,alice,alice
$TOKEN_BOB,bob,bob
CSV
  setsid "$KUBE_APISERVER" --etcd-servers="http://127.0.0.1:$ep" --secure-port="$KUBE_PORT" \
    --bind-address=127.0.0.1 --cert-dir="$dir/certs" \
    --service-account-key-file="$dir/sa.pub" --service-account-signing-key-file="$dir/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc \
    --token-auth-file="$dir/tokens.csv" --authorization-mode=RBAC \
    --service-cluster-ip-range=10.0.0.0/24 --disable-admission-plugins=ServiceAccount \
    --feature-gates=GenericEphemeralVolume=true \
    >"$dir/apiserver.log" 2>&1 &
  echo $! >> "$STATE/pids"
  cat > "$dir/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: https://127.0.0.1:$KUBE_PORT
    insecure-skip-tls-verify: true
users:
- name: admin
  user:
    token: $TOKEN_ADMIN
contexts:
- name: test
  context: {cluster: test, user: admin, namespace: default}
current-context: test
KC
}

wait_kube() {
  for _ in $(seq 120); do
    if curl -sfk -H "Authorization: Bearer $TOKEN_ADMIN" "https://127.0.0.1:$KUBE_PORT/readyz" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.5
  done
  tail -n 30 "$STATE/kube/apiserver.log" >&2
  log "kube-apiserver did not become ready"
  return 1
}

debian_packages() {
  command -v curl >/dev/null || apt_install curl
  command -v openssl >/dev/null || apt_install openssl
  command -v kubectl >/dev/null || apt_install kubernetes-client
  # promtool proves every alert rule fires above its threshold and not at it;
  # the server (same package) evaluates a rule on live figures.
  { command -v promtool && command -v prometheus; } >/dev/null || apt_install prometheus
  # The reference age CLI and zstd open an encrypted backup without the
  # operator, as the runbook tells a person in a disaster to.
  command -v age >/dev/null || apt_install age
  command -v zstd >/dev/null || apt_install zstd
}

# The two PostgreSQL 15 servers (source, target) and one of every other major;
# sets SOURCE_URL, TARGET_URL, MAJOR_URLS (env lines) and TOOL_DIRS.
start_postgres_servers() {
  local major server tools
  SOURCE_URL=$(start_postgres pg-source)
  TARGET_URL=$(start_postgres pg-target)
  MAJOR_URLS="" TOOL_DIRS=""
  while read -r major server tools; do
    [ -n "$tools" ] && TOOL_DIRS=${TOOL_DIRS:+$TOOL_DIRS:}$tools
    if [ "$major" = 15 ]; then
      MAJOR_URLS="${MAJOR_URLS}export AF_TEST_PG15_URL='$SOURCE_URL'"$'\n'
    else
      MAJOR_URLS="${MAJOR_URLS}export AF_TEST_PG${major}_URL='$(start_postgres "pg-$major" "$server")'"$'\n'
    fi
  done <<< "$MAJORS"
}

start() {
  STATE=$1
  mkdir -p "$STATE"
  chmod 755 "$STATE"
  : > "$STATE/pids"
  timed "install: debian packages" debian_packages
  PG_BINDIR=$(pg_bindir)
  PG_USER=$(pg_user)
  GARAGE=$(timed "install: garage" "$HACK/install-garage.sh")
  KUBE_BIN=$(timed "install: kubernetes" "$HACK/install-kubernetes.sh")
  KUBE_APISERVER=$KUBE_BIN/kube-apiserver
  CHART_TOOLS=$(timed "install: chart tools" "$HACK/install-chart-tools.sh")
  MAJORS=$(timed "install: postgresql majors" "$HACK/install-postgres-majors.sh")
  NODE_IP=$("$HACK/node.sh" bridge)
  log "starting etcd + kube-apiserver, PostgreSQL servers (15 twice, 14, 16, 17, 18), Garage, Ceph RGW and the node cluster in $STATE"
  timed "start: etcd + kube-apiserver" start_kube
  timed "start: postgresql servers" start_postgres_servers
  timed "start: garage" start_garage
  RGW_ENV=$(timed "start: ceph rgw" "$HACK/rgw.sh" start "$STATE/rgw" | sed 's/^/export /')
  timed "start: kube-apiserver ready" wait_kube
  local binary=${AF_TEST_NODE_BINARY:-$HACK/../target/debug/artifortress-operator}
  [ -x "$binary" ] || (cd "$HACK/.." && cargo build >&2)
  timed "start: node (containerd, kubelet, image)" "$HACK/node.sh" start "$STATE/node" "$binary"
  cat > "$STATE/env" <<ENV
export AF_TEST_ENV_DIR='$STATE'
export AF_TEST_PG_SOURCE_URL='$SOURCE_URL'
export AF_TEST_PG_TARGET_URL='$TARGET_URL'
export AF_TEST_PG_BINDIR='$PG_BINDIR'
export AF_TEST_PG_USER='$PG_USER'
${MAJOR_URLS}export ARTIFORTRESS_PG_BINDIR='$TOOL_DIRS'
export AF_TEST_S3_ENDPOINT='$S3_ENDPOINT'
$RGW_ENV
export AWS_ACCESS_KEY_ID='$S3_KEY_ID'
export AWS_SECRET_ACCESS_KEY='$S3_SECRET'
export AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
export KUBECONFIG='$STATE/kube/kubeconfig'
export AF_TEST_KUBE_SERVER='https://127.0.0.1:$KUBE_PORT'
export AF_TEST_KUBE_TOKEN_ADMIN='$TOKEN_ADMIN'
export AF_TEST_KUBE_TOKEN_ALICE='$TOKEN_ALICE'
export AF_TEST_KUBE_TOKEN_BOB='$TOKEN_BOB'
export AF_TEST_CHART_TOOLS='$CHART_TOOLS'
export AF_TEST_PROMTOOL='$(command -v promtool)'
export AF_TEST_PROMETHEUS='$(command -v prometheus)'
ENV
  cat "$STATE/node/env" >> "$STATE/env"
  log "ready: env in $STATE/env"
}

stop() {
  STATE=$1
  [ -d "$STATE" ] || return 0
  [ -d "$STATE/node" ] && "$HACK/node.sh" stop "$STATE/node"
  [ -d "$STATE/rgw" ] && "$HACK/rgw.sh" stop "$STATE/rgw"
  PG_USER=$(pg_user)
  for d in "$STATE"/pg-*; do
    [ -f "$d/data/postmaster.pid" ] && as_pg "$(cat "$d/bindir")/pg_ctl" -D "$d/data" -m immediate stop >/dev/null 2>&1 || true
  done
  if [ -f "$STATE/pids" ]; then
    while read -r pid; do kill "$pid" 2>/dev/null || true; done < "$STATE/pids"
    sleep 0.5
    while read -r pid; do kill -9 "$pid" 2>/dev/null || true; done < "$STATE/pids"
  fi
  rm -rf "$STATE"
}

# Extra servers for fault tests, which stop them without disturbing other tests:
#   hack/test-env.sh postgres DIR [MAJOR] start a PostgreSQL server (default: 15) in DIR, print its URL
#                                        (PG_EXTRA_OPTS adds server settings, e.g. "-c wal_level=minimal")
#   hack/test-env.sh standby DIR         start a streaming standby of the server in DIR, in DIR too, print its URL
#   hack/test-env.sh failover DIR        stop that server, promote its standby and move it to the server's port
#   hack/test-env.sh tools MAJOR         print the bin directory of that major's client tools (15, 16, 18)
#   hack/test-env.sh garage DIR [BUCKET] start a Garage server in DIR (with BUCKET), print its env lines
#   hack/test-env.sh garage-restart DIR  start that Garage again after it was killed
# `hack/test-env.sh stop DIR` stops them. The pid of Garage is in DIR/garage/pid.
extra_setup() {
  STATE=$1
  mkdir -p "$STATE"; chmod 755 "$STATE"; touch "$STATE/pids"
}

case "${1:-}" in
  start) start "${2:?state dir}" ;;
  postgres)
    extra_setup "${2:?state dir}"; PG_BINDIR=$(pg_bindir); PG_USER=$(pg_user)
    NODE_IP=${NODE_IP:-${AF_TEST_NODE_IP:-}}  # reachable from the node's pods too, when there is one
    bindir=$PG_BINDIR
    if [ -n "${3:-}" ] && [ "$3" != 15 ]; then
      bindir=$("$HACK/install-postgres-majors.sh" | awk -v m="$3" '$1 == m {print $2}')
      [ -n "$bindir" ] || { log "no PostgreSQL $3 here (supported: 14-18)"; exit 2; }
    fi
    start_postgres "pg-$(basename "$(mktemp -u XXXXXX)")" "$bindir"
    ;;
  standby)
    extra_setup "${2:?state dir}"; PG_USER=$(pg_user)
    for d in "$STATE"/pg-*; do [ -f "$d/standby-of" ] || { start_standby "$d"; break; }; done
    ;;
  failover)
    extra_setup "${2:?state dir}"; PG_USER=$(pg_user)
    failover "$(dirname "$(ls "$STATE"/pg-*/standby-of | head -n1)")"
    ;;
  tools)
    "$HACK/install-postgres-majors.sh" | awk -v m="${2:?major}" '$1 == m && $3 != "" {print $3; found=1} END {exit !found}'
    ;;
  garage)
    extra_setup "${2:?state dir}"; GARAGE=$("$HACK/install-garage.sh"); start_garage
    if [ -n "${3:-}" ]; then  # optional: a bucket the key may use (for tools without CreateBucket)
      "$GARAGE" -c "$STATE/garage/garage.toml" bucket create "$3" >/dev/null
      "$GARAGE" -c "$STATE/garage/garage.toml" bucket allow --read --write --owner "$3" --key test-key >/dev/null
    fi
    echo "AF_TEST_S3_ENDPOINT=$S3_ENDPOINT"
    echo "AWS_ACCESS_KEY_ID=$S3_KEY_ID"
    echo "AWS_SECRET_ACCESS_KEY=$S3_SECRET"
    ;;
  garage-restart) extra_setup "${2:?state dir}"; GARAGE=$("$HACK/install-garage.sh"); run_garage "$STATE/garage" ;;
  stop) stop "${2:?state dir}" ;;
  run)
    shift; [ "${1:-}" = "--" ] && shift
    dir=$(mktemp -d "${TMPDIR:-/tmp}/artifortress-test.XXXXXX")
    trap 'stop "$dir"' EXIT
    trap 'exit 130' INT TERM
    start "$dir"
    set +e
    ( . "$dir/env" && "$@" )
    status=$?
    set -e
    if [ $status -ne 0 ]; then
      log "command failed ($status); last service log lines:"
      for f in "$dir"/pg-*/server.log "$dir"/garage/server.log "$dir"/kube/apiserver.log "$dir"/node/*.log; do
        [ -f "$f" ] && { echo "--- $f" >&2; tail -n 5 "$f" >&2; }
      done
    fi
    exit $status
    ;;
  *) sed -n '2,20p' "$0"; exit 2 ;;
esac
