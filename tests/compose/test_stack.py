"""docker-compose.yml brought up for real and driven as a user would, then the celery scale-out.

One stack for the module, on a copy of the checkout that adds `month_002` (February's files with
negative watch hours for three users), with secrets and users' passwords from `make compose-secrets`
(outside the copy, as a user keeps them). The tests build on each other's state, in file order:

0. without them (and without dev mode) `up` stops at the preflight, which names each variable;
1. `docker compose up --build -d --wait`: every service healthy;
2. unpausing `ingest_month` makes catch-up run January and February in the containers; the
   course's checks, read through `docker compose exec warehouse psql`;
3. a REST trigger with a bad `month` gets 400; `month_002` fails `validate.usage_agg_30d`, and the
   failed block is readable through the API's task-log endpoint, while the task runs and after;
4. the Validation view the failed log links to opens from the host for a logged-in user (API server,
   warehouse), and still does (and the log is still served) after `docker compose up --force-recreate`;
5. logins: anonymous requests get 401 (API, Validation view); the viewer reads DAGs, runs and the
   Validation view but gets 403 for a trigger, the op triggers; in chromium: the login page, a
   viewer's trigger refused, an op's trigger run;
6. with docker-compose.celery.yml: Redis, CeleryExecutor, two workers; `month_002` with its file
   fixed runs again, its tasks ran on both workers, their logs and validations readable;
7. `docker compose down -v` leaves no container and no volume of the project.

The REST calls go through `api`, logged in as the admin user.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest
from dotenv import dotenv_values

from streamflow.ids import DAG_ID, TRAINING_DAG_ID
from streamflow.registry import SNAPSHOTTED, TABLES
from tests.compose.conftest import ROOT, Compose, copy_checkout
from tests.golden import CHURNERS, PLAN_STREAM_TV_NULL, ROWS
from tests.helpers import copy_month_with_negative_watch_hours, rewrite_marker

if TYPE_CHECKING:
    import httpx

pytestmark = pytest.mark.compose

FINISHED = ("success", "failed")
WAIT_S = 600
FAILED_BLOCK = "FAILED usage_agg_30d.watch_hours_30d: expect_column_values_to_be_between"
# What the API server writes into a log instead of the running task's lines when the log server refuses it
# (403: another [api] secret_key) or cannot be reached.
LOG_SERVER_ERRORS = ("Could not read served logs", "the same 'secret_key'")
SERVED_LOG_SOURCE = ":8793/log/"  # the log server of the container running the task (a log "source" line)
# A DAG the stack leaves paused (only ingest_month is unpaused): a run triggered there stays queued,
# so the op's triggers cost no work and change nothing the other tests read.
PAUSED_DAG_ID = TRAINING_DAG_ID


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
def compose_secrets(tmp_path_factory) -> dict[str, str]:
    """What `make compose-secrets` writes (tools/compose_secrets.py), outside the project's copy:
    compose.env's values, the variables the stack is started with."""
    folder = tmp_path_factory.mktemp("compose-secrets")
    subprocess.run([sys.executable, str(ROOT / "tools" / "compose_secrets.py"), str(folder)], check=True,
                   capture_output=True)
    lines = (folder / "compose.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


@pytest.fixture(scope="module")
def passwords(compose_secrets) -> dict[str, str]:
    """The users' passwords, as a user reads them from the generated file."""
    with open(compose_secrets["STREAMFLOW_PASSWORDS_FILE"], encoding="utf-8") as file:
        return json.load(file)


@pytest.fixture(scope="module")
def stack(upstream_images, project, compose_secrets):
    """`docker compose up --build -d --wait`; `down -v` at the end, checked to leave nothing behind."""
    root, _ = project
    compose = Compose(root, upstream_images, **compose_secrets)
    try:
        compose("up", "--build", "--detach", "--wait", "--wait-timeout", str(WAIT_S))
        yield compose
    finally:
        compose.with_files("docker-compose.yml", "docker-compose.celery.yml")(
            "--profile", "flower", "down", "--volumes", "--remove-orphans", check=False)
    assert compose.containers() == [], "containers left after `docker compose down -v`"
    assert compose.volumes() == [], "volumes left after `docker compose down -v`"


@pytest.fixture(scope="module")
def api(stack, passwords):
    """The REST API as the admin user."""
    with _client(stack, "admin", passwords["admin"]) as client:
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


def test_up_with_the_public_dev_secrets_stops_at_the_preflight(upstream_images, project):
    """What a user gets from `docker compose up` with the repository's defaults and no dev mode."""
    root, _ = project
    refused = Compose(root, upstream_images)  # no secrets, no STREAMFLOW_DEV_MODE
    try:
        # No --build: the image is built here only when missing; the stack's `up --build` rebuilds it anyway.
        result = refused("up", "--detach", "--wait", "--wait-timeout", str(WAIT_S), check=False)
        assert result.returncode != 0, result.stdout[-2000:]
        assert 'service "preflight" didn\'t complete successfully: exit 1' in result.stderr, result.stderr[-2000:]
        said = refused("logs", "--no-log-prefix", "preflight").stdout
        for name in ("AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY", "AIRFLOW_FERNET_KEY", "AIRFLOW_METADATA_PASSWORD",
                     "POSTGRES_PASSWORD", "STREAMFLOW_PASSWORDS_FILE"):
            assert f"preflight: {name} " in said, said
        # Nothing else ran: the databases' volumes were never initialised with the public passwords.
        assert refused("ps", "--services", "--status", "running").stdout.split() == []
        states = dict(line.split("\t") for line in refused("ps", "--all", "--format", "{{.Service}}\t{{.State}}")
                      .stdout.splitlines())
        assert states.pop("preflight") == "exited"
        assert set(states.values()) <= {"created"}, states
    finally:
        refused("down", "--volumes", "--remove-orphans", check=False)
    assert refused.containers() == []
    assert refused.volumes() == []


def test_every_service_is_up_and_healthy(stack):
    services = {line.split("\t")[0]: line.split("\t")[1:] for line in stack(
        "ps", "--all", "--format", "{{.Service}}\t{{.State}}\t{{.ExitCode}}").stdout.splitlines()}
    expected = {"preflight", "warehouse", "airflow-metadata", "airflow-init", "airflow-apiserver", "airflow-scheduler",
                "airflow-dag-processor", "airflow-triggerer"}
    assert set(services) == expected
    assert services.pop("preflight") == ["exited", "0"]
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
    assert null_tv == str(PLAN_STREAM_TV_NULL)


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


def test_validation_view_opens_from_the_host_and_survives_force_recreate(stack, api, project, passwords):
    _, broken_users = project
    link = _validation_link(stack, api)

    def failing_rows() -> list[str]:
        import httpx

        # The link as a person clicks it in the log, logged in (the UI's cookie: the token from the login).
        cookie = {"Cookie": f"_token={_token(stack, 'viewer', passwords['viewer'])}"}
        page = httpx.get(link, timeout=60, trust_env=False, headers=cookie)
        assert page.status_code == 200, page.text[:2000]
        return [row for row in re.findall(r"<tr class='fail'>.*?</tr>", page.text) if "watch_hours_30d" in row]

    before = failing_rows()
    assert len(before) == 1, before
    assert all(user in before[0] for user in broken_users), before

    stack("up", "--detach", "--force-recreate", "--wait", "--wait-timeout", str(WAIT_S))

    assert failing_rows() == before  # read from the warehouse, whichever container wrote it
    # The task logs live on a volume: the recreated API server still serves the failed block.
    failed_run = [r for r in _runs(api) if r["conf"] == {"month": "month_002"}][-1]
    assert FAILED_BLOCK in _log(api, failed_run["dag_run_id"], "validate.usage_agg_30d")


def test_anonymous_requests_get_401(stack, api):
    import httpx

    link = _validation_link(stack, api)
    with httpx.Client(base_url=f"http://127.0.0.1:{stack.api_port}", timeout=60, trust_env=False) as anonymous:
        assert anonymous.get(f"/api/v2/dags/{DAG_ID}").status_code == 401
        assert anonymous.get(f"/api/v2/dags/{DAG_ID}/dagRuns").status_code == 401
        assert _trigger(anonymous, {"month": "month_001"}).status_code == 401
        page = anonymous.get(link)
        assert page.status_code == 401, page.text[:500]
        assert "watch_hours_30d" not in page.text
        wrong = anonymous.post("/auth/token", json={"username": "viewer", "password": "not-the-password"})
        assert wrong.status_code == 401, wrong.text
        # The all-admins token (dev mode's no-login) is refused.
        assert anonymous.get("/auth/token").status_code == 403


def test_the_viewer_reads_dags_runs_and_validation_but_gets_403_for_a_trigger(stack, api, passwords):
    link = _validation_link(stack, api)
    with _client(stack, "viewer", passwords["viewer"]) as viewer:
        assert viewer.get(f"/api/v2/dags/{DAG_ID}").status_code == 200
        runs = _runs(viewer)
        assert len(runs) >= 3, runs  # the two catch-up runs and the failed month_002 runs
        page = viewer.get(link, headers={"Accept": "text/html"})
        assert page.status_code == 200, page.text[:500]
        assert "watch_hours_30d" in page.text
        refused = _trigger(viewer, {"month": "month_001"})
        assert refused.status_code == 403, refused.text
        assert viewer.patch(f"/api/v2/dags/{PAUSED_DAG_ID}", json={"is_paused": False}).status_code == 403
        assert len(_runs(viewer)) == len(runs)
    assert _dag(api, PAUSED_DAG_ID)["is_paused"] is True


def test_the_op_triggers_through_the_api(stack, api, passwords):
    assert _dag(api, PAUSED_DAG_ID)["is_paused"] is True
    before = _runs(api, PAUSED_DAG_ID)
    with _client(stack, "op", passwords["op"]) as op:
        response = op.post(f"/api/v2/dags/{PAUSED_DAG_ID}/dagRuns", json={"logical_date": None})
        assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]
    runs = {run["dag_run_id"]: run for run in _runs(api, PAUSED_DAG_ID)}
    assert len(runs) == len(before) + 1
    assert runs[run_id]["triggering_user_name"] == "op"
    assert runs[run_id]["state"] == "queued"  # paused DAG: no work done


