"""docker-compose.yml brought up for real and driven as a user would, then the celery scale-out.

One stack for the module, on a copy of the checkout that adds `month_002` (February's files with
negative watch hours for three users). The tests build on each other's state, in file order:

1. `docker compose up --build -d --wait`: every service healthy;
2. unpausing `ingest_month` makes catch-up run January and February in the containers; the
   course's checks, read through `docker compose exec warehouse psql`;
3. a REST trigger with a bad `month` gets 400; `month_002` fails `validate.usage_agg_30d`, and the
   failed block is readable through the API's task-log endpoint, while the task runs and after;
4. the Validation view the failed log links to opens from the host (API server, warehouse), and
   still does (and the log is still served) after `docker compose up --force-recreate`;
5. with docker-compose.celery.yml: Redis, CeleryExecutor, two workers; `month_002` with its file
   fixed runs again, its tasks ran on both workers, their logs and validations readable;
6. `docker compose down -v` leaves no container and no volume of the project.
"""

from __future__ import annotations

import re
import shutil
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest
from dotenv import dotenv_values

from streamflow.registry import SNAPSHOTTED, TABLES
from tests.compose.conftest import Compose, copy_checkout
from tests.helpers import copy_month_with_negative_watch_hours, rewrite_marker

if TYPE_CHECKING:
    import httpx

pytestmark = pytest.mark.compose

DAG_ID = "ingest_month"
ROWS = 7043
CHURNERS = {"2024-01-31": 1869, "2024-02-29": 1701}
PLAN_STREAM_TV_NULLS = 1526
FINISHED = ("success", "failed")
WAIT_S = 600
FAILED_BLOCK = "FAILED usage_agg_30d.watch_hours_30d: expect_column_values_to_be_between"
# What the API server writes into a log instead of the running task's lines when the log server refuses it
# (403: another [api] secret_key) or cannot be reached.
LOG_SERVER_ERRORS = ("Could not read served logs", "the same 'secret_key'")
SERVED_LOG_SOURCE = ":8793/log/"  # the log server of the container running the task (a log "source" line)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A copy of the checkout whose seeds hold a third month that fails one expectation."""
    root = copy_checkout(tmp_path_factory.mktemp("compose") / "project")
    seeds = root / "data" / "seeds"
    broken_users = copy_month_with_negative_watch_hours(seeds / "month_001", seeds / "month_002")
    # Catch-up through February only: month_002 is this test's to trigger (open-ended, a March run would load it).
    dotenv = root / ".env"
    dotenv.write_text(dotenv.read_text().replace("\nSTREAMFLOW_LAST_MONTH=\n", "\nSTREAMFLOW_LAST_MONTH=2024-02\n"))
    assert "\nSTREAMFLOW_LAST_MONTH=2024-02\n" in dotenv.read_text()
    return root, broken_users


@pytest.fixture(scope="module")
def stack(upstream_images, project):
    """`docker compose up --build -d --wait`; `down -v` at the end, checked to leave nothing behind."""
    root, _ = project
    compose = Compose(root, upstream_images)
    try:
        compose("up", "--build", "--detach", "--wait", "--wait-timeout", str(WAIT_S))
        yield compose
    finally:
        compose.with_files("docker-compose.yml", "docker-compose.celery.yml")(
            "--profile", "flower", "down", "--volumes", "--remove-orphans", check=False)
    assert compose.containers() == [], "containers left after `docker compose down -v`"
    assert compose.volumes() == [], "volumes left after `docker compose down -v`"


@pytest.fixture(scope="module")
def api(stack):
    import httpx

    with httpx.Client(base_url=f"http://127.0.0.1:{stack.api_port}", timeout=60, trust_env=False,
                      headers={"Accept": "application/json"}) as client:
        yield client


@pytest.fixture(scope="module")
def warehouse_sql(stack, project):
    """Rows of a query run by psql inside the warehouse container, as docs/docker.md tells users to."""
    root, _ = project
    settings = dotenv_values(root / ".env")

    def query(sql: str) -> list[tuple[str, ...]]:
        result = stack("exec", "-T", "warehouse", "psql", "-v", "ON_ERROR_STOP=1", "--no-psqlrc", "-U",
                       settings["POSTGRES_USER"], "-d", settings["POSTGRES_DB"], "-At", "-F", "\t", "-c", sql)
        return [tuple(line.split("\t")) for line in result.stdout.splitlines() if line]

    return query


