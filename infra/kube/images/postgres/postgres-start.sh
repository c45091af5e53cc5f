#!/bin/bash
# initdb on first start (superuser $POSTGRES_USER / $POSTGRES_PASSWORD, scram over TCP), then
# creates the databases named in $POSTGRES_DATABASES and runs the server in the foreground.
set -euo pipefail
pgdata="${PGDATA:-/var/lib/postgresql/data}"
user="${POSTGRES_USER:-lienthong}"
if [[ ! -s "$pgdata/PG_VERSION" ]]; then
  pwfile="$(mktemp)"; printf '%s\n' "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}" >"$pwfile"
  initdb -D "$pgdata" -U "$user" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8
  rm -f "$pwfile"
  echo "host all all 0.0.0.0/0 scram-sha-256" >>"$pgdata/pg_hba.conf"
fi
opts=(-c listen_addresses='*' -c unix_socket_directories=/tmp -c max_connections=200)
pg_ctl -D "$pgdata" -o "${opts[*]}" -w start >/dev/null
for db in ${POSTGRES_DATABASES:-}; do
  if [[ "$(psql -h /tmp -U "$user" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='$db'")" != 1 ]]; then
    psql -h /tmp -U "$user" -d postgres -c "CREATE DATABASE \"$db\"" >/dev/null
  fi
done
pg_ctl -D "$pgdata" -m fast -w stop >/dev/null
exec postgres -D "$pgdata" "${opts[@]}"
