#!/usr/bin/env bash
# Applies our model of the Artifortress schema (migrations/) to a database the
# way upstream's scripts/db-migrate.sh applies upstream's: a schema_migrations
# table first, then every file in name order through psql (ON_ERROR_STOP, each
# statement on its own, no transaction around the file), each recorded under
# its file name; an applied version is skipped. Tests use it to show that the
# operator's `migrate` and upstream's way give the same schema.
#
#   hack/db-migrate.sh DATABASE_URL [LAST_VERSION]
#
# LAST_VERSION (a file name) stops after that level: an older installation.
# psql comes from $PSQL (default: psql on the PATH).
set -euo pipefail
url=${1:?usage: hack/db-migrate.sh DATABASE_URL [LAST_VERSION]}
last=${2:-}
psql=${PSQL:-psql}
dir=$(cd "$(dirname "$0")/../migrations" && pwd)

run() { "$psql" "$url" -X -q -v ON_ERROR_STOP=1 "$@"; }

run -c "create table if not exists schema_migrations (version text primary key, applied_at timestamptz not null default now());"
for file in "$dir"/*.sql; do
  version=$(basename "$file")
  version_sql=${version//\'/\'\'}
  if [ "$(run -tAc "select 1 from schema_migrations where version = '$version_sql' limit 1;")" = 1 ]; then
    echo "Skipping $version (already applied)."
  else
    echo "Applying $version..."
    run -f "$file"
    run -c "insert into schema_migrations (version) values ('$version_sql');"
  fi
  if [ "$version" = "$last" ]; then
    break
  fi
done