@pytest.fixture
def say(capsys):
    """Print past pytest's capture: `make compose-test` shows what it read."""

    def emit(text: str) -> None:
        with capsys.disabled():
            print(f"\n{text}", flush=True)

    return emit


# ------------------------------------------------------------------------------------------- tests


def test_every_service_is_up_and_healthy(stack):
    services = {line.split("\t")[0]: line.split("\t")[1:] for line in stack(
        "ps", "--all", "--format", "{{.Service}}\t{{.State}}\t{{.ExitCode}}").stdout.splitlines()}
    expected = {"warehouse", "airflow-metadata", "airflow-init", "airflow-apiserver", "airflow-scheduler",
                "airflow-dag-processor", "airflow-triggerer"}
    assert set(services) == expected
    assert services.pop("airflow-init") == ["exited", "0"]
    services = {name: state for name, (state, _) in services.items()}
    assert set(services.values()) == {"running"}
    health = stack("ps", "--format", "{{.Service}} {{.Health}}").stdout.split("\n")
    assert all(line.endswith("healthy") and not line.endswith("unhealthy") for line in health if line), health


def test_catch_up_runs_both_months_in_the_containers(stack, api, warehouse_sql, say):
    _wait("ingest_month to be parsed", lambda: api.get(f"/api/v2/dags/{DAG_ID}").status_code == 200)
    response = api.patch(f"/api/v2/dags/{DAG_ID}", json={"is_paused": False})
    assert response.status_code == 200, response.text
    _wait("catch-up to finish two runs", lambda: len(runs := _runs(api)) >= 2 and all(
        r["state"] in FINISHED for r in runs))
    runs = _runs(api)
    assert [(r["dag_run_id"], r["state"]) for r in runs] == [
        ("scheduled__2024-02-01T00:00:00+00:00", "success"), ("scheduled__2024-03-01T00:00:00+00:00", "success")]

    live = dict(warehouse_sql(" UNION ALL ".join(f"SELECT '{t.name}', count(*) FROM {t.name}" for t in TABLES)))
    per_as_of = warehouse_sql(" UNION ALL ".join(
        f"SELECT '{t.snapshot_table}', as_of::text, count(*) FROM {t.snapshot_table} GROUP BY as_of"
        for t in SNAPSHOTTED))
    churners = dict(warehouse_sql(
        "SELECT as_of::text, count(*) FILTER (WHERE churn_label) FROM labels_snapshots GROUP BY 1 ORDER BY 1"))
    (null_tv,), = warehouse_sql("SELECT count(*) FROM subscriptions WHERE plan_stream_tv IS NULL")
    say("course checks read through `docker compose exec warehouse psql`:\n"
        + "\n".join(f"  {name:<34}{count}" for name, count in live.items())
        + "\n" + "\n".join(f"  {name:<34}{as_of}: {count}" for name, as_of, count in sorted(per_as_of))
        + f"\n  churners per as_of: {churners}\n  subscriptions with plan_stream_tv NULL: {null_tv}")

    assert live == {t.name: str(ROWS) for t in TABLES}
    assert sorted(per_as_of) == sorted((t.snapshot_table, as_of, str(ROWS)) for t in SNAPSHOTTED for as_of in CHURNERS)
    assert churners == {as_of: str(count) for as_of, count in CHURNERS.items()}
    assert null_tv == str(PLAN_STREAM_TV_NULLS)


def test_rest_trigger_with_a_bad_month_gets_400(stack, api):
    before = len(_runs(api))
    response = _trigger(api, {"month": "month_1"})
    assert response.status_code == 400, response.text
    assert "does not match" in response.json()["detail"]
    assert len(_runs(api)) == before


