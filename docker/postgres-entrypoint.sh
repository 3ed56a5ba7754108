#!/bin/sh
# Entrypoint of the PostgreSQL image (docker/Dockerfile.postgres). On the first start (an
# empty $PGDATA) it creates the cluster with POSTGRES_USER and POSTGRES_PASSWORD, runs
# /docker-entrypoint-initdb.d/*.sql while listening on its Unix socket only, then serves
# on every address of the container with password authentication.
set -eu

user="${POSTGRES_USER:-postgres}"
: "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    pwfile="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" --auth-local=trust \
        --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    # The init scripts run with no TCP listener, so no client sees a half-made server.
    postgres -D "$PGDATA" -c listen_addresses='' -k /run/postgresql &
    pid=$!
    until psql -h /run/postgresql -U "$user" -d postgres -c 'select 1' >/dev/null 2>&1; do
        kill -0 "$pid" || exit 1
        sleep 0.2
    done
    for f in /docker-entrypoint-initdb.d/*.sql; do
        [ -e "$f" ] || continue
        echo "running $f"
        psql -v ON_ERROR_STOP=1 -h /run/postgresql -U "$user" -d postgres -f "$f" >/dev/null
    done
    kill -INT "$pid"
    wait "$pid" || true
fi

exec postgres -D "$PGDATA" -c listen_addresses='*' -k /run/postgresql
