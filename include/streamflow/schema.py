"""Set the warehouse schema up: its definitions and functions, then the migrations it has not had.

* `sql/schema/NNN_*.sql`: idempotent definitions (`CREATE ... IF NOT EXISTS`), the current shape
  of every table. `002_snapshot_table.sql` is rendered once per snapshot table of the registry.
* `sql/functions/NNN_*.sql`: `CREATE OR REPLACE FUNCTION`, re-applied by every setup;
  `005_training_set.sql` joins the registry's snapshot tables (rendered). Schema and
  functions share one numbering and run in its order (a schema file before the functions of its
  number): a function may need a table, and a table (training_examples) a function.
* `sql/migrations/NNNN_*.sql`: what brings an older database to the current shape, run once each,
  in name order, after the definitions (so they may use every table and function these define).
  `schema_migrations` records each one with its checksum; a recorded file that has changed stops
  the setup. A new database is created at the current shape and its migrations are recorded as
  baselined, not run.

Everything runs in one transaction under an advisory lock. With no migration pending, setup takes
no lock on a table that exists (tests/integration/test_schema_locks.py): a reader left open does
not block it.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from streamflow import queries
from streamflow.registry import SNAPSHOTTED, Table
from streamflow.settings import SQL_DIR

if TYPE_CHECKING:
    from pathlib import Path

    import psycopg
    from psycopg import sql

SCHEMA_DIR = SQL_DIR / "schema"
FUNCTIONS_DIR = SQL_DIR / "functions"
MIGRATIONS_DIR = SQL_DIR / "migrations"
#: Rendered once per snapshot table of the registry (`snapshot_table_ddl`), not run as written.
SNAPSHOT_TABLE_DDL = SCHEMA_DIR / "002_snapshot_table.sql"
#: training_set(): the snapshot tables joined, rendered from the registry (`training_set_function`).
TRAINING_SET = FUNCTIONS_DIR / "005_training_set.sql"
#: registry pg_type -> the type written in the DDL (the spec's spelling).
DDL_TYPES = {"text": "TEXT", "date": "DATE", "boolean": "BOOLEAN", "integer": "INT", "numeric": "NUMERIC"}

# Serialises concurrent schema setup (CREATE TABLE IF NOT EXISTS races on the catalog).
_SCHEMA_LOCK_KEY = 8613_0001
# Setup should never wait on a table lock; if it must, this long and no longer, with an error.
LOCK_TIMEOUT = "60s"


class MigrationChanged(RuntimeError):
    """A migration this database has already had is not the file it had any more."""


def definition_files() -> list[Path]:
    """`sql/schema/` and `sql/functions/` in their shared numbering (schema first at a tie)."""
    folders = {SCHEMA_DIR: 0, FUNCTIONS_DIR: 1}
    files = [path for folder in folders for path in folder.glob("[0-9][0-9][0-9]_*.sql")]
    return sorted(files, key=lambda path: (path.name[:3], folders[path.parent], path.name))


def migration_files() -> list[Path]:
    """`sql/migrations/NNNN_*.sql`, in name order: the order they run in."""
    return sorted(MIGRATIONS_DIR.glob("[0-9][0-9][0-9][0-9]_*.sql"))


def named(path: Path) -> str:
    """A file's name as setup reports it: relative to `sql/` (`schema/001_live_tables.sql`)."""
    return path.relative_to(SQL_DIR).as_posix()


def checksum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def column_definitions(table: Table) -> sql.Composed:
    """`name TYPE, ...` of a table's snapshot columns."""
    from psycopg import sql

    return sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(DDL_TYPES[table.column(name).pg_type]))
        for name in table.snapshot_columns)


def snapshot_table_ddl(table: Table) -> sql.Composed:
    """`sql/schema/002_snapshot_table.sql` for one snapshot table: its name and columns from the registry."""
    from psycopg import sql

    return sql.SQL(SNAPSHOT_TABLE_DDL.read_text(encoding="utf-8")).format(
        snapshot_table=sql.Identifier(table.snapshot_table), columns=column_definitions(table))


def training_set_function() -> sql.Composed:
    """`sql/functions/005_training_set.sql`: the snapshot tables joined on (user_id, as_of), all their columns."""
    from psycopg import sql

    first, *others = SNAPSHOTTED

    def qualified(table: Table, name: str) -> sql.Identifier:
        return sql.Identifier(table.snapshot_table, name)

    return sql.SQL(TRAINING_SET.read_text(encoding="utf-8")).format(
        columns=sql.SQL(",\n  ").join(column_definitions(table) for table in SNAPSHOTTED),
        selected=sql.SQL(",\n         ").join(
            qualified(table, name) for table in SNAPSHOTTED for name in table.snapshot_columns),
        first=sql.Identifier(first.snapshot_table),
        joins=sql.SQL("\n  ").join(
            sql.SQL("JOIN {table} ON {user} = {first_user} AND {as_of} = {first_as_of}").format(
                table=sql.Identifier(table.snapshot_table), user=qualified(table, "user_id"),
                first_user=qualified(first, "user_id"), as_of=qualified(table, "as_of"),
                first_as_of=qualified(first, "as_of"))
            for table in others))


#: The definition files rendered from the registry, and how: each gives the statements to run.
RENDERED = {
    SNAPSHOT_TABLE_DDL: lambda: [snapshot_table_ddl(table) for table in SNAPSHOTTED],
    TRAINING_SET: lambda: [training_set_function()],
}


def definitions(path: Path) -> list[str | sql.Composed]:
    """The statements one definition file runs: the file as written, or as rendered from the registry."""
    if path in RENDERED:
        return RENDERED[path]()
    return [path.read_text(encoding="utf-8")]


def apply_schema(conn: psycopg.Connection) -> list[str]:
    """Apply the definitions, then the pending migrations, in one transaction.

    Returns the files run (relative to `sql/`): every definition file, then each migration that ran.
    Raises MigrationChanged, naming the file, when a migration already applied has changed.
    """
    ran = []
    with conn.transaction():
        # A lock that cannot be had in time is an error naming the wait, not a silent hang.
        conn.execute("SELECT set_config('lock_timeout', %s, true)", (LOCK_TIMEOUT,))
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_KEY,))
        (new,) = conn.execute(queries.text("schema_is_new")).fetchone()
        for path in definition_files():
            for statement in definitions(path):
                conn.execute(statement)
            ran.append(named(path))
        applied = {filename: (digest, at) for filename, digest, at in conn.execute(queries.text("applied_migrations"))}
        for path in migration_files():
            digest = checksum(path)
            if path.name in applied:
                recorded, at = applied[path.name]
                if recorded != digest:
                    raise MigrationChanged(
                        f"{named(path)} has changed since this database applied it ({at:%Y-%m-%d %H:%M}, sha256 "
                        f"{recorded[:12]}…, now {digest[:12]}…): a migration that ran is history; restore the file "
                        "and put the change in a new migration")
                continue
            if not new:
                conn.execute(path.read_text(encoding="utf-8"))
                ran.append(named(path))
            conn.execute(queries.text("record_migration"),
                         {"filename": path.name, "checksum": digest, "baselined": new})
    return ran
