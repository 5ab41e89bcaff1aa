#!/usr/bin/env bash
# A Ceph object gateway (RGW) for the tests that need what Garage lacks: bucket
# versioning, delete markers, GET by version and S3 Object Lock. No container:
# one monitor, one OSD keeping its objects in RAM (memstore), no manager, no
# cephx, radosgw on loopback; everything under one directory.
#
#   hack/rgw.sh start DIR   start it, print its env lines (endpoint and keys)
#   hack/rgw.sh stop DIR    stop it and remove DIR
#
# Debian's packages (Ceph 16): installed on first use, ~70 MB. Start: ~15 s.
set -euo pipefail
HACK=$(cd "$(dirname "$0")" && pwd)
. "$HACK/lib.sh"

install() {
  command -v radosgw >/dev/null && command -v ceph-mon >/dev/null && command -v ceph-osd >/dev/null && return 0
  log "installing Ceph (radosgw, ceph-mon, ceph-osd)"
  apt_install --no-install-recommends radosgw ceph-mon ceph-osd
}

start() {
  local dir=$1 mon rgw fsid osd_uuid id
  mkdir -p "$dir"/{run,log,mon,osd,rgw}
  mon=$(free_port); rgw=$(free_port)
  fsid=$(python3 -c 'import uuid; print(uuid.uuid4())')
  osd_uuid=$(python3 -c 'import uuid; print(uuid.uuid4())')
  cat > "$dir/ceph.conf" <<CONF
[global]
fsid = $fsid
mon_host = [v2:127.0.0.1:$mon]
ms_bind_msgr1 = false
public_addr = 127.0.0.1
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
ms_mon_client_mode = crc secure
mon_data_avail_crit = 0
osd_objectstore = memstore
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
run_dir = $dir/run
admin_socket = $dir/run/\$cluster-\$name.asok
pid_file = $dir/run/\$cluster-\$name.pid
log_file = $dir/log/\$cluster-\$name.log
[mon.a]
mon_data = $dir/mon
[osd.0]
osd_data = $dir/osd
[client.rgw.a]
rgw_frontends = beast endpoint=127.0.0.1:$rgw
rgw_data = $dir/rgw
CONF
  local c="-c $dir/ceph.conf"
  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon]" "$dir/monmap" >/dev/null
  ceph-mon $c --mkfs -i a --monmap "$dir/monmap" >/dev/null
  ceph-mon $c -i a
  for _ in $(seq 100); do timeout 5 ceph $c -s >/dev/null 2>&1 && break; sleep 0.2; done
  id=$(ceph $c osd new "$osd_uuid")
  [ "$id" = 0 ] || { log "the OSD got id $id, the configuration has osd.0"; return 1; }
  ceph-osd $c -i 0 --mkfs --osd-uuid "$osd_uuid" >/dev/null 2>&1
  ceph-osd $c -i 0
  radosgw $c -n client.rgw.a
  # The gateway creates its pools on first use: the user appears once they exist.
  local key secret
  key=RGW$(openssl rand -hex 8 | tr a-f A-F); secret=$(openssl rand -hex 20)
  for _ in $(seq 150); do
    radosgw-admin $c user create --uid tester --display-name tester --access-key "$key" --secret-key "$secret" \
      >/dev/null 2>&1 && break
    sleep 0.2
  done
  radosgw-admin $c user info --uid tester >/dev/null 2>&1 || { tail -n 20 "$dir"/log/*.log >&2; log "RGW did not start"; return 1; }
  for _ in $(seq 150); do curl -sf "http://127.0.0.1:$rgw/" >/dev/null && break; sleep 0.2; done
  curl -sf "http://127.0.0.1:$rgw/" >/dev/null || { tail -n 20 "$dir"/log/*.log >&2; log "RGW does not answer HTTP"; return 1; }
  echo "AF_TEST_RGW_ENDPOINT=http://127.0.0.1:$rgw"
  echo "AF_TEST_RGW_ACCESS_KEY_ID=$key"
  echo "AF_TEST_RGW_SECRET_ACCESS_KEY=$secret"
}

stop() {
  local dir=$1 pid
  [ -d "$dir/run" ] || { rm -rf "$dir"; return 0; }
  for f in "$dir"/run/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  # The OSD can take seconds to stop; what is left then is killed.
  for _ in $(seq 50); do
    pid=""
    for f in "$dir"/run/*.pid; do [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && pid=1; done
    [ -z "$pid" ] && break
    sleep 0.2
  done
  for f in "$dir"/run/*.pid; do [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null || true; done
  rm -rf "$dir"
}

case "${1:-}" in
  start) with_lock ceph install; start "${2:?directory}" ;;
  stop) stop "${2:?directory}" ;;
  *) sed -n '2,10p' "$0"; exit 2 ;;
esac
