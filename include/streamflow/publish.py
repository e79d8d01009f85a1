"""Publish: apply one staged table to its live table (inside the caller's one-month transaction).

* The live table is empty (a first load): one `INSERT ... SELECT`, the bulk path.
* Otherwise one `MERGE` (a hash join with the live table): new users are inserted, rows are
  updated only where a value IS DISTINCT FROM the stored one, and rows that did not change are
  not touched at all (no lock, no new row version, no WAL). Unlike `INSERT ... ON CONFLICT DO
  UPDATE ... WHERE`, which locks (and so writes) every conflicting row before its WHERE is read.

Only the columns the file carried are written: an optional column a file leaves out keeps its
live value.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from streamflow import staging
from streamflow.registry import KEY, Table

if TYPE_CHECKING:
    import psycopg


@dataclass(frozen=True)
class Applied:
    """What publishing one staged table changed."""

    table: str
    rows: int
    inserted: int
    updated: int
    unchanged: int
    method: str  # "bulk": into the empty live table; "merge"; "replay": the same file again, nothing applied

    def as_dict(self) -> dict:
        return asdict(self)


def apply_staged(conn: psycopg.Connection, schema: str, table: Table, columns: list[str], rows: int) -> Applied:
    """Apply `schema.<table>` (holding `columns` from the file) to the live table."""
    from psycopg import sql

    live, source = sql.Identifier(table.name), staging.table_in(schema, table.name)
    names = sql.SQL(", ").join(map(sql.Identifier, columns))
    if not conn.execute(sql.SQL("SELECT EXISTS (SELECT FROM {})").format(live)).fetchone()[0]:
        inserted = conn.execute(sql.SQL("INSERT INTO {} ({names}) SELECT {names} FROM {}").format(
            live, source, names=names)).rowcount
        return Applied(table.name, rows, inserted, 0, rows - inserted, "bulk")
    count = sql.SQL("SELECT count(*) FROM {}").format(live)
    before = conn.execute(count).fetchone()[0]
    written = conn.execute(merge_statement(table, columns, source)).rowcount
    inserted = conn.execute(count).fetchone()[0] - before  # MERGE only inserts and updates
    return Applied(table.name, rows, inserted, written - inserted, rows - written, "merge")


def merge_statement(table: Table, columns: list[str], source):
    """`MERGE INTO live USING staged ... WHEN MATCHED AND IS DISTINCT FROM ... WHEN NOT MATCHED`."""
    from psycopg import sql

    def listed(names: list[str], alias: str | None = None) -> sql.Composable:
        return sql.SQL(", ").join(sql.Identifier(alias, n) if alias else sql.Identifier(n) for n in names)

    non_key = [c for c in columns if c != KEY]
    when_matched = sql.SQL("")
    if non_key:
        when_matched = sql.SQL(
            "WHEN MATCHED AND ({current}) IS DISTINCT FROM ({staged}) THEN UPDATE SET ({names}) = ROW({staged}) "
        ).format(current=listed(non_key, "live"), staged=listed(non_key, "staged"), names=listed(non_key))
    return sql.SQL(
        "MERGE INTO {target} AS live USING {source} AS staged ON live.{key} = staged.{key} "
        "{when_matched}WHEN NOT MATCHED THEN INSERT ({names}) VALUES ({values})"
    ).format(target=sql.Identifier(table.name), source=source, key=sql.Identifier(KEY), when_matched=when_matched,
             names=listed(columns), values=listed(columns, "staged"))
