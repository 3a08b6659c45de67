#!/usr/bin/env bash
# Start a local PostgreSQL (Debian's cluster) for the tests' PostgreSQL run (make test runs every database-touching
# test on SQLite and then on PostgreSQL; tests/conftest.py), and print its SQLAlchemy URL. Installs the server with
# apt when missing. Idempotent; loopback only.
# `scripts/test-postgres.sh stop` stops the cluster again if this script started it (make test does, at its end).
set -euo pipefail
SUDO=""; AS_PG="runuser -u postgres --"
if [ "$(id -u)" != 0 ]; then SUDO=sudo; AS_PG="sudo -u postgres"; fi
STARTED_MARK="${TMPDIR:-/tmp}/baonhung-test-postgres.started"
if [ "${1:-}" = stop ]; then
  if [ -f "$STARTED_MARK" ]; then
    $SUDO pg_ctlcluster "$(cat "$STARTED_MARK")" main stop >/dev/null 2>&1 || true
    rm -f "$STARTED_MARK"
  fi
  exit 0
fi
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
fi
VERSION=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h 2>/dev/null | grep -q "^$VERSION main"; then
  $SUDO pg_createcluster "$VERSION" main >/dev/null
fi
if ! pg_lsclusters -h 2>/dev/null | grep -q "^$VERSION main .* online"; then
  echo "$VERSION" > "$STARTED_MARK"  # ours to stop afterwards
fi
$SUDO pg_ctlcluster "$VERSION" main start >/dev/null 2>&1 || true
for _ in $(seq 1 30); do
  $AS_PG psql -qtAc "select 1" >/dev/null 2>&1 && break
  sleep 1
done
$AS_PG psql -qtAc "SELECT 1 FROM pg_roles WHERE rolname='baonhung_test'" | grep -q 1 \
  || $AS_PG psql -qc "CREATE ROLE baonhung_test LOGIN PASSWORD 'baonhung_test'" >/dev/null
# the analytics test makes the public side's INSERT-only role (builder/analytics, issue 26)
$AS_PG psql -qc "ALTER ROLE baonhung_test CREATEROLE CREATEDB" >/dev/null  # a database per test (tests/conftest.py)
# DROP DATABASE ... WITH (FORCE) also ends an autovacuum worker busy in it (the job-queue test churns rows); a
# non-superuser may only end processes of roles it belongs to, unless it has pg_signal_backend
$AS_PG psql -qc "GRANT pg_signal_backend TO baonhung_test" >/dev/null
# a throw-away test server: no flush to disk at each commit or CREATE/DROP DATABASE (make test makes and drops one
# database a test on the PostgreSQL run; with fsync each drop waited for a checkpoint, up to ~1 s)
if [ "$($AS_PG psql -qtAc "SHOW fsync")" != off ]; then
  $AS_PG psql -qc "ALTER SYSTEM SET fsync = off" -c "ALTER SYSTEM SET synchronous_commit = off" \
    -c "ALTER SYSTEM SET full_page_writes = off" -c "SELECT pg_reload_conf()" >/dev/null
fi
$AS_PG psql -qtAc "SELECT 1 FROM pg_database WHERE datname='baonhung_test'" | grep -q 1 \
  || $AS_PG psql -qc "CREATE DATABASE baonhung_test OWNER baonhung_test" >/dev/null
echo "postgresql+psycopg://baonhung_test:baonhung_test@127.0.0.1:5432/baonhung_test"
