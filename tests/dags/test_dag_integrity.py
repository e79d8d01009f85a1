"""The DAG parses cleanly, fast, without Great Expectations, and is wired as the pipeline diagram."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC

import pytest

from streamflow.registry import DEPENDENT_TABLES, SNAPSHOTTED, TABLES

ALLOWED_TAGS = {"streamflow", "ingest"}


def test_no_import_errors(dag_bag):
    assert dag_bag.import_errors == {}
    assert list(dag_bag.dag_ids) == ["ingest_month"]


def test_policy_owner_tags_retries(ingest_month):
    assert set(ingest_month.tags) <= ALLOWED_TAGS
    assert ingest_month.tags
    for task in ingest_month.tasks:
        assert task.owner == "data-platform", task.task_id
    upserts = [t for t in ingest_month.tasks if t.task_id.startswith("upsert_")]
    assert {t.retries for t in upserts} == {2}  # transient errors (connection lost) are retried
    fail_fast = ["resolve_month", *(f"validate.{t.name}" for t in TABLES)]
    assert {ingest_month.get_task(task_id).retries for task_id in fail_fast} == {0}


def test_schedule_is_a_real_monthly_interval_with_catchup(ingest_month):
    from datetime import datetime

    from airflow.timetables.interval import CronDataIntervalTimetable

    assert isinstance(ingest_month.timetable, CronDataIntervalTimetable)
    assert ingest_month.timetable.summary.startswith("@monthly")
    assert ingest_month.catchup is True
    assert ingest_month.max_active_runs == 1
    assert ingest_month.start_date == datetime(2024, 1, 1, tzinfo=UTC)
    # No DAG end_date: it would give manual runs after it no task instances at all.
    assert ingest_month.end_date is None
    assert {task.end_date for task in ingest_month.tasks} == {None}


def catch_up(timetable, start, now):
    """The data intervals catch-up would create between `start` and `now`, as the scheduler asks."""
    from airflow.timetables.base import TimeRestriction

    intervals, last = [], None
    while (info := timetable.next_dagrun_info(
            last_automated_data_interval=last,
            restriction=TimeRestriction(earliest=start, latest=None, catchup=True))) and info.run_after <= now:
        intervals.append((info.data_interval.start.date().isoformat(), info.data_interval.end.date().isoformat()))
        last = info.data_interval
    return intervals


def test_catch_up_creates_exactly_the_configured_months():
    import pendulum
    from streamflow_timetable import MonthlyThrough

    start, now = pendulum.datetime(2024, 1, 1), pendulum.datetime(2026, 11, 28)
    assert catch_up(MonthlyThrough(pendulum.datetime(2024, 3, 1)), start, now) == [
        ("2024-01-01", "2024-02-01"), ("2024-02-01", "2024-03-01")]
    assert len(catch_up(MonthlyThrough(None), start, now)) == 34  # open-ended: every month up to now


def test_timetable_survives_serialization():
    import pendulum
    from streamflow_timetable import MonthlyThrough

    for end in (pendulum.datetime(2024, 3, 1), None):
        timetable = MonthlyThrough.deserialize(MonthlyThrough(end).serialize())
        assert timetable.last_interval_end == end


def test_last_month_setting_maps_to_the_interval_end(monkeypatch):
    from datetime import datetime

    from streamflow import settings

    monkeypatch.setenv("STREAMFLOW_LAST_MONTH", "2024-12")
    assert settings.schedule_last_interval_end() == datetime(2025, 1, 1, tzinfo=UTC)
    monkeypatch.setenv("STREAMFLOW_LAST_MONTH", "")
    assert settings.schedule_last_interval_end() is None


def test_tasks_and_order(ingest_month):
    upstream = {t.task_id: set(t.upstream_task_ids) for t in ingest_month.tasks}
    dependents = [f"upsert_{t.name}" for t in DEPENDENT_TABLES]
    validations = {f"validate.{t.name}" for t in TABLES}
    snapshots = {f"snapshot_{t.name}" for t in SNAPSHOTTED}
    assert set(upstream) == {"resolve_month", "ensure_schema", "upsert_users", *dependents, *validations, *snapshots}
    assert upstream["resolve_month"] == set()
    assert upstream["ensure_schema"] == {"resolve_month"}
    assert upstream["upsert_users"] == {"resolve_month", "ensure_schema"}
    for task_id in dependents:  # the five run in parallel, after users
        assert upstream[task_id] == {"resolve_month", "upsert_users"}
    for task_id in validations:  # every validation waits for every upsert
        assert ingest_month.get_task(task_id).get_flat_relative_ids(upstream=True) >= {"upsert_users", *dependents}
    for task_id in snapshots:  # no snapshot before the whole validation group passed
        assert upstream[task_id] == validations
    assert len(snapshots) == 5


def test_snapshot_tasks_bind_as_of(ingest_month):
    task = ingest_month.get_task("snapshot_labels")
    assert task.sql.startswith("-- Freeze one live table")  # sql/stamp_snapshot.sql, rendered at parse
    assert "streamflow_may_stamp(%(as_of)s::date, 'labels_snapshots');" in task.sql
    # No Jinja left for run time: a run's conf can override params, so none may reach the SQL.
    assert "{{" not in task.sql
    assert "{%" not in task.sql
    assert not set(task.params) - set(ingest_month.params)
    assert task.split_statements is True
    assert set(task.parameters) == {"as_of", "restamp"}
    assert "resolve_month" in task.parameters["as_of"]


@pytest.mark.parametrize("month", ["month_000", "month_123", None])
def test_month_param_accepts(ingest_month, month):
    from airflow.sdk.definitions.param import Param

    param = ingest_month.params.get_param("month")
    assert Param(month, **param.schema).resolve() == month


@pytest.mark.parametrize(
    "month", ["../x", "month_1", "month_0001", "month_000; DROP TABLE users", "MONTH_000", 3, "month_001\n"])
def test_month_param_rejects(ingest_month, month):
    from airflow.sdk.definitions.param import Param
    from airflow.sdk.exceptions import ParamValidationError

    param = ingest_month.params.get_param("month")
    with pytest.raises(ParamValidationError):
        Param(month, **param.schema).resolve()


def test_parse_is_fast_and_does_not_import_great_expectations(tmp_path):
    """In a fresh interpreter: time the DAG file's parse alone (Airflow itself already imported)."""
    probe = textwrap.dedent("""
        import json, sys, time
        from airflow.dag_processing.dagbag import DagBag
        import airflow.sdk, airflow.providers.common.sql.operators.sql
        started = time.perf_counter()
        bag = DagBag(dag_folder=sys.argv[1])
        elapsed = time.perf_counter() - started
        print(json.dumps({"seconds": elapsed, "errors": {k: str(v) for k, v in bag.import_errors.items()},
                          "dags": list(bag.dag_ids),
                          "heavy": sorted(m for m in ("great_expectations", "pandas", "psycopg") if m in sys.modules)}))
    """)
    from tests.dags.conftest import DAGS_FOLDER

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(DAGS_FOLDER.parent / p) for p in ("include", "plugins"))}
    result = subprocess.run([sys.executable, "-c", probe, str(DAGS_FOLDER)], capture_output=True, text=True,
                            check=True, env=env)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["errors"] == {}
    assert report["dags"] == ["ingest_month"]
    assert report["heavy"] == [], "the DAG file must not import these at parse time"
    assert report["seconds"] < 2.0, report
