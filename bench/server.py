"""The PostgreSQL the phases run against, and a fresh database per approach."""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import uuid
from pathlib import Path


class Server:
    """The PostgreSQL the bench runs against: embedded in a temp dir, or BENCH_DSN."""

    def __init__(self):
        from streamflow_dev import pgserver
        from streamflow_dev.env import PostgresSettings

        self.suffix = uuid.uuid4().hex[:8]
        self.workdir = Path(tempfile.mkdtemp(prefix="streamflow-bench-"))
        self.pgdata = None
        dsn = os.environ.get("BENCH_DSN")
        if dsn:
            from psycopg.conninfo import conninfo_to_dict

            info = conninfo_to_dict(dsn)
            self.settings = PostgresSettings(host=info.get("host", "127.0.0.1"), port=int(info.get("port", 5432)),
                                             user=info.get("user", ""), password=info.get("password", ""),
                                             database=info.get("dbname", "postgres"), airflow_database="")
            self.kind = f"BENCH_DSN server {self.settings.host}:{self.settings.port}"
        else:
            self.settings = PostgresSettings(host="127.0.0.1", port=pgserver.free_port(), user="streamflow_bench",
                                             password=f"pw-{uuid.uuid4().hex}", database="postgres",
                                             airflow_database="")
            self.pgdata = self.workdir / "pgdata"
            pgserver.start(self.pgdata, self.settings)
            self.kind = f"embedded PostgreSQL on 127.0.0.1:{self.settings.port} (data in {self.pgdata})"
        self.databases: list[str] = []

    def version(self) -> str:
        import psycopg

        with psycopg.connect(self.settings.conninfo()) as conn:
            return conn.execute("SHOW server_version").fetchone()[0]

    def database(self, role: str, schema: bool = True, **parameters: str):
        """A fresh database (schema applied): its PostgresSettings.

        Every session on it gets `statement_timeout` (BENCH_STATEMENT_TIMEOUT, default 900s), so a
        runaway plan fails its phase instead of holding the bench for hours; `parameters` are
        further per-database settings (e.g. work_mem).
        """
        import psycopg
        from psycopg import sql

        from streamflow.schema import apply_schema
        from streamflow_dev import pgserver

        name = f"bench_{role}_{self.suffix}"
        pgserver.ensure_databases(self.settings, name)
        self.databases.append(name)
        settings = dataclasses.replace(self.settings, database=name)
        parameters = {"statement_timeout": os.environ.get("BENCH_STATEMENT_TIMEOUT") or "900s", **parameters}
        with psycopg.connect(self.settings.conninfo(), autocommit=True) as conn:
            for key, value in parameters.items():
                conn.execute(sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                    sql.Identifier(name), sql.Identifier(key), sql.Literal(value)))
        if schema:
            with psycopg.connect(settings.conninfo()) as conn:
                apply_schema(conn)
        return settings

    def checkpoint(self) -> None:
        """Flush what the previous phase wrote, so that its checkpoint does not land in the next one."""
        import psycopg

        try:
            with psycopg.connect(self.settings.conninfo(), autocommit=True) as conn:
                conn.execute("CHECKPOINT")
        except psycopg.Error:
            pass  # not a superuser on BENCH_DSN: measure without

    def close(self) -> None:
        import psycopg
        from psycopg import sql

        from streamflow_dev import pgserver

        if self.pgdata is not None:
            pgserver.stop(self.pgdata)
        else:
            with psycopg.connect(self.settings.conninfo(), autocommit=True) as conn:
                for name in self.databases:
                    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        shutil.rmtree(self.workdir, ignore_errors=True)