def test_the_api_server_never_made_up_a_password(stack):
    """Every user had one in the secret: the auth manager generated (and logged) none."""
    logs = stack("logs", "--no-log-prefix", "airflow-apiserver").stdout
    assert "SimpleAuthManager is active" in logs  # logins on: the auth manager read the passwords file
    assert "Password for user" not in logs


def test_browser_login_then_the_viewer_sees_runs_and_validation_but_cannot_trigger(stack, api, passwords, page,
                                                                                     tmp_path):
    from playwright.sync_api import expect

    failed_run = [r for r in _runs(api) if r["conf"] == {"month": "month_002"}][-1]
    base = f"http://127.0.0.1:{stack.api_port}"
    page.goto(f"{base}/dags/{DAG_ID}/runs")
    expect(page.get_by_text("Sign into Airflow")).to_be_visible()
    assert "/auth/login" in page.url
    page.screenshot(path=tmp_path / "login.png")
    _log_in(page, "viewer", passwords["viewer"])
    page.wait_for_url(f"**/dags/{DAG_ID}/runs")
    expect(page.get_by_text("scheduled__2024-02-01T00:00:00+00:00").first).to_be_visible()
    expect(page.get_by_text(failed_run["dag_run_id"]).first).to_be_visible()
    page.screenshot(path=tmp_path / "viewer-runs.png")

    page.goto(f"{base}/dags/{DAG_ID}/runs/{quote(failed_run['dag_run_id'], safe='')}/tasks/validate.usage_agg_30d")
    page.get_by_role("link", name="Validation", exact=True).click()
    view = page.frame_locator("iframe[title='Validation']")
    expect(view.locator("tr.fail").filter(has_text="watch_hours_30d")).to_have_count(1)
    page.screenshot(path=tmp_path / "viewer-validation.png")

    runs_before = len(_runs(api))
    page.goto(f"{base}/dags/{DAG_ID}")
    page.get_by_role("button", name="Trigger Dag").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("button", name="Trigger", exact=True).click()
    refusal = dialog.get_by_text("403 Forbidden")
    expect(refusal).to_be_visible()
    # .first: the UI renders its notifications region twice, so a toast's text appears twice.
    expect(page.get_by_text("You do not have permission to perform this action.").first).to_be_visible()
    refusal.scroll_into_view_if_needed()
    page.screenshot(path=tmp_path / "viewer-trigger-refused.png")
    assert len(_runs(api)) == runs_before
    assert _dag(api, PAUSED_DAG_ID)["is_paused"] is True


