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
from tests.dags.conftest import DAGS_FOLDER

ALLOWED_TAGS = {"streamflow", "ingest", "training"}
DAG_IDS = ["ingest_month", "training_set"]


def test_no_import_errors(dag_bag):
    assert dag_bag.import_errors == {}
    assert sorted(dag_bag.dag_ids) == DAG_IDS


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_policy_owner_tags(dag_bag, dag_id):
    dag = dag_bag.dags[dag_id]
    assert set(dag.tags) <= ALLOWED_TAGS
    assert dag.tags
    for task in dag.tasks:
        assert task.owner == "data-platform", task.task_id


def test_retries(ingest_month):
    retried = [t for t in ingest_month.tasks if t.task_id not in ("wait_for_month", "resolve_month")]
    # transient errors (connection lost, also while validating) are retried, with a growing delay; bad input
    # (a failed expectation too) is not: fail_fast
    assert {(t.retries, t.retry_exponential_backoff) for t in retried} == {(2, 2.0)}
    assert ingest_month.get_task("resolve_month").retries == 0  # reads files only: nothing transient
    assert ingest_month.get_task("wait_for_month").retries == 0  # a retried timeout would only wait again


def test_every_task_that_can_raise_a_data_error_fails_fast(ingest_month):
    """Bad input fails the task at once (fail_fast), snapshots included: only the sensor (it fails on its own
    terms) and the idempotent DDL raise nothing of the kind."""
    failing_fast = {t.task_id for t in ingest_month.tasks
                    if getattr(getattr(t, "python_callable", None), "fails_fast", False)}
    assert {t.task_id for t in ingest_month.tasks} - failing_fast == {"wait_for_month", "ensure_schema"}


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_tasks_push_one_xcom_not_one_per_key(dag_bag, dag_id):
    # A `-> dict` task defaults to multiple_outputs: an Execution API call per key of its result.
    assert [t.task_id for t in dag_bag.dags[dag_id].tasks if getattr(t, "multiple_outputs", False)] == []


def test_every_task_logs_the_cpu_of_its_own_code(ingest_month, caplog):
    """The bench tells the pipeline's client CPU from Airflow's by this log line of each task."""
    import logging
    import time

    from streamflow.airflow_glue import CPU_LOG_EVENT

    hooks = {(t._pre_execute_hook, t._post_execute_hook) for t in ingest_month.tasks}
    assert len(hooks) == 1
    start, log_cpu = hooks.pop()
    start({})
    busy_until = time.process_time() + 0.05
    while time.process_time() < busy_until:
        pass
    with caplog.at_level(logging.INFO, logger="streamflow.airflow_glue"):
        log_cpu({}, {"rows": 1})
    [message] = [r.getMessage() for r in caplog.records if r.getMessage().startswith(CPU_LOG_EVENT)]
    assert 0.05 <= float(message[len(CPU_LOG_EVENT):].split()[0]) < 5


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
    dependents = [f"stage_{t.name}" for t in DEPENDENT_TABLES]
    validations = {f"validate.{t.name}" for t in TABLES}
    snapshots = {f"snapshot_{t.name}" for t in SNAPSHOTTED}
    assert set(upstream) == {"wait_for_month", "resolve_month", "ensure_schema", "stage_users", *dependents,
                             *validations, "publish", *snapshots}
    assert upstream["wait_for_month"] == set()
    assert upstream["resolve_month"] == {"wait_for_month"}  # files checked against the marker once it is there
    assert upstream["ensure_schema"] == {"resolve_month"}
    assert upstream["stage_users"] == {"resolve_month", "ensure_schema"}
    for task_id in dependents:  # the five run in parallel, after users
        assert upstream[task_id] == {"resolve_month", "stage_users"}
    for task_id in validations:  # every validation waits for every stage task
        assert ingest_month.get_task(task_id).get_flat_relative_ids(upstream=True) >= {"stage_users", *dependents}
    # nothing is published before the whole validation group passed; no snapshot before the publish
    assert upstream["publish"] == {"resolve_month", *validations}
    for task_id in snapshots:
        assert upstream[task_id] == {"resolve_month", "publish"}
    assert len(snapshots) == 5


def test_each_snapshot_task_updates_its_snapshot_table_asset(ingest_month):
    from airflow.sdk import Asset

    for table in SNAPSHOTTED:
        outlets = ingest_month.get_task(f"snapshot_{table.name}").outlets
        assert outlets == [Asset(uri=f"postgres://warehouse:5432/streamflow/public/{table.snapshot_table}",
                                 name=table.snapshot_table, group="streamflow_snapshots")]
    others = [t.task_id for t in ingest_month.tasks if t.outlets and not t.task_id.startswith("snapshot_")]
    assert others == []


def test_training_set_is_scheduled_on_all_five_snapshot_assets(dag_bag):
    training_set = dag_bag.dags["training_set"]
    assert type(training_set.timetable).__name__ == "AssetTriggeredTimetable"
    condition = training_set.timetable.asset_condition
    assert type(condition).__name__ == "AssetAll"  # every one of them, not any
    assert sorted(asset.uri for asset in condition.objects) == sorted(t.snapshot_asset_uri for t in SNAPSHOTTED)
    assert [t.task_id for t in training_set.topological_sort()] == ["announced_as_of", "build"]
    assert training_set.get_task("announced_as_of").retries == 0  # mismatched events cannot fix themselves


