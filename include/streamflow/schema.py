"""Create the warehouse schema from the numbered DDL files in `sql/` (idempotent)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamflow.settings import SQL_DIR

if TYPE_CHECKING:
    import psycopg

# Serialises concurrent schema setup (CREATE TABLE IF NOT EXISTS races on the catalog).
_SCHEMA_LOCK_KEY = 8613_0001
# Setup should never wait on a table lock; if it must, this long and no longer, with an error.
LOCK_TIMEOUT = "60s"


def ddl_files() -> list:
    """`sql/NNN_*.sql` in order: live tables first, then snapshots and bookkeeping."""
    return sorted(SQL_DIR.glob("[0-9][0-9][0-9]_*.sql"))


def apply_schema(conn: psycopg.Connection) -> list[str]:
    """Run every DDL file in one transaction; return the file names applied."""
    applied = []
    with conn.transaction():
        # A lock that cannot be had in time is an error naming the wait, not a silent hang.
        conn.execute("SELECT set_config('lock_timeout', %s, true)", (LOCK_TIMEOUT,))
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_KEY,))
        for path in ddl_files():
            conn.execute(path.read_text(encoding="utf-8"))
            applied.append(path.name)
    return applied
