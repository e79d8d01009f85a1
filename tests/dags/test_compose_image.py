"""The project's image: one build for every Airflow service, and the Dockerfile (its base image
matches requirements.txt, the pinned install as the airflow user, PYTHONPATH)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.dags.compose_files import AIRFLOW_SERVICES, PREFLIGHT_SERVICE, ROOT

DOCKERFILE = ROOT / "Dockerfile"


def requirement_pins() -> dict[str, str]:
    pins = {}
    for raw in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==(\S+)", line)
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


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


def option_values(args: list[str], option: str) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == option]


# ------------------------------------------------------------------------------------------- compose


def test_airflow_services_share_one_build(compose, services):
    common = compose["x-airflow-common"]
    assert common["build"] in (".", {"context": "."})
    for name in AIRFLOW_SERVICES | {PREFLIGHT_SERVICE}:
        assert services[name]["build"] == common["build"], name
        assert services[name].get("image") == common.get("image"), name


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
