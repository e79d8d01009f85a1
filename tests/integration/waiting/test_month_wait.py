"""A scheduled run waits for its month, deferred, in a real triggerer; a late month fires its Deadline Alert.

One deployment (`airflow standalone`: scheduler, dag-processor, triggerer, API server) with the
default open-ended schedule, seeds holding only `month_000`. The tests build on each other, in order:

1. catch-up loads January, then the February run waits (its task `deferred`: in the triggerer);
2. February's files appearing one by one do not end the wait, nor does the triggerer being killed
   and started again; the deadline passes while it waits and the callback POSTs the alert to a
   webhook receiver on loopback; the marker landing ends the wait and the month loads;
3. March's marker does not match a file (scenario cut_after_marker of tests/months.py: labels.csv
   cut short after the marker was written): the run is refused at `resolve_month`, nothing staged,
   the live tables unchanged. (test_dag_end_to_end.py proved the same month through `airflow dags
   test`; this is the one test of it now, the scheduled path, its assertions moved here.)

A deployment of its own (`deployed`, as tests/integration/stack/ starts its): the runs must start
before their months' files exist, and the schedule must stay open-ended, with a short deadline and
a webhook; the stack package's deployment has both real months from the start and stops at February.
"""

from __future__ import annotations

import json
import shutil
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psutil
import pytest

from streamflow.completeness import write_marker
from streamflow.registry import TABLES
from streamflow_dev import pgserver
from streamflow_dev.stack import DAG_ID
from tests.helpers import live_hashes
from tests.integration.stack.deployment import (
    dag_parsed,
    deployed,
    failed_tasks,
    failures,
    runs,
    task_states,
    wait,
    wait_for_run,
)
from tests.months import MONTHS

pytestmark = pytest.mark.airflow

