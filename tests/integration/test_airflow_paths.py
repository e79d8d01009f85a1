"""The real Airflow paths, end to end: scheduler + dag-processor + API server, as `make run` starts them.

One deployment for the whole module, on the session's PostgreSQL server but with databases of its
own (a fresh Airflow metadata database and a fresh warehouse), an AIRFLOW_HOME of its own and a
free port for the API server. The tests build on each other's state, in file order:

1. unpausing `ingest_month` makes catch-up create and run exactly January and February 2024;
2. `airflow backfill create --reprocess-behavior completed` re-runs both; each is a replay of the
   files it was loaded from (nothing re-applied, January's snapshots stay frozen), so no table changes;
3. a REST trigger (what the UI's trigger form does) of an older month replays it when its files are
   the ones it was loaded from and is refused at run time when they differ; a month name that is
   not `month_NNN` is rejected before any run exists;
4. a month whose data break a rule fails `validate.<table>`, and the API's log endpoint shows
   the failed expectation.

The seeds are a copy of data/seeds plus `month_002` (February's files with negative watch hours
for three users), so the whole stack runs with STREAMFLOW_SEEDS_DIR pointing at the copy.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from streamflow.local import airflow_stack, checks, pgserver
from streamflow.local.airflow_stack import DAG_ID, Stack
from streamflow.registry import SNAPSHOTTED, TABLES
from tests.conftest import connect, drop_database
from tests.helpers import copy_month_with_negative_watch_hours, live_hashes, table_hash
from tests.integration.conftest import airflow_env

if TYPE_CHECKING:
    from pathlib import Path

    import httpx
    import psycopg

pytestmark = pytest.mark.airflow

ROWS = 7043
JANUARY_RUN = "scheduled__2024-02-01T00:00:00+00:00"
FEBRUARY_RUN = "scheduled__2024-03-01T00:00:00+00:00"
#: resolve_month, ensure_schema, one upsert and one validate per table, one snapshot per snapshotted table.
TASKS_PER_RUN = 2 + 2 * len(TABLES) + len(SNAPSHOTTED)
FINISHED = ("success", "failed")
WAIT_S = 300


@dataclasses.dataclass
class Deployment:
    """What the tests need of the running stack."""

    stack: Stack
    api: httpx.Client
    metadata: psycopg.Connection  # Airflow's metadata database (autocommit)
    warehouse: psycopg.Connection  # the warehouse the DAG writes to (autocommit)
    broken_users: list[str]
    seeds: Path  # STREAMFLOW_SEEDS_DIR of the stack


# ---------------------------------------------------------------------------------------- fixtures


def _seeds_with_a_bad_month(source: Path, target: Path) -> list[str]:
    """Copy month_000/month_001; month_002 = month_001 with watch_hours_30d negated for 3 users."""
    for month in ("month_000", "month_001"):
        shutil.copytree(source / month, target / month)
    return copy_month_with_negative_watch_hours(source / "month_001", target / "month_002")


@pytest.fixture(scope="module")
def deployment(pg_server, seeds, tmp_path_factory):
    """Fresh metadata DB + warehouse, API server on a free port, then scheduler and dag-processor."""
    import httpx

    from streamflow.schema import apply_schema

    work = tmp_path_factory.mktemp("airflow-paths")
    broken_users = _seeds_with_a_bad_month(seeds, work / "seeds")
    suffix = uuid.uuid4().hex[:12]
    metadata_db, warehouse_db = f"airflow_paths_{suffix}", f"airflow_paths_wh_{suffix}"
    settings = dataclasses.replace(pg_server, database=warehouse_db, airflow_database=metadata_db)
    port = pgserver.free_port()
    env = airflow_env(settings, work / "airflow-home", AIRFLOW_API_PORT=str(port), STREAMFLOW_LAST_MONTH="2024-02",
                      STREAMFLOW_SEEDS_DIR=str(work / "seeds"), STREAMFLOW_REPORTS_DIR=str(work / "reports"))
    # The scheduler's log server defaults to the fixed port 8793: a free one, so a concurrent stack cannot clash.
    env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] = str(pgserver.free_port())
    stack = Stack(env)
    assert stack.port == port
    try:
        pgserver.ensure_databases(pg_server, metadata_db, warehouse_db)
        with connect(settings) as conn:
            apply_schema(conn)
        stack.migrate()
        stack.start_all(("scheduler", "dag-processor"))
        with (httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60, trust_env=False,
                           headers={"Accept": "application/json"}) as api,
              connect(dataclasses.replace(settings, database=metadata_db), autocommit=True) as metadata,
              connect(settings, autocommit=True) as warehouse):
            yield Deployment(stack, api, metadata, warehouse, broken_users, work / "seeds")
    finally:
        stack.stop_all()  # SIGTERM, then SIGKILL, to each process group the stack recorded
        for name in (metadata_db, warehouse_db):
            drop_database(pg_server, name)


@pytest.fixture(scope="module")
def caught_up(deployment):
    """Unpause the DAG through the API (the UI's toggle) and wait for catch-up; the runs right after it."""
    _wait(deployment, "ingest_month to be parsed", lambda: _dag_parsed(deployment))
    response = deployment.api.patch(f"/api/v2/dags/{DAG_ID}", json={"is_paused": False})
    assert response.status_code == 200, response.text
    assert response.json()["is_paused"] is False
    _wait(deployment, "catch-up to finish two runs",
          lambda: len(runs := _runs(deployment)) >= 2 and all(r["state"] in FINISHED for r in runs))
    return _runs(deployment)


# ------------------------------------------------------------------------------------------- tests


def test_unpause_catches_up_exactly_january_then_february(deployment, caught_up):
    assert [(r["run_id"], r["run_type"], r["data_interval_start"], r["data_interval_end"]) for r in caught_up] == [
        (JANUARY_RUN, "scheduled", _utc(2024, 1, 1), _utc(2024, 2, 1)),
        (FEBRUARY_RUN, "scheduled", _utc(2024, 2, 1), _utc(2024, 3, 1)),
    ]
    assert [r["state"] for r in caught_up] == ["success", "success"], _failures(deployment, caught_up)
    january, february = caught_up
    assert february["start_date"] >= january["end_date"]  # max_active_runs=1: one month after the other
    for run in caught_up:
        assert _task_states(deployment, run["run_id"]) == {"success": TASKS_PER_RUN}
    # STREAMFLOW_LAST_MONTH=2024-02 ends the schedule: no third run will ever be created.
    assert deployment.metadata.execute(
        "SELECT next_dagrun_create_after FROM dag WHERE dag_id = %s", (DAG_ID,)).fetchone() == (None,)

    found = checks.collect(deployment.warehouse)
    assert found["live"] == {t.name: ROWS for t in TABLES}
    assert found["snapshots"] == {t.snapshot_table: {"2024-01-31": ROWS, "2024-02-29": ROWS} for t in SNAPSHOTTED}
    assert found["as_of"] == ["2024-01-31", "2024-02-29"]
    assert found["churners"] == {"2024-01-31": 1869, "2024-02-29": 1701}
    loaded = deployment.warehouse.execute(
        "SELECT run_id, month, count(*) FROM ingestion_ledger WHERE status = 'loaded' GROUP BY 1, 2 ORDER BY 2"
    ).fetchall()
    assert loaded == [(JANUARY_RUN, "month_000", len(TABLES)), (FEBRUARY_RUN, "month_001", len(TABLES))]


def test_backfill_with_reprocess_reruns_both_months_and_changes_nothing(deployment, caught_up):
    before = _all_hashes(deployment.warehouse)
    previous = {r["run_id"]: r for r in _runs(deployment)}
    assert set(previous) == {JANUARY_RUN, FEBRUARY_RUN}

    result = deployment.stack.airflow("backfill", "create", "--dag-id", DAG_ID, "--from-date", "2024-01-01",
                                      "--to-date", "2024-02-29", "--reprocess-behavior", "completed", check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (backfill_id,) = deployment.metadata.execute("SELECT id FROM backfill WHERE dag_id = %s", (DAG_ID,)).fetchone()
    _wait(deployment, "the backfill to complete", lambda: deployment.metadata.execute(
        "SELECT completed_at IS NOT NULL FROM backfill WHERE id = %s", (backfill_id,)).fetchone()[0]
        and all(r["state"] in FINISHED for r in _runs(deployment)))

    # Airflow 3.3 re-runs a completed month by clearing its existing dag_run and re-queueing it: no new
    # rows, the same run_ids, run_type switched to 'backfill', the backfill's id set, clear_number + 1.
    runs = _runs(deployment)
    assert [(r["run_id"], r["run_type"], r["backfill_id"]) for r in runs] == [
        (JANUARY_RUN, "backfill", backfill_id), (FEBRUARY_RUN, "backfill", backfill_id)]
    for run in runs:
        assert run["clear_number"] == previous[run["run_id"]]["clear_number"] + 1
        assert run["start_date"] > previous[run["run_id"]]["end_date"]  # ran again, after the catch-up
    january, february = runs

    # February is the latest month: re-applied, every task ran a second time, nothing changed.
    assert february["state"] == "success", _failures(deployment, runs)
    assert _task_states(deployment, FEBRUARY_RUN) == {"success": TASKS_PER_RUN}
    first_start, lowest_try = deployment.metadata.execute(
        "SELECT min(start_date), min(try_number) FROM task_instance WHERE dag_id = %s AND run_id = %s",
        (DAG_ID, FEBRUARY_RUN)).fetchone()
    assert first_start > previous[FEBRUARY_RUN]["end_date"]
    assert lowest_try >= 2  # clearing a task instance starts a new try
    ledger = deployment.warehouse.execute(
        "SELECT status, inserted, updated, unchanged FROM ingestion_ledger WHERE run_id = %s ORDER BY id",
        (FEBRUARY_RUN,)).fetchall()
    assert len(ledger) == 2 * len(TABLES)  # the catch-up's rows, then the backfill's
    assert ledger[len(TABLES):] == [("replayed", 0, 0, ROWS)] * len(TABLES)  # same files: nothing re-applied

    # January is older than the loaded February, and its files are the ones it was loaded from: a replay.
    # Nothing is applied (that would roll the live tables back) and its snapshot stays frozen.
    assert january["state"] == "success", _failures(deployment, runs)
    assert _task_states(deployment, JANUARY_RUN) == {"success": TASKS_PER_RUN}
    replayed = deployment.warehouse.execute(
        "SELECT status, inserted, updated, unchanged FROM ingestion_ledger WHERE run_id = %s ORDER BY id",
        (JANUARY_RUN,)).fetchall()
    assert replayed[len(TABLES):] == [("replayed", 0, 0, ROWS)] * len(TABLES)

    assert _all_hashes(deployment.warehouse) == before


def test_rest_trigger_is_checked_by_param_schema_and_no_time_travel(deployment, caught_up):
    before = _all_hashes(deployment.warehouse)
    run_ids = {r["run_id"] for r in _runs(deployment)}

    # Not a month_NNN name: the Param schema rejects it before a run exists.
    rejected = _trigger(deployment, {"month": "../x"})
    assert rejected.status_code == 400, rejected.text
    assert "does not match" in rejected.json()["detail"]
    assert {r["run_id"] for r in _runs(deployment)} == run_ids

    # A valid but older month, from the files it was loaded from: the run replays it and writes nothing.
    response = _trigger(deployment, {"month": "month_000"})
    assert response.status_code == 200, response.text
    created = response.json()
    assert (created["run_type"], created["conf"], created["logical_date"]) == ("manual", {"month": "month_000"}, None)
    run = _wait_for_run(deployment, created["dag_run_id"])
    assert run["state"] == "success", _failures(deployment, [run])
    statuses = deployment.warehouse.execute(
        "SELECT DISTINCT status FROM ingestion_ledger WHERE run_id = %s", (run["run_id"],)).fetchall()
    assert statuses == [("replayed",)]
    assert _all_hashes(deployment.warehouse) == before

    # The same month with a file that differs from the one it was loaded from: refused, nothing written.
    users = deployment.seeds / "month_000" / "users.csv"
    original = users.read_bytes()
    users.write_bytes(original.rsplit(b"\n", 2)[0] + b"\n")  # drop the last user
    try:
        response = _trigger(deployment, {"month": "month_000"})
        run = _wait_for_run(deployment, response.json()["dag_run_id"])
    finally:
        users.write_bytes(original)
    assert run["state"] == "failed"
    assert _failed_tasks(deployment, run["run_id"]) == [("upsert_users", 1)]
    assert "refusing to apply as_of 2024-01-31" in _api_log(deployment, run["run_id"], "upsert_users", 1)
    assert _all_hashes(deployment.warehouse) == before


def test_failed_validation_is_named_in_the_task_log_served_by_the_api(deployment, caught_up):
    snapshots_before = _snapshot_hashes(deployment.warehouse)

    response = _trigger(deployment, {"month": "month_002"})  # as_of 2024-03-31: later than February, allowed
    assert response.status_code == 200, response.text
    run = _wait_for_run(deployment, response.json()["dag_run_id"])

    assert run["state"] == "failed"
    assert _failed_tasks(deployment, run["run_id"]) == [("validate.usage_agg_30d", 1)]
    states = dict(deployment.metadata.execute(
        "SELECT task_id, state FROM task_instance WHERE dag_id = %s AND run_id = %s", (DAG_ID, run["run_id"])))
    assert all(states[f"validate.{t.name}"] == "success" for t in TABLES if t.name != "usage_agg_30d")
    assert {states[f"snapshot_{t.name}"] for t in SNAPSHOTTED} == {"upstream_failed"}

    log = _api_log(deployment, run["run_id"], "validate.usage_agg_30d", 1)
    assert "FAILED usage_agg_30d.watch_hours_30d: expect_column_values_to_be_between" in log
    assert "unexpected: 3 of 7043 rows" in log
    for user in deployment.broken_users:
        assert user in log

    # No snapshot stamped for 2024-03-31; the outcome is kept in validation_results.
    assert checks.collect(deployment.warehouse)["as_of"] == ["2024-01-31", "2024-02-29"]
    assert _snapshot_hashes(deployment.warehouse) == snapshots_before
    assert deployment.warehouse.execute(
        "SELECT as_of::text, column_name, unexpected_count FROM validation_results WHERE run_id = %s AND NOT success",
        (run["run_id"],)).fetchall() == [("2024-03-31", "watch_hours_30d", 3)]


# ----------------------------------------------------------------------------------------- helpers


def _utc(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


def _runs(deployment: Deployment) -> list[dict[str, Any]]:
    from psycopg.rows import dict_row

    with deployment.metadata.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(
            "SELECT run_id, state, run_type, data_interval_start, data_interval_end, start_date, end_date, conf,"
            " backfill_id, clear_number FROM dag_run WHERE dag_id = %s ORDER BY id", (DAG_ID,)).fetchall()


def _dag_parsed(deployment: Deployment) -> bool:
    errors = deployment.metadata.execute("SELECT filename, stacktrace FROM import_error").fetchall()
    assert not errors, errors
    return deployment.metadata.execute("SELECT 1 FROM dag WHERE dag_id = %s", (DAG_ID,)).fetchone() is not None


def _wait(deployment: Deployment, what: str, done, timeout: float = WAIT_S) -> None:
    """Poll `done()` every second; fail with the runs and the failed tasks' logs on timeout."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{_failures(deployment, _runs(deployment))}")
        for component in ("api-server", "scheduler", "dag-processor"):
            deployment.stack.check_alive(component)
        time.sleep(1)


def _wait_for_run(deployment: Deployment, run_id: str) -> dict[str, Any]:
    def finished() -> bool:
        return any(r["run_id"] == run_id and r["state"] in FINISHED for r in _runs(deployment))

    _wait(deployment, f"run {run_id}", finished)
    return next(r for r in _runs(deployment) if r["run_id"] == run_id)


def _task_states(deployment: Deployment, run_id: str) -> dict[str, int]:
    return dict(deployment.metadata.execute(
        "SELECT state, count(*) FROM task_instance WHERE dag_id = %s AND run_id = %s GROUP BY state",
        (DAG_ID, run_id)).fetchall())


def _failed_tasks(deployment: Deployment, run_id: str) -> list[tuple[str, int]]:
    return deployment.metadata.execute(
        "SELECT task_id, try_number FROM task_instance WHERE dag_id = %s AND run_id = %s AND state = 'failed'"
        " ORDER BY task_id", (DAG_ID, run_id)).fetchall()


def _failures(deployment: Deployment, runs: list[dict[str, Any]]) -> str:
    """Runs with their task states, and the end of each failed task's log file: for failure messages."""
    lines = [f"{r['run_id']} {r['run_type']} {r['state']} tasks: {_task_states(deployment, r['run_id'])}" for r in runs]
    for run in runs:
        for task_id, try_number in _failed_tasks(deployment, run["run_id"]):
            lines.append(f"--- {run['run_id']} {task_id} (try {try_number}):")
            lines.append(airflow_stack.task_log_tail(deployment.stack.home, run["run_id"], task_id))
    return "\n".join(lines)


def _trigger(deployment: Deployment, conf: dict) -> httpx.Response:
    """What the UI's trigger form sends (no credentials: the stack runs the simple auth manager as all-admins)."""
    return deployment.api.post(f"/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": conf})


def _api_log(deployment: Deployment, run_id: str, task_id: str, try_number: int) -> str:
    """A task's log through the public API, as text (each record's event and exception values)."""
    from urllib.parse import quote

    path = f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/logs/{try_number}"
    response = deployment.api.get(path)
    assert response.status_code == 200, response.text
    records = response.json()["content"]
    assert records, f"empty log for {run_id} {task_id}"
    texts = []
    for record in records:
        texts.append(str(record.get("event", "")))
        texts.extend(str(detail.get("exc_value", "")) for detail in record.get("error_detail") or [])
    return "\n".join(texts)


def _snapshot_hashes(conn) -> dict[str, str]:
    return {t.snapshot_table: table_hash(conn, t.snapshot_table) for t in SNAPSHOTTED}


def _all_hashes(conn) -> dict[str, str]:
    return {**live_hashes(conn), **_snapshot_hashes(conn)}

