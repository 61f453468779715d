#!/usr/bin/env bash
# Runs a command against a throw-away PostgreSQL cluster (ENGINEERING.md §7):
# initdb as the `postgres` user when we are root (PostgreSQL refuses to run as root),
# a Unix socket in a temporary directory, fsync off, stopped and removed on exit.
# The command sees CLOUDPBX_TEST_DATABASE_URL.
set -euo pipefail

bindir=$(dirname "$(ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)")
work=$(mktemp -d /tmp/cloudpbx-pg.XXXXXX)
port=${CLOUDPBX_PG_PORT:-$((20000 + RANDOM % 20000))}

as_pg() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cleanup() {
  as_pg "$bindir/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

[[ $(id -u) -eq 0 ]] && chown postgres "$work"
as_pg "$bindir/initdb" -D "$work/data" -U postgres --auth=trust --locale=C -E UTF8 >/dev/null
as_pg "$bindir/pg_ctl" -D "$work/data" -w -l "$work/log" \
  -o "-k $work -c listen_addresses='' -p $port -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
  start >/dev/null
as_pg "$bindir/createdb" -h "$work" -p "$port" -U postgres cloudpbx_test

export CLOUDPBX_TEST_DATABASE_URL="postgresql+psycopg://postgres@/cloudpbx_test?host=$work&port=$port"
"$@"
