"""The compose stack's services: which there are, their commands, users, mounts and volumes, their
healthchecks and start-up order, airflow-init's script, and docker-compose.yml's header."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import pytest

from tests.dags.compose_files import (
    AIRFLOW_SERVICES,
    CELERY_SERVICES,
    EXPECTED_SERVICES,
    LONG_RUNNING_AIRFLOW_SERVICES,
    ONE_SHOT_SERVICES,
    PREFLIGHT_SERVICE,
    ROOT,
    Stack,
    command_of,
    common_env,
    healthcheck_test,
    interpolate,
    mounts,
    review_tests,
    seconds,
)

if TYPE_CHECKING:
    from collections.abc import Callable

SQL_DIR = ROOT / "sql"
AIRFLOW_COMMANDS = {
    "airflow-apiserver": ["api-server"],
    "airflow-scheduler": ["scheduler"],
    "airflow-dag-processor": ["dag-processor"],
    "airflow-triggerer": ["triggerer"],
    "airflow-cli": ["bash", "-c", "airflow"],
}
# Host folder -> where the Airflow containers must see it (PROJECT_ROOT = /opt/airflow), read-only.
AIRFLOW_MOUNTS = {name: f"/opt/airflow/{name}" for name in ("dags", "plugins", "include", "sql", "data")}
# The official image's `airflow` user; any uid works with group 0.
AIRFLOW_USER = "${AIRFLOW_UID:-50000}:0"
# The official docker-compose.yaml gives the API server 30 s + 5 retries x 30 s before it is unhealthy.
APISERVER_HEALTH_BUDGET_S = 180


def write_stubs(stub_dir: Path, names: list[str]) -> None:
    """Executables that append `name arg1 arg2 ...` (\\x1f-separated) to $STUB_CALLS and succeed."""
    stub_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        stub = stub_dir / name
        stub.write_text(
            f'#!/usr/bin/env bash\nprintf "%s\\x1f" {name} "$@" >> "$STUB_CALLS"\necho >> "$STUB_CALLS"\n',
            encoding="utf-8",
        )
        stub.chmod(0o755)


def read_stub_calls(calls: Path) -> list[list[str]]:
    recorded = calls.read_text(encoding="utf-8").splitlines() if calls.exists() else []
    return [line.rstrip("\x1f").split("\x1f") for line in recorded]


def header_comment(text: str) -> str:
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("# "))
    return " ".join(lines)


# -------------------------------------------------------------------------------------- review checks


def check_checkout_mounts_read_only(stack: Stack) -> None:
    """Code, sql/ and the month files are mounted read-only in every Airflow container."""
    for name, service in stack.airflow_services().items():
        by_source = {str(PurePosixPath(source)): (target, mode) for source, target, mode in mounts(service)}
        for folder, target in AIRFLOW_MOUNTS.items():
            assert by_source.get(folder) == (target, "ro"), f"{name}: ./{folder} must be mounted at {target}:ro"


def check_users_and_ui_link(stack: Stack) -> None:
    """The services run as the official image's user (group 0), airflow-init as root; the Validation
    links the task logs print point at this stack's published UI, not at `make airflow`'s port."""
    api_port = interpolate(str(stack.services["airflow-apiserver"]["ports"][0]), stack.dotenv).rsplit(":", 2)[1]
    for name, service in stack.airflow_services().items():
        expected_user = "0:0" if name == "airflow-init" else AIRFLOW_USER
        assert str(service.get("user")) == expected_user, f"{name}: user must be {expected_user}"
        ui_url = interpolate(service["environment"].get("STREAMFLOW_UI_URL", ""), stack.dotenv)
        assert ui_url == f"http://127.0.0.1:{api_port}", f"{name}: STREAMFLOW_UI_URL={ui_url!r}, the UI is on {api_port}"


def run_airflow_init(stack: Stack, workdir: Path, *, uid: str = "4242"):
    """Run airflow-init's `bash -c` script as Compose would hand it over, with chown/airflow stubbed.

    Returns (result, calls, logs dir).
    """
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    service = stack.services["airflow-init"]
    command = command_of(service)
    assert command[:2] == ["bash", "-c"], f"airflow-init: expected bash -c '<script>': {command}"
    assert len(command) == 3, f"airflow-init: expected bash -c '<script>': {command}"
    script = interpolate(command[2], {"AIRFLOW_UID": uid})
    logs = [target for source, target, _mode in mounts(service) if source == "airflow-logs"]
    assert logs, "airflow-init must mount the airflow-logs volume"
    write_stubs(workdir / "bin", ["chown", "airflow"])
    calls = workdir / "calls"
    env = {"PATH": f"{workdir / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}", "STUB_CALLS": str(calls)}
    result = subprocess.run([bash, "-c", script], env=env, capture_output=True, text=True, timeout=30, check=False)
    return result, read_stub_calls(calls), logs[0]


def check_airflow_init_prepares_logs(stack: Stack) -> None:
    """airflow-init hands the logs volume to AIRFLOW_UID:0, then ends with `airflow db migrate`."""
    with tempfile.TemporaryDirectory() as scratch:
        result, calls, logs = run_airflow_init(stack, Path(scratch))
        assert result.returncode == 0, result.stderr
        assert ["chown", "-R", "4242:0", logs] in calls, calls
        assert calls[-1] == ["airflow", "db", "migrate"], f"airflow-init must end with `airflow db migrate`: {calls}"


def check_healthchecks(stack: Stack) -> None:
    """Every long-running service has a healthcheck; the API server gets the official file's budget."""
    long_running = {f"docker-compose.yml {name}": service for name, service in stack.services.items()
                    if name not in ONE_SHOT_SERVICES}
    long_running |= {f"docker-compose.celery.yml {name}": service for name, service in stack.celery_services.items()
                     if name not in stack.services}
    for label, service in long_running.items():
        healthcheck = service.get("healthcheck") or {}
        assert healthcheck_test(service), f"{label}: no healthcheck"
        assert not healthcheck.get("disable"), f"{label}: healthcheck disabled"
        for key in ("interval", "timeout", "start_period"):
            seconds(healthcheck.get(key, "30s"))
    api = stack.services["airflow-apiserver"]["healthcheck"]
    budget = seconds(api["start_period"]) + seconds(api["interval"]) * int(api["retries"])
    assert budget >= APISERVER_HEALTH_BUDGET_S, f"API server unhealthy after {budget:.0f} s: the official file allows 180 s"
    assert seconds(api["timeout"]) >= 10


