"""The ingestion ledger (`ingestion_ledger`, sql/004): one row per table a run staged, published or
failed, and the two questions the steps ask it.

* `replay_of`: the one replay decision. A table staged from the very file its month was last
  loaded from (same sha256) is a replay: nothing is staged, validated or applied again.
* `assert_loadable`: the order months apply in (`streamflow_assert_loadable`): no month after a
  later one, none skipped, the previous one fully stamped.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from streamflow import queries
from streamflow.errors import OutOfOrderMonth
from streamflow.registry import SNAPSHOTTED, TABLES

if TYPE_CHECKING:
    from collections.abc import Callable

    import psycopg

    from streamflow.run import RunMonth

log = logging.getLogger(__name__)

COLUMNS = ("run_id", "month", "as_of", "table_name", "file_path", "file_sha256", "rows_in_file", "inserted",
           "updated", "unchanged", "absent_columns", "status", "error", "started_at", "snapshot_policy",
           "accepted_checks")


def entry(run: RunMonth, table_name: str, path) -> dict:
    """The columns every ledger row of the run's table starts from (a step adds the outcome)."""
    return {"run_id": run.run_id, "month": run.month, "as_of": run.as_of, "table_name": table_name,
            "file_path": str(path), "started_at": datetime.now(UTC), "snapshot_policy": run.snapshot_policy,
            "accepted_checks": list(run.accept)}


def write(conn: psycopg.Connection, row: dict) -> None:
    """Add one ledger row (in the caller's transaction)."""
    from psycopg import sql

    values = {column: row.get(column) for column in COLUMNS}
    values["absent_columns"] = values["absent_columns"] or []
    values["accepted_checks"] = values["accepted_checks"] or []
    conn.execute(sql.SQL("INSERT INTO ingestion_ledger ({}) VALUES ({})").format(
        sql.SQL(", ").join(map(sql.Identifier, COLUMNS)),
        sql.SQL(", ").join(sql.Placeholder(column) for column in COLUMNS)), values)
    log.info("ledger: %s", {k: v for k, v in values.items() if k not in ("started_at",)})


def last_loaded(conn: psycopg.Connection, month: str, table_name: str) -> dict | None:
    """The ledger row of the file `month`'s table was last loaded from (sha256, rows, absent columns)."""
    from psycopg.rows import dict_row

    with conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(queries.text("ledger_last_loaded"), {"month": month, "table_name": table_name}).fetchone()


def replay_of(conn: psycopg.Connection, month: str, table_name: str,
              sha256: str | Callable[[], str | None]) -> dict | None:
    """The replay decision: the ledger row `month`'s table was last loaded from, when that file's
    sha256 is `sha256` (the file is a replay); None otherwise (it must be staged and checked).

    `sha256` may be a callable: it is called only when the month's table was loaded before (hashing
    a file costs a read of it).
    """
    loaded = last_loaded(conn, month, table_name)
    if loaded is None:
        return None
    digest = sha256() if callable(sha256) else sha256
    return loaded if digest == loaded["file_sha256"] else None


def published_already(conn: psycopg.Connection, run_id: str) -> dict | None:
    """The run's published tables from the ledger, when all six are there; None otherwise."""
    rows = conn.execute(queries.text("ledger_run_last_rows"), {"run_id": run_id}).fetchall()
    done = {name: {"table": name, "rows": total, "inserted": inserted, "updated": updated, "unchanged": unchanged,
                   "method": "replay" if status == "replayed" else "published", "status": status}
            for name, total, inserted, updated, unchanged, status in rows if status in ("loaded", "replayed")}
    return done if len(done) == len(TABLES) else None


def assert_loadable(conn: psycopg.Connection, as_of: str) -> None:
    """Refuse a month that would break the order months apply in (`streamflow_assert_loadable`)."""
    import psycopg

    try:
        with conn.transaction():
            conn.execute("SELECT streamflow_assert_loadable(%s::date, %s)",
                         (as_of, [t.snapshot_table for t in SNAPSHOTTED]))
    except psycopg.errors.RaiseException as error:
        raise OutOfOrderMonth(f"{error.diag.message_primary}; {error.diag.message_hint}") from None
