"""The typed staging table of one file: created keyless, keyed once its rows are in, the columns
the file does not carry filled from the live table.

Both ways of loading a file into it (the typed COPY, `streamflow.stage`; the checked path,
`streamflow.checked_copy`) and a replay's empty table share these statements.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamflow import queries
from streamflow.registry import KEY, Table

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql


def create(conn: psycopg.Connection, table: Table, target: sql.Identifier) -> None:
    """The typed UNLOGGED staging table, keyless until its rows are in (`add_key`)."""
    from psycopg import sql

    conn.execute(sql.SQL("CREATE UNLOGGED TABLE {} ({})").format(
        target, sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(c.pg_type))
                                   for c in table.columns)))


def add_key(conn: psycopg.Connection, target: sql.Identifier) -> None:
    """Key the staged rows by user_id, as the live table is: one sorted index build, not an index
    insert per row; a blank or duplicated user_id fails it (a data error)."""
    from psycopg import sql

    conn.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(target, sql.Identifier(KEY)))


def fill_from_live(conn: psycopg.Connection, table: Table, target: sql.Identifier, absent: tuple[str, ...]) -> None:
    """Give the columns a file does not carry their live values (what the publish leaves there)."""
    from psycopg import sql

    conn.execute(queries.template("fill_absent_columns").format(
        target=target, names=sql.SQL(", ").join(map(sql.Identifier, absent)),
        values=sql.SQL(", ").join(sql.Identifier("live", c) for c in absent),
        live=sql.Identifier(table.name), key=sql.Identifier(KEY)))
