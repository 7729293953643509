#!/usr/bin/env bash
# The control tests need a PostgreSQL server on 127.0.0.1:5432 that lets the `postgres` role in
# over TCP (they create and drop databases of their own). Use the one that runs; otherwise
# install and start Debian's, allowing trust logins from loopback only. This is test setup for
# a throwaway machine; never run it on a production database host.
set -euo pipefail

HOST=127.0.0.1
PORT=5432

# tests/integration/test_fault_postgres.py runs a private server of its own (initdb, postgres)
# to crash and restart: the server binaries must be here even when the machine's PostgreSQL
# runs elsewhere (a client-only install).
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    echo "PostgreSQL server binaries are missing (Debian package postgresql); run as root" >&2
    exit 1
  fi
  echo "installing PostgreSQL server binaries (Debian package) for the tests"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi

if command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h "$HOST" -p "$PORT"; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "PostgreSQL is not running on $HOST:$PORT; start one (or run make test as root)" >&2
  exit 1
fi
if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
  echo "installing PostgreSQL (Debian package) for the tests"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
version=$(ls /etc/postgresql | sort -V | tail -n 1)
hba=/etc/postgresql/$version/main/pg_hba.conf
if ! grep -q '^host all postgres 127.0.0.1/32 trust' "$hba"; then
  sed -i '1i host all postgres 127.0.0.1/32 trust' "$hba"
fi
pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null \
  || pg_ctlcluster --skip-systemctl-redirect "$version" main reload
for _ in $(seq 1 30); do
  pg_isready -q -h "$HOST" -p "$PORT" && exit 0
  sleep 1
done
echo "PostgreSQL did not come up on $HOST:$PORT" >&2
exit 1