def check_header_says_local_development(stack: Stack) -> None:
    """docker-compose.yml's header says what the stack is, and the commands it shows name real services.

    (What the docs under docs/ say is checked by tests/dags/test_docs.py, which names no wording.)
    """
    header = header_comment(stack.base_text)
    assert "local development only" in header, "docker-compose.yml's header must say: local development only"
    assert not re.search(r"production[- ](like|ready|grade)", header), "the stack is local development only"
    services = set(stack.services) | set(stack.celery_services)
    commands = re.findall(r"docker\s+compose(?:\s+-f\s+\S+|\s+--profile\s+\S+)*\s+(?:exec|run\s+--rm)(?:\s+-\S+)*\s+([\w-]+)", header)
    assert commands, "no `docker compose exec|run` example in the header"
    for service in commands:
        assert service in services, f"the header runs a command in {service!r}, which no compose file defines"


def _replace_volume(service: dict, old: str, new: str | None) -> None:
    volumes = service["volumes"]
    index = volumes.index(old)
    if new is None:
        del volumes[index]
    else:
        volumes[index] = new


def _set_init_script(stack: Stack, transform: Callable[[str], str]) -> None:
    command = stack.services["airflow-init"]["command"]
    command[2] = transform(command[2])


# ------------------------------------------------------------------------------- review checks: pass


CHECKS: list[Callable[[Stack], None]] = [
    check_checkout_mounts_read_only,
    check_users_and_ui_link,
    check_airflow_init_prepares_logs,
    check_healthchecks,
    check_header_says_local_development,
]


# ---------------------------------------------------------------- review checks: fail on broken files


MUTATIONS: dict[str, tuple[Callable[[Stack], None], Callable[[Stack], None]]] = {
    # read-only checkout
    "data/ mounted read-write": (check_checkout_mounts_read_only, lambda s: _replace_volume(s.services["airflow-scheduler"], "./data:/opt/airflow/data:ro", "./data:/opt/airflow/data")),
    "dags/ not mounted": (check_checkout_mounts_read_only, lambda s: _replace_volume(s.services["airflow-scheduler"], "./dags:/opt/airflow/dags:ro", None)),
    # users, UI link, init
    "UI link on make airflow's port": (check_users_and_ui_link, lambda s: common_env(s).update(STREAMFLOW_UI_URL="http://127.0.0.1:${AIRFLOW_API_PORT:-8080}")),
    "containers not in group 0": (check_users_and_ui_link, lambda s: s.services["airflow-scheduler"].update(user="${AIRFLOW_UID:-50000}:${AIRFLOW_GID:-50000}")),
    "airflow-init not root": (check_users_and_ui_link, lambda s: s.services["airflow-init"].update(user=AIRFLOW_USER)),
    "airflow-init only migrates": (check_airflow_init_prepares_logs, lambda s: _set_init_script(s, lambda _script: "exec airflow db migrate\n")),
    "airflow-init never migrates": (check_airflow_init_prepares_logs, lambda s: _set_init_script(s, lambda script: script.replace("exec airflow db migrate", "true"))),
    # healthchecks
    "API server healthcheck of ~80 s": (check_healthchecks, lambda s: s.services["airflow-apiserver"]["healthcheck"].update(interval="10s")),
    "triggerer without healthcheck": (check_healthchecks, lambda s: s.services["airflow-triggerer"].pop("healthcheck")),
    "worker without healthcheck": (check_healthchecks, lambda s: s.celery_services["airflow-worker"].pop("healthcheck")),
    "redis healthcheck disabled": (check_healthchecks, lambda s: s.celery_services["redis"]["healthcheck"].update(disable=True)),
    # docs
    "header no longer says local development only": (check_header_says_local_development, lambda s: setattr(s, "base_text", s.base_text.replace("local development only", "a production deployment"))),
    "header calls it production-like": (check_header_says_local_development, lambda s: setattr(s, "base_text", s.base_text.replace("# WARNING:", "# A production-like stack. WARNING:"))),
    "header runs a command in a service that does not exist": (check_header_says_local_development, lambda s: setattr(s, "base_text", s.base_text.replace("docker compose exec airflow-scheduler", "docker compose exec scheduler"))),
}

