#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server on loopback for the store tests, installing it
# first if the machine lacks it, and prints the URL for ORCH_TEST_DATABASE_URL.
# Usage: eval "$(bash .ci/postgres.sh)"   (exports ORCH_TEST_DATABASE_URL)
set -euo pipefail

PORT="${ORCH_PG_PORT:-54329}"
DATA="${ORCH_PG_DATA:-/tmp/orch-ci-pg}"

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
  echo "installing postgresql" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
  bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi

# PostgreSQL refuses to run as root: run it as the `postgres` user the package made.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [ -f "$DATA/postmaster.pid" ]; then
  as_pg "$bindir/pg_ctl" -D "$DATA" -m immediate stop >&2 || true
fi
rm -rf "$DATA"
mkdir -p "$DATA"
[ "$(id -u)" = 0 ] && chown postgres:postgres "$DATA"
as_pg "$bindir/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 >/dev/null
as_pg "$bindir/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DATA -c fsync=off -c max_connections=200" start >&2
echo "export ORCH_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:$PORT/postgres"
