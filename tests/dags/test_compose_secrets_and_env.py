"""The compose stack's secrets and environment: Airflow options that exist, one API secret key, the
metadata credentials and the Fernet key from variables, the published API port, the variables .env
must define, and the warehouse's credentials and connection."""

from __future__ import annotations

import importlib
import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from tests.dags.compose_files import (
    AIRFLOW_SERVICES,
    BARE_VAR,
    BRACED_VAR,
    Stack,
    celery_environments,
    common_env,
    interpolate,
    rename_key,
    review_tests,
    strings_in,
    variables_in,
)

if TYPE_CHECKING:
    from collections.abc import Callable

# Options of apache-airflow-providers-celery: in the official image, not in the venv (whose config
# reference cannot list them); the names are those of the official docker-compose.yaml.
PROVIDER_OPTIONS_NOT_IN_VENV = {("celery", "broker_url"), ("celery", "result_backend")}
AIRFLOW_OPTION_VAR = re.compile(r"AIRFLOW__([A-Z0-9_]+?)__([A-Z0-9_]+)")


def airflow_config_reference() -> dict[str, set[str]]:
    from airflow.configuration import retrieve_configuration_description

    description = retrieve_configuration_description(include_providers=True)
    return {section: set(body.get("options", {})) for section, body in description.items()}


# -------------------------------------------------------------------------------------- review checks


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


# ------------------------------------------------------------------------------- review checks: pass


CHECKS: list[Callable[[Stack], None]] = [
    check_airflow_options_exist,
    check_shared_api_secret_key,
    check_metadata_credentials,
    check_fernet_key,
    check_compose_api_port,
]


# ---------------------------------------------------------------- review checks: fail on broken files


MUTATIONS: dict[str, tuple[Callable[[Stack], None], Callable[[Stack], None]]] = {
    # Airflow options
    "auth manager variable renamed": (check_airflow_options_exist, lambda s: rename_key(common_env(s), "AIRFLOW__CORE__AUTH_MANAGER", "AIRFLOW__CORE__AUTH_MANAGER_CLASS")),
    "auth manager class misspelled": (check_airflow_options_exist, lambda s: common_env(s).update(AIRFLOW__CORE__AUTH_MANAGER="airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManger")),
    "secret key in the wrong section": (check_airflow_options_exist, lambda s: rename_key(common_env(s), "AIRFLOW__API__SECRET_KEY", "AIRFLOW__WEBSERVER__SECRET_KEY")),
    # shared secret key
    "no [api] secret_key": (check_shared_api_secret_key, lambda s: common_env(s).pop("AIRFLOW__API__SECRET_KEY")),
    "secret key not overridable": (check_shared_api_secret_key, lambda s: common_env(s).update(AIRFLOW__API__SECRET_KEY="streamflow-dev-only-api-secret-key")),
    "one service with its own secret key": (check_shared_api_secret_key, lambda s: s.services["airflow-triggerer"].update(environment={**common_env(s), "AIRFLOW__API__SECRET_KEY": "${AIRFLOW_API_SECRET_KEY:-another-dev-secret-key}"})),
    # metadata credentials and Fernet key
    "metadata user a literal": (check_metadata_credentials, lambda s: s.services["airflow-metadata"]["environment"].update(POSTGRES_USER="airflow")),
    "SQL_ALCHEMY_CONN with literal credentials": (check_metadata_credentials, lambda s: common_env(s).update(AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="postgresql+psycopg2://airflow:airflow@airflow-metadata:5432/airflow")),
    "result backend with literal credentials": (check_metadata_credentials, lambda s: s.celery["x-celery-env"].update(AIRFLOW__CELERY__RESULT_BACKEND="db+postgresql://airflow:airflow@airflow-metadata:5432/airflow")),
    "Fernet key a literal": (check_fernet_key, lambda s: common_env(s).update(AIRFLOW__CORE__FERNET_KEY="")),
    "Fernet key default not a key": (check_fernet_key, lambda s: common_env(s).update(AIRFLOW__CORE__FERNET_KEY="${AIRFLOW_FERNET_KEY:-dev}")),
    # API port
    "API port shared with make airflow": (check_compose_api_port, lambda s: s.services["airflow-apiserver"].update(ports=["127.0.0.1:${AIRFLOW_API_PORT:-8080}:8080"])),
    "API port variable defaulting to 8080": (check_compose_api_port, lambda s: (s.services["airflow-apiserver"].update(ports=["127.0.0.1:${STREAMFLOW_DOCKER_PORT:-8080}:8080"]), s.dotenv.update(STREAMFLOW_DOCKER_PORT="8090"))),
    "API port on every interface": (check_compose_api_port, lambda s: s.services["airflow-apiserver"].update(ports=["${COMPOSE_AIRFLOW_API_PORT:-8081}:8080"])),
    "API port variable missing from .env": (check_compose_api_port, lambda s: s.dotenv.pop("COMPOSE_AIRFLOW_API_PORT")),
}

test_review_check, test_checks_catch_broken_variants = review_tests(CHECKS, MUTATIONS)


# ------------------------------------------------------------------------------------------- compose


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
