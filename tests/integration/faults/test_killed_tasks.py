"""Faults through real Airflow processes, on two generated months (test order matters: each test
starts from the state the one before left).

1. January's scheduled run: SIGKILL to the stage task while its COPY streams and to the publish
   task while it writes. The live and snapshot tables stay exactly as before the month, and
   Airflow's retry of each killed task converges to exactly the month.
2. February's scheduled run, with a backfill over January (already loaded) beside it and the
   warehouse server stopped and restarted under both: the cut connections are retried, January
   replays, the live tables end exactly as January then February's files.
3. February (the latest month) twice at once: a backfill and a UI trigger of month_001.
"""

from __future__ import annotations

import re

import pytest

from streamflow import staging
from streamflow.registry import SNAPSHOTTED, TABLES
from tests.helpers import rewrite_marker
from tests.integration.faults.conftest import (
    FAULT_USERS,
    active_statement,
    counts,
    file_rows,
    kill_client_of,
    restart_warehouse,
    snapshot_partition_hashes,
    staging_schemas,
    tries,
    user_ids,
)
from tests.integration.stack.deployment import (
    DAG_ID,
    FEBRUARY_RUN,
    FINISHED,
    JANUARY_RUN,
    api_log,
    failures,
    runs,
    trigger,
    wait,
    wait_for_run,
)

pytestmark = pytest.mark.airflow


def create_backfill(deployment, from_date: str, to_date: str) -> int:
    """A backfill through the REST API that reprocesses completed runs too; its id."""
    response = deployment.api.post("/api/v2/backfills", json={
        "dag_id": DAG_ID, "from_date": f"{from_date}T00:00:00Z", "to_date": f"{to_date}T00:00:00Z",
        "reprocess_behavior": "completed", "max_active_runs": 1, "run_backwards": False, "dag_run_conf": {}})
    assert response.status_code == 200, response.text
    return response.json()["id"]


def wait_for_backfill(deployment, backfill_id: int) -> None:
    """Wait until the scheduler marks the backfill completed (a DAG takes one running backfill at a time)."""
    wait(deployment, f"backfill {backfill_id} to complete",
         lambda: deployment.api.get(f"/api/v2/backfills/{backfill_id}").json()["completed_at"] is not None)


def last_ledger_id(deployment) -> int:
    return deployment.warehouse.execute("SELECT coalesce(max(id), 0) FROM ingestion_ledger").fetchone()[0]


def labels_of(path) -> dict[str, str]:
    """user_id -> churn_label as PostgreSQL prints a boolean ("true"/"false"), from a labels.csv."""
    with path.open(encoding="utf-8") as file:
        next(file)
        return {user: label.lower() for user, label in (line.rstrip("\r\n").split(",") for line in file)}


def test_killed_stage_and_killed_publish_leave_the_month_out_then_the_retries_publish_it(fault_deployment):
    deployment = fault_deployment
    empty = {name: 0 for name in counts(deployment.warehouse, "2024-01-31")}
    assert counts(deployment.warehouse, "2024-01-31") == empty
    response = deployment.api.patch(f"/api/v2/dags/{DAG_ID}", json={"is_paused": False})
    assert response.status_code == 200, response.text

    killed = kill_client_of(deployment, 'COPY "streamflow_stage_%"."users"%')
    assert counts(deployment.warehouse, "2024-01-31") == empty, killed  # the write never touches the live tables

    killed = kill_client_of(deployment, 'INSERT INTO "%SELECT % FROM "streamflow_stage_%')
    # Killed mid-publish: its one transaction never commits, the live tables hold nothing of the month.
    assert counts(deployment.warehouse, "2024-01-31") == empty, killed
    assert deployment.warehouse.execute("SELECT count(*) FROM ingestion_ledger WHERE status = 'loaded'").fetchone() == (0,)

    run = wait_for_run(deployment, JANUARY_RUN)
    assert run["state"] == "success", failures(deployment, [run])
    killed_tries = (tries(deployment, JANUARY_RUN, "stage_users"), tries(deployment, JANUARY_RUN, "publish"))
    assert killed_tries == (2, 2)  # each killed once, retried
    # February's scheduled run starts as soon as January succeeds: only what it cannot change is read here.
    stamped = counts(deployment.warehouse, "2024-01-31")
    assert {t.snapshot_table: stamped[t.snapshot_table] for t in SNAPSHOTTED} == {
        t.snapshot_table: FAULT_USERS for t in SNAPSHOTTED}
    ledger = deployment.warehouse.execute(
        "SELECT table_name, status, inserted FROM ingestion_ledger WHERE month = 'month_000' AND status <> 'failed'"
        " ORDER BY table_name").fetchall()
    assert ledger == sorted((t.name, "loaded", FAULT_USERS) for t in TABLES)
    assert staging.schema_for(JANUARY_RUN) not in staging_schemas(deployment.warehouse)


