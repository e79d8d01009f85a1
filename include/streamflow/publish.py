"""Publish: apply one staged table to its live table (inside the caller's one-month transaction).

* The live table is empty (a first load): one `INSERT ... SELECT`, the bulk path.
* Otherwise one `MERGE` (a hash join with the live table): new users are inserted, rows are
  updated only where a value IS DISTINCT FROM the stored one, and rows that did not change are
  not touched at all (no lock, no new row version, no WAL). Unlike `INSERT ... ON CONFLICT DO
  UPDATE ... WHERE`, which locks (and so writes) every conflicting row before its WHERE is read.

Only the columns the file carried are written: an optional column a file leaves out keeps its
live value.

A first load (all six live tables empty) sets the tables' keys aside and builds them once at the
end (`keys_built_after_a_first_load`), as PostgreSQL's "Populating a Database" advises.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from streamflow import queries, staging
from streamflow.registry import DEPENDENT_TABLES, KEY, TABLES, USERS, Table

if TYPE_CHECKING:
    from collections.abc import Iterator

    import psycopg
    from psycopg import sql

log = logging.getLogger(__name__)

#: The keys of the six live tables that sql/001 declares: (table, kind, referenced table); every key is on user_id.
DECLARED_KEYS = frozenset({(t.name, "p", None) for t in TABLES} | {(t.name, "f", USERS) for t in DEPENDENT_TABLES})


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


@contextlib.contextmanager
def keys_built_after_a_first_load(conn: psycopg.Connection) -> Iterator[None]:
    """Inside the publish transaction: when the six live tables are empty, drop their primary and foreign
    keys, let the caller insert, then add the same keys back.

    Maintaining the keys row by row (an index insert, and for the five dependents a referential check
    query, per row) is most of a first load's INSERT; building each key once from the loaded rows (a
    sort per primary key, one anti-join per foreign key) makes it several times faster. The keys come
    back under their own names with their own definitions, and only keys exactly as sql/001 declares
    them are touched; any other shape (an added unique key, another table referencing `users`, tables
    we do not own) keeps the row-by-row path. All of it is one transaction with the insert: a failure,
    a key the rows break included, rolls back to the empty tables with their keys.

    The six tables are locked ACCESS EXCLUSIVE until the commit: readers of the (empty) live tables wait.
    """
    from psycopg import sql

    names = [t.name for t in TABLES]
    any_rows = sql.SQL(" OR ").join(sql.SQL("EXISTS (SELECT FROM {})").format(sql.Identifier(n)) for n in names)
    if conn.execute(sql.SQL("SELECT {}").format(any_rows)).fetchone()[0]:
        yield
        return
    conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
        sql.SQL(", ").join(map(sql.Identifier, names))))
    keys = conn.execute(queries.text("publish_live_table_keys"), {"key": KEY, "tables": names}).fetchall()
    if ({(table_name, kind, referenced) for _, table_name, kind, referenced, _, _ in keys} != DECLARED_KEYS
            or not all(plain and owned for *_, plain, owned in keys)):
        log.info("first load: the live tables' keys are not those sql/001 declares, so they are kept row by row")
        yield
        return
    foreign_first = sorted(keys, key=lambda k: k[2] != "f")  # a primary key goes once nothing references it
    for name, table_name, *_ in foreign_first:
        conn.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(sql.Identifier(table_name),
                                                                        sql.Identifier(name)))
    yield
    key = sql.Identifier(KEY)
    for name, table_name, kind, *_ in reversed(foreign_first):
        definition = (sql.SQL("PRIMARY KEY ({})").format(key) if kind == "p" else
                      sql.SQL("FOREIGN KEY ({key}) REFERENCES {users} ({key})").format(
                          key=key, users=sql.Identifier(USERS)))
        conn.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
            sql.Identifier(table_name), sql.Identifier(name), definition))


def merge_statement(table: Table, columns: list[str], source: sql.Composable) -> sql.Composed:
    """`sql/queries/publish_merge.sql` for the file's `columns`, from `source` (the staged table) into `table`.

    A file that carried the key alone has nothing to update: `publish_merge_new_keys.sql` only inserts.
    """
    from psycopg import sql

    def listed(names: list[str], alias: str | None = None) -> sql.Composable:
        return sql.SQL(", ").join(sql.Identifier(alias, n) if alias else sql.Identifier(n) for n in names)

    non_key = [c for c in columns if c != KEY]
    identifiers = {"live_table": sql.Identifier(table.name), "staged_table": source, "key": sql.Identifier(KEY),
                   "columns": listed(columns), "staged_columns": listed(columns, "staged")}
    if not non_key:
        return queries.template("publish_merge_new_keys").format(**identifiers)
    return queries.template("publish_merge").format(
        **identifiers, non_key_columns=listed(non_key), live_non_key_columns=listed(non_key, "live"),
        staged_non_key_columns=listed(non_key, "staged"))
