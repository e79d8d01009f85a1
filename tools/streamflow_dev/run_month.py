"""One month in process, as `ingest_month`'s tasks run it, without Airflow: the one driver the
integration tests and `make bench` run months through (the shipped package has only the steps).

`run_month` calls the steps of `streamflow.pipeline` in the DAG's order: stage the six tables
(users first), validate each staged table (when given a SQLAlchemy URL; without one, a month
stages and publishes unaudited, as the loader tests want), publish, stamp the five snapshots
(when asked to). A step that raises stops the month there, as a failed task stops its run.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg

    from streamflow.run import RunMonth


def run_month(conn: psycopg.Connection, month: RunMonth, *, sqlalchemy_url: str | None = None, stamp: bool = False,
              seconds: dict | None = None) -> dict:
    """Run one month through the pipeline's steps, in process.

    Args:
        conn: a warehouse connection not inside a transaction.
        month: the run's month, as `pipeline.prepare_month` gives it (`RunMonth.named(name, run_id)` for a
            month named outright): its run id names its staging schema and its ledger rows.
        sqlalchemy_url: the warehouse for Great Expectations; None skips the validation step.
        stamp: also stamp the five snapshots at the month's as_of (and commit).
        seconds: filled with each step's wall seconds: `stage` (by table), `validate`, `publish`, `stamp`.

    Returns:
        What `publish_month` returns (`tables`: each table's outcome), with `validated` (each
        validate step's result, by table) and `snapshots` (each snapshot step's asset extra, by
        table) for the steps that ran.
    """
    from streamflow import pipeline
    from streamflow.registry import SNAPSHOTTED, TABLES

    seconds = {} if seconds is None else seconds
    seconds["stage"] = {}
    for source in TABLES:
        started = time.perf_counter()
        pipeline.stage_table(conn, source.name, month)
        seconds["stage"][source.name] = time.perf_counter() - started
    started = time.perf_counter()
    validated = {source.name: pipeline.validate_table(conn, sqlalchemy_url, source.name, month)
                 for source in TABLES} if sqlalchemy_url else {}
    seconds["validate"] = time.perf_counter() - started
    started = time.perf_counter()
    published = pipeline.publish_month(conn, month)
    seconds["publish"] = time.perf_counter() - started
    started = time.perf_counter()
    snapshots = {source.name: pipeline.stamp_snapshot(conn, source.name, month)
                 for source in SNAPSHOTTED} if stamp else {}
    if stamp:
        conn.commit()
    seconds["stamp"] = time.perf_counter() - started
    return {**published, "validated": validated, "snapshots": snapshots}
