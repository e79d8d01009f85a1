"""Static checks of the Docker stack (docker-compose.yml, Dockerfile, docker/warehouse-init.sh).

No Docker engine is needed: the files are parsed and checked against the repository (.env,
requirements.txt, sql/), and the warehouse init script is run by bash with a stub `psql`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import pytest
import yaml

from streamflow.local.env import read_dotenv

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
INIT_SCRIPT = ROOT / "docker" / "warehouse-init.sh"
SQL_DIR = ROOT / "sql"

AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
}
LONG_RUNNING_AIRFLOW_SERVICES = AIRFLOW_SERVICES - {"airflow-init"}
EXPECTED_SERVICES = {"warehouse", "airflow-metadata"} | AIRFLOW_SERVICES
AIRFLOW_COMMANDS = {
    "airflow-apiserver": ["api-server"],
    "airflow-scheduler": ["scheduler"],
    "airflow-dag-processor": ["dag-processor"],
    "airflow-triggerer": ["triggerer"],
    "airflow-init": ["db", "migrate"],
}
# Host folder -> where the Airflow containers must see it (PROJECT_ROOT = /opt/airflow).
AIRFLOW_MOUNTS = {name: f"/opt/airflow/{name}" for name in ("dags", "plugins", "include", "sql", "data")}
NUMBERED_DDL = re.compile(r"[0-9]{3}_.*\.sql")

# Compose interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR?err}, ${VAR:+x}, $VAR.
# `$$` is a literal dollar (left for the container's shell) and is removed before matching.
BRACED_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}")
BARE_VAR = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


# ---------------------------------------------------------------------------------------------- helpers


def requirement_pins() -> dict[str, str]:
    pins = {}
    for raw in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==(\S+)", line)
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def strings_in(node) -> list[str]:
    """Every string value (and mapping key) of a parsed YAML tree."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for key, value in node.items() for s in strings_in(key) + strings_in(value)]
    if isinstance(node, list):
        return [s for item in node for s in strings_in(item)]
    return []


def interpolate(text: str, values: dict[str, str]) -> str:
    """Compose-style substitution of ${VAR} / ${VAR:-default} with .env values."""

    def substitute(match: re.Match) -> str:
        name, operator, argument = match.groups()
        value = values.get(name)
        if operator in (":-",) and not value:
            return argument
        if operator == "-" and value is None:
            return argument
        return value or ""

    return BRACED_VAR.sub(substitute, text.replace("$$", "\0")).replace("\0", "$")


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, comments dropped and `\\` continuations joined."""
    instructions, pending = [], ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, arguments = full.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def mounts(service: dict) -> list[tuple[str, str, str]]:
    """(source, target, mode) of a service's short-syntax volumes."""
    result = []
    for entry in service.get("volumes", []):
        assert isinstance(entry, str), f"use the short volume syntax: {entry!r}"
        source, target, *mode = entry.split(":")
        result.append((source, target, mode[0] if mode else "rw"))
    return result


def command_of(service: dict) -> list[str]:
    command = service.get("command")
    return command.split() if isinstance(command, str) else list(command or [])


def init_script_sql_dir() -> str:
    match = re.search(r"\$\{STREAMFLOW_SQL_DIR:-([^}]+)\}", INIT_SCRIPT.read_text(encoding="utf-8"))
    assert match, "warehouse-init.sh must default STREAMFLOW_SQL_DIR to the mounted sql folder"
    return match.group(1)


def init_script_glob() -> str:
    """The file pattern the init script expands under its sql folder."""
    match = re.search(r'"\$\{?sql_dir\}?"/(\S+\.sql)\)', INIT_SCRIPT.read_text(encoding="utf-8"))
    assert match, "warehouse-init.sh must glob \"$sql_dir\"/<pattern>.sql"
    return match.group(1)


