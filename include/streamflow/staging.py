"""A run's staging area: one schema per DAG run, where the stage tasks write and validation reads.

The name comes from the run id (hashed: run ids carry characters identifiers should not), so
two runs at once, of the same month or not, never share staged tables. `sql/queries/staging_manifest.sql`
holds its DDL. The publish task drops the schema in the transaction that publishes it.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING

from streamflow import queries

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

SCHEMA_PREFIX = "streamflow_stage_"
_SCHEMA_NAME = re.compile(rf"^{SCHEMA_PREFIX}[0-9a-f]{{16}}$")
MANIFEST = "staged_files"
MANIFEST_COLUMNS = ("table_name", "month", "run_id", "file_path", "file_sha256", "rows_in_file", "columns",
                    "absent_columns", "method")
# Parallel stage tasks may create the schema at once: CREATE ... IF NOT EXISTS races on the catalog.
_CREATE_LOCK = "streamflow_staging_create"


def schema_for(run_id: str) -> str:
    """The staging schema of one DAG run."""
    return SCHEMA_PREFIX + hashlib.sha256(run_id.encode()).hexdigest()[:16]


def checked(schema: str) -> str:
    """`schema` if it is a staging schema name; ValueError otherwise."""
    if not _SCHEMA_NAME.fullmatch(schema):
        raise ValueError(f"{schema!r} is not a staging schema name ({SCHEMA_PREFIX} + 16 hex digits)")
    return schema


def table_in(schema: str, name: str) -> sql.Identifier:
    """`schema.name`, quoted."""
    from psycopg import sql

    return sql.Identifier(checked(schema), name)


def ensure(conn: psycopg.Connection, schema: str) -> None:
    """Create the schema and its manifest if missing, in the caller's transaction."""
    from psycopg import sql

    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_CREATE_LOCK,))
    conn.execute(queries.template("staging_manifest").format(schema=sql.Identifier(checked(schema))))


def exists(conn: psycopg.Connection, schema: str, table: str = MANIFEST) -> bool:
    # to_regclass reads a name as SQL writes it: quoted by psycopg, as every identifier is.
    name = table_in(schema, table).as_string(conn)
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()[0]


#: Why a run's staging can be gone though its stage tasks succeeded.
LOST = "PostgreSQL restarts UNLOGGED tables empty after a crash, the staging manifest too"


def staged_entry(conn: psycopg.Connection, schema: str, table_name: str) -> dict | None:
    """The manifest row of `table_name` if the run's stage task staged it (listed, and its table there).

    After a crash the staged tables are still there, empty, and the manifest lists none of them.
    """
    entry = manifest(conn, schema).get(table_name)
    return entry if entry is not None and exists(conn, schema, table_name) else None


def is_staged(conn: psycopg.Connection, schema: str, table_name: str) -> bool:
    return staged_entry(conn, schema, table_name) is not None


def forget(conn: psycopg.Connection, schema: str, table_name: str) -> None:
    """Drop what an earlier attempt staged for one table (a re-run starts over), in the caller's transaction."""
    from psycopg import sql

    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table_in(schema, table_name)))
    conn.execute(sql.SQL("DELETE FROM {} WHERE table_name = %s").format(table_in(schema, MANIFEST)), (table_name,))


def record(conn: psycopg.Connection, schema: str, entry: dict) -> None:
    """Add one staged file to the manifest."""
    from psycopg import sql

    conn.execute(sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        table_in(schema, MANIFEST), sql.SQL(", ").join(map(sql.Identifier, MANIFEST_COLUMNS)),
        sql.SQL(", ").join(sql.Placeholder(c) for c in MANIFEST_COLUMNS)), {c: entry[c] for c in MANIFEST_COLUMNS})


def manifest(conn: psycopg.Connection, schema: str) -> dict[str, dict]:
    """What is staged, by table name (empty when the schema is not there)."""
    from psycopg import sql
    from psycopg.rows import dict_row

    if not exists(conn, schema):
        return {}
    with conn.cursor(row_factory=dict_row) as cursor:
        rows = cursor.execute(sql.SQL("SELECT * FROM {}").format(table_in(schema, MANIFEST))).fetchall()
    return {row["table_name"]: row for row in rows}


def drop(conn: psycopg.Connection, schema: str) -> None:
    """Drop the whole staging area, in the caller's transaction."""
    from psycopg import sql

    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(checked(schema))))


#: A staging area nobody wrote to for this long belongs to a run that failed and was not re-run:
#: kept that long for inspection (what exactly was refused), then dropped by the next run's setup.
STALE_AFTER_HOURS = 24


def drop_stale(conn: psycopg.Connection, hours: float = STALE_AFTER_HOURS) -> list[str]:
    """Drop the staging areas last written more than `hours` ago; return their names."""
    from psycopg import sql

    dropped = []
    with conn.transaction():
        schemas = [row[0] for row in conn.execute(
            "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s)", (SCHEMA_PREFIX,)).fetchall()]
        for schema in filter(_SCHEMA_NAME.fullmatch, schemas):
            last = conn.execute(sql.SQL("SELECT max(staged_at) > now() - make_interval(secs => %s) FROM {}").format(
                table_in(schema, MANIFEST)), (hours * 3600,)).fetchone()[0] if exists(conn, schema) else None
            if not last:
                drop(conn, schema)
                dropped.append(schema)
    return dropped
