"""A deployment of its own for the fault tests, whose processes and database server they stop (package scope).

Two generated months of FAULT_USERS users (`streamflow_dev.generate`, once per session), large enough
that a kill or a restart lands while a COPY streams or the publish writes. Airflow's metadata DB is on
the session server, the warehouse on a second embedded server of this package's own, so that the
tests can restart the warehouse under the running scheduler. Retries are shortened
(`STREAMFLOW_RETRY_DELAY_S`), so that the retries the tests wait for come in seconds.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import psutil
import pytest

from streamflow.registry import SNAPSHOTTED, TABLES
from streamflow_dev import pgserver
from tests.conftest import ROOT, connect, embedded_server
from tests.helpers import table_hash
from tests.integration.stack.deployment import DAG_ID, dag_parsed, deployed, failures, runs, wait

if TYPE_CHECKING:
    from pathlib import Path

FAULT_USERS = 200_000


@pytest.fixture(scope="session")
def generated_months(tmp_path_factory):
    """month_000 and month_001 of FAULT_USERS users (month_001 with leavers and joiners), once per session."""
    out = tmp_path_factory.mktemp("fault-seeds")
    subprocess.run([sys.executable, "-m", "streamflow_dev.generate", "--users", str(FAULT_USERS), "--months", "2",
                    "--out", str(out)], env={**os.environ, "PYTHONPATH": f"{ROOT / 'include'}:{ROOT / 'tools'}"}, check=True,
                   capture_output=True)
    return out


@dataclasses.dataclass
class WarehouseServer:
    settings: object  # PostgresSettings of its superuser
    pgdata: Path


@pytest.fixture(scope="package")
def warehouse_server():
    """A second embedded server, for the fault deployment's warehouse only."""
    with embedded_server("streamflow-test-pg-faults-") as (settings, pgdata):
        yield WarehouseServer(settings, pgdata)


@pytest.fixture(scope="package")
def fault_deployment(pg_server, warehouse_server, generated_months, tmp_path_factory):
    """The stack on the generated months, catch-up through February 2024 (month_001), DAG still paused."""
    work = tmp_path_factory.mktemp("fault-stack")
    with deployed(pg_server, work, generated_months, warehouse_server=warehouse_server.settings,
                  STREAMFLOW_LAST_MONTH="2024-02", STREAMFLOW_RETRY_DELAY_S="2") as running:
        wait(running, "ingest_month to be parsed", lambda: dag_parsed(running))
        yield running
        running.warehouse.close()  # a restart's replacement (closing it twice is harmless)


def restart_warehouse(deployment, server: WarehouseServer) -> None:
    """Stop the warehouse server (fast shutdown: every session is cut, as a `systemctl restart` does),
    start it again, and reconnect the deployment's warehouse connection."""
    database = deployment.warehouse.info.dbname
    assert pgserver.stop(server.pgdata), "the warehouse server was not running"
    pgserver.start(server.pgdata, server.settings)
    deployment.warehouse = connect(dataclasses.replace(server.settings, database=database), autocommit=True)


def counts(warehouse, as_of: str) -> dict[str, int]:
    """Rows of every live table, and of every snapshot table at `as_of`."""
    found = {t.name: warehouse.execute(f"SELECT count(*) FROM {t.name}").fetchone()[0] for t in TABLES}
    for t in SNAPSHOTTED:
        found[t.snapshot_table] = warehouse.execute(
            f"SELECT count(*) FROM {t.snapshot_table} WHERE as_of = %s", (as_of,)).fetchone()[0]
    return found


def snapshot_partition_hashes(warehouse, as_of: str) -> dict[str, str]:
    """Content hash of every snapshot table's partition at `as_of` (as the stamp catalogue names it)."""
    return {table: table_hash(warehouse, partition) for table, partition in warehouse.execute(
        "SELECT snapshot_table, partition_name FROM snapshot_stamps WHERE as_of = %s", (as_of,)).fetchall()}


def staging_schemas(warehouse) -> list[str]:
    return [name for (name,) in warehouse.execute(
        "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'streamflow_stage_%' ORDER BY 1").fetchall()]


def active_statement(deployment, query_like: str, timeout: float = 240, but_not_like: str = "") -> tuple[int, str]:
    """Wait until a warehouse session runs a statement LIKE `query_like` (and NOT LIKE `but_not_like`);
    its client port and statement."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = deployment.warehouse.execute(
            "SELECT client_port, query FROM pg_stat_activity WHERE state = 'active' AND query LIKE %s"
            " AND query NOT LIKE %s AND pid <> pg_backend_pid()", (query_like, but_not_like)).fetchone()
        if found:
            return found
        time.sleep(0.02)
    pytest.fail(f"no statement like {query_like!r} within {timeout:.0f} s\n{failures(deployment, runs(deployment))}")


def kill_client_of(deployment, query_like: str, timeout: float = 240) -> str:
    """Wait until a session runs a statement LIKE `query_like`, SIGKILL the process at the other end
    of its connection (the task's process); return the statement."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        port, query = active_statement(deployment, query_like, deadline - time.monotonic())
        owners = [c.pid for c in psutil.net_connections(kind="tcp") if c.laddr and c.laddr.port == port and c.pid]
        if owners:
            os.kill(owners[0], signal.SIGKILL)
            return query
        time.sleep(0.02)
    pytest.fail(f"no process found at the client end of {query_like!r} within {timeout:.0f} s")


def tries(deployment, run_id: str, task_id: str) -> int:
    return deployment.metadata.execute(
        "SELECT try_number FROM task_instance WHERE dag_id = %s AND run_id = %s AND task_id = %s",
        (DAG_ID, run_id, task_id)).fetchone()[0]


def file_rows(path: Path) -> int:
    """Data lines of a CSV file (its header left out)."""
    with path.open("rb") as file:
        return sum(1 for _ in file) - 1


def user_ids(path: Path) -> set[str]:
    """The first column of a CSV file's data lines."""
    with path.open(encoding="utf-8") as file:
        next(file)
        return {line.split(",", 1)[0] for line in file}
