"""The validation phase, in a child process: every row of month_001's six staged tables, as the DAG's
`validate.<table>` tasks see it, then the month's figures judged against history.

Imports stay inside the functions (the child's peak RSS is its phase's).
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from pathlib import Path


def phase_validate(args: dict) -> dict:
    """Validation as the DAG's `validate.<table>` tasks run it, on month_001 staged in a run's schema
    (`pipeline.stage_table`, untimed, in a database of its own): every expectation suite on every
    staged row (GX inside PostgreSQL; `row_rules_s`), then the month-level audit the DAG adds to it
    (`figures_s`): figures computed, kept with the user set, judged against a previous month.

    On the staged tables, not the live ones: those have had a month MERGEd over them, half their
    row versions dead, which the DAG never validates.
    """
    t0 = time.perf_counter()
    import great_expectations  # noqa: F401 - imported once, timed apart from the validation itself
    import psycopg

    from streamflow import pipeline
    from streamflow.registry import TABLES
    from streamflow.run import RunMonth
    from streamflow.validation import run_suite

    import_s = time.perf_counter() - t0
    folder = Path(args["folder"])
    os.environ["STREAMFLOW_SEEDS_DIR"] = str(folder.parent)
    run = RunMonth.named(folder.name, f"bench__validate__{uuid.uuid4().hex[:8]}")
    with psycopg.connect(args["conninfo"], autocommit=True) as conn:
        for table in TABLES:
            pipeline.stage_table(conn, table.name, run)
        with contextlib.suppress(psycopg.Error):  # not a superuser on BENCH_DSN: measure without
            conn.execute("CHECKPOINT")  # the staging's writes flushed before the timing starts
    per_table, failed = {}, []
    started = time.perf_counter()
    for table in TABLES:
        t1 = time.perf_counter()
        outcomes = run_suite(args["url"], table, run.staging_schema, run.as_of)
        failed += [f"{o.table}: {o.expectation} {o.column or ''} {o.error or ''}" for o in outcomes if not o.success]
        per_table[table.name] = {"s": time.perf_counter() - t1, "expectations": len(outcomes),
                                 "rows": max((o.element_count or 0) for o in outcomes)}
    row_rules_s = time.perf_counter() - started
    figures_s = _month_figures(args["conninfo"], per_table, run) if args.get("figures", True) else None
    return {"s": row_rules_s, "import_s": import_s, "tables": per_table, "failed": failed,
            "rows": sum(t["rows"] for t in per_table.values()), "figures_s": figures_s}


def _month_figures(conninfo: str, per_table: dict, run) -> float:
    """Seconds of `pipeline.audit_figures`' work on the six staged tables: compute, keep, judge.

    The month before is kept first, untimed: each table's user_ids but one in twenty (so the users
    kept are counted by a real join, not found equal), as that month's run would have kept them.
    """
    import psycopg
    from psycopg import sql

    from streamflow import history, metrics, staging, user_sets
    from streamflow.registry import KEY, TABLES

    total = 0.0
    with psycopg.connect(conninfo) as conn:
        for table in TABLES:
            batch = staging.table_in(run.staging_schema, table.name)
            with conn.transaction():
                (user_set,) = conn.execute(sql.SQL(
                    "WITH previous AS (SELECT array_agg(h) AS hashes FROM (SELECT hashtextextended({}, 0) AS h FROM {})"
                    "                  AS every_user WHERE h % 20 <> 0),"
                    " kept AS (INSERT INTO validation_user_sets (run_id, fingerprint, as_of, user_hashes)"
                    "          SELECT 'bench__previous', streamflow_user_set_fingerprint(hashes), '2024-01-31', hashes"
                    "          FROM previous ON CONFLICT DO NOTHING)"
                    " SELECT streamflow_user_set_fingerprint(hashes) FROM previous").format(
                    sql.Identifier(KEY), batch)).fetchone()
            previous = user_sets.PreviousUsers("2024-01-31", "bench__previous", user_set)
            t0 = time.perf_counter()
            with conn.transaction():
                figures = metrics.compute(conn, table, batch, run.as_of, run.run_id, previous)
                metrics.history(conn, table.name, run.as_of)
                metrics.record(conn, run, figures)
            outcomes = history.evaluate(table, figures, [figures])
            per_table[table.name]["figures_s"] = time.perf_counter() - t0
            per_table[table.name]["checks"] = len(outcomes)
            total += per_table[table.name]["figures_s"]
    return total
