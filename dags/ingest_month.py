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

from datetime import UTC, datetime

from airflow.sdk import dag, task, task_group
from streamflow_deadline import MonthPublishDeadline
from streamflow_month_wait import MonthCompleteSensor
from streamflow_timetable import MonthlyThrough

from streamflow import ids, settings
from streamflow.airflow_glue import (
    SNAPSHOT_ASSETS,
    announce,
    default_args,
    fail_fast,
    ingest_params,
    late_month_deadline,
    pipeline_step,
    warehouse_connection,
    warehouse_sqlalchemy_url,
)
from streamflow.registry import DEPENDENT_TABLES, SNAPSHOTTED, TABLES, USERS


@dag(
    dag_id=ids.DAG_ID,
    # CronDataIntervalTimetable("@monthly") that stops after STREAMFLOW_LAST_MONTH (see the plugin for why).
    schedule=MonthlyThrough(settings.schedule_last_interval_end()),
    start_date=datetime(2024, 1, 1, tzinfo=UTC),
    catchup=True,
    max_active_runs=1,
    tags=["streamflow", "ingest"],
    default_args=default_args(),  # retried: a lost connection; failed at once: bad input (fail_fast)
    deadline=late_month_deadline(MonthPublishDeadline()),  # not published N days after its interval ends
    doc_md=__doc__,
    params=ingest_params(),
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
        """#### Create what is missing (sql/schema, sql/functions), run pending sql/migrations; drop stale staging."""
        from streamflow.pipeline import ensure_schema

        with warehouse_connection() as conn:
            return ensure_schema(conn)

    @task(multiple_outputs=False)
    @fail_fast
    def stage(table_name: str, month: dict) -> dict:
        """#### Write: stream one CSV into the run's staging schema through the contract gate."""
        return pipeline_step("stage_table", table_name, month=month)

    @task(multiple_outputs=False)
    @fail_fast
    def validate(table_name: str, month: dict) -> dict:
        """#### Audit: Great Expectations suite of one staged table, every row, inside PostgreSQL."""
        return pipeline_step("validate_table", warehouse_sqlalchemy_url(), table_name, month=month)

    @task(multiple_outputs=False)
    @fail_fast
    def publish(month: dict) -> dict:
        """#### Publish: the six staged tables into the live tables and the ledger, one transaction."""
        return pipeline_step("publish_month", month=month)

    @task(multiple_outputs=False)
    @fail_fast
    def snapshot(table_name: str, month: dict, outlet_events=None) -> dict:
        """#### Freeze one live table at as_of (sql/queries/stamp_snapshot.sql); its asset event says what was stamped."""
        return announce(outlet_events, table_name, pipeline_step("stamp_snapshot", table_name, month=month))

    @task_group(group_id=ids.VALIDATE_GROUP_ID)
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
