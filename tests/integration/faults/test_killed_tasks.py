"""SIGKILL through real Airflow processes: the upsert task while its COPY streams, the publish task
while it writes. Either way the live and snapshot tables stay exactly as before the month, and
Airflow's retry of the killed task converges to exactly the month."""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest

from streamflow.registry import SNAPSHOTTED, TABLES
from tests.integration.faults.conftest import FAULT_USERS
from tests.integration.stack.deployment import DAG_ID, failures, runs, wait, wait_for_run

pytestmark = pytest.mark.airflow

JANUARY_RUN = "scheduled__2024-02-01T00:00:00+00:00"


def counts(warehouse) -> dict[str, int]:
    """Rows of every live table, and of every snapshot table at 2024-01-31."""
    found = {t.name: warehouse.execute(f"SELECT count(*) FROM {t.name}").fetchone()[0] for t in TABLES}
    for t in SNAPSHOTTED:
        found[t.snapshot_table] = warehouse.execute(
            f"SELECT count(*) FROM {t.snapshot_table} WHERE as_of = '2024-01-31'").fetchone()[0]
    return found


def kill_client_of(deployment, query_like: str, timeout: float = 240) -> str:
    """Wait until a session runs a statement LIKE `query_like`, SIGKILL the process at the other end
    of its connection (the task's process); return the statement."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = deployment.warehouse.execute(
            "SELECT client_port, query FROM pg_stat_activity WHERE state = 'active' AND query LIKE %s"
            " AND pid <> pg_backend_pid()", (query_like,)).fetchone()
        if found:
            port, query = found
            owners = [c.pid for c in psutil.net_connections(kind="tcp") if c.laddr and c.laddr.port == port and c.pid]
            if owners:
                os.kill(owners[0], signal.SIGKILL)
                return query
        time.sleep(0.02)
    pytest.fail(f"no statement like {query_like!r} within {timeout:.0f} s\n{failures(deployment, runs(deployment))}")


def tries(deployment, task_id: str) -> int:
    return deployment.metadata.execute(
        "SELECT try_number FROM task_instance WHERE dag_id = %s AND run_id = %s AND task_id = %s",
        (DAG_ID, JANUARY_RUN, task_id)).fetchone()[0]


def test_killed_upsert_and_killed_publish_leave_the_month_out_then_the_retries_publish_it(fault_deployment):
    deployment = fault_deployment
    empty = {name: 0 for name in counts(deployment.warehouse)}
    assert counts(deployment.warehouse) == empty
    response = deployment.api.patch(f"/api/v2/dags/{DAG_ID}", json={"is_paused": False})
    assert response.status_code == 200, response.text

    killed = kill_client_of(deployment, 'COPY "streamflow_stage_%"."users"%')
    assert counts(deployment.warehouse) == empty, killed  # the write never touches the live tables

    killed = kill_client_of(deployment, 'INSERT INTO "%SELECT % FROM "streamflow_stage_%')
    # Killed mid-publish: its one transaction never commits, the live tables hold nothing of the month.
    assert counts(deployment.warehouse) == empty, killed
    assert deployment.warehouse.execute("SELECT count(*) FROM ingestion_ledger WHERE status = 'loaded'").fetchone() == (0,)

    run = wait_for_run(deployment, JANUARY_RUN)
    assert run["state"] == "success", failures(deployment, [run])
    assert (tries(deployment, "upsert_users"), tries(deployment, "publish")) == (2, 2)  # each killed once, retried
    assert counts(deployment.warehouse) == {name: FAULT_USERS for name in empty}
    ledger = deployment.warehouse.execute(
        "SELECT table_name, status, inserted FROM ingestion_ledger WHERE status <> 'failed' ORDER BY table_name").fetchall()
    assert ledger == sorted((t.name, "loaded", FAULT_USERS) for t in TABLES)
    assert deployment.warehouse.execute(
        "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'streamflow_stage_%'").fetchone() == (0,)
    wait(deployment, "nothing running", lambda: all(r["state"] in ("success", "failed") for r in runs(deployment)))


def test_the_same_month_twice_at_once_a_backfill_and_a_trigger_publish_it_once(fault_deployment):
    """January corrected (one label flipped), then a backfill over January (already loaded) and a UI
    trigger of month_000, at once: two runs of the month side by side, each staging in its own
    schema. One publish applies the one change; the other, waiting on the publish lock, finds the
    file already loaded: a replay. The live tables and the 2024-01-31 snapshot end exactly as after."""
    from tests.integration.stack.deployment import trigger

    deployment = fault_deployment
    labels = deployment.seeds / "month_000" / "labels.csv"
    header, first, rest = labels.read_bytes().split(b"\n", 2)
    user, label = first.decode().split(",")
    flipped = {"True": "False", "False": "True"}[label]
    labels.write_bytes(header + b"\n" + f"{user},{flipped}".encode() + b"\n" + rest)
    known = {r["run_id"] for r in runs(deployment)}
    (last_entry,) = deployment.warehouse.execute("SELECT coalesce(max(id), 0) FROM ingestion_ledger").fetchone()

    backfill = deployment.api.post("/api/v2/backfills", json={
        "dag_id": DAG_ID, "from_date": "2024-01-01T00:00:00Z", "to_date": "2024-01-02T00:00:00Z",
        "reprocess_behavior": "completed", "max_active_runs": 1, "run_backwards": False, "dag_run_conf": {}})
    assert backfill.status_code == 200, backfill.text
    triggered = trigger(deployment, {"month": "month_000"})
    assert triggered.status_code == 200, triggered.text

    wait(deployment, "both runs to finish", lambda: all(
        r["state"] in ("success", "failed") for r in runs(deployment)) and len(
        [r for r in runs(deployment) if r["run_id"] not in known or r["backfill_id"]]) >= 2)
    both = [r for r in runs(deployment) if r["run_id"] not in known or r["backfill_id"]]
    assert {r["state"] for r in both} == {"success"}, failures(deployment, both)
    first_run, second_run = sorted(both, key=lambda r: r["start_date"])
    assert second_run["start_date"] < first_run["end_date"]  # side by side, not one after the other

    statuses = deployment.warehouse.execute(
        "SELECT status, updated FROM ingestion_ledger WHERE table_name = 'labels' AND id > %s ORDER BY status",
        (last_entry,)).fetchall()
    assert statuses == [("loaded", 1), ("replayed", 0)]
    assert deployment.warehouse.execute("SELECT churn_label::text FROM labels WHERE user_id = %s",
                                        (user,)).fetchone() == (flipped.lower(),)
    assert deployment.warehouse.execute(
        "SELECT churn_label::text FROM labels_snapshots WHERE user_id = %s AND as_of = '2024-01-31'",
        (user,)).fetchone() == (flipped.lower(),)
    assert counts(deployment.warehouse) == {name: FAULT_USERS for name in counts(deployment.warehouse)}