def run_init_script(sql_dir: Path, tmp_path: Path) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
    """Run warehouse-init.sh with a stub psql that records its arguments (one call per line)."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    stub_dir = tmp_path / "bin"
    stub_dir.mkdir()
    calls = tmp_path / "psql-calls"
    stub = stub_dir / "psql"
    stub.write_text('#!/usr/bin/env bash\nprintf "%s\\x1f" "$@" >> "$PSQL_CALLS"\necho >> "$PSQL_CALLS"\n', encoding="utf-8")
    stub.chmod(0o755)
    env = {
        "PATH": f"{stub_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PSQL_CALLS": str(calls),
        "STREAMFLOW_SQL_DIR": str(sql_dir),
        "POSTGRES_USER": "warehouse_user",
        "POSTGRES_DB": "warehouse_db",
    }
    result = subprocess.run([bash, str(INIT_SCRIPT)], env=env, capture_output=True, text=True, timeout=30, check=False)
    recorded = calls.read_text(encoding="utf-8").splitlines() if calls.exists() else []
    return result, [line.rstrip("\x1f").split("\x1f") for line in recorded]


def option_values(args: list[str], option: str) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == option]


# -------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def dotenv() -> dict[str, str]:
    return read_dotenv()


# ------------------------------------------------------------------------------------------- compose


def test_expected_services_exist(services):
    assert set(services) == EXPECTED_SERVICES


def test_every_bind_mounted_host_path_exists(services):
    checked = 0
    for name, service in services.items():
        for source, _target, _mode in mounts(service):
            if source.startswith(("./", "../", "/")):
                assert (ROOT / source).exists(), f"{name}: host path {source} does not exist in the repository"
                checked += 1
    assert checked >= len(AIRFLOW_MOUNTS) * len(AIRFLOW_SERVICES) + 2


def test_named_volumes_are_declared(compose, services):
    declared = set(compose.get("volumes") or {})
    for name, service in services.items():
        for source, _target, _mode in mounts(service):
            if not source.startswith((".", "/", "~", "$")):
                assert source in declared, f"{name}: volume {source} is not declared under volumes:"


def test_variables_without_default_are_defined_in_dotenv(compose, dotenv):
    required = set()
    for text in strings_in(compose):
        text = text.replace("$$", "")
        for name, operator, _argument in BRACED_VAR.findall(text):
            if operator not in (":-", "-", ":+", "+"):
                required.add(name)
        required.update(BARE_VAR.findall(BRACED_VAR.sub("", text)))
    assert {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "STREAMFLOW_LAST_MONTH"} <= required
    missing = sorted(required - set(dotenv))
    assert not missing, f"used in docker-compose.yml without a default and missing from .env: {missing}"


def test_warehouse_is_postgres_16_with_credentials_from_dotenv(services):
    warehouse = services["warehouse"]
    match = re.fullmatch(r"postgres:(\d+)(?:\.\d+)*(?:-[\w.]+)?", warehouse["image"])
    assert match, warehouse["image"]
    assert int(match.group(1)) == 16
    env = warehouse["environment"]
    for key in ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"):
        assert env[key] == f"${{{key}}}"


def test_databases_have_pg_isready_healthchecks(services):
    for name in ("warehouse", "airflow-metadata"):
        test = services[name]["healthcheck"]["test"]
        assert "pg_isready" in " ".join(test if isinstance(test, list) else [test]), name


def test_warehouse_loads_only_numbered_ddl_through_the_init_script(services):
    warehouse_mounts = mounts(services["warehouse"])
    initdb = [(source, target) for source, target, _mode in warehouse_mounts if target.startswith("/docker-entrypoint-initdb.d")]
    # Only the init script goes into the init dir: not ./sql itself, nor any .sql file of it.
    assert len(initdb) == 1, initdb
    source, target = initdb[0]
    assert (ROOT / source).resolve() == INIT_SCRIPT
    assert target.endswith(".sh")
    sql_mounts = [target for source, target, _mode in warehouse_mounts if (ROOT / source).resolve() == SQL_DIR]
    assert sql_mounts == [init_script_sql_dir()]


def test_airflow_services_share_one_build(compose, services):
    common = compose["x-airflow-common"]
    assert common["build"] in (".", {"context": "."})
    for name in AIRFLOW_SERVICES:
        assert services[name]["build"] == common["build"], name
        assert services[name].get("image") == common.get("image"), name


def test_airflow_service_commands(services):
    assert {name: command_of(services[name]) for name in AIRFLOW_SERVICES} == AIRFLOW_COMMANDS


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


def test_airflow_environment(services):
    envs = {name: services[name]["environment"] for name in AIRFLOW_SERVICES}
    for name, env in envs.items():
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor", name
        assert str(env["AIRFLOW__CORE__LOAD_EXAMPLES"]).lower() == "false", name
        assert env["STREAMFLOW_LAST_MONTH"] == "${STREAMFLOW_LAST_MONTH}", name

        metadata = urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
        assert metadata.scheme == "postgresql+psycopg2", name
        assert metadata.hostname == "airflow-metadata", name
        meta_env = services["airflow-metadata"]["environment"]
        assert (metadata.username, metadata.password) == (meta_env["POSTGRES_USER"], meta_env["POSTGRES_PASSWORD"])
        assert metadata.path == f"/{meta_env['POSTGRES_DB']}"

        execution_api = urlsplit(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
        assert (execution_api.hostname, execution_api.path) == ("airflow-apiserver", "/execution/"), name

        assert re.fullmatch(r"\$\{AIRFLOW_JWT_SECRET:-.{64,}\}", env["AIRFLOW__API_AUTH__JWT_SECRET"]), name
    # One JWT secret for every component, or task tokens signed by one are rejected by another.
    assert len({env["AIRFLOW__API_AUTH__JWT_SECRET"] for env in envs.values()}) == 1


def test_apiserver_port_matches_execution_api_url(services):
    apiserver = services["airflow-apiserver"]
    container_port = urlsplit(apiserver["environment"]["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]).port
    published = [str(entry) for entry in apiserver["ports"]]
    assert any(
        entry.endswith(f":{container_port}") and "${AIRFLOW_API_PORT:-8080}" in entry for entry in published
    ), published


def test_warehouse_connection_points_at_the_warehouse_service(services, dotenv):
    warehouse_env = services["warehouse"]["environment"]
    for name in AIRFLOW_SERVICES:
        raw = services[name]["environment"]["AIRFLOW_CONN_STREAMFLOW_POSTGRES"]
        url = urlsplit(interpolate(raw, dotenv))
        assert url.scheme in ("postgresql", "postgres"), name
        assert url.hostname == "warehouse", name
        assert url.hostname in services, name
        assert url.port == 5432, name
        assert url.username == interpolate(warehouse_env["POSTGRES_USER"], dotenv) == dotenv["POSTGRES_USER"]
        assert url.password == interpolate(warehouse_env["POSTGRES_PASSWORD"], dotenv) == dotenv["POSTGRES_PASSWORD"]
        assert url.path == f"/{interpolate(warehouse_env['POSTGRES_DB'], dotenv)}" == f"/{dotenv['POSTGRES_DB']}"


def test_startup_order(services):
    assert services["airflow-init"]["depends_on"]["airflow-metadata"]["condition"] == "service_healthy"
    for name in LONG_RUNNING_AIRFLOW_SERVICES:
        depends_on = services[name]["depends_on"]
        assert depends_on["airflow-init"]["condition"] == "service_completed_successfully", name
        assert depends_on["warehouse"]["condition"] == "service_healthy", name
        assert depends_on["airflow-metadata"]["condition"] == "service_healthy", name


# ---------------------------------------------------------------------------------------- Dockerfile


def test_dockerfile_base_image_matches_requirements():
    froms = [arguments for keyword, arguments in dockerfile_instructions() if keyword == "FROM"]
    assert len(froms) == 1, froms
    match = re.fullmatch(r"apache/airflow:(\d+\.\d+\.\d+)-python(\d+\.\d+)", froms[0])
    assert match, froms[0]
    airflow_version, python_version = match.groups()
    assert airflow_version == requirement_pins()["apache-airflow"]
    assert python_version == "3.11"


def test_dockerfile_installs_requirements_with_constraints_as_airflow_user():
    instructions = dockerfile_instructions()
    copied = " ".join(arguments for keyword, arguments in instructions if keyword in ("COPY", "ADD")).split()
    assert "requirements.txt" in copied
    assert "constraints.txt" in copied
    installs = [(i, arguments) for i, (keyword, arguments) in enumerate(instructions) if keyword == "RUN" and "pip install" in arguments]
    assert len(installs) == 1, installs
    index, command = installs[0]
    words = command.split()
    assert any(Path(value).name == "requirements.txt" for value in option_values(words, "-r")), command
    assert any(Path(value).name == "constraints.txt" for value in option_values(words, "-c")), command
    assert "==" not in command, "versions belong in requirements.txt, not in the Dockerfile"
    users = [arguments for keyword, arguments in instructions[:index] if keyword == "USER"]
    assert users
    assert users[-1] == "airflow"


def test_dockerfile_sets_pythonpath_to_include():
    envs = [arguments for keyword, arguments in dockerfile_instructions() if keyword == "ENV"]
    assert "PYTHONPATH=/opt/airflow/include" in envs


# ------------------------------------------------------------------------------------ warehouse init


def test_init_script_is_executable_and_strict():
    text = INIT_SCRIPT.read_text(encoding="utf-8")
    assert text.startswith(("#!/usr/bin/env bash\n", "#!/bin/bash\n"))
    assert re.search(r"^set -euo pipefail$", text, re.MULTILINE)
    assert os.access(INIT_SCRIPT, os.X_OK), "the postgres image only executes *.sh that are executable"


def test_init_script_glob_selects_numbered_ddl_only():
    matched = sorted(path.name for path in SQL_DIR.glob(init_script_glob()) if path.is_file())
    every_sql = sorted(path.name for path in SQL_DIR.glob("*.sql"))
    numbered = [name for name in every_sql if NUMBERED_DDL.fullmatch(name)]
    assert numbered, "sql/ should hold numbered DDL files"
    assert matched == numbered
    assert "stamp_snapshot.sql" not in matched
    assert not set(matched) & (set(every_sql) - set(numbered))


def test_init_script_loads_repo_ddl_in_order_in_one_transaction(tmp_path):
    result, calls = run_init_script(SQL_DIR, tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(calls) == 1, calls
    args = calls[0]
    expected = sorted(path.name for path in SQL_DIR.iterdir() if NUMBERED_DDL.fullmatch(path.name))
    assert [Path(value).name for value in option_values(args, "--file")] == expected
    assert all(Path(value).parent == SQL_DIR for value in option_values(args, "--file"))
    assert "ON_ERROR_STOP=1" in option_values(args, "-v")
    assert "--single-transaction" in args
    assert option_values(args, "--username") == ["warehouse_user"]
    assert option_values(args, "--dbname") == ["warehouse_db"]


def test_init_script_orders_and_filters_any_sql_folder(tmp_path):
    sql_dir = tmp_path / "sql"
    sql_dir.mkdir()
    names = ["010_late.sql", "002_b.sql", "001_a.sql", "stamp_snapshot.sql", "0001_four_digits.sql", "01_two.sql", "003_notes.txt"]
    for name in names:
        (sql_dir / name).write_text("-- x\n", encoding="utf-8")
    result, calls = run_init_script(sql_dir, tmp_path)
    assert result.returncode == 0, result.stderr
    loaded = [Path(value).name for value in option_values(calls[0], "--file")]
    assert loaded == sorted(name for name in names if NUMBERED_DDL.fullmatch(name))


def test_init_script_fails_without_ddl(tmp_path):
    empty = tmp_path / "sql"
    empty.mkdir()
    (empty / "stamp_snapshot.sql").write_text("-- template\n", encoding="utf-8")
    result, calls = run_init_script(empty, tmp_path)
    assert result.returncode != 0
    assert calls == []