def test_a_restart_and_a_backfill_over_january_while_february_runs_end_with_exactly_february(
        fault_deployment, warehouse_server):
    """While February's scheduled run stages its files: a backfill over January (already loaded) is
    created, and the warehouse server is stopped and started again. The cut connections are
    connection errors, retried with backoff (not input errors: no `failed` ledger row, no fail-fast);
    January replays (nothing applied, its snapshots as they were); February is published whole."""
    deployment = fault_deployment
    seeds = deployment.seeds
    wait(deployment, "February's scheduled run", lambda: any(r["run_id"] == FEBRUARY_RUN for r in runs(deployment)))
    january_snapshots = snapshot_partition_hashes(deployment.warehouse, "2024-01-31")
    assert len(january_snapshots) == len(SNAPSHOTTED)
    last_entry = last_ledger_id(deployment)
    backfill_id = create_backfill(deployment, "2024-01-01", "2024-01-02")

    february_schema = staging.schema_for(FEBRUARY_RUN)
    # While a table that depends on users streams: the users staged before it must survive the restart.
    _, cut = active_statement(deployment, f'COPY "{february_schema}".%', but_not_like=f'COPY "{february_schema}"."users"%')
    restart_warehouse(deployment, warehouse_server)
    cut_task = "stage_" + re.match(r'COPY "[^"]+"\."([^"]+)"', cut)[1]
    # The write was cut: the live tables hold January, nothing of February is in the ledger.
    live = counts(deployment.warehouse, "2024-01-31")
    assert {t.name: live[t.name] for t in TABLES} == {t.name: FAULT_USERS for t in TABLES}
    assert deployment.warehouse.execute(
        "SELECT count(*) FROM ingestion_ledger WHERE month = 'month_001'").fetchone() == (0,)

    def ours() -> list[dict]:
        return [r for r in runs(deployment) if r["run_id"] == FEBRUARY_RUN or r["backfill_id"] == backfill_id]

    wait(deployment, "February's run and the backfill's January run",
         lambda: len(ours()) == 2 and all(r["state"] in FINISHED for r in ours()))
    wait_for_backfill(deployment, backfill_id)
    both = ours()
    assert {r["state"] for r in both} == {"success"}, failures(deployment, both)
    (january_run,) = [r for r in both if r["backfill_id"] == backfill_id]
    (february_run,) = [r for r in both if r["run_id"] == FEBRUARY_RUN]
    assert january_run["run_id"] == JANUARY_RUN  # the backfill re-ran the scheduled run of January
    assert january_run["start_date"] < february_run["end_date"]  # side by side

    # The cut COPY failed with a connection error and Airflow retried it (bad input would fail at try 1).
    assert tries(deployment, FEBRUARY_RUN, cut_task) >= 2, cut
    assert tries(deployment, FEBRUARY_RUN, "stage_users") == 1  # staged before the restart, kept through it
    first_try = api_log(deployment, FEBRUARY_RUN, cut_task, 1)
    assert re.search(r"OperationalError|AdminShutdown|terminating connection", first_try), first_try[-3000:]
    assert "AirflowFailException" not in first_try
    assert deployment.warehouse.execute(
        "SELECT count(*) FROM ingestion_ledger WHERE id > %s AND status = 'failed'", (last_entry,)).fetchone() == (0,)

    # January replayed: nothing applied, its snapshots exactly as they were.
    january = deployment.warehouse.execute(
        "SELECT table_name, run_id, status, inserted, updated FROM ingestion_ledger WHERE id > %s"
        " AND month = 'month_000' ORDER BY table_name", (last_entry,)).fetchall()
    assert january == sorted((t.name, JANUARY_RUN, "replayed", 0, 0) for t in TABLES)
    assert snapshot_partition_hashes(deployment.warehouse, "2024-01-31") == january_snapshots

    # February published once, whole: every user of either month, with February's values where it has them.
    february = deployment.warehouse.execute(
        "SELECT table_name, status, rows_in_file FROM ingestion_ledger WHERE id > %s AND month = 'month_001'"
        " ORDER BY table_name", (last_entry,)).fetchall()
    assert february == sorted((t.name, "loaded", file_rows(seeds / "month_001" / t.file_name)) for t in TABLES)
    everyone = len(user_ids(seeds / "month_000" / "users.csv") | user_ids(seeds / "month_001" / "users.csv"))
    assert everyone > FAULT_USERS  # month_001 has joiners (and leavers, who keep January's values)
    assert counts(deployment.warehouse, "2024-02-29") == {name: everyone for name in counts(deployment.warehouse, "2024-02-29")}
    live_labels = dict(deployment.warehouse.execute("SELECT user_id, churn_label::text FROM labels").fetchall())
    assert live_labels == {**labels_of(seeds / "month_000" / "labels.csv"), **labels_of(seeds / "month_001" / "labels.csv")}
    assert deployment.warehouse.execute(
        "SELECT DISTINCT rows FROM snapshot_stamps WHERE as_of = '2024-02-29'").fetchall() == [(everyone,)]
    assert staging_schemas(deployment.warehouse) == []


