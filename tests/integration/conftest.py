"""Airflow against the test PostgreSQL: a metadata database migrated once per session."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import tempfile
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def airflow_metadata(pg_server):
    """A migrated Airflow metadata database on the session server; yields its name."""
    from streamflow_dev import pgserver

    name = "airflow_test_metadata"
    pgserver.ensure_databases(pg_server, name)
    home = Path(tempfile.mkdtemp(prefix="streamflow-test-airflow-home-"))
    env = airflow_env(dataclasses.replace(pg_server, database="postgres", airflow_database=name), home)
    subprocess.run(["airflow", "db", "migrate"], env=env, check=True, capture_output=True)
    return name, home


def airflow_env(settings, home: Path, **extra: str) -> dict[str, str]:
    """The environment the local stack would give Airflow, pointed at `settings`' databases."""
    from streamflow_dev.env import airflow_environment

    values = {"POSTGRES_HOST": settings.host, "POSTGRES_PORT": str(settings.port), "POSTGRES_USER": settings.user,
              "POSTGRES_PASSWORD": settings.password, "POSTGRES_DB": settings.database,
              "AIRFLOW_METADATA_DB": settings.airflow_database, **extra}
    return airflow_environment(values, home)


@pytest.fixture
def run_dag(warehouse, airflow_metadata):
    """`run_dag("month_001")` runs the whole DAG once (`airflow dags test`) on the test warehouse;
    `conf` adds other params of the run."""
    metadata_db, home = airflow_metadata
    settings = dataclasses.replace(warehouse, airflow_database=metadata_db)

    def run(month: str, conf: dict | None = None, **extra: str) -> subprocess.CompletedProcess:
        from streamflow_dev.env import DAGS_TEST_SETTINGS

        env = airflow_env(settings, home, **{**DAGS_TEST_SETTINGS, **extra})
        return subprocess.run(["airflow", "dags", "test", "ingest_month", "--conf", json.dumps({"month": month, **(conf or {})})],
                              env=env, capture_output=True, text=True, timeout=600)

    return run
