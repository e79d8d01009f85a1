"""Settings for the local stack: `.env` values, each overridable by an environment variable."""

from __future__ import annotations

import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from streamflow.settings import PROJECT_ROOT, WAREHOUSE_CONN_ID

DOTENV = PROJECT_ROOT / ".env"
AIRFLOW_HOME = PROJECT_ROOT / ".airflow"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
#: Settings of an `airflow dags test` run. No Deadline Alert: Airflow 3.3.2's `dags test` crashes at the end
#: of every successful run of a DAG that has one (DagRun.update_state looks the alerts up by the serialized
#: alert instead of its id: "can't adapt type 'dict'"), and with no scheduler it could not fire anyway.
DAGS_TEST_SETTINGS = {"STREAMFLOW_PUBLISH_DEADLINE_DAYS": "0"}


def read_dotenv(path: Path = DOTENV) -> dict[str, str]:
    """`KEY=value` lines of a .env file (python-dotenv; no shell expansion)."""
    from dotenv import dotenv_values

    return {key: value or "" for key, value in dotenv_values(path, interpolate=False).items()}


def pgdata(values: dict[str, str]) -> Path:
    """The embedded server's data directory (`STREAMFLOW_PGDATA`, default .pgdata/)."""
    return Path(values.get("STREAMFLOW_PGDATA") or PROJECT_ROOT / ".pgdata")


@dataclass(frozen=True)
class PostgresSettings:
    """Where the warehouse server is and how to log in."""

    host: str
    port: int
    user: str
    password: str
    database: str
    airflow_database: str

    @property
    def is_loopback(self) -> bool:
        return self.host in LOOPBACK_HOSTS

    def conninfo(self, database: str | None = None) -> str:
        """libpq key/value connection string (values quoted by psycopg)."""
        from psycopg.conninfo import make_conninfo

        return make_conninfo(
            host=self.host, port=self.port, user=self.user, password=self.password,
            dbname=database or self.database,
        )

    def url(self, scheme: str, database: str) -> str:
        """A URL with user and password percent-escaped (Airflow connection / SQLAlchemy form)."""
        user, password = quote(self.user, safe=""), quote(self.password, safe="")
        return f"{scheme}://{user}:{password}@{self.host}:{self.port}/{quote(database, safe='')}"


def settings(overrides: dict[str, str] | None = None) -> dict[str, str]:
    """.env values; an environment variable of the same name (or any POSTGRES_/STREAMFLOW_/AIRFLOW
    variable) wins, then `overrides`."""
    merged = read_dotenv()
    prefixes = ("POSTGRES_", "STREAMFLOW_", "AIRFLOW")
    merged.update({key: value for key, value in os.environ.items() if key in merged or key.startswith(prefixes)})
    merged.update(overrides or {})
    return merged


def postgres_settings(values: dict[str, str] | None = None) -> PostgresSettings:
    values = values if values is not None else settings()
    required = ("POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB")
    missing = [key for key in required if not values.get(key)]
    if missing:
        raise SystemExit(f"missing settings {', '.join(missing)}: set them in .env or the environment")
    return PostgresSettings(values["POSTGRES_HOST"], int(values["POSTGRES_PORT"]), values["POSTGRES_USER"],
                            values["POSTGRES_PASSWORD"], values["POSTGRES_DB"],
                            values.get("AIRFLOW_METADATA_DB") or "airflow")


def airflow_environment(values: dict[str, str] | None = None, home: Path | None = None) -> dict[str, str]:
    """The environment every Airflow process of the local stack runs with (`STREAMFLOW_AIRFLOW_HOME`,
    default .airflow/)."""
    values = values if values is not None else settings()
    home = home or Path(values.get("STREAMFLOW_AIRFLOW_HOME") or AIRFLOW_HOME)
    pg = postgres_settings(values)
    port = values.get("AIRFLOW_API_PORT") or "8080"
    venv_bin = str(Path(sys.executable).parent)
    env = dict(os.environ)
    env.update({key: value for key, value in values.items() if key.startswith(("POSTGRES_", "STREAMFLOW_"))})
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # Task slots; the LocalExecutor forks this many workers at once (default 32, each a copy of a
        # process holding Great Expectations): ingest_month is at most six tasks wide. As in docker-compose.yml.
        "AIRFLOW__CORE__PARALLELISM": values.get("AIRFLOW__CORE__PARALLELISM") or "8",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg.url("postgresql+psycopg2", pg.airflow_database),
        "AIRFLOW__API__PORT": port,
        "STREAMFLOW_UI_URL": values.get("STREAMFLOW_UI_URL") or f"http://localhost:{port}",
        "AIRFLOW__API__HOST": "127.0.0.1",
        # One secret per start, shared by the API server and the task workers through this environment.
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        f"AIRFLOW_CONN_{WAREHOUSE_CONN_ID.upper()}": pg.url("postgresql", pg.database),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT / "include"), os.environ.get("PYTHONPATH")])),
        "PATH": os.pathsep.join([venv_bin, os.environ.get("PATH", "")]),
    })
    return env