def test_the_same_month_twice_at_once_a_backfill_and_a_trigger_publish_it_once(fault_deployment):
    """February corrected (one label flipped), then a backfill over February (already loaded, the
    latest month) and a UI trigger of month_001, at once: two runs of the month side by side, each
    staging in its own schema. One publish applies the one change; the other, waiting on the publish
    lock, finds the file already loaded: a replay. The live tables and the 2024-02-29 snapshot end
    exactly as after."""
    deployment = fault_deployment
    labels = deployment.seeds / "month_001" / "labels.csv"
    header, first, rest = labels.read_bytes().split(b"\n", 2)
    user, label = first.decode().split(",")
    flipped = {"True": "False", "False": "True"}[label]
    labels.write_bytes(header + b"\n" + f"{user},{flipped}".encode() + b"\n" + rest)
    rewrite_marker(labels.parent)
    known = {r["run_id"] for r in runs(deployment)}
    last_entry = last_ledger_id(deployment)
    before = counts(deployment.warehouse, "2024-02-29")

    backfill_id = create_backfill(deployment, "2024-02-01", "2024-02-02")
    triggered = trigger(deployment, {"month": "month_001"})
    assert triggered.status_code == 200, triggered.text

    def ours() -> list[dict]:
        return [r for r in runs(deployment) if r["run_id"] not in known or r["backfill_id"] == backfill_id]

    wait(deployment, "both runs to finish", lambda: len(ours()) == 2 and all(r["state"] in FINISHED for r in ours()))
    wait_for_backfill(deployment, backfill_id)
    both = ours()
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
        "SELECT churn_label::text FROM labels_snapshots WHERE user_id = %s AND as_of = '2024-02-29'",
        (user,)).fetchone() == (flipped.lower(),)
    assert counts(deployment.warehouse, "2024-02-29") == before