def test_browser_the_op_logs_in_and_triggers_a_run(stack, api, passwords, page, tmp_path):
    from playwright.sync_api import expect

    before = {run["dag_run_id"] for run in _runs(api, PAUSED_DAG_ID)}
    page.goto(f"http://127.0.0.1:{stack.api_port}/dags/{PAUSED_DAG_ID}")
    _log_in(page, "op", passwords["op"])
    page.wait_for_url(f"**/dags/{PAUSED_DAG_ID}")
    page.get_by_role("button", name="Trigger Dag").click()
    dialog = page.get_by_role("dialog")
    # The form unpauses the DAG on trigger unless told not to: kept paused, the run stays queued.
    dialog.get_by_text(f"Unpause {PAUSED_DAG_ID} on trigger").click()
    dialog.get_by_role("button", name="Trigger", exact=True).click()
    page.wait_for_url(f"**/dags/{PAUSED_DAG_ID}/runs/manual__*")
    expect(page.get_by_text("Dag run has been successfully triggered.").first).to_be_visible()
    expect(page.get_by_text("Triggering User")).to_be_visible()
    page.screenshot(path=tmp_path / "op-triggered.png")
    new = [run for run in _runs(api, PAUSED_DAG_ID) if run["dag_run_id"] not in before]
    assert [(run["triggering_user_name"], run["state"]) for run in new] == [("op", "queued")]
    assert new[0]["dag_run_id"] in page.url.replace("%3A", ":").replace("%2B", "+")
    assert _dag(api, PAUSED_DAG_ID)["is_paused"] is True


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