test_review_check, test_checks_catch_broken_variants = review_tests(CHECKS, MUTATIONS)


# ------------------------------------------------------------------------------------------- compose


def test_expected_services_exist(services, stack):
    assert set(services) == EXPECTED_SERVICES
    assert set(stack.airflow_services()) == AIRFLOW_SERVICES
    assert set(stack.celery_services) == AIRFLOW_SERVICES | CELERY_SERVICES


def test_every_bind_mounted_host_path_exists(stack):
    checked = 0
    for name, service in [*stack.services.items(), *stack.celery_services.items()]:
        for source, _target, _mode in mounts(service):
            if source.startswith(("./", "../", "/")):
                assert (ROOT / source).exists(), f"{name}: host path {source} does not exist in the repository"
                checked += 1
    assert checked >= len(AIRFLOW_MOUNTS) * len(AIRFLOW_SERVICES)


def test_named_volumes_are_declared(compose, services):
    declared = set(compose.get("volumes") or {})
    for name, service in services.items():
        for source, _target, _mode in mounts(service):
            if not source.startswith((".", "/", "~", "$")):
                assert source in declared, f"{name}: volume {source} is not declared under volumes:"


def test_databases_have_pg_isready_healthchecks(services):
    for name in ("warehouse", "airflow-metadata"):
        assert "pg_isready" in healthcheck_test(services[name]), name


def test_warehouse_schema_is_set_up_by_apply_schema_only(services):
    # No init script and no sql/ in the warehouse container: the snapshot tables are rendered from the
    # registry and the migrations recorded by streamflow.schema, which psql on sql/ cannot do.
    warehouse_mounts = mounts(services["warehouse"])
    assert [target for _source, target, _mode in warehouse_mounts if target.startswith("/docker-entrypoint-initdb.d")] == []
    assert [target for source, target, _mode in warehouse_mounts if (ROOT / source).resolve() == SQL_DIR] == []
    # What sets it up instead, the DAG's ensure_schema task before any stage task: test_dag_integrity.


def test_airflow_service_commands(services):
    commands = {name: command_of(services[name]) for name in AIRFLOW_SERVICES - {"airflow-init"}}
    assert commands == AIRFLOW_COMMANDS
    assert services["airflow-cli"]["profiles"] == ["debug"]


def test_airflow_mounts_keep_project_root_layout(services):
    for name in AIRFLOW_SERVICES:
        by_source = {str(PurePosixPath(source)): target for source, target, _mode in mounts(services[name])}
        for folder, target in AIRFLOW_MOUNTS.items():
            assert by_source.get(folder) == target, f"{name}: ./{folder} must be mounted at {target}"
        env = services[name]["environment"]
        include = PurePosixPath(env["PYTHONPATH"])
        assert str(include) == by_source["include"]
        # streamflow.settings: PROJECT_ROOT = include/.. ; sql/ and data/seeds/ below it.
        assert str(include.parent / "sql") == by_source["sql"]
        assert env["STREAMFLOW_SEEDS_DIR"] == str(PurePosixPath(by_source["data"]) / "seeds")


def test_startup_order(services):
    # The preflight first, before the databases too (an empty volume keeps its first password).
    assert "depends_on" not in services[PREFLIGHT_SERVICE]
    for name in ("warehouse", "airflow-metadata", "airflow-apiserver"):
        assert services[name]["depends_on"][PREFLIGHT_SERVICE]["condition"] == "service_completed_successfully", name
    assert services["airflow-init"]["depends_on"]["airflow-metadata"]["condition"] == "service_healthy"
    for name in LONG_RUNNING_AIRFLOW_SERVICES:
        depends_on = services[name]["depends_on"]
        assert depends_on["airflow-init"]["condition"] == "service_completed_successfully", name
        assert depends_on["warehouse"]["condition"] == "service_healthy", name
        assert depends_on["airflow-metadata"]["condition"] == "service_healthy", name
    for name in ("airflow-cli",):
        assert {dep: spec["condition"] for dep, spec in services[name]["depends_on"].items()} == {
            "airflow-metadata": "service_healthy", "warehouse": "service_healthy"}