def test_failed_expectation_is_in_the_task_log_while_running_and_after(stack, api, project, say):
    _, broken_users = project
    # The failed block is written moments before the task ends: a run whose reads all missed that
    # moment proves less, so the month is run again (each run fails the same way), three times at most.
    for _attempt in range(3):
        run_id, run, logs_while_running = _run_failing_month(api)
        served = [text for text in logs_while_running if SERVED_LOG_SOURCE in text]
        # While validate.usage_agg_30d runs, the API server also asks the log server of the container
        # running it (a read then lists that source): it must be let in (one [api] secret_key).
        assert served, f"no read while running came from the log server: {logs_while_running[-1:]}"
        for text in logs_while_running:
            assert not any(error in text for error in LOG_SERVER_ERRORS), text[-2000:]
        if any(FAILED_BLOCK in text for text in served):
            break
    assert any(FAILED_BLOCK in text for text in served), "the failed block was never served while the task ran"

    assert run["state"] == "failed"
    failed = [ti["task_id"] for ti in _task_instances(api, run_id) if ti["state"] == "failed"]
    assert failed == ["validate.usage_agg_30d"]
    log = _log(api, run_id, "validate.usage_agg_30d")
    assert FAILED_BLOCK in log
    assert f"unexpected: 3 of {ROWS} rows" in log
    assert all(user in log for user in broken_users)
    say(f"{run_id}: validate.usage_agg_30d failed; {len(served)} of {len(logs_while_running)} log reads while it "
        f"ran listed its log server as a source, {sum(FAILED_BLOCK in text for text in served)} with the failed block;"
        " after it ended:\n"
        + "\n".join(line for line in log.splitlines() if "usage_agg_30d" in line)[:1500])


def test_validation_view_opens_from_the_host_and_survives_force_recreate(stack, api, project):
    _, broken_users = project
    failed_run = [r for r in _runs(api) if r["conf"] == {"month": "month_002"}][-1]  # the one read above
    log = _log(api, failed_run["dag_run_id"], "validate.usage_agg_30d")
    (link,) = set(re.findall(r"Validation view: (\S+)", log))
    assert link.startswith(f"http://127.0.0.1:{stack.api_port}/streamflow/validation/"), link

    def failing_rows() -> list[str]:
        import httpx

        page = httpx.get(link, timeout=60, trust_env=False)  # the link as a person clicks it in the log
        assert page.status_code == 200, page.text[:2000]
        return [row for row in re.findall(r"<tr class='fail'>.*?</tr>", page.text) if "watch_hours_30d" in row]

    before = failing_rows()
    assert len(before) == 1, before
    assert all(user in before[0] for user in broken_users), before

    stack("up", "--detach", "--force-recreate", "--wait", "--wait-timeout", str(WAIT_S))

    assert failing_rows() == before  # read from the warehouse, whichever container wrote it
    # The task logs live on a volume: the recreated API server still serves the failed block.
    assert FAILED_BLOCK in _log(api, failed_run["dag_run_id"], "validate.usage_agg_30d")


def test_celery_workers_share_a_month_and_its_logs(stack, api, project, warehouse_sql, say):
    celery = stack.with_files("docker-compose.yml", "docker-compose.celery.yml")
    celery("up", "--build", "--detach", "--wait", "--wait-timeout", str(WAIT_S))
    workers = {cid[:12] for cid in celery("ps", "--quiet", "airflow-worker").stdout.split()}
    assert len(workers) >= 2, workers
    # What a user does after a failed validation: fix the file, run the month again (here on the workers).
    root, _ = project
    seeds = root / "data" / "seeds"
    shutil.copyfile(seeds / "month_001" / "usage_agg_30d.csv", seeds / "month_002" / "usage_agg_30d.csv")
    rewrite_marker(seeds / "month_002")
    ran_on: dict[str, list[tuple[str, str]]] = {}  # worker hostname -> (run_id, task_id) it ran
    logs_while_running: list[str] = []
    for _attempt in range(3):  # Celery hands tasks to whichever worker asks first: a run may use one
        response = _trigger(api, {"month": "month_002"})
        assert response.status_code == 200, response.text
        run_id = response.json()["dag_run_id"]
        deadline = time.monotonic() + WAIT_S
        while _run(api, run_id)["state"] not in FINISHED:  # read the log of whatever task is running
            assert time.monotonic() < deadline, f"celery run {run_id} not finished after {WAIT_S} s"
            running = [ti for ti in _task_instances(api, run_id) if ti["state"] == "running"]
            logs_while_running += [_log(api, run_id, ti["task_id"]) for ti in running]
            time.sleep(0.5)
        assert _run(api, run_id)["state"] == "success", _failed_task_logs(api, run_id)
        # The validations the workers ran are in the run's Validation view: every table, all passed.
        page = api.get(f"/streamflow/validation/{DAG_ID}/{quote(run_id, safe='')}", headers={"Accept": "text/html"})
        assert page.status_code == 200, page.text[:2000]
        verdicts = dict(re.findall(r"<h2 id='(\w+)' class='(\w+)'>", page.text))
        assert verdicts == {table.name: "passed" for table in TABLES}, verdicts
        for ti in _task_instances(api, run_id):
            assert ti["hostname"] in workers, f"{ti['task_id']} ran on {ti['hostname']}, not a worker {workers}"
            ran_on.setdefault(ti["hostname"], []).append((run_id, ti["task_id"]))
        if len(ran_on) >= 2:
            break
    say("celery: tasks per worker hostname (REST API task instances):\n" + "\n".join(
        f"  {host}: {len(tasks)} tasks, e.g. {sorted(t for _, t in tasks)[:3]}" for host, tasks in sorted(ran_on.items())))
    assert len(ran_on) >= 2, f"every task ran on one worker: {ran_on}"
    stamped = warehouse_sql(" UNION ALL ".join(
        f"SELECT count(*) FROM {t.snapshot_table} WHERE as_of = '2024-03-31'" for t in SNAPSHOTTED))
    assert stamped == [(str(ROWS),)] * len(SNAPSHOTTED)
    # While a task runs on a worker, the API server reads its log from that worker's log server.
    served = [text for text in logs_while_running if SERVED_LOG_SOURCE in text]
    assert served, "no log read while a task ran on a worker listed the worker's log server"
    for text in logs_while_running:
        assert not any(error in text for error in LOG_SERVER_ERRORS), text[-2000:]
    # Whichever worker ran a task, the API server serves its log after it ended (shared volume).
    for tasks in ran_on.values():
        run_id, task_id = tasks[0]
        text = _log(api, run_id, task_id)
        assert len(text.splitlines()) > 5, text
        assert not any(error in text for error in LOG_SERVER_ERRORS), text[-2000:]


