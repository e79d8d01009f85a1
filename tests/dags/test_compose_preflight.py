"""The compose stack's preflight (docker/compose_preflight.py) with the environment compose gives it.

No Docker engine: `docker compose config` resolves docker-compose.yml (with .env, and with the values
`make compose-secrets` generates), and the preflight script runs on the host with the preflight
service's resolved environment, its secret read from the file compose would mount. So these tests
cover the compose file's wiring as well as the script: the public defaults it ships are refused
without dev mode, each by name; dev mode accepts them and turns logins off; generated secrets pass
and the passwords land where the API server's auth manager reads them.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.dags.compose_files import COMPOSE_FILE, PREFLIGHT_SERVICE, ROOT, compose_config

PREFLIGHT = ROOT / "docker" / "compose_preflight.py"
GENERATOR = ROOT / "tools" / "compose_secrets.py"
SECRETS = ("AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY", "AIRFLOW_FERNET_KEY", "AIRFLOW_METADATA_PASSWORD",
           "POSTGRES_PASSWORD")
USERS = ("admin", "op", "viewer")


def _preflight_module():
    sys.path.insert(0, str(PREFLIGHT.parent))
    try:
        import compose_preflight
    finally:
        sys.path.remove(str(PREFLIGHT.parent))
    return compose_preflight


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> dict[str, str]:
    """What `make compose-secrets` writes, read back: compose.env's values (STREAMFLOW_PASSWORDS_FILE too)."""
    folder = tmp_path_factory.mktemp("compose-secrets")
    result = subprocess.run([sys.executable, str(GENERATOR), str(folder)], capture_output=True, text=True,
                            env={"PATH": os.environ.get("PATH", ""), "HOME": str(folder)}, check=False)
    assert result.returncode == 0, result.stderr
    lines = (folder / "compose.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def run_preflight(config: dict, tmp_path: Path, **overrides: str) -> tuple[subprocess.CompletedProcess, Path]:
    """The preflight script with the preflight service's resolved environment; the secret is the file
    compose would mount, the install target a folder of the test's. Returns (result, install target)."""
    service = config["services"][PREFLIGHT_SERVICE]
    (secret,) = service["secrets"]
    installed = tmp_path / "auth" / "simple_auth_manager_passwords.json"
    env = {**service["environment"], "STREAMFLOW_PASSWORDS_SECRET": config["secrets"][secret["source"]]["file"],
           "STREAMFLOW_PASSWORDS_INSTALLED": str(installed), "AIRFLOW_UID": str(os.getuid()), **overrides}
    env["PATH"] = os.environ.get("PATH", "")
    result = subprocess.run([sys.executable, str(PREFLIGHT)], env=env, capture_output=True, text=True, timeout=30,
                            check=False)
    return result, installed


def test_the_shipped_defaults_are_refused_without_dev_mode_each_by_name(tmp_path):
    config = compose_config([COMPOSE_FILE])
    result, installed = run_preflight(config, tmp_path)
    assert result.returncode == 1, result.stdout
    for name in SECRETS:
        assert any(line.startswith(f"preflight: {name} ") for line in result.stderr.splitlines()), (name, result.stderr)
    assert "STREAMFLOW_PASSWORDS_FILE (not set) has no password for admin, op, viewer" in result.stderr
    assert "STREAMFLOW_DEV_MODE=1" in result.stderr.splitlines()[-1]
    assert not installed.exists()
    # And the API server would have run with logins on, had it started.
    assert config["services"]["airflow-apiserver"]["environment"]["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] == "0"


def test_the_preflight_knows_every_public_default_the_files_ship():
    """Its list of public values is what docker-compose.yml and .env resolve to: a default changed in
    the files and not in the script would pass as a secret of the user's own."""
    resolved = compose_config([COMPOSE_FILE])["services"][PREFLIGHT_SERVICE]["environment"]
    public = _preflight_module().PUBLIC_DEV_VALUES
    assert {name: resolved[name] for name in public} == public
    assert set(public) | {"AIRFLOW_FERNET_KEY"} == set(SECRETS)  # the Fernet key's default is empty: "not set"
    assert resolved["AIRFLOW_FERNET_KEY"] == ""


def test_the_preflight_checks_the_values_the_services_get(generated):
    """The same YAML nodes: what the preflight sees is what the Airflow services and databases run with."""
    services = compose_config([COMPOSE_FILE], env=generated)["services"]
    checked = services[PREFLIGHT_SERVICE]["environment"]
    airflow = services["airflow-scheduler"]["environment"]
    assert checked["AIRFLOW_JWT_SECRET"] == airflow["AIRFLOW__API_AUTH__JWT_SECRET"] == generated["AIRFLOW_JWT_SECRET"]
    assert checked["AIRFLOW_API_SECRET_KEY"] == airflow["AIRFLOW__API__SECRET_KEY"] == generated["AIRFLOW_API_SECRET_KEY"]
    assert checked["AIRFLOW_FERNET_KEY"] == airflow["AIRFLOW__CORE__FERNET_KEY"] == generated["AIRFLOW_FERNET_KEY"]
    assert checked["AIRFLOW_METADATA_PASSWORD"] == services["airflow-metadata"]["environment"]["POSTGRES_PASSWORD"]
    assert checked["POSTGRES_PASSWORD"] == services["warehouse"]["environment"]["POSTGRES_PASSWORD"]
    assert checked["STREAMFLOW_AIRFLOW_USERS"] == airflow["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"]
    assert f":{generated['AIRFLOW_METADATA_PASSWORD']}@" in airflow["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert f":{generated['POSTGRES_PASSWORD']}@" in airflow["AIRFLOW_CONN_STREAMFLOW_POSTGRES"]


def test_dev_mode_accepts_the_defaults_and_turns_logins_off(tmp_path, monkeypatch):
    config = compose_config([COMPOSE_FILE], env={"STREAMFLOW_DEV_MODE": "1"})
    result, installed = run_preflight(config, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "logins off" in result.stdout
    assert not installed.exists()
    # What the services get is what Airflow reads as all-admins (no login).
    from airflow.configuration import conf

    for name, service in config["services"].items():
        if name not in (PREFLIGHT_SERVICE, "warehouse", "airflow-metadata"):
            value = service["environment"]["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"]
            monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", value)
            assert conf.getboolean("core", "simple_auth_manager_all_admins") is True, name


def test_generated_secrets_pass_and_the_passwords_reach_the_api_server(generated, tmp_path):
    config = compose_config([COMPOSE_FILE], env=generated)
    assert config["secrets"]["airflow_passwords"]["file"] == generated["STREAMFLOW_PASSWORDS_FILE"]
    result, installed = run_preflight(config, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "logins on for admin (admin), op (op), viewer (viewer)" in result.stdout
    passwords = json.loads(installed.read_text())
    assert passwords == json.loads(Path(generated["STREAMFLOW_PASSWORDS_FILE"]).read_text())
    assert set(passwords) == set(USERS)
    assert all(len(password) >= 16 for password in passwords.values())
    assert stat.S_IMODE(installed.stat().st_mode) == 0o600
    assert stat.S_IMODE(Path(generated["STREAMFLOW_PASSWORDS_FILE"]).stat().st_mode) == 0o600
    # The API server reads the copy, from the volume the preflight writes it to.
    services = config["services"]
    preflight_env = services[PREFLIGHT_SERVICE]["environment"]
    api = services["airflow-apiserver"]
    target = api["environment"]["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
    assert target == preflight_env["STREAMFLOW_PASSWORDS_INSTALLED"]
    volume_of = {service: {mount["target"]: mount["source"] for mount in services[service]["volumes"]}
                 for service in (PREFLIGHT_SERVICE, "airflow-apiserver")}
    folder = str(Path(target).parent)
    assert volume_of[PREFLIGHT_SERVICE][folder] == volume_of["airflow-apiserver"][folder] == "airflow-auth"
    assert api["environment"]["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] == "0"
    # Nothing else sees the passwords.
    for name, service in services.items():
        if name not in (PREFLIGHT_SERVICE, "airflow-apiserver"):
            assert "airflow-auth" not in {mount.get("source") for mount in service.get("volumes", [])}, name


@pytest.mark.parametrize("name", SECRETS)
def test_each_secret_left_at_its_default_is_named(generated, tmp_path, name):
    """All other values generated: that one alone is named (the Fernet key's default is empty)."""
    public = _preflight_module().PUBLIC_DEV_VALUES
    env = {**generated, name: public.get(name, "")}
    result, installed = run_preflight(compose_config([COMPOSE_FILE], env=env), tmp_path)
    assert result.returncode == 1
    problems = [line for line in result.stderr.splitlines() if not line.startswith("preflight: refusing")]
    assert problems == [f"preflight: {name} {'is the public dev default' if name in public else 'is not set'}"]
    assert not installed.exists()


@pytest.mark.parametrize(("override", "problem"), [
    ({"AIRFLOW_JWT_SECRET": "x" * 63}, "AIRFLOW_JWT_SECRET has 63 characters: HS512 wants 64 or more"),
    ({"AIRFLOW_FERNET_KEY": "not-a-fernet-key"}, "AIRFLOW_FERNET_KEY is not a Fernet key"),
    ({"POSTGRES_PASSWORD": "p@ss/word"}, "POSTGRES_PASSWORD holds characters a connection URI would misread"),
    ({"STREAMFLOW_AIRFLOW_USERS": "admin:admin,op:operator"}, "'op:operator' is not name:role"),
    ({"STREAMFLOW_DEV_MODE": "yes"}, "STREAMFLOW_DEV_MODE='yes': use 1 (dev mode) or 0"),
])
def test_values_airflow_or_compose_would_misread_are_refused(generated, tmp_path, override, problem):
    result, _ = run_preflight(compose_config([COMPOSE_FILE], env={**generated, **override}), tmp_path)
    assert result.returncode == 1
    assert problem in result.stderr


def test_a_user_without_a_password_is_named(generated, tmp_path):
    partial = tmp_path / "passwords.json"
    partial.write_text(json.dumps({"admin": "a-password-of-its-own", "op": ""}))
    config = compose_config([COMPOSE_FILE], env={**generated, "STREAMFLOW_PASSWORDS_FILE": str(partial)})
    result, installed = run_preflight(config, tmp_path)
    assert result.returncode == 1
    assert f"STREAMFLOW_PASSWORDS_FILE ({partial}) has no password for op, viewer" in result.stderr
    assert not installed.exists()


def test_the_generator_keeps_existing_secrets(tmp_path):
    """A second run must not replace the passwords the databases were initialised with."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
    first = subprocess.run([sys.executable, str(GENERATOR), str(tmp_path)], env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    before = (tmp_path / "compose.env").read_text()
    second = subprocess.run([sys.executable, str(GENERATOR), str(tmp_path)], env=env, capture_output=True, text=True)
    assert second.returncode == 1
    assert "already there: kept" in second.stderr
    assert (tmp_path / "compose.env").read_text() == before