def _token(stack: Compose, username: str, password: str) -> str:
    """A JWT from the simple auth manager's login endpoint, what the UI's login form posts to."""
    import httpx

    response = httpx.post(f"http://127.0.0.1:{stack.api_port}/auth/token", timeout=60, trust_env=False,
                          json={"username": username, "password": password})
    assert response.status_code == 201, response.text
    return response.json()["access_token"]


def _client(stack: Compose, username: str, password: str) -> httpx.Client:
    """An API client logged in as `username`."""
    import httpx

    return httpx.Client(base_url=f"http://127.0.0.1:{stack.api_port}", timeout=60, trust_env=False,
                        headers={"Accept": "application/json",
                                 "Authorization": f"Bearer {_token(stack, username, password)}"})


def _log_in(page, username: str, password: str) -> None:
    """The simple auth manager's login form, as a person fills it in."""
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def _validation_link(stack: Compose, api: httpx.Client) -> str:
    """The Validation view link the failed month_002 run's log prints."""
    failed_run = [r for r in _runs(api) if r["conf"] == {"month": "month_002"}][-1]
    log = _log(api, failed_run["dag_run_id"], "validate.usage_agg_30d")
    (link,) = set(re.findall(r"Validation view: (\S+)", log))
    assert link.startswith(f"http://127.0.0.1:{stack.api_port}/streamflow/validation/"), link
    return link


def _dag(api: httpx.Client, dag_id: str) -> dict[str, Any]:
    response = api.get(f"/api/v2/dags/{dag_id}")
    assert response.status_code == 200, response.text
    return response.json()


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


def _runs(api: httpx.Client, dag_id: str = DAG_ID) -> list[dict[str, Any]]:
    response = api.get(f"/api/v2/dags/{dag_id}/dagRuns", params={"order_by": "id", "limit": 100})
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
    """What the UI's trigger form sends, as whoever `api` is logged in as."""
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
