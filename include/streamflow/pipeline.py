"""The steps of `ingest_month` as plain functions, in the DAG's order: what each Airflow task calls.

Write, audit, publish: `prepare_month` resolves the run's month and checks its files;
`ensure_schema` applies the DDL; the stage tasks write the files into the run's staging schema
(`stage_table`); the validation group checks the staged month (`validate_table`: the row rules,
then `audit_figures`, the month's figures against the months published before it); only then
does `publish_month` apply all six tables to the live tables in one transaction;
`stamp_snapshot` freezes them at as_of. Each step takes what it needs (a connection, a URL, the
run's `RunMonth`) and returns a small JSON-able dict. What the ledger records and decides (a
replay, the order months apply in) is `streamflow.ledger`'s.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from streamflow import (
    completeness,
    header,
    history,
    ids,
    ledger,
    metrics,
    months,
    publish,
    queries,
    settings,
    snapshots,
    stage,
    staging,
    user_sets,
    validation,
    validation_outcomes,
    validation_view,
)
from streamflow.errors import DataError, MissingInput, NotStaged
from streamflow.registry import TABLES, table
from streamflow.run import RunMonth

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

#: One publish at a time, whatever the run: the order checks and the writes they guard are atomic.
PUBLISH_LOCK = "streamflow_publish"


def prepare_month(month_param: str | None, data_interval_end: datetime | date | None, run_id: str,
                  snapshot_policy: str | None = None, accept: list[str] | None = None,
                  require_marker: bool = True) -> RunMonth:
    """Resolve the run's month and as_of, and check that all six files are there and match its marker.

    Args:
        month_param: `month_NNN`, or None to use the data interval.
        data_interval_end: the run's data interval end (None for a run without one).
        run_id: the DAG run's id.
        snapshot_policy: one of SNAPSHOT_POLICIES (None: the default, "restamp"); recorded in the ledger.
        accept: ids of checks against history (`<table>.<check>[.<column>]`) whose failure this run
            accepts (a month that really changed); recorded in the ledger.
        require_marker: False loads a month without its completeness marker (`_manifest.json`), a
            documented override for a manual run; the log says so.

    Returns:
        The run's month, what every later step is given (through XCom: `RunMonth.to_xcom()`).

    Raises:
        MissingInput: naming every missing folder or file; nothing has been written yet.
        MissingMarker / MarkerMismatch: no completeness marker, or files that differ from it.
        DataError: an unknown snapshot policy, or an `accept` id that names no check.
    """
    month = months.resolve_month(month_param, data_interval_end)
    seeds = settings.seeds_dir()
    missing = header.missing_files(seeds, month.month, TABLES)
    if missing:
        raise MissingInput(f"{month.month} (as_of {month.as_of}) cannot be loaded, missing: {', '.join(missing)}")
    if require_marker:
        completeness.verify(seeds / month.month)
    else:
        log.warning("%s: loading WITHOUT checking its completeness marker (require_marker off)", month.month)
    run = RunMonth(month.month, month.as_of.isoformat(), run_id, snapshot_policy, tuple(accept or ()))
    unknown = history.unknown_accepts(list(run.accept))
    if unknown:
        raise DataError(f"accept names no check against history: {', '.join(map(repr, unknown))}; the ids are "
                        "<table>.<check>[.<column>], as a failed check's log block gives them")
    log.info("loading %s from %s, as_of %s, snapshot policy %s%s", run.month, seeds / run.month, run.as_of,
             run.snapshot_policy, f", accepting {', '.join(run.accept)}" if run.accept else "")
    return run


def ensure_schema(conn: psycopg.Connection) -> list[str]:
    """Create what is missing (sql/schema, sql/functions: idempotent), run the pending sql/migrations,
    and drop the staging areas of runs that failed long ago (`staging.drop_stale`); return the files applied."""
    from streamflow.schema import apply_schema

    applied = apply_schema(conn)
    staging.drop_stale(conn)
    return applied


def stage_table(conn: psycopg.Connection, table_name: str, run: RunMonth) -> dict:
    """Write: stage one table's file for the run (the live tables are not touched).

    A month that would break the order months apply in is refused here already (unless the
    file is the one that month was loaded from: a replay), so a late or skipped month fails at
    its first task; `publish_month` checks again, under its lock, before it writes.

    Raises:
        OutOfOrderMonth: not a replay, and a later month is loaded, or a month would be skipped, or
            the previous month is not fully stamped.
        ContractViolation / MissingInput: bad input; nothing staged but a `failed` ledger row.
    """
    source = table(table_name)
    path = header.month_file(settings.seeds_dir(), run.month, source)
    entry = ledger.entry(run, source.name, path)
    loaded = ledger.replay_of(conn, run.month, table_name, lambda: path.is_file() and header.file_sha256(path))
    try:
        if loaded:
            staged = stage.stage_replay(conn, run.staging_schema, source, path, loaded, run.month, run.run_id)
        else:
            staged = stage.stage_file(conn, run.staging_schema, source, path, run.month, run.run_id)
            ledger.assert_loadable(conn, run.as_of)
        conn.commit()
    except DataError as error:
        conn.rollback()
        with conn.transaction():
            ledger.write(conn, {**entry, "status": "failed", "error": str(error)})
        raise
    return staged.as_dict()


def validate_table(conn: psycopg.Connection, sqlalchemy_url: str, table_name: str, run: RunMonth,
                   dag_id: str = ids.DAG_ID) -> dict:
    """Audit: run one table's suite on the run's staged month, then its checks against history
    (`audit_figures`); keep and log the outcome, fail on any failure of severity `fail` that the
    run does not accept (and then nothing is published). Warnings are kept and logged only.

    Every failing user_id of a failed expectation, with its value, goes to
    `validation_failing_keys`; the log keeps the short block and ends with a link to the
    validation view (served from `validation_results` by the API server).
    """
    schema = run.staging_schema
    with conn.transaction():  # not an implicit one: record_outcomes' transaction must be the outermost
        entry = staging.staged_entry(conn, schema, table_name)  # not only there: empty after a crash
    if entry is None:
        raise NotStaged(f"run {run.run_id}: {table_name} is not staged in {schema} (a failed stage task, or "
                        f"{staging.LOST}); clear the run's stage tasks so they stage the month again")
    if entry["method"] == stage.REPLAY:
        log.info("%s: %s is byte for byte the file %s was loaded from, validated when it was loaded: "
                 "nothing new to validate", table_name, entry["file_path"], run.month)
        return {"table": table_name, "view": None, "outcomes": [], "replay": True}
    outcomes = validation.run_suite(sqlalchemy_url, table(table_name), schema, run.as_of)
    outcomes += audit_figures(conn, table_name, run)
    validation_outcomes.record_outcomes(conn, run.to_xcom(), outcomes)
    task_id = f"{ids.VALIDATE_TASK_PREFIX}{table_name}"
    view = settings.ui_url() + validation_view.view_path(dag_id, run.run_id, task_id)
    log.info("%s\nValidation view: %s", validation_outcomes.summarise(outcomes), view)
    validation_outcomes.raise_if_failed(outcomes)
    return {"table": table_name, "view": view, "outcomes": validation_outcomes.outcomes_as_dicts(outcomes)}


def audit_figures(conn: psycopg.Connection, table_name: str, run: RunMonth) -> list[validation_outcomes.Outcome]:
    """The month-level audit of one staged table: compute its figures (`validation_metrics`, kept
    with its user_ids for the next month) and judge them against the months published before.

    Returns:
        One Outcome per check against history (skipped, saying why, when no month came before).
    """
    source, batch = table(table_name), staging.table_in(run.staging_schema, table_name)
    with conn.transaction():  # one: compute's lock on the user set lasts until record has kept the count
        figures = metrics.compute(conn, source, batch, run.as_of, run.run_id,
                                  user_sets.previous_users(conn, table_name, run.as_of))
        earlier = metrics.history(conn, table_name, run.as_of)
        metrics.record(conn, run, figures)
    return history.evaluate(source, figures, earlier, run.accept)


def publish_month(conn: psycopg.Connection, run: RunMonth) -> dict:
    """Publish: apply the run's six staged tables to the live tables and write their ledger rows,
    in one transaction, then drop the staging area (in that same transaction).

    A table staged from the very file its month was last loaded from is a replay: nothing is
    applied and the ledger says `replayed`. That makes re-runs of older months (backfills, UI
    re-triggers) safe: applying them would roll the live tables back. Anything else must pass
    the order checks (`streamflow_assert_loadable`), or nothing is published.

    A run whose staging is gone but whose six ledger rows are there was published already (the
    task was killed after its commit): that is returned, nothing is done twice.

    Raises:
        OutOfOrderMonth: see `stage_table`; `failed` ledger rows, nothing published.
        NotStaged: the run's staging area misses tables (its stage tasks must run again).
    """
    schema = run.staging_schema
    started = datetime.now(UTC)
    try:
        with conn.transaction():
            conn.execute("SELECT set_config('work_mem', %s, true)", (stage.WORK_MEM,))
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (PUBLISH_LOCK,))
            staged = staging.manifest(conn, schema)
            if not staged:
                done = ledger.published_already(conn, run.run_id)
                if done is not None:
                    log.info("%s was published by an earlier attempt of this run: nothing to do", run.month)
                    return {**run.to_xcom(), "tables": done}
            missing = [t.name for t in TABLES if t.name not in staged]
            if missing:
                raise NotStaged(f"run {run.run_id}: nothing staged for {', '.join(missing)} in {schema} (were they "
                                f"not, or {staging.LOST}?); clear the run's stage tasks (or the whole run) so "
                                "they stage the month again")
            replays = {t.name: ledger.replay_of(conn, run.month, t.name, staged[t.name]["file_sha256"]) is not None
                       for t in TABLES}
            if not all(replays.values()):
                ledger.assert_loadable(conn, run.as_of)
            with publish.keys_built_after_a_first_load(conn):
                applied = {source.name: _publish_table(conn, run, source, staged[source.name], replays[source.name])
                           for source in TABLES}  # users first: the other five reference it
            staging.drop(conn, schema)
            user_sets.prune(conn, run.as_of)
    except DataError as error:
        conn.rollback()
        with conn.transaction():
            for source in TABLES:
                ledger.write(conn, {**ledger.entry(run, source.name, ""), "started_at": started,
                                    "status": "failed", "error": str(error)})
        raise
    log.info("published %s (as_of %s) in %.1f s", run.month, run.as_of, (datetime.now(UTC) - started).total_seconds())
    return {**run.to_xcom(), "tables": applied}


def _publish_table(conn: psycopg.Connection, run: RunMonth, source, entry: dict, replay: bool) -> dict:
    """Apply one staged table (nothing for a replay) and write its ledger row; what `publish_month` returns for it."""
    rows = entry["rows_in_file"]
    result = (publish.Applied(source.name, rows, 0, 0, rows, "replay") if replay else
              publish.apply_staged(conn, run.staging_schema, source, entry["columns"], rows))
    status = "replayed" if replay else "loaded"
    ledger.write(conn, {**ledger.entry(run, source.name, entry["file_path"]),
                        "started_at": entry["staged_at"], "file_sha256": entry["file_sha256"],
                        "rows_in_file": rows, "inserted": result.inserted, "updated": result.updated,
                        "unchanged": result.unchanged, "absent_columns": entry["absent_columns"], "status": status})
    log.info("publish %s (%s): %d rows, %d inserted, %d updated, %d unchanged", source.name,
             result.method, rows, result.inserted, result.updated, result.unchanged)
    return {**result.as_dict(), "status": status, "absent_columns": list(entry["absent_columns"])}


def stamp_snapshot(conn: psycopg.Connection, table_name: str, run: RunMonth) -> dict:
    """Stamp one table's snapshot at the month's as_of; return what its asset event carries.

    `frozen` is true when a later month is loaded: the as_of was left as first stamped (a replay of
    an older month) and nothing was written; the DAG then emits no asset event. `changed` says
    whether this stamp wrote any row (a re-run of the latest month with the same files writes none).
    """
    from psycopg import sql

    source = table(table_name)
    _, as_of, inserted, updated, dropped, frozen = snapshots.stamp(
        conn, run.as_of, (source,), restamp=run.restamp)[source.snapshot_table]
    (rows,) = conn.execute(sql.SQL("SELECT count(*) FROM {} WHERE as_of = %s").format(
        sql.Identifier(source.snapshot_table)), (as_of,)).fetchone()
    extra = {"as_of": as_of, "month": run.month, "snapshot_table": source.snapshot_table, "rows": rows,
             "inserted": inserted, "updated": updated, "dropped": dropped,
             "changed": bool(inserted or updated or dropped), "frozen": frozen,
             "validation": validation_summary(conn, run.run_id)}
    log.info("%s at as_of %s: %s", source.snapshot_table, as_of,
             "frozen (a later month is loaded): nothing written" if frozen else
             f"{rows} rows; {inserted} inserted, {updated} updated, {dropped} dropped")
    return extra


def validation_summary(conn: psycopg.Connection, run_id: str) -> dict:
    """The run's validation as counts: the latest outcome of each table (a cleared task validates again);
    `failed` blocked the publish, `warnings` did not (severity warn, or accepted by the run)."""
    tables, expectations, passed, warnings = conn.execute(queries.text("run_validation_counts"),
                                                          {"run_id": run_id}).fetchone()
    return {"tables": tables, "expectations": expectations, "passed": passed,
            "failed": expectations - passed - warnings, "warnings": warnings}
