"""The celery override (docker-compose.celery.yml): CeleryExecutor everywhere, Redis, two workers or
more, as written and as `docker compose config` merges it over docker-compose.yml."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import yaml

from tests.dags.compose_files import (
    CELERY_FILE,
    CELERY_SERVICES,
    COMPOSE_FILE,
    EXPECTED_SERVICES,
    LONG_RUNNING_AIRFLOW_SERVICES,
    PREFLIGHT_SERVICE,
    Stack,
    command_of,
    common_env,
    compose_config,
    healthcheck_test,
    review_tests,
)

if TYPE_CHECKING:
    from collections.abc import Callable


# -------------------------------------------------------------------------------------- review checks


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


# ------------------------------------------------------------------------------- review checks: pass


CHECKS: list[Callable[[Stack], None]] = [
    check_celery_override,
    check_compose_cli_model,
]


# ---------------------------------------------------------------- review checks: fail on broken files


MUTATIONS: dict[str, tuple[Callable[[Stack], None], Callable[[Stack], None]]] = {
    # celery
    "base file on CeleryExecutor": (check_celery_override, lambda s: common_env(s).update(AIRFLOW__CORE__EXECUTOR="CeleryExecutor")),
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

test_review_check, test_checks_catch_broken_variants = review_tests(CHECKS, MUTATIONS)
