"""The `make` targets as a user types them, on one embedded PostgreSQL and one AIRFLOW_HOME of their own.

The tests build on each other's state in file order (one server and one metadata database for all,
to keep them cheap): a backfill before anything is loaded, `make stop` while `make airflow` runs,
`make reset` without a warehouse database, `make run` with a failed month, then after an interrupted
`make dag-test` and a SIGKILLed PostgreSQL, then `make run` again.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from streamflow_dev import checks
from streamflow_dev.pgserver import free_port
from streamflow_dev.stack import DAG_ID, FINISHED, Stack
from tests.conftest import ROOT
from tests.golden import CHURNERS, ROWS
from tests.integration.stack.deployment import all_hashes
from tests.months import MONTHS, REAL_MONTHS

pytestmark = pytest.mark.airflow

MAKE_TIMEOUT_S = 900
FEBRUARY_RUN = "scheduled__2024-03-01T00:00:00+00:00"
# The backfill as docs/operating.md tells users to type it (Airflow 3's `backfill create`, one month at a time).
BACKFILL_COMMAND = ('make airflow-cli ARGS="backfill create --dag-id ingest_month --from-date 2024-01-01 '
                    '--to-date 2024-02-29 --max-active-runs 1"')


@pytest.fixture(scope="module")
def dev(seeds):
    """The environment `make` runs with: the .env credentials, but free ports and folders of the test's own.

    Not under pytest's tmp_path: a concurrent pytest session prunes old base folders, server and all.
    """
    work = Path(tempfile.mkdtemp(prefix="streamflow-make-targets-"))
    for month in REAL_MONTHS:
        month.build(seeds, work / "seeds" / month.source)
    environ = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    environ.update(POSTGRES_PORT=str(free_port()), AIRFLOW_API_PORT=str(free_port()),
                   STREAMFLOW_PGDATA=str(work / "pgdata"), STREAMFLOW_AIRFLOW_HOME=str(work / "airflow"),
                   STREAMFLOW_SEEDS_DIR=str(work / "seeds"), STREAMFLOW_LAST_MONTH="2024-02",
                   AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
                   AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()))
    yield work, environ
    make(environ, "stop")
    shutil.rmtree(work, ignore_errors=True)


def make(environ: dict, *args: str, check: int | None = 0) -> subprocess.CompletedProcess:
    result = subprocess.run(["make", "--no-print-directory", *args], cwd=ROOT, env=environ, capture_output=True,
                            text=True, timeout=MAKE_TIMEOUT_S)
    if check is not None:
        assert result.returncode == check, f"make {' '.join(args)}: {result.returncode}\n{result.stdout[-5000:]}" \
                                           f"\n{result.stderr[-5000:]}"
    return result


def connect(environ: dict, database: str):
    """A connection to the stack's embedded server with the .env credentials."""
    import psycopg

    from streamflow_dev.env import read_dotenv

    dotenv = read_dotenv()
    return psycopg.connect(host="127.0.0.1", port=environ["POSTGRES_PORT"], user=dotenv["POSTGRES_USER"],
                           password=dotenv["POSTGRES_PASSWORD"], dbname=database, autocommit=True)


def stack(environ: dict) -> Stack:
    return Stack({"AIRFLOW_HOME": environ["STREAMFLOW_AIRFLOW_HOME"], "AIRFLOW__API__PORT": environ["AIRFLOW_API_PORT"]})