# ----------------------------------------------------------------------------------------- helpers


def _run_failing_month(api: httpx.Client) -> tuple[str, dict[str, Any], list[str]]:
    """Trigger month_002; read validate.usage_agg_30d's log through the API as often as it can while
    the task runs. Returns the run id, the finished run and those reads."""
    response = _trigger(api, {"month": "month_002"})
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]
    logs_while_running = []
    deadline = time.monotonic() + WAIT_S
    while (run := _run(api, run_id))["state"] not in FINISHED:
        assert time.monotonic() < deadline, f"run {run_id} not finished after {WAIT_S} s"
        if _task(api, run_id, "validate.usage_agg_30d").get("state") == "running":
            logs_while_running += [_log(api, run_id, "validate.usage_agg_30d") for _ in range(40)]
        else:
            time.sleep(0.5)
    return run_id, run, logs_while_running


def _wait(what: str, done, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(1)


def _runs(api: httpx.Client) -> list[dict[str, Any]]:
    response = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns", params={"order_by": "id", "limit": 100})
    assert response.status_code == 200, response.text
    return response.json()["dag_runs"]


def _run(api: httpx.Client, run_id: str) -> dict[str, Any]:
    response = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}")
    assert response.status_code == 200, response.text
    return response.json()


def _task_instances(api: httpx.Client, run_id: str) -> list[dict[str, Any]]:
    response = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances",
                       params={"limit": 100})
    assert response.status_code == 200, response.text
    return response.json()["task_instances"]


def _task(api: httpx.Client, run_id: str, task_id: str) -> dict[str, Any]:
    return next((ti for ti in _task_instances(api, run_id) if ti["task_id"] == task_id), {})


def _failed_task_logs(api: httpx.Client, run_id: str) -> str:
    """For an assertion message: each failed task, where it ran, and the end of its log."""
    return "\n".join(f"--- {ti['task_id']} on {ti['hostname']}:\n{_log(api, run_id, ti['task_id'])[-3000:]}"
                     for ti in _task_instances(api, run_id) if ti["state"] == "failed")


def _trigger(api: httpx.Client, conf: dict) -> httpx.Response:
    """What the UI's trigger form sends (the stack runs the simple auth manager, everyone admin)."""
    return api.post(f"/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": conf})


def _log(api: httpx.Client, run_id: str, task_id: str, try_number: int = 1) -> str:
    """A task's log through the public API, as text: each record's event (the sources read are events
    too) and exception values."""
    path = f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/logs/{try_number}"
    response = api.get(path)
    assert response.status_code == 200, response.text
    texts = []
    for record in response.json()["content"]:
        texts.append(str(record.get("event", "")) if isinstance(record, dict) else str(record))
        if isinstance(record, dict):
            texts.extend(str(detail.get("exc_value", "")) for detail in record.get("error_detail") or [])
    return "\n".join(texts)
