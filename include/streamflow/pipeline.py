"""The steps of `ingest_month` as plain functions: what each Airflow task calls.

Each takes what it needs (a connection, a URL, the month) and returns a small JSON-able dict.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from streamflow import months, settings, upsert, validation
from streamflow.errors import DataError, MissingInput, OutOfOrderMonth
from streamflow.registry import TABLES, table

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)


def prepare_month(month_param: str | None, data_interval_end: datetime | date | None) -> dict:
    """Resolve the run's month and as_of, and check that all six files are there.

    Raises:
        MissingInput: naming every missing folder or file; nothing has been written yet.
    """
    run = months.resolve_month(month_param, data_interval_end)
    seeds = settings.seeds_dir()
    missing = upsert.missing_files(seeds, run.month, TABLES)
    if missing:
        raise MissingInput(f"{run.month} (as_of {run.as_of}) cannot be loaded, missing: {', '.join(missing)}")
    log.info("loading %s from %s, as_of %s", run.month, seeds / run.month, run.as_of)
    return run.as_dict()


def load_table(conn: psycopg.Connection, table_name: str, month: dict, run_id: str) -> dict:
    """Upsert one table from the month's CSV and write its ledger row, in one transaction.

    Raises:
        OutOfOrderMonth: a later month is already loaded (no time travel).
        ContractViolation / MissingInput: bad input; nothing written but a `failed` ledger row.
    """
    source = table(table_name)
    path = upsert.month_file(settings.seeds_dir(), month["month"], source)
    started = datetime.now(UTC)
    entry = {"run_id": run_id, "month": month["month"], "as_of": month["as_of"], "table_name": table_name,
             "file_path": str(path), "started_at": started}
    try:
        with conn.transaction():
            assert_latest_month(conn, month["as_of"])
            result = upsert.upsert_file(conn, source, path)
            _write_ledger(conn, {**entry, **_ledger_counts(result), "status": "loaded"})
    except DataError as error:
        conn.rollback()
        with conn.transaction():
            _write_ledger(conn, {**entry, "status": "failed", "error": str(error)})
        raise
    return result.as_dict()


def assert_latest_month(conn: psycopg.Connection, as_of: str) -> None:
    """Refuse a month older than the latest loaded one (`streamflow_assert_latest_month` in SQL)."""
    import psycopg

    try:
        with conn.transaction():
            conn.execute("SELECT streamflow_assert_latest_month(%s::date)", (as_of,))
    except psycopg.errors.RaiseException as error:
        raise OutOfOrderMonth(f"{error.diag.message_primary}; {error.diag.message_hint}") from None


def _ledger_counts(result: upsert.UpsertResult) -> dict:
    return {"file_sha256": result.sha256, "rows_in_file": result.rows, "inserted": result.inserted,
            "updated": result.updated, "unchanged": result.unchanged, "absent_columns": list(result.absent_columns)}


LEDGER_COLUMNS = ("run_id", "month", "as_of", "table_name", "file_path", "file_sha256", "rows_in_file", "inserted",
                  "updated", "unchanged", "absent_columns", "status", "error", "started_at")


def _write_ledger(conn: psycopg.Connection, entry: dict) -> None:
    from psycopg import sql

    values = {column: entry.get(column) for column in LEDGER_COLUMNS}
    values["absent_columns"] = values["absent_columns"] or []
    conn.execute(sql.SQL("INSERT INTO ingestion_ledger ({}) VALUES ({})").format(
        sql.SQL(", ").join(map(sql.Identifier, LEDGER_COLUMNS)),
        sql.SQL(", ").join(sql.Placeholder(column) for column in LEDGER_COLUMNS)), values)
    log.info("ledger: %s", {k: v for k, v in values.items() if k not in ("started_at",)})


def validate_table(conn: psycopg.Connection, sqlalchemy_url: str, table_name: str, month: dict, run_id: str) -> dict:
    """Run one table's suite, keep and log the outcome, fail on any failed expectation."""
    outcomes = validation.run_suite(sqlalchemy_url, table(table_name))
    run = {"run_id": run_id, "month": month["month"], "as_of": month["as_of"]}
    validation.record_outcomes(conn, run, outcomes)
    safe_run_id = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)
    report = validation.write_html_report(
        settings.reports_dir() / "validation" / safe_run_id / f"{table_name}.html", run, outcomes)
    log.info("%s\nHTML report: %s", validation.summarise(outcomes), report)
    validation.raise_if_failed(outcomes)
    return {"table": table_name, "expectations": len(outcomes), "report": str(report)}