JANUARY_RUN = "scheduled__2024-02-01T00:00:00+00:00"
FEBRUARY_RUN = "scheduled__2024-03-01T00:00:00+00:00"
MARCH_RUN = "scheduled__2024-04-01T00:00:00+00:00"
DEADLINE_S = 240  # after a run's creation (its month ended long ago): January finishes well within it
POLL_S = 2


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        self.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def webhook():
    """A webhook receiver on loopback: the alerts it got."""
    server = ThreadingHTTPServer(("127.0.0.1", pgserver.free_port()), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Receiver.received = []
    yield f"http://127.0.0.1:{server.server_port}/alerts", _Receiver.received
    server.shutdown()


@pytest.fixture(scope="module")
def waiting(pg_server, seeds, tmp_path_factory, webhook):
    work = tmp_path_factory.mktemp("waiting-stack")
    shutil.copytree(seeds / "month_000", work / "seeds" / "month_000")
    url, _ = webhook
    with deployed(pg_server, work, work / "seeds", STREAMFLOW_LAST_MONTH="", STREAMFLOW_MONTH_POLL_S=str(POLL_S),
                  STREAMFLOW_PUBLISH_DEADLINE_DAYS=str(DEADLINE_S / 86400),
                  STREAMFLOW_ALERT_WEBHOOK_URL=url) as running:
        wait(running, "ingest_month to be parsed", lambda: dag_parsed(running))
        yield running


def _task_state(deployment, run_id: str, task_id: str) -> str | None:
    found = deployment.metadata.execute(
        "SELECT state FROM task_instance WHERE dag_id = %s AND run_id = %s AND task_id = %s",
        (DAG_ID, run_id, task_id)).fetchone()
    return found[0] if found else None


def _trigger_owner(deployment) -> int | None:
    found = deployment.metadata.execute(
        "SELECT t.triggerer_id FROM trigger AS t JOIN task_instance AS ti ON ti.trigger_id = t.id"
        " WHERE ti.run_id = %s AND ti.task_id = 'wait_for_month'", (FEBRUARY_RUN,)).fetchone()
    return found[0] if found else None


def _still_waiting(deployment, seconds: float) -> None:
    """The February run's wait stays deferred for `seconds` (several polls)."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        assert _task_state(deployment, FEBRUARY_RUN, "wait_for_month") == "deferred", failures(
            deployment, runs(deployment))
        time.sleep(0.5)


def test_catch_up_loads_the_month_present_and_the_next_run_waits_deferred(waiting):
    response = waiting.api.patch(f"/api/v2/dags/{DAG_ID}", json={"is_paused": False})
    assert response.status_code == 200, response.text
    wait(waiting, "January's run to be created", lambda: any(r["run_id"] == JANUARY_RUN for r in runs(waiting)))
    january = wait_for_run(waiting, JANUARY_RUN)
    assert january["state"] == "success", failures(waiting, [january])
    wait(waiting, "February's run to wait for its month",
         lambda: _task_state(waiting, FEBRUARY_RUN, "wait_for_month") == "deferred")
    assert task_states(waiting, FEBRUARY_RUN).get("deferred") == 1  # the wait alone; nothing after it ran
    assert task_states(waiting, FEBRUARY_RUN).keys() <= {"deferred", None}
    wait(waiting, "a triggerer to take the wait (no worker slot)", lambda: _trigger_owner(waiting) is not None)
    # Open-ended: the schedule goes on after February.
    assert waiting.metadata.execute("SELECT next_dagrun_create_after FROM dag WHERE dag_id = %s",
                                    (DAG_ID,)).fetchone()[0] is not None


def test_files_arriving_keep_it_waiting_a_restarted_triggerer_resumes_the_deadline_fires_the_marker_loads(
        waiting, seeds, webhook):
    _, alerts = webhook
    folder = waiting.seeds / "month_001"
    folder.mkdir()
    *first_five, last = [t.file_name for t in TABLES]
    for name in first_five:
        shutil.copy(seeds / "month_001" / name, folder / name)
    _still_waiting(waiting, 3 * POLL_S)
    shutil.copy(seeds / "month_001" / last, folder / last)  # all six: still no marker, still waiting
    _still_waiting(waiting, 3 * POLL_S)

    # The triggerer killed (a crash) and started again: the wait moves to the new one and goes on.
    before = _trigger_owner(waiting)
    standalone = waiting.stack.running("standalone")
    [triggerer] = [p for p in standalone.children() if p.cmdline()[-1:] == ["triggerer"]]  # its own children too
    for process in [triggerer, *triggerer.children(recursive=True)]:
        process.send_signal(signal.SIGKILL)
    psutil.wait_procs([triggerer], timeout=30)
    waiting.stack.start("triggerer")
    wait(waiting, "the wait to move to the new triggerer", lambda: _trigger_owner(waiting) not in (None, before))
    _still_waiting(waiting, 3 * POLL_S)

    # Still not published DEADLINE_S after the run was created: the Deadline Alert's callback POSTs the alert.
    wait(waiting, "the late-month alert", lambda: any(a["run_id"] == FEBRUARY_RUN for a in alerts),
         timeout=DEADLINE_S + 120)
    [alert] = [a for a in alerts if a["run_id"] == FEBRUARY_RUN]
    assert (alert["alert"], alert["dag_id"], alert["month"], alert["as_of"], alert["state"]) == (
        "month_late", DAG_ID, "month_001", "2024-02-29", "running")
    assert "is not published" in alert["message"]
    assert _task_state(waiting, FEBRUARY_RUN, "wait_for_month") == "deferred"

    write_marker(folder)  # the month is complete: the wait ends and the month loads
    february = wait_for_run(waiting, FEBRUARY_RUN)
    assert february["state"] == "success", failures(waiting, [february])
    assert waiting.metadata.execute(
        "SELECT try_number FROM task_instance WHERE run_id = %s AND task_id = 'wait_for_month'",
        (FEBRUARY_RUN,)).fetchone() == (1,)  # resumed, not retried
    loaded = waiting.warehouse.execute(
        "SELECT month, count(*) FROM ingestion_ledger WHERE status = 'loaded' GROUP BY 1 ORDER BY 1").fetchall()
    assert loaded == [("month_000", len(TABLES)), ("month_001", len(TABLES))]
    assert [a["run_id"] for a in alerts].count(FEBRUARY_RUN) == 1


def test_a_marker_that_does_not_match_its_files_is_refused_and_nothing_is_staged(waiting, seeds, tmp_path):
    scenario = MONTHS["cut_after_marker"]
    wait(waiting, "March's run to wait for its month",
         lambda: _task_state(waiting, MARCH_RUN, "wait_for_month") == "deferred")
    before = live_hashes(waiting.warehouse)
    staging_before = waiting.warehouse.execute(
        "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'streamflow_stage_%'").fetchone()
    scenario.build(seeds, tmp_path / "month_002")  # outside the seeds, then moved in whole: the wait sees it at once
    month = (tmp_path / "month_002").rename(waiting.seeds / "month_002")

    march = wait_for_run(waiting, MARCH_RUN)

    assert march["state"] == ("success" if scenario.publishes else "failed")
    assert failed_tasks(waiting, MARCH_RUN) == [(scenario.failed_task, 1)]
    log = waiting.stack.task_log(DAG_ID, MARCH_RUN, scenario.failed_task, 1)
    for line in scenario.log(month):  # what differs (the file's sha256, its rows against the marker's)
        assert line in log
    assert waiting.warehouse.execute("SELECT count(*) FROM ingestion_ledger WHERE month = 'month_002'"
                                     ).fetchone() == (0,)
    assert waiting.warehouse.execute(
        "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'streamflow_stage_%'").fetchone() == staging_before
    assert live_hashes(waiting.warehouse) == before
