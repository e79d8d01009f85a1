"""One running Airflow deployment for the tests of this package, and what they ask of it.

`airflow standalone` (API server, scheduler, dag-processor, triggerer), as `make run` starts it, on the session's PostgreSQL
server but with databases of its own (a fresh Airflow metadata database and a fresh warehouse),
an AIRFLOW_HOME of its own and a free port for the API server. The seeds are a copy of
data/seeds plus `month_002`, scenario BAD_MONTH of tests/months.py (February's files with negative watch hours
for three users and a column half blank).

`deployed` is the one way the tests start a deployment: this package's (above), waiting/'s (an
open-ended schedule, seeds that arrive while a run waits, a webhook for the Deadline Alert) and
faults/' (generated months of 200,000 users, its warehouse on a second server it restarts) are the
same code path with other seeds and settings. They stay deployments of their own because they
change what the others read: this package's tests build on the real months' catch-up and stop at
February; waiting/ needs the months missing when the runs start; faults/ kills processes and the
warehouse server.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from streamflow.registry import SNAPSHOTTED, TABLES
from streamflow.settings import WAREHOUSE_CONN_ID
from streamflow_dev import pgserver
from streamflow_dev.stack import DAG_ID, TRAINING_DAG_ID, Stack
from tests.conftest import connect, drop_database
from tests.helpers import live_hashes, table_hash
from tests.integration.conftest import airflow_env
from tests.months import MONTHS, REAL_MONTHS

if TYPE_CHECKING:
    from pathlib import Path

    import httpx
    import psycopg

JANUARY_RUN = "scheduled__2024-02-01T00:00:00+00:00"
FEBRUARY_RUN = "scheduled__2024-03-01T00:00:00+00:00"
#: wait_for_month, resolve_month, ensure_schema, one stage and one validate task per table, publish, one snapshot per
#: snapshotted table.
TASKS_PER_RUN = 4 + 2 * len(TABLES) + len(SNAPSHOTTED)
FINISHED = ("success", "failed")
WAIT_S = 300


@dataclasses.dataclass
class Deployment:
    """What the tests need of the running stack."""

    stack: Stack
    api: httpx.Client
    metadata: psycopg.Connection  # Airflow's metadata database (autocommit)
    warehouse: psycopg.Connection  # the warehouse the DAG writes to (autocommit)
    seeds: Path  # STREAMFLOW_SEEDS_DIR of the stack
    broken_users: list[str] = dataclasses.field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.stack.port}"


@contextlib.contextmanager
def deployed(pg_server, work: Path, seeds: Path, warehouse_server=None, **extra_env: str):
    """A Deployment of its own: fresh metadata DB and warehouse on the session's server, `airflow standalone`
    with its API server on a free port; everything stopped and dropped on exit.

    Any test package can start one (e.g. one whose tests kill its processes). `warehouse_server` (settings of
    another server) puts the warehouse there instead, so that tests can restart it under the running stack.
    `extra_env` sets Airflow or StreamFlow settings, e.g. STREAMFLOW_LAST_MONTH.
    """
    import httpx

    from streamflow.schema import apply_schema

    warehouse_server = warehouse_server or pg_server
    suffix = uuid.uuid4().hex[:12]
    metadata_db, warehouse_db = f"airflow_paths_{suffix}", f"airflow_paths_wh_{suffix}"
    settings = dataclasses.replace(pg_server, database=warehouse_db, airflow_database=metadata_db)
    warehouse_settings = dataclasses.replace(warehouse_server, database=warehouse_db)
    port = pgserver.free_port()
    env = airflow_env(settings, work / "airflow-home", AIRFLOW_API_PORT=str(port), STREAMFLOW_SEEDS_DIR=str(seeds),
                      **extra_env)
    env[f"AIRFLOW_CONN_{WAREHOUSE_CONN_ID.upper()}"] = warehouse_settings.url("postgresql", warehouse_db)
    # The log servers default to the fixed ports 8793/8794: free ones, so a concurrent stack cannot clash.
    env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] = str(pgserver.free_port())
    env["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"] = str(pgserver.free_port())
    stack = Stack(env)
    assert stack.port == port
    try:
        pgserver.ensure_databases(pg_server, metadata_db)
        pgserver.ensure_databases(warehouse_server, warehouse_db)
        with connect(warehouse_settings) as conn:
            apply_schema(conn)
        stack.up()
        with (httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60, trust_env=False,
                           headers={"Accept": "application/json"}) as api,
              connect(dataclasses.replace(settings, database=metadata_db), autocommit=True) as metadata,
              connect(warehouse_settings, autocommit=True) as warehouse):
            yield Deployment(stack, api, metadata, warehouse, seeds)
    finally:
        stack.stop_all()  # SIGINT to standalone (it stops its components), SIGKILL to what is left after 30 s
        drop_database(pg_server, metadata_db)
        drop_database(warehouse_server, warehouse_db)


#: The scenario the package's month_002 is (tests/months.py): a row rule and a check against history fail.
BAD_MONTH = MONTHS["negative_watch_hours_and_blank_devices"]


def seeds_with_a_bad_month(source: Path, target: Path) -> list[str]:
    """The real months (month_000, month_001) and month_002 = BAD_MONTH; the user_ids it broke."""
    for month in REAL_MONTHS:
        month.build(source, target / month.source)
    return BAD_MONTH.build(source, target / "month_002")


def usage_verdict(deployment: Deployment, run_id: str) -> str:
    """The Validation view's verdict of usage_agg_30d in a run, from the outcomes the warehouse keeps."""
    total, passed, failed, skipped = deployment.warehouse.execute(
        "SELECT count(*), count(*) FILTER (WHERE success AND figures->>'skipped' IS NULL),"
        " count(*) FILTER (WHERE NOT success), count(*) FILTER (WHERE figures->>'skipped' IS NOT NULL)"
        " FROM validation_results WHERE run_id = %s AND table_name = 'usage_agg_30d'", (run_id,)).fetchone()
    # Skipped: the five z-scores (they want three months before this one: January and February are two)
    # and avg_session_mins_7d's single_value (it is one value in every real month).
    assert (failed, skipped) == (2, 6)
    return f"{passed}/{total} expectations passed, {failed} failed, {skipped} skipped"


