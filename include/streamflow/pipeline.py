"""The steps of `ingest_month` as plain functions: what each Airflow task calls.

Each takes what it needs (a connection, a URL, the month) and returns a small JSON-able dict.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from streamflow import months, settings, snapshots, upsert, validation, validation_view
from streamflow.errors import DataError, MissingInput, OutOfOrderMonth
from streamflow.registry import SNAPSHOTTED, TABLES, table
from streamflow.snapshots import SNAPSHOT_POLICIES

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)


def prepare_month(month_param: str | None, data_interval_end: datetime | date | None,
                  snapshot_policy: str | None = None) -> dict:
    """Resolve the run's month and as_of, and check that all six files are there.

    Args:
        month_param: `month_NNN`, or None to use the data interval.
        data_interval_end: the run's data interval end (None for a run without one).
        snapshot_policy: one of SNAPSHOT_POLICIES (default "restamp"); recorded in the ledger.

    Raises:
        MissingInput: naming every missing folder or file; nothing has been written yet.
    """
    run = months.resolve_month(month_param, data_interval_end)
    seeds = settings.seeds_dir()
    missing = upsert.missing_files(seeds, run.month, TABLES)
    if missing:
        raise MissingInput(f"{run.month} (as_of {run.as_of}) cannot be loaded, missing: {', '.join(missing)}")
    policy = snapshot_policy or SNAPSHOT_POLICIES[0]
    if policy not in SNAPSHOT_POLICIES:
        raise DataError(f"snapshot_policy {policy!r} is not one of {', '.join(SNAPSHOT_POLICIES)}")
    log.info("loading %s from %s, as_of %s, snapshot policy %s", run.month, seeds / run.month, run.as_of, policy)
    return {**run.as_dict(), "snapshot_policy": policy}


def load_table(conn: psycopg.Connection, table_name: str, month: dict, run_id: str) -> dict:
    """Upsert one table from the month's CSV and write its ledger row, in one transaction.

    A file this month was already loaded from (same sha256 in the ledger) is a replay: nothing
    is applied and the ledger says `replayed`. That makes re-runs of the latest month cost one
    read of the file, and re-runs of older months (backfills, UI re-triggers) safe: applying
    them would roll the live tables back. An older month with any other file is refused.

    Raises:
        OutOfOrderMonth: not a replay, and a later month is loaded, or a month would be skipped, or
            the previous month is not fully stamped.
        ContractViolation / MissingInput: bad input; nothing written but a `failed` ledger row.
    """
    source = table(table_name)
    path = upsert.month_file(settings.seeds_dir(), month["month"], source)
    started = datetime.now(UTC)
    entry = {"run_id": run_id, "month": month["month"], "as_of": month["as_of"], "table_name": table_name,
             "file_path": str(path), "started_at": started, "snapshot_policy": month.get("snapshot_policy")}
    try:
        with conn.transaction():
            # One load of a table at a time: the order checks below and the write they guard are atomic.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"streamflow_load:{table_name}",))
            result = _replay(conn, source, path, month)
            status = "replayed"
            if result is None:
                assert_loadable(conn, month["as_of"])
                result, status = upsert.upsert_file(conn, source, path), "loaded"
            _write_ledger(conn, {**entry, **_ledger_counts(result), "status": status})
    except DataError as error:
        conn.rollback()
        with conn.transaction():
            _write_ledger(conn, {**entry, "status": "failed", "error": str(error)})
        raise
    if status == "replayed":
        log.info("%s of %s was already loaded from this very file: replay, nothing applied", table_name, month["month"])
    return {**result.as_dict(), "status": status}


def _replay(conn: psycopg.Connection, source, path, month: dict) -> upsert.UpsertResult | None:
    """The result of re-running a month from the file it was last loaded from; None otherwise."""
    if not path.is_file():
        return None
    loaded = conn.execute(
        "SELECT file_sha256, rows_in_file FROM ingestion_ledger WHERE month = %s AND table_name = %s"
        " AND status = 'loaded' ORDER BY id DESC LIMIT 1", (month["month"], source.name)).fetchone()
    if loaded is None or loaded[0] != upsert.file_sha256(path):
        return None
    columns, _ = upsert.read_header(path, source)
    return upsert.UpsertResult(
        table=source.name, file=str(path), sha256=loaded[0], rows=loaded[1], inserted=0, updated=0,
        unchanged=loaded[1], columns=tuple(columns),
        absent_columns=tuple(c for c in source.column_names if c not in columns), method="replay")


def assert_loadable(conn: psycopg.Connection, as_of: str) -> None:
    """Refuse a month that would break the order months apply in (`streamflow_assert_loadable`)."""
    import psycopg

    try:
        with conn.transaction():
            conn.execute("SELECT streamflow_assert_loadable(%s::date, %s)",
                         (as_of, [t.snapshot_table for t in SNAPSHOTTED]))
    except psycopg.errors.RaiseException as error:
        raise OutOfOrderMonth(f"{error.diag.message_primary}; {error.diag.message_hint}") from None


def _ledger_counts(result: upsert.UpsertResult) -> dict:
    return {"file_sha256": result.sha256, "rows_in_file": result.rows, "inserted": result.inserted,
            "updated": result.updated, "unchanged": result.unchanged, "absent_columns": list(result.absent_columns)}


LEDGER_COLUMNS = ("run_id", "month", "as_of", "table_name", "file_path", "file_sha256", "rows_in_file", "inserted",
                  "updated", "unchanged", "absent_columns", "status", "error", "started_at", "snapshot_policy")


def _write_ledger(conn: psycopg.Connection, entry: dict) -> None:
    from psycopg import sql

    values = {column: entry.get(column) for column in LEDGER_COLUMNS}
    values["absent_columns"] = values["absent_columns"] or []
    conn.execute(sql.SQL("INSERT INTO ingestion_ledger ({}) VALUES ({})").format(
        sql.SQL(", ").join(map(sql.Identifier, LEDGER_COLUMNS)),
        sql.SQL(", ").join(sql.Placeholder(column) for column in LEDGER_COLUMNS)), values)
    log.info("ledger: %s", {k: v for k, v in values.items() if k not in ("started_at",)})


def validate_table(conn: psycopg.Connection, sqlalchemy_url: str, table_name: str, month: dict, run_id: str,
                   dag_id: str = "ingest_month") -> dict:
    """Run one table's suite, keep and log the outcome, fail on any failed expectation.

    The log ends with a link to the validation view (served from `validation_results` by the
    API server), so whoever reads the log can open the same outcome in the UI.
    """
    outcomes = validation.run_suite(sqlalchemy_url, table(table_name))
    run = {"run_id": run_id, "month": month["month"], "as_of": month["as_of"]}
    validation.record_outcomes(conn, run, outcomes)
    view = settings.ui_url() + validation_view.view_path(dag_id, run_id, f"{validation_view.VALIDATE_TASK_PREFIX}{table_name}")
    log.info("%s\nValidation view: %s", validation.summarise(outcomes), view)
    validation.raise_if_failed(outcomes)
    return {"table": table_name, "view": view, "outcomes": validation.outcomes_as_dicts(outcomes)}


def stamp_snapshot(conn: psycopg.Connection, table_name: str, month: dict, run_id: str) -> dict:
    """Stamp one table's snapshot at the month's as_of; return what its asset event carries.

    `frozen` is true when a later month is loaded: the as_of was left as first stamped (a replay of
    an older month) and nothing was written; the DAG then emits no asset event. `changed` says
    whether this stamp wrote any row (a re-run of the latest month with the same files writes none).
    """
    from psycopg import sql

    source = table(table_name)
    restamp = (month.get("snapshot_policy") or SNAPSHOT_POLICIES[0]) == "restamp"
    _, as_of, inserted, updated, dropped, frozen = snapshots.stamp(
        conn, month["as_of"], (source,), restamp=restamp)[source.snapshot_table]
    (rows,) = conn.execute(sql.SQL("SELECT count(*) FROM {} WHERE as_of = %s").format(
        sql.Identifier(source.snapshot_table)), (as_of,)).fetchone()
    extra = {"as_of": as_of, "month": month["month"], "snapshot_table": source.snapshot_table, "rows": rows,
             "inserted": inserted, "updated": updated, "dropped": dropped,
             "changed": bool(inserted or updated or dropped), "frozen": frozen,
             "validation": validation_summary(conn, run_id)}
    log.info("%s at as_of %s: %s", source.snapshot_table, as_of,
             "frozen (a later month is loaded): nothing written" if frozen else
             f"{rows} rows; {inserted} inserted, {updated} updated, {dropped} dropped")
    return extra


def validation_summary(conn: psycopg.Connection, run_id: str) -> dict:
    """The run's validation as counts: the latest outcome of each table (a cleared task validates again)."""
    tables, expectations, passed = conn.execute(
        "SELECT count(DISTINCT table_name), count(*), count(*) FILTER (WHERE success) FROM validation_results AS v"
        " WHERE run_id = %s AND validated_at = (SELECT max(validated_at) FROM validation_results AS w"
        "                                       WHERE w.run_id = v.run_id AND w.table_name = v.table_name)",
        (run_id,)).fetchone()
    return {"tables": tables, "expectations": expectations, "passed": passed, "failed": expectations - passed}
