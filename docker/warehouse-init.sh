#!/usr/bin/env bash
# Warehouse schema for the Docker stack. The postgres image runs this from /docker-entrypoint-initdb.d/
# once, on the first start with an empty data volume (a later start skips it: `docker compose down -v`
# to run it again).
#
# It loads only the numbered DDL files, sql/NNN_*.sql, in name order and in one transaction: the same
# files, order and all-or-nothing behaviour as streamflow.schema.apply_schema. Everything else in sql/
# (Jinja templates such as stamp_snapshot.sql) is not DDL, which is why docker-compose.yml mounts ./sql
# at /streamflow-sql rather than into /docker-entrypoint-initdb.d (that would run every *.sql file).
set -euo pipefail

sql_dir="${STREAMFLOW_SQL_DIR:-/streamflow-sql}"

# Byte-order glob sorting (001 < 002 < 010 ...), whatever locale the container runs with.
LC_ALL=C
shopt -s nullglob
ddl_files=("$sql_dir"/[0-9][0-9][0-9]_*.sql)

if ((${#ddl_files[@]} == 0)); then
  echo "warehouse-init: no numbered DDL file (NNN_*.sql) in $sql_dir; is ./sql mounted there?" >&2
  exit 1
fi

psql_args=(-v ON_ERROR_STOP=1 --no-psqlrc --single-transaction --username "$POSTGRES_USER" --dbname "$POSTGRES_DB")
for file in "${ddl_files[@]}"; do
  psql_args+=(--file "$file")
done

echo "warehouse-init: applying ${ddl_files[*]##*/}"
psql "${psql_args[@]}"
