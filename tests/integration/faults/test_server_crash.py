"""PostgreSQL crashing mid-run (`pg_ctl stop -m immediate`, then crash recovery), on a server of the test's own.

Crash recovery restarts UNLOGGED tables empty: the run's staged tables and their manifest. The
tasks after the crash must say so (not blame the files, not validate an empty table) and change
nothing; a re-run of the month (its stage tasks again) converges. A clean restart (`-m fast`)
keeps the staging: test_killed_tasks.py restarts the warehouse under a running DAG that way.
"""

from __future__ import annotations

import dataclasses

import pytest

from streamflow import pipeline
from streamflow.errors import NotStaged
from streamflow.registry import TABLES, USERS
from streamflow.run import RunMonth
from streamflow.schema import apply_schema
from streamflow_dev import pgserver
from streamflow_dev.run_month import run_month
from tests.conftest import connect, embedded_server
from tests.golden import ROWS

RUN = "test__crash"


def test_a_crash_empties_the_staging_the_next_tasks_say_so_and_change_nothing_a_rerun_publishes(seeds):
    month = RunMonth.named("month_000", RUN)
    with embedded_server("streamflow-test-pg-crash-") as (server, pgdata):
        pgserver.ensure_databases(server, "warehouse")
        settings = dataclasses.replace(server, database="warehouse")
        with connect(settings) as conn:
            apply_schema(conn)
            pipeline.stage_table(conn, USERS, month)
        assert pgserver.stop(pgdata, mode="immediate")
        pgserver.start(pgdata, server)

        with connect(settings) as conn:
            # Not "unknown user_id" (the file is fine): the staged users are what was lost.
            with pytest.raises(NotStaged, match=r"users is empty \(PostgreSQL restarts UNLOGGED tables empty"):
                pipeline.stage_table(conn, "subscriptions", month)
            with pytest.raises(NotStaged, match="users is not staged .* after a crash"):
                pipeline.validate_table(conn, "postgresql://unused", USERS, month)
            with pytest.raises(NotStaged, match="nothing staged for users, .* after a crash"):
                pipeline.publish_month(conn, month)
            assert {t.name: conn.execute(f"SELECT count(*) FROM {t.name}").fetchone()[0] for t in TABLES} == {
                t.name: 0 for t in TABLES}

            published = run_month(conn, month)  # the re-run: every stage task, then the publish

            assert {entry["status"] for entry in published["tables"].values()} == {"loaded"}
            assert {t.name: conn.execute(f"SELECT count(*) FROM {t.name}").fetchone()[0] for t in TABLES} == {
                t.name: ROWS for t in TABLES}
