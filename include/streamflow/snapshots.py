"""The snapshot SQL: `sql/queries/stamp_snapshot.sql` rendered from the registry and run.

One path for the DAG's `snapshot_<table>` tasks (through `pipeline.stamp_snapshot`), the tests
and the bench: `stamp` runs the statements `render_stamp_sql` renders, once per process and table.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from streamflow import queries
from streamflow.registry import SNAPSHOTTED, Table

if TYPE_CHECKING:
    import psycopg

STAMP_QUERY = "stamp_snapshot"

#: What a run does to an as_of that is already stamped (the DAG's `snapshot_policy` param):
#: "restamp" brings it up to the live state (corrected files), "immutable" leaves it as first stamped.
SNAPSHOT_POLICIES = ("restamp", "immutable")


def stamp_identifiers(table: Table) -> dict:
    """What `stamp_snapshot.sql`'s `{placeholders}` are filled with: identifiers from the registry."""
    from psycopg import sql

    if not table.snapshot_table:
        raise ValueError(f"table {table.name} has no snapshot table")

    def joined(alias: str | None) -> sql.Composed:
        return sql.SQL(", ").join(sql.Identifier(alias, name) if alias else sql.Identifier(name)
                                  for name in table.snapshot_columns)

    return {"live_table": sql.Identifier(table.name), "snapshot_table": sql.Identifier(table.snapshot_table),
            "columns": joined(None), "live_columns": joined("live"), "snapshot_columns": joined("snapshot")}


def stamp_params(table: Table, as_of: str, restamp: bool = True) -> dict:
    """The values `stamp_snapshot.sql` binds."""
    return {"as_of": as_of, "restamp": restamp, "snapshot_name": table.snapshot_table}


@functools.cache
def render_stamp_sql(table: Table) -> tuple[str, ...]:
    """The statements of `stamp_snapshot.sql` for one table (rendered once per table), values left to bind.

    Split with sqlparse, comments stripped; each statement composed with psycopg.sql.
    """
    import sqlparse
    from psycopg import sql

    identifiers = stamp_identifiers(table)
    text = sqlparse.format(queries.text(STAMP_QUERY), strip_comments=True)
    return tuple(sql.SQL(statement.rstrip(";").strip()).format(**identifiers).as_string(None)
                 for statement in sqlparse.split(text) if statement.strip())


def stamp(conn: psycopg.Connection, as_of: str, tables: tuple[Table, ...] = SNAPSHOTTED,
          restamp: bool = True) -> dict[str, tuple]:
    """Stamp snapshots at `as_of` in one transaction per table; return each table's count row.

    Args:
        conn: warehouse connection.
        as_of: the snapshot date (YYYY-MM-DD).
        tables: which snapshot tables.
        restamp: False leaves an as_of that is already stamped as it is (immutable snapshots).
    """
    results = {}
    for table in tables:
        params = stamp_params(table, as_of, restamp)
        with conn.transaction():
            for statement in render_stamp_sql(table):
                # Never a prepared statement: a generic plan would not know which month's partition it
                # writes, a custom one prunes to it at plan time.
                cursor = conn.execute(statement, params, prepare=False)
                if cursor.description[0].name == "snapshot_table":  # the statement that stamps
                    results[table.snapshot_table] = cursor.fetchone()
    return results