def runs(deployment: Deployment, dag_id: str = DAG_ID) -> list[dict[str, Any]]:
    from psycopg.rows import dict_row

    with deployment.metadata.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(
            "SELECT run_id, state, run_type, data_interval_start, data_interval_end, start_date, end_date, conf,"
            " backfill_id, clear_number FROM dag_run WHERE dag_id = %s ORDER BY id", (dag_id,)).fetchall()


def dag_parsed(deployment: Deployment, dag_id: str = DAG_ID) -> bool:
    errors = deployment.metadata.execute("SELECT filename, stacktrace FROM import_error").fetchall()
    assert not errors, errors
    return deployment.metadata.execute("SELECT 1 FROM dag WHERE dag_id = %s", (dag_id,)).fetchone() is not None


def wait(deployment: Deployment, what: str, done, timeout: float = WAIT_S) -> None:
    """Poll `done()` every second; fail with the runs and the failed tasks' logs on timeout."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{failures(deployment, runs(deployment))}")
        deployment.stack.check_alive()
        time.sleep(1)


def wait_for_run(deployment: Deployment, run_id: str, dag_id: str = DAG_ID) -> dict[str, Any]:
    def finished() -> bool:
        return any(r["run_id"] == run_id and r["state"] in FINISHED for r in runs(deployment, dag_id))

    wait(deployment, f"run {run_id}", finished)
    return next(r for r in runs(deployment, dag_id) if r["run_id"] == run_id)


def wait_for_training_runs(deployment: Deployment, count: int) -> list[dict[str, Any]]:
    """Wait until `training_set` has `count` finished runs (it is started by asset events, not by us)."""
    wait(deployment, f"{count} run(s) of {TRAINING_DAG_ID}", lambda: len(done := runs(deployment, TRAINING_DAG_ID)) >= count
         and all(r["state"] in FINISHED for r in done))
    return runs(deployment, TRAINING_DAG_ID)


def task_states(deployment: Deployment, run_id: str, dag_id: str = DAG_ID) -> dict[str, int]:
    return dict(deployment.metadata.execute(
        "SELECT state, count(*) FROM task_instance WHERE dag_id = %s AND run_id = %s GROUP BY state",
        (dag_id, run_id)).fetchall())


def failed_tasks(deployment: Deployment, run_id: str, dag_id: str = DAG_ID) -> list[tuple[str, int]]:
    return deployment.metadata.execute(
        "SELECT task_id, try_number FROM task_instance WHERE dag_id = %s AND run_id = %s AND state = 'failed'"
        " ORDER BY task_id", (dag_id, run_id)).fetchall()


def failures(deployment: Deployment, dag_runs: list[dict[str, Any]], dag_id: str = DAG_ID) -> str:
    """Runs with their task states, and the end of each failed task's log file: for failure messages."""
    lines = [f"{r['run_id']} {r['run_type']} {r['state']} tasks: {task_states(deployment, r['run_id'], dag_id)}"
             for r in dag_runs]
    for run in dag_runs:
        for task_id, try_number in failed_tasks(deployment, run["run_id"], dag_id):
            lines.append(f"--- {run['run_id']} {task_id} (try {try_number}):")
            lines.append(deployment.stack.task_log(dag_id, run["run_id"], task_id, try_number)[-4000:])
    return "\n".join(lines)


def trigger(deployment: Deployment, conf: dict) -> httpx.Response:
    """What the UI's trigger form sends (no credentials: the stack runs the simple auth manager as all-admins)."""
    return deployment.api.post(f"/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": conf})


def api_log(deployment: Deployment, run_id: str, task_id: str, try_number: int) -> str:
    """A task's log through the public API, as text (each record's event and exception values)."""
    log = deployment.stack.task_log(DAG_ID, run_id, task_id, try_number)
    assert log, f"empty log for {run_id} {task_id}"
    return log


def asset_events(deployment: Deployment) -> list[tuple[str, str, dict]]:
    """(snapshot table, source run, extra) of every asset event, in the order they were emitted."""
    return deployment.metadata.execute(
        "SELECT asset.name, event.source_run_id, event.extra FROM asset_event AS event"
        " JOIN asset ON asset.id = event.asset_id ORDER BY event.id").fetchall()


def snapshot_hashes(conn) -> dict[str, str]:
    return {t.snapshot_table: table_hash(conn, t.snapshot_table) for t in SNAPSHOTTED}


def all_hashes(conn) -> dict[str, str]:
    """Every live and snapshot table, and the training examples."""
    return {**live_hashes(conn), **snapshot_hashes(conn), "training_examples": table_hash(conn, "training_examples")}
