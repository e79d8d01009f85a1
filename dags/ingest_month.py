"""
### ingest_month: one month of StreamFlow CSVs into PostgreSQL: write, audit, publish, snapshot

Owner: data platform. Stages `month_NNN/` (six CSVs) from `STREAMFLOW_SEEDS_DIR` in a schema of
the run's own, validates every staged row with Great Expectations, publishes the six tables to
the live tables in one transaction, then freezes the snapshot tables at `as_of` = last day of
the month the run covers (`month_000` = January 2024). A month is published whole or not at all.

* **Scheduled / catch-up / backfill:** the data interval picks the month
  (`airflow backfill create --dag-id ingest_month --from-date 2024-01-01 --to-date 2024-02-29
  --max-active-runs 1`).
* **Waiting for a month:** a scheduled run waits (deferred, no worker slot) until the month's six
  files and its completeness marker `_manifest.json` are there, then checks every file against
  the marker (sha256, rows) before staging; after `STREAMFLOW_MONTH_WAIT_DAYS` it fails naming what
  is missing. Write the marker after the files: `python -m streamflow.completeness <month folder>`.
* **Late month:** not published `STREAMFLOW_PUBLISH_DEADLINE_DAYS` after its month ends (a run
  created later: after its creation), its Deadline Alert logs it in the triggerer and POSTs it
  to `STREAMFLOW_ALERT_WEBHOOK_URL`.
* **Manual:** trigger with `{"month": "month_001"}`; `as_of` follows from the month. A month
  without its marker fails at once; `{"require_marker": false}` loads it unchecked.
* **A failed validation** (a row rule, or a check of the month's figures against the months
  published before) fails the run before anything is published: the live tables keep the
  previous month. The `validate.<table>` task log lists each failed expectation with counts and
  sample user_ids and links to the **Validation** tab; every failing user_id is in the table
  `validation_failing_keys`. Fix the file, then clear the run (or trigger the month again). A
  month that really changed: trigger it with `{"accept": ["<table>.<check>[.<column>]"]}` (the
  ids the log gives); the ledger records what was accepted.
* **Assets:** each `snapshot_<table>` updates its snapshot table's asset (`extra`: as_of, month,
  rows, validation summary); `training_set` runs when all five are updated. A replay of an older
  month skips them: frozen snapshots, no event.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import AsyncCallback, DeadlineAlert, Param, dag, task, task_group
from streamflow_deadline import MonthPublishDeadline
from streamflow_month_wait import MonthCompleteSensor
from streamflow_timetable import MonthlyThrough

from streamflow import alerts, months, settings
from streamflow.airflow_glue import (
    CPU_CLOCK,
    SNAPSHOT_ASSETS,
    announce,
    fail_fast,
    warehouse_connection,
    warehouse_sqlalchemy_url,
)
from streamflow.history import CHECK_ID_PATTERN
from streamflow.registry import DEPENDENT_TABLES, SNAPSHOTTED, TABLES, USERS
from streamflow.run import RunMonth
from streamflow.snapshots import SNAPSHOT_POLICIES


@dag(
    # CronDataIntervalTimetable("@monthly") that stops after STREAMFLOW_LAST_MONTH (see the plugin for why).
    schedule=MonthlyThrough(settings.schedule_last_interval_end()),
    start_date=datetime(2024, 1, 1, tzinfo=UTC),
    catchup=True,
    max_active_runs=1,
    tags=["streamflow", "ingest"],
    # A lost connection (server restarting, a killed worker) is retried after 30 s, then about twice
    # that; bad input fails at once (fail_fast).
    default_args={"owner": "data-platform", "retries": 2,
                  "retry_delay": timedelta(seconds=settings.retry_delay_seconds()), "retry_exponential_backoff": 2.0,
                  **CPU_CLOCK},
    # Late month: not published N days after its interval ends (the triggerer runs the callback); 0 days: none.
    deadline=[DeadlineAlert(reference=MonthPublishDeadline(), callback=AsyncCallback(alerts.month_late),
                            interval=timedelta(days=settings.publish_deadline_days()))]
    if settings.publish_deadline_days() else None,
    doc_md=__doc__,
    params={
        "month": Param(
            # The length too: JSON Schema's `$` also matches before a trailing newline.
            None, type=["null", "string"], pattern=months.MONTH_NAME_PATTERN, minLength=9, maxLength=9,
            title="Month folder (month_NNN)", examples=months.available(settings.seeds_dir()),
            description="Load this month instead of the one the data interval covers (pick one of the folders "
                        "present, or type a name); empty for scheduled runs.",
        ),
        "require_marker": Param(
            True, type="boolean", title="Require the completeness marker",
            description="Off: load a month that has no `_manifest.json` (its six files must be there), unchecked.",
        ),
        "snapshot_policy": Param(
            "restamp", type="string", enum=list(SNAPSHOT_POLICIES), title="If this as_of is already stamped",
            description="restamp: bring its snapshots up to the (corrected) live state; immutable: leave them.",
        ),
        "accept": Param(
            [], type="array", items={"type": "string", "pattern": CHECK_ID_PATTERN}, uniqueItems=True,
            title="Accept these failed checks against history",
            description="For a month that really changed: ids of failed checks (`<table>.<check>[.<column>]`, as the "
                        "validate task's log names them) that this run publishes anyway; recorded in the ledger.",
        ),
    },
)
def ingest_month():
    # multiple_outputs=False: a `-> dict` task would otherwise push each key as an XCom of its own
    # besides the whole dict (an API call per key, read by nobody).
    @task(retries=0, multiple_outputs=False)
    @fail_fast
    def resolve_month(params=None, data_interval_end=None, run_id=None) -> dict:
        """#### Which month, which as_of; all six files there, each the one its marker describes?"""
        from streamflow.pipeline import prepare_month

        return prepare_month(params.get("month"), data_interval_end, run_id, params.get("snapshot_policy"),
                             params.get("accept"), require_marker=params.get("require_marker", True)).to_xcom()

    @task
    def ensure_schema() -> list[str]:
        """#### Create the live, snapshot and bookkeeping tables if missing (idempotent DDL); drop stale staging."""
        from streamflow.schema import apply_schema
        from streamflow.staging import drop_stale

        with warehouse_connection() as conn:
            applied = apply_schema(conn)
            drop_stale(conn)
            return applied

    @task(multiple_outputs=False)
    @fail_fast
    def stage(table_name: str, month: dict) -> dict:
        """#### Write: stream one CSV into the run's staging schema through the contract gate."""
        from streamflow.pipeline import stage_table

        with warehouse_connection() as conn:
            return stage_table(conn, table_name, RunMonth.from_xcom(month))

    @task(multiple_outputs=False)
    @fail_fast
    def validate(table_name: str, month: dict) -> dict:
        """#### Audit: Great Expectations suite of one staged table, every row, inside PostgreSQL."""
        from streamflow.pipeline import validate_table

        with warehouse_connection() as conn:
            return validate_table(conn, warehouse_sqlalchemy_url(), table_name, RunMonth.from_xcom(month))

    @task(multiple_outputs=False)
    @fail_fast
    def publish(month: dict) -> dict:
        """#### Publish: the six staged tables into the live tables and the ledger, one transaction."""
        from streamflow.pipeline import publish_month

        with warehouse_connection() as conn:
            return publish_month(conn, RunMonth.from_xcom(month))

    @task(multiple_outputs=False)
    def snapshot(table_name: str, month: dict, outlet_events=None) -> dict:
        """#### Freeze one live table at as_of (sql/stamp_snapshot.sql); its asset event says what was stamped."""
        from streamflow.pipeline import stamp_snapshot

        with warehouse_connection() as conn:
            return announce(outlet_events, table_name, stamp_snapshot(conn, table_name, RunMonth.from_xcom(month)))

    @task_group(group_id="validate")
    def validate_all(month: dict):
        for table in TABLES:
            validate.override(task_id=table.name)(table.name, month)

    # Scheduled: deferred until the month's files and marker are there; manual: there, or fail now.
    month_complete = MonthCompleteSensor(task_id="wait_for_month")
    month = resolve_month()
    users = stage.override(task_id=f"stage_{USERS}")(USERS, month)
    dependents = [stage.override(task_id=f"stage_{t.name}")(t.name, month) for t in DEPENDENT_TABLES]
    validated = validate_all(month)
    published = publish(month)
    snapshots = [snapshot.override(task_id=f"snapshot_{t.name}", outlets=[SNAPSHOT_ASSETS[t.name]])(t.name, month)
                 for t in SNAPSHOTTED]
    month_complete >> month >> ensure_schema() >> users >> dependents >> validated >> published >> snapshots


ingest_month()
