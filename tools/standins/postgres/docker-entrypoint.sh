#!/usr/bin/env bash
# Stand-in for the official postgres image's docker-entrypoint.sh: on an empty data folder, initdb
# with POSTGRES_USER / POSTGRES_PASSWORD, create POSTGRES_DB, run /docker-entrypoint-initdb.d/*
# once on a socket-only server, then run the server listening on every address.
set -Eeo pipefail  # not -u, as upstream: init scripts are sourced into this shell

# `-c name=value ...` alone means the server with those options, as upstream.
if [[ "${1:0:1}" == "-" ]]; then
  set -- postgres "$@"
fi
if [[ "${1:-}" != "postgres" ]]; then
  exec "$@"
fi

if [[ "$(id -u)" == "0" ]]; then
  mkdir -p "$PGDATA" && chown postgres:postgres "$PGDATA" && chmod 0700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

: "${POSTGRES_PASSWORD:?the postgres image needs POSTGRES_PASSWORD}"
export POSTGRES_USER="${POSTGRES_USER:-postgres}"
export POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"

if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
  initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 ${POSTGRES_INITDB_ARGS:-} >/dev/null
  printf "listen_addresses = '*'\nunix_socket_directories = '/var/run/postgresql'\n" >>"$PGDATA/postgresql.conf"
  printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"

  # Init scripts run against a server that listens on the socket only, as upstream.
  export PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  psql=(psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres)
  if [[ "$POSTGRES_DB" != "postgres" ]]; then
    # From stdin: psql does not interpolate :"db" in a -c command.
    echo 'CREATE DATABASE :"db"' | "${psql[@]}" --set db="$POSTGRES_DB" >/dev/null
  fi
  for file in /docker-entrypoint-initdb.d/*; do
    [[ -e "$file" ]] || continue
    case "$file" in
      *.sh) if [[ -x "$file" ]]; then echo "running $file"; "$file"; else echo "sourcing $file"; . "$file"; fi ;;
      *.sql) echo "running $file"; "${psql[@]}" --dbname "$POSTGRES_DB" -f "$file" ;;
      *) echo "ignoring $file" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  unset PGPASSWORD
  echo "PostgreSQL init process complete; ready for start up."
fi

exec "$@"