def wait(what: str, done, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(2)


def test_backfill_runs_months_not_loaded_yet_and_make_stop_ends_make_airflow(dev):
    work, environ = dev
    airflow_log = work / "make-airflow.log"
    with airflow_log.open("w") as out:
        make_airflow = subprocess.Popen(["make", "--no-print-directory", "airflow"], cwd=ROOT, env=environ,
                                        stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait("make airflow to be up", lambda: "Airflow UI:" in airflow_log.read_text() or make_airflow.poll() is not None)
        assert make_airflow.poll() is None, airflow_log.read_text()[-5000:]

        created = subprocess.run(shlex.split(BACKFILL_COMMAND), cwd=ROOT, env=environ, capture_output=True, text=True,
                                 timeout=MAKE_TIMEOUT_S)
        assert created.returncode == 0, created.stdout[-3000:] + created.stderr[-3000:]
        assert "ingest_month unpaused so that its backfill runs" in created.stderr

        airflow = stack(environ)
        wait("the backfill's two runs", lambda: len(runs := airflow.runs()) == 2
             and all(r["state"] in FINISHED for r in runs))
        assert [(r["run_type"], r["state"]) for r in airflow.runs()] == [("backfill", "success")] * 2
        with connect(environ, "streamflow") as warehouse:
            found = checks.collect(warehouse)
        assert set(found["live"].values()) == {ROWS}
        assert found["as_of"] == [month.as_of for month in REAL_MONTHS]

        processes = [airflow.running("standalone")]
        processes += processes[0].children(recursive=True)
        assert len(processes) >= 5  # standalone and its api-server, scheduler, dag-processor, triggerer
        stopped = make(environ, "stop")
        assert "stopped airflow: standalone" in stopped.stdout
        assert make_airflow.wait(timeout=120) == 0, airflow_log.read_text()[-5000:]
    finally:
        if make_airflow.poll() is None:
            os.killpg(make_airflow.pid, signal.SIGKILL)
    assert not [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    for output in (stopped.stdout + stopped.stderr, airflow_log.read_text()):
        assert "Traceback" not in output
    assert "airflow stopped" in airflow_log.read_text()
    assert "nothing running" in make(environ, "stop").stdout  # a second `make stop` is a no-op


def test_reset_recreates_a_missing_warehouse_database(dev):
    _, environ = dev
    make(environ, "checks")  # starts the embedded server
    with connect(environ, "postgres") as server:
        server.execute("DROP DATABASE streamflow")
    make(environ, "reset")
    with connect(environ, "streamflow") as warehouse:
        found = checks.collect(warehouse)
    assert set(found["live"].values()) == {0}
    assert found["as_of"] == []
    with connect(environ, "airflow") as metadata:  # the backfill's runs are forgotten (migrated by the first test)
        migrated = metadata.execute("SELECT to_regclass('dag_run') IS NOT NULL").fetchone()[0]
        assert not migrated or metadata.execute("SELECT count(*) FROM dag_run").fetchone()[0] == 0


def test_run_with_a_failed_month_names_the_task(dev, seeds):
    """February's folder = scenario negative_watch_hours (tests/months.py): `make run` names the task that fails."""
    work, environ = dev
    scenario = MONTHS["negative_watch_hours"]
    shutil.rmtree(work / "seeds" / "month_001")
    scenario.build(seeds, work / "seeds" / "month_001")
    result = make(environ, "run", check=0 if scenario.publishes else 2)  # make says 2 when its command fails
    assert f"FAILED task {scenario.failed_task} (try 1) in run {FEBRUARY_RUN}" in result.stderr
    assert f"{FEBRUARY_RUN}          failed" in result.stdout


def test_run_after_an_interrupted_dag_test_and_a_killed_postgres(dev, seeds):
    work, environ = dev
    shutil.rmtree(work / "seeds" / "month_001")
    MONTHS["february"].build(seeds, work / "seeds" / "month_001")  # the month fixed

    dag_test = subprocess.Popen(["make", "--no-print-directory", "dag-test", "MONTH=month_001"], cwd=ROOT,
                                env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
    with connect(environ, "airflow") as metadata:
        def started() -> bool:
            return metadata.execute(
                "SELECT count(*) FROM task_instance JOIN dag_run USING (dag_id, run_id) WHERE dag_run.run_type ="
                " 'manual' AND dag_run.state = 'running' AND task_instance.state IS NOT NULL").fetchone()[0] > 0

        wait("make dag-test to start a task", started)
        os.killpg(dag_test.pid, signal.SIGKILL)
        dag_test.wait()
        (stale_run,) = metadata.execute("SELECT run_id FROM dag_run WHERE run_type = 'manual' AND state = 'running'"
                                        ).fetchone()
    postmaster_pid = int((work / "pgdata" / "postmaster.pid").read_text().split()[0])
    os.kill(postmaster_pid, signal.SIGKILL)
    wait("the postmaster to die", lambda: not psutil.pid_exists(postmaster_pid)
         or psutil.Process(postmaster_pid).status() == psutil.STATUS_ZOMBIE, 30)
    assert (work / "pgdata" / "postmaster.pid").exists()  # stale

    result = make(environ, "run")
    assert f"run {stale_run} of {DAG_ID} was left running by a process that is gone: marked failed" in result.stdout
    assert f"clearing failed run {FEBRUARY_RUN} so it runs again" in result.stdout
    assert "training set check FAILED" not in result.stderr
    with connect(environ, "streamflow") as warehouse:
        found = checks.collect(warehouse)
    assert set(found["live"].values()) == {ROWS}
    assert found["churners"] == CHURNERS


def test_run_twice_changes_no_row(dev):
    _, environ = dev
    with connect(environ, "streamflow") as warehouse:
        before = all_hashes(warehouse)
    make(environ, "run")
    with connect(environ, "streamflow") as warehouse:
        assert all_hashes(warehouse) == before