def test_asset_uris_pass_the_postgres_providers_normalisation():
    from urllib.parse import urlsplit

    from airflow.providers.postgres.assets.postgres import sanitize_uri

    for table in SNAPSHOTTED:
        assert sanitize_uri(urlsplit(table.snapshot_asset_uri)).geturl() == table.snapshot_asset_uri


def test_month_field_offers_the_month_folders_present(ingest_month):

    assert ingest_month.params.get_param("month").schema["examples"] == ["month_000", "month_001"]


def test_available_months_ignores_what_is_not_a_month_folder(tmp_path):
    from streamflow import months

    for name in ("month_002", "month_000", "month_1", "notes", "month_0010"):
        (tmp_path / name).mkdir()
    (tmp_path / "month_003").write_text("a file, not a folder")
    assert months.available(tmp_path) == ["month_000", "month_002"]
    assert months.available(tmp_path / "missing") == []


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
        import airflow.sdk
        started = time.perf_counter()
        bag = DagBag(dag_folder=sys.argv[1])
        elapsed = time.perf_counter() - started
        print(json.dumps({"seconds": elapsed, "errors": {k: str(v) for k, v in bag.import_errors.items()},
                          "dags": list(bag.dag_ids),
                          "heavy": sorted(m for m in ("great_expectations", "pandas", "psycopg") if m in sys.modules)}))
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(DAGS_FOLDER.parent / p) for p in ("include", "plugins"))}
    result = subprocess.run([sys.executable, "-c", probe, str(DAGS_FOLDER)], capture_output=True, text=True,
                            check=True, env=env)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["errors"] == {}
    assert sorted(report["dags"]) == DAG_IDS
    assert report["heavy"] == [], "the DAG file must not import these at parse time"
    assert report["seconds"] < 2.0, report


def test_validation_plugin_declares_its_app_and_tabs_and_imports_light():
    """In a fresh interpreter: the plugin module pulls in neither psycopg nor Great Expectations."""
    probe = textwrap.dedent("""
        import json, sys
        import streamflow_validation_view as plugin
        views = plugin.StreamflowValidationViewPlugin.external_views
        apps = plugin.StreamflowValidationViewPlugin.fastapi_apps
        print(json.dumps({"views": [(v["destination"], v["href"]) for v in views],
                          "prefixes": [a["url_prefix"] for a in apps],
                          "routes": sorted(r.path for r in plugin.app.routes),
                          "heavy": sorted(m for m in ("great_expectations", "pandas", "psycopg") if m in sys.modules)}))
    """)
    root = DAGS_FOLDER.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(root / p) for p in ("include", "plugins"))}
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["heavy"] == []
    assert report["prefixes"] == ["/streamflow"]
    assert report["views"] == [
        ["task_instance", "/streamflow/validation/{DAG_ID}/{RUN_ID}/{TASK_ID}"],
        ["dag_run", "/streamflow/validation/{DAG_ID}/{RUN_ID}"],
    ]
    assert report["routes"] == ["/validation/{dag_id}/{run_id}", "/validation/{dag_id}/{run_id}/{task_id}"]


def test_a_deadline_alert_per_run_on_the_months_end_calls_the_late_month_callback(ingest_month):
    from datetime import timedelta

    from airflow.sdk import AsyncCallback
    from streamflow_deadline import MonthPublishDeadline

    from streamflow import settings

    [alert] = ingest_month.deadline if isinstance(ingest_month.deadline, list) else [ingest_month.deadline]
    assert isinstance(alert.reference, MonthPublishDeadline)
    assert alert.interval == timedelta(days=settings.DEFAULT_PUBLISH_DEADLINE_DAYS)
    assert isinstance(alert.callback, AsyncCallback)  # the triggerer runs it: no worker slot, no executor callback
    assert alert.callback.path == "streamflow.alerts.month_late"


def test_the_deadline_reference_is_registered_by_a_plugin_under_the_name_the_dag_serializes():
    from airflow.serialization.encoders import encode_deadline_reference
    from streamflow_deadline import MonthPublishDeadline, StreamflowDeadlinePlugin

    encoded = encode_deadline_reference(MonthPublishDeadline())
    assert encoded["__class_path"] == "streamflow_deadline.MonthPublishDeadline"
    assert StreamflowDeadlinePlugin.deadline_references == [MonthPublishDeadline]


def test_the_wait_is_a_deferrable_sensor_whose_trigger_keeps_its_deadline_across_restarts():
    from streamflow_month_wait import MonthCompleteTrigger

    trigger = MonthCompleteTrigger("/seeds/month_002", "2024-03-08T00:00:00+00:00", 2.0)
    path, kwargs = trigger.serialize()
    assert path == "streamflow_month_wait.MonthCompleteTrigger"
    assert MonthCompleteTrigger(**kwargs).give_up_at == "2024-03-08T00:00:00+00:00"  # absolute, not "7 days from now"
